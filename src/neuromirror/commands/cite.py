"""``neuromirror cite SPEC@VERSION [--format text|bibtex|cff|json]``: cite a version and its mirror state."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuromirror.commands.common import UserError, print_json, require_mirror, spec_arg

FORMATS = ("text", "bibtex", "cff", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cite",
        help="citation (archive's DOI and citation + the mirror's commit) as text, BibTeX, CITATION.cff or JSON",
        description="Print how to cite a version: the archive's own citation and DOI where it has them, the "
        "mirror's commit and how to retrieve exactly that state.",
    )
    p.add_argument("spec", help="e.g. dandi:000027@0.230629.1955 (default: the latest recorded version)")
    p.add_argument("--format", "-f", choices=FORMATS, default="text", help="output format (default text)")
    p.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (e.g. CITATION.cff) instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror.pin import citation

    spec = spec_arg(args.spec)
    if spec.is_glob:
        raise UserError("cite takes one source, not a pattern")
    mirror = require_mirror(args)
    try:
        info = citation.citation_info(mirror, spec)
    finally:
        mirror.close()
    if args.format == "json":
        if args.output:
            import json

            Path(args.output).write_text(json.dumps(citation.to_json(info), indent=2) + "\n", encoding="utf-8")
        else:
            print_json(citation.to_json(info))
        return 0
    render = {"text": citation.to_text, "bibtex": citation.to_bibtex, "cff": citation.to_cff}[args.format]
    text = render(info)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({args.format}) for {info.spec}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

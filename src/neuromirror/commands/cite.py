"""``neuromirror cite SPEC@VERSION [--format text|bibtex|cff|json]``: cite a version and its mirror state."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuromirror.commands.common import open_api

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
    with open_api(args) as m:
        info = m.cite(args.spec)
    text = info.render(args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        if args.format != "json":
            print(f"wrote {args.output} ({args.format}) for {info.spec}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

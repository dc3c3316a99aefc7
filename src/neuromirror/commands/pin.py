"""``neuromirror pin SPEC[@VERSION]``: the exact, citable state of a source."""

from __future__ import annotations

import argparse

from neuromirror.commands.common import UserError, add_json, open_api, print_json, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pin",
        help="print the commit, tag and DOI that pin a version",
        description="Print what pins a mirrored version exactly: its source, version, the dataset (its path under "
        "the root), the commit and tag, and the archive's DOI (the latest version when none is named).",
    )
    p.add_argument("spec", help="dandi:000027, dandi:000027@0.230629.1955 or dandi:000027@draft (default: the latest)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = spec_arg(args.spec)
    if spec.is_glob:  # said before looking for a mirror: a pattern is the mistake, not a missing sync
        raise UserError(f"pin {args.spec}: pin names one source, not a pattern (neuromirror status lists the sources)")
    with open_api(args) as m:
        rec = m.pin(spec)
    if args.json:
        print_json(rec.to_json())
    else:
        print("\n".join(rec.lines()))
    return 0

"""``neuromirror diff SPEC@V1 SPEC@V2 [--json]``: files added, removed and changed between two versions."""

from __future__ import annotations

import argparse

from neuromirror.commands.common import add_json, open_api, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="added, removed and changed files between two versions",
        description="Compare the file lists of two recorded versions (from the index): paths added, removed and "
        "changed (other content), with sizes. A version is a label (0.230629.1955, draft) or the commit of an "
        "older state (as versions lists it). The second SPEC may be just @VERSION for the same source.",
    )
    p.add_argument("old", help="e.g. dandi:000027@0.230629.1955")
    p.add_argument("new", help="e.g. dandi:000027@draft, or @draft")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_api(args) as m:
        d = m.diff(args.old, args.new)
    if args.json:
        print_json(d.to_json())
    else:
        print("\n".join(d.lines()))
    return 0

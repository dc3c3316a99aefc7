"""``neuromirror check-config FILE...``: validate mirror definitions and say what they define."""

from __future__ import annotations

import argparse
import sys

from neuromirror.commands.common import add_json, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-config",
        help="validate mirror definition files (mirrors/*.yaml); nothing else",
        description="Validate mirror definition files (mirrors/*.yaml) as the service would read them: every "
        "mistake named with its file, line and key, nothing synced and nothing written.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="mirror definition file(s)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror import api

    checked = api.Mirror.check_config(args.files)
    if args.json:
        print_json(checked.to_json())
        return 0 if checked.ok else 1
    if checked.lines():
        print("\n".join(checked.lines()))
    for line in checked.problems():
        print(line, file=sys.stderr)
    return 0 if checked.ok else 1

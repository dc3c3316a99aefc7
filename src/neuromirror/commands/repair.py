"""``neuromirror repair SPEC...``: take mutable URLs registered beside pinned ones off existing datasets."""

from __future__ import annotations

import argparse

from neuromirror.commands.common import add_json, open_api, print_json, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repair",
        help="remove URLs that can serve other bytes (e.g. DANDI's Zarr download route) where a pinned URL exists",
        description="Datasets made by earlier versions of neuromirror registered some URLs whose bytes change "
        "upstream (DANDI's Zarr download route) beside the pinned S3 URL; git-annex then fails to "
        "retrieve older commits after an in-place rewrite. This removes them from the git-annex "
        "branch of each source's dataset and its subdatasets (a sync does it once by itself). "
        "See docs/architecture.md, 'The URL rule'.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="dandi:000027, or a pattern like 'dandi:*'")
    p.add_argument("--force", action="store_true", help="scan datasets already marked as repaired too")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    specs = [spec_arg(s, allow_version=False) for s in args.specs]
    with open_api(args) as m:
        repaired = m.repair(specs, force=args.force)
    if args.json:
        print_json(repaired.to_json())
    else:
        print("\n".join(repaired.lines()))
    return 0 if repaired.ok else 1

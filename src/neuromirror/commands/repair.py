"""``neuromirror repair SPEC...``: take mutable URLs registered beside pinned ones off existing datasets."""

from __future__ import annotations

import argparse

from neuromirror.commands.common import UserError, add_json, print_json, require_mirror, sources_matching, spec_arg


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
    from neuromirror.engine.repair import repair_tree

    specs = [spec_arg(s, allow_version=False) for s in args.specs]
    mirror = require_mirror(args)
    results = []
    try:
        for sid in sources_matching(mirror.index, specs):
            row = mirror.index.source(sid)
            ds = mirror.dataset_path(row.dataset)
            if not (ds / ".git").exists():
                raise UserError(f"{sid}: its dataset {ds} does not exist")
            with mirror.lock(sid):
                rep = repair_tree(ds, force=args.force)
            results.append({"source": sid, "dataset": str(ds), **rep.to_json()})
            if not args.json:
                line = (
                    f"{sid}: {rep.urls_removed} mutable URL(s) removed from {rep.keys} key(s) "
                    f"in {rep.datasets} dataset(s)"
                )
                print(line + "".join(f"\n  error: {e}" for e in rep.errors))
    finally:
        mirror.close()
    if args.json:
        print_json(results)
    return 1 if any(r["errors"] for r in results) else 0

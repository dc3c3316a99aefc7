"""``neuromirror reindex``: rebuild the index from the datasets."""

from __future__ import annotations

import argparse

from neuromirror.commands.common import UserError, add_json, open_mirror, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reindex", help="rebuild the SQLite index from the datasets (the truth)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror.index.reindex import reindex_all

    mirror = open_mirror(args)
    if not (mirror.root / ".git").exists():  # nothing to rebuild from: create no index either
        raise UserError(f"no mirror at {mirror.root} (not a dataset; pass --root or set NEUROMIRROR_ROOT)")
    counts = reindex_all(mirror.index, mirror.root, _all_datasets(mirror))
    if args.json:
        print_json(counts)
    else:
        for source, n in counts.items():
            print(f"{source}: {n} versions")
        print(f"reindexed {len(counts)} sources into {mirror.index_path}")
    return 0


def _all_datasets(mirror) -> list[str]:  # noqa: ANN001
    """Registered subdatasets of the root and, below them, nested ones."""
    return mirror.subdatasets()

"""``neuromirror reindex``: rebuild the index from the datasets; ``--prune``: only trim its run history.

``--prune`` does by hand what the service does hourly (:mod:`neuromirror.index.retention`):
runs past the retention policy (``--config``'s ``retention:``, else the defaults) removed in
small transactions, the file compacted and its WAL checkpointed.  Nothing is rebuilt.
"""

from __future__ import annotations

import argparse

from neuromirror.commands.common import UserError, add_json, open_mirror, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reindex",
        help="rebuild the SQLite index from the datasets (the truth)",
        description="Rebuild the SQLite index from the mirror's datasets, which are the truth: every source, "
        "version and file as the datasets' history records them. Run it after losing or damaging the index.",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="do not rebuild: remove the run history the retention policy no longer keeps, compact the index "
        "and checkpoint its WAL (what the service does hourly)",
    )
    p.add_argument(
        "--config",
        "-c",
        action="append",
        metavar="FILE",
        help="with --prune: the mirror definition(s) whose retention: policies apply (default: keep the newest "
        "500 runs of each source, none older than 90 days)",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror.dataset.reindex import reindex_all

    if args.prune:
        return _prune(args)
    if args.config:
        raise UserError("--config goes with --prune (reindex rebuilds from the datasets, whatever the definition)")
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


def _prune(args: argparse.Namespace) -> int:
    from neuromirror.config.model import MirrorConfig
    from neuromirror.index.retention import tidy

    config = MirrorConfig()
    if args.config:
        from neuromirror.config.load import load_configs

        config = load_configs(args.config)
        if config.root is not None and not args.root:
            args.root = str(config.root)
    mirror = open_mirror(args)
    if not mirror.index_path.exists():
        raise UserError(f"no index at {mirror.index_path}: nothing to prune")
    done = tidy(mirror.index, config.retention_of())
    if args.json:
        print_json(done.to_json())
    else:
        print(
            f"removed {done.runs_removed} runs; {done.pages_freed} pages given back"
            f"{' (vacuumed)' if done.vacuumed else ''}; WAL {'checkpointed' if done.checkpointed else 'busy, left'}"
            f" ({mirror.index_path})"
        )
    return 0

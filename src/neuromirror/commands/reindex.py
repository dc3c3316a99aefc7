"""``neuromirror reindex``: rebuild the index from the datasets; ``--prune``: only trim its run history.

``--prune`` does by hand what the service does hourly (:mod:`neuromirror.index.retention`):
runs past the retention policy (``--config``'s ``retention:``, else the defaults) removed in
small transactions, the file compacted and its WAL checkpointed.  Nothing is rebuilt.
"""

from __future__ import annotations

import argparse

from neuromirror.commands.common import UserError, add_json, print_json, root_of


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
    from neuromirror import api

    if args.config and not args.prune:
        raise UserError("--config goes with --prune (reindex rebuilds from the datasets, whatever the definition)")
    config = api.Mirror.definitions(args.config) if args.config else None
    if config is not None and config.root is not None and not args.root:
        args.root = str(config.root)
    with api.Mirror(root_of(args), args.index) as m:  # api.open wants an index: reindex makes it
        result = m.reindex(prune=args.prune, config=config)
    if args.json:
        print_json(result.to_json())
    else:
        for line in result.lines():
            print(line)
    return 0

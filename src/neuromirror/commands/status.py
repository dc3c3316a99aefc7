"""``neuromirror status``: per source, the last success and failure, the next run, versions, files, bytes."""

from __future__ import annotations

import argparse

from neuromirror.commands.common import add_json, print_json, root_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="one row per source: last success/failure, next run, versions, files, bytes",
        description="One row per mirrored source: its last success and failure, its next scheduled run (with "
        "--config), its versions, files and bytes; with --copies, how many verified copies its files have.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="only these sources (globs allowed, e.g. 'dandi:*')")
    p.add_argument(
        "--config",
        "-c",
        action="append",
        metavar="FILE",
        help="also list the sources of this mirror definition (repeat for more) that have not run yet, "
        "with their schedules",
    )
    p.add_argument(
        "--no-at-risk",
        dest="at_risk",
        action="store_false",
        help="skip the at-risk counts (files kept in a store / only behind a pinned URL / only behind mutable URLs)",
    )
    p.add_argument(
        "--copies",
        action="store_true",
        help="per source and version (SPEC[@VERSION] narrows): files and bytes with at least the wanted number "
        "of verified copies outside the archive, with fewer, with none; the oldest check; the keys at risk",
    )
    p.add_argument(
        "--backup",
        action="store_true",
        help="per source and store: objects and bytes the archive holds against those kept (current and older "
        "versions), the oldest version not yet kept, what the archive deletes within 30 days that no store holds, "
        "each store's last verification (from the index: no dataset or store is read)",
    )
    p.add_argument(
        "--coverage",
        action="store_true",
        help="per source and archive prefix (blobs, zarr): objects and bytes in the archive, held by the archive's "
        "own backup (--covered-by, else the definitions' covered_by:), kept by the lab's stores, in neither; the "
        "oldest in neither and what the archive deletes within 30 days in neither",
    )
    p.add_argument(
        "--covered-by",
        action="append",
        default=[],
        metavar="LIST",
        help="the archive's own backup, as keep --covered-by takes it (repeatable)",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror import api

    config = api.Mirror.definitions(args.config) if args.config else None
    root = config.resolve_root(args.root) if config is not None else root_of(args)
    lists = args.covered_by or (config.covered_by if config is not None else [])
    with api.Mirror(root, args.index) as m:
        if args.coverage:
            result = m.coverage(args.specs, covered_by=lists)
        else:
            result = m.status(args.specs, config=config, at_risk=args.at_risk, copies=args.copies, backup=args.backup)
    if args.json:
        print_json(result.to_json())
    else:
        for line in result.lines():
            print(line)
    return 0

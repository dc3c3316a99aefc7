"""``neuromirror forget SPEC... [--dataset]``: drop sources from the index (and, if asked, their datasets).

For a source mirrored by mistake or withdrawn from its archive: ``status``,
``/metrics``, ``publish 'dandi:*'`` and the service stop seeing it.  Without
``--dataset`` its dataset stays in the root, so ``reindex`` would bring the
source back; with it, the dataset leaves the root superdataset (one commit)
and the disk.
"""

from __future__ import annotations

import argparse

from neuromirror.commands.common import UserError, add_json, print_json, require_mirror, sources_matching, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forget",
        help="remove sources from the index (--dataset: and their datasets from the root and the disk)",
        description="Remove every index row of the sources (versions, files, runs, pending items). Their datasets "
        "stay, and 'neuromirror reindex' would bring them back, unless --dataset removes them too.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="sources to forget: dandi:000027, 'aind:ecephys_*', ...")
    p.add_argument(
        "--dataset",
        action="store_true",
        help="also remove each source's dataset from the root superdataset and delete it from disk",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror.dataset.mirror import LockBusy

    specs = [spec_arg(s, allow_version=False) for s in args.specs]
    mirror = require_mirror(args)
    done = []
    try:
        for source in sources_matching(mirror.index, specs):
            relpath = mirror.index.source(source).dataset
            try:
                with mirror.lock(source, wait=0):  # never under a running sync
                    removed = mirror.remove_dataset(relpath) if args.dataset else False
                    mirror.index.remove_source(source)
            except LockBusy as exc:
                raise UserError(f"{exc}: try again when it is done") from None
            done.append({"source": source, "dataset": relpath, "dataset_removed": removed})
            if not args.json:
                kept = mirror.dataset_path(relpath)
                print(
                    f"forgot {source}"
                    + (
                        f"; removed its dataset {relpath}"
                        if removed
                        else f"; its dataset stays at {kept} (reindex would bring it back; --dataset removes it)"
                        if kept.exists()
                        else ""
                    )
                )
    finally:
        mirror.close()
    if args.json:
        print_json(done)
    return 0

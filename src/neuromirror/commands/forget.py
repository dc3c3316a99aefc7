"""``neuromirror forget SPEC... [--dataset]``: drop sources from the index (and, if asked, their datasets).

For a source mirrored by mistake or withdrawn from its archive: ``status``,
``/metrics``, ``publish 'dandi:*'`` and the service stop seeing it.  Without
``--dataset`` its dataset stays in the root, so ``reindex`` would bring the
source back; with it, the dataset leaves the root superdataset (one commit)
and the disk.
"""

from __future__ import annotations

import argparse

from neuromirror.commands.common import add_json, open_api, print_json


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
    with open_api(args) as m:
        done = m.forget(args.specs, dataset=args.dataset)
    if args.json:
        print_json(done.to_json())
    else:
        print("\n".join(done.lines()))
    return 0

"""``neuromirror maintain [SPEC...] [--to TARGET]... [--dry-run] [--force] [--json]``: pack git where worth it.

The service does this after each sync (docs/service.md, "Maintenance"); by hand it is for a mirror
synced with ``neuromirror sync`` from cron, or a store published to without the service.
"""

from __future__ import annotations

import argparse

from neuromirror.commands.common import add_json, open_api, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "maintain",
        help="pack loose git objects and small packs of the datasets and where they were published, when worth it",
        description="For each source (every mirrored source when no SPEC is given, then the root superdataset "
        "too): its dataset, its Zarr / AIND store subdatasets, and their copies in RIA stores (ria+file://) and "
        "bare siblings on this host, named by --to or recorded by the last publish. A repository with more than "
        "100 loose objects or 10 packs is repacked (git repack -d, never dropping an object; a served store's "
        "info/packs rewritten). A source being synced or published is skipped, and says so.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="sources: dandi:000027, 'aind:ecephys_*' (default: all)")
    p.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="TARGET",
        help="a publish target as 'publish --to' takes it (ria+file:///STORE, a BASE directory): maintain "
        "the sources' copies there too (repeatable; the target a dataset's last publish recorded is included)",
    )
    p.add_argument("--dry-run", action="store_true", help="measure and say what would be packed; change nothing")
    p.add_argument("--force", action="store_true", help="pack every repository with a loose object or two packs")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_api(args) as m:
        report = m.maintain(args.specs, to=args.to, dry_run=args.dry_run, force=args.force)
    if args.json:
        print_json(report.to_json())
    else:
        for line in report.lines():
            print(line)
    return 0 if not report.errors else 1

"""``neuromirror audit [SPEC...] [--recheck] [--inventory URL [--inventory-date D]] [--json]``: what the mirror saw wrong upstream, per source.

From what the syncs recorded in the index (no new crawl): Zarrs refused for a checksum mismatch or
without a checksum, bytes against the archive's digest, blobs not pinned, objects only a noncurrent S3
version serves (and when they expire), published versions without a DOI, files changed while
``modified`` did not.  ``--recheck`` asks the archive again for the DOIs and the noncurrent objects, and
compares its Zarr manifests with the mirror's (``manifest-drift``).  ``--inventory`` reads the archive
bucket's S3 Inventory and looks for every pinned S3 version in it (docs/inventory.md).
The JSON's schema: docs/service.md, *Audit*.
"""

from __future__ import annotations

import argparse

from neuromirror.commands.common import add_json, open_api, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="what the mirror saw wrong upstream, per source, from what its syncs recorded",
        description="Findings per source and kind from the index: Zarrs refused (checksum mismatch) or pending "
        "without checksum, bytes that disagree with the archive's digest, blobs not pinned, objects only a "
        "noncurrent S3 version serves (with when they expire), published versions without DOI, files changed "
        "while modified did not. No archive is asked unless --recheck, which also compares the archive's Zarr "
        "manifests with the objects the mirror listed (manifest-drift).",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="sources to audit (globs: 'dandi:*'); default: all")
    p.add_argument(
        "--recheck",
        action="store_true",
        help="ask the archive again: DOIs of published versions without one, noncurrent objects and their expiry, "
        "and its manifest of each Zarr state recorded (one GET each)",
    )
    p.add_argument(
        "--zarr-manifests",
        metavar="URL",
        help="the archive's Zarr manifest root for --recheck ({root}/{id[:3]}/{id[3:6]}/{id}/{checksum}.json; "
        "default: zarr-manifest/ in each Zarr's own bucket, as dandi-archive designs it)",
    )
    p.add_argument(
        "--dandi-api",
        metavar="URL",
        help="the DANDI API for --recheck when a source's records name none (default: the public archive)",
    )
    p.add_argument(
        "--inventory",
        metavar="URL",
        help="the archive bucket's S3 Inventory (s3://BUCKET/<dest-prefix>/<source-bucket>/<config-id>, a date's "
        "manifest.json, or a local copy; docs/inventory.md): the newest states' pinned S3 versions looked for in it "
        "(inventory-absent: lost upstream; inventory-mismatch: size or ETag; noncurrent-only with its exact expiry)",
    )
    p.add_argument(
        "--inventory-date",
        metavar="D",
        help="the inventory's date to read (YYYY-MM-DD, or its folder YYYY-MM-DDTHH-MMZ; default: the newest)",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_api(args) as m:
        found = m.audit(
            args.specs,
            recheck=args.recheck,
            dandi_api=args.dandi_api,
            zarr_manifests=args.zarr_manifests,
            inventory=args.inventory,
            inventory_date=args.inventory_date,
        )
    if args.json:
        print_json(found.to_json())
    else:
        print("\n".join(found.lines()))
    return 0

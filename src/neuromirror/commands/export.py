"""``neuromirror export SPEC@V/PATH.zarr --icechunk DIR_OR_S3``: a pinned Zarr state as an Icechunk repository."""

from __future__ import annotations

import argparse
import json

from neuromirror.commands.common import add_json, open_api


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="a pinned Zarr state as an Icechunk repository of virtual chunks (xarray, zarr-python read it)",
        description="Write an Icechunk repository whose snapshot is the pinned Zarr state: its metadata copied "
        "(Zarr v2 metadata converted to v3), every chunk a virtual reference to bytes that never change, the "
        "snapshot tagged with the mirror's commit. Icechunk keeps no S3 versionId in a reference: a chunk is the "
        "view's URL of it at that commit (--view-url), or with --from STORE its bytes in that store (a pack by "
        "offset and length). Exporting again adds only the states not tagged yet. Needs neuromirror[icechunk].",
    )
    p.add_argument(
        "target", metavar="SPEC@V/PATH.zarr", help="e.g. dandi:000108@draft/sub-1/x.ome.zarr (V: a label or a commit)"
    )
    p.add_argument(
        "--icechunk",
        required=True,
        metavar="DIR_OR_S3",
        help="the repository: a directory, or s3://BUCKET/PREFIX (endpoint NEUROMIRROR_STORE_ENDPOINT, credentials "
        "from the environment); made when there is none",
    )
    p.add_argument("--all-states", action="store_true", help="a snapshot per state of this Zarr the mirror recorded")
    p.add_argument(
        "--view-url",
        metavar="URL",
        help="the view (serve --http) the references point at, on its scheme's own port, e.g. https://mirror.lab.org "
        "(default: env NEUROMIRROR_URL)",
    )
    p.add_argument(
        "--from",
        dest="store",
        metavar="STORE",
        help="reference each chunk's bytes in this store, which keeps them (keep --to): a pack by offset and length "
        "(pack+file://, pack+s3://), a key's file or object (a directory, s3://)",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_api(args) as m:
        done = m.export_icechunk(
            args.target, args.icechunk, all_states=args.all_states, view_url=args.view_url, store=args.store
        )
    if args.json:
        print(json.dumps(done.to_json(), indent=2))
    else:
        print("\n".join(done.lines()))
    return 0 if done.ok else 1

"""``neuromirror urls SPEC@VERSION [PATH...]``: each file of a pin with the URL that serves exactly its bytes."""

from __future__ import annotations

import argparse
import sys

from neuromirror.commands.common import add_json, open_api


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "urls",
        help="list a pinned version's files with the URL that serves exactly their bytes",
        description="For each file of the version (or under the PATHs; a Zarr asset's path lists its objects): "
        "the archive's pinned URL (S3 versionId, or a name the archive never reuses), else the URL of the lab's "
        "store where it is kept, else why no URL serves it. Never a URL that can serve other bytes tomorrow. "
        "Text: PATH<TAB>URL per line ('-' and the reason where there is none); a count on stderr.",
    )
    p.add_argument(
        "spec",
        nargs="?",
        metavar="SPEC@VERSION",
        help="dandi:000027@0.230629.1955, ...@draft, ...@COMMIT (default version: the latest)",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories of the version (default: all)")
    p.add_argument("--lock", metavar="FILE", help="the versions a lock file names (SPEC, if given, picks one source)")
    p.add_argument(
        "--check",
        action="store_true",
        help="ask each URL once (HEAD): a dead archive URL falls back to the lab's store; exit 1 naming every "
        "file no URL serves any more",
    )
    p.add_argument(
        "--neuroglancer",
        metavar="VIEW_URL",
        help="instead of files: each OME-Zarr image (a *.zarr directory) of the version with a Neuroglancer link "
        "showing it at this pin, read through the view served at VIEW_URL (serve --http): PATH<TAB>LINK "
        "(the public Neuroglancer; --json adds the layer source and the view's own Neuroglancer, which a view "
        "with the neuroglancer package serves)",
    )
    p.add_argument(
        "--references",
        action="store_true",
        help="instead of files: each NWB/HDF5 file of the version with a LINDI reference (sync --references): "
        "PATH<TAB>REFERENCE, the reference kept under the root, or with --view its URL at the view and the "
        "Neurosift link to paste (PATH<TAB>URL<TAB>NEUROSIFT)",
    )
    p.add_argument(
        "--view",
        metavar="VIEW_URL",
        default=None,
        help="with --references: the base URL of the view serving this mirror (serve --http)",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.lock and args.spec and ":" not in args.spec:  # urls --lock FILE PATH...: no SPEC, only paths
        args.paths, args.spec = [args.spec, *args.paths], None
    with open_api(args) as m:
        found = m.urls(
            args.spec,
            args.paths,
            lock=args.lock,
            check=args.check,
            neuroglancer=args.neuroglancer,
            references=args.references,
            view=args.view,
        )
        if args.json:
            found.write_json(sys.stdout)  # a row at a time as the files come: never the whole list in memory
        else:
            found.write_lines(sys.stdout)
    for line in found.summary():
        print(line, file=sys.stderr)
    return 1 if getattr(found, "lost", None) else 0

"""``neuromirror repin SPEC[@V]...``: pins whose versionId URLs died found again (moved, content-addressed, re-uploaded)."""

from __future__ import annotations

import argparse
import sys

from neuromirror.commands.common import add_json, open_api, print_json, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repin",
        help="find the bytes of pins the archive re-keyed (moved bucket or prefix, content-addressed key, "
        "re-uploaded asset) and record their new pinned URLs",
        description="For every pinned key of the named versions whose recorded ?versionId= URLs S3 no longer "
        "holds, find its bytes again: at the same key in --bucket under --prefix (an object copied or uploaded "
        "again gets a new versionId), at the content-addressed key a --manifest names, or by the archive's own "
        "record of the file (DANDI: the asset re-uploaded at its path with the same digest); matched by size and "
        "ETag (or S3's SHA-256 checksum) without downloading. The new pinned URL is registered on the dataset's "
        "git-annex branch and the dead one retired, so a clone of any tag gets the bytes with datalad alone. An "
        "object at the path holding other bytes is never taken: it is named, the old URL kept (exit 1).",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="e.g. aind:NAME or dandi:000027@0.230629.1955")
    p.add_argument("--bucket", metavar="BUCKET", help="the bucket the objects moved to (default: the pin's own)")
    p.add_argument("--prefix", default="", metavar="PREFIX", help="put before each key there (a moved prefix)")
    p.add_argument(
        "--from-prefix", default="", metavar="PREFIX", help="taken off each old key first (the prefix it moved from)"
    )
    p.add_argument(
        "--manifest",
        metavar="FILE_OR_URL",
        help="a content-addressed layout's manifest (JSON: entries path -> key, size, digest; docs/pin.md)",
    )
    p.add_argument("--dry-run", action="store_true", help="list key, old URL, new URL and the evidence; change nothing")
    p.add_argument("-J", "--jobs", type=int, default=8, help="S3 requests at once (default 8)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    specs = [spec_arg(s) for s in args.specs]
    with open_api(args) as m:
        report = m.repin(
            specs,
            bucket=args.bucket,
            prefix=args.prefix,
            from_prefix=args.from_prefix,
            manifest=args.manifest,
            dry_run=args.dry_run,
            jobs=args.jobs,
        )
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join([*report.lines(), report.summary()]))
    if report.differs:
        print(
            f"neuromirror: repin: {len(report.differs)} key(s) whose place holds other bytes: not taken, old URL kept",
            file=sys.stderr,
        )
    return 0 if report.ok else 1

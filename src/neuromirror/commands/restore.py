"""``neuromirror restore SPEC[@VERSION]... --to s3://BUCKET[/PREFIX] | DIR``: kept content back in the archive's layout."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from neuromirror.api.getting import Bars
from neuromirror.commands.common import UserError, add_dask, add_json, open_api, print_json, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore",
        help="write kept content back in the archive's own key layout (its bucket, or a directory)",
        description="Write the kept content of the named versions back under the keys the archive stored "
        "them (DANDI blobs/... and zarr/{id}/..., AIND asset keys, BOSS OME-Zarr chunks), from any store "
        "holding a good copy, each object checked against its git-annex key before it is written. Objects "
        "already holding the right bytes are left alone (a rerun writes nothing); one holding other bytes is "
        "never overwritten unless --force (in a versioned bucket, which keeps its old version).",
    )
    p.add_argument(
        "specs",
        nargs="*",
        metavar="SPEC",
        help="e.g. dandi:000027@0.230629.1955 (no @: every published version and the latest draft)",
    )
    p.add_argument(
        "--to",
        dest="to",
        metavar="TARGET",
        help="s3://BUCKET[/PREFIX] (endpoint NEUROMIRROR_STORE_ENDPOINT, credentials from the AWS_* "
        "environment) or a directory (the same keys as relative paths)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be written; write nothing (with --json: each object it would write, its archive "
        'key, file, size and where its bytes would come from, streamed under "writes")',
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite objects holding other bytes (S3: versioned buckets only, whose old version stays)",
    )
    p.add_argument(
        "--from",
        dest="stores",
        action="append",
        default=None,
        metavar="STORE",
        help="read only from this store (its URL or UUID; repeatable; default: every store keep used)",
    )
    p.add_argument(
        "--drill",
        action="store_true",
        help="a drill: restore a random sample of the kept objects (SPECs: default every source) into a fresh "
        "place under a scratch --to, every store's copy of each read and checked; report objects, bytes, rate, "
        "mismatches; the scratch objects removed after",
    )
    p.add_argument("--sample", type=int, default=None, metavar="N", help="objects a drill restores (default 20)")
    p.add_argument("-J", "--jobs", type=int, default=4, help="concurrent objects (default 4)")
    add_dask(p, "the objects fetched and written by this Dask scheduler's workers, in batches")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror import api

    _check_options(args)
    if args.drill:
        return _drill(args)
    if not args.specs:
        raise UserError("name what to restore: SPEC[@VERSION]...")
    specs = [spec_arg(s) for s in args.specs]
    target = api.Mirror.target(args.to)  # a bad target said before the mirror is looked for
    # a dry run's --json names each object it would write, streamed as it is decided (docs/restore.md)
    streamed = args.dry_run and args.json
    with open_api(args) as m, Bars() as bars:  # the objects and bytes as they are written, on stderr
        report = m.restore(
            specs,
            target,
            dry_run=args.dry_run,
            force=args.force,
            jobs=args.jobs,
            stores=args.stores,
            stream=sys.stdout if streamed else None,
            progress=None if args.json else bars,
            dask=args.dask,
        )
    if args.json and not streamed:
        print_json(report.to_json())
    elif not args.json:
        print("\n".join([*report.lines(), report.summary()]))
    _problems(report)
    return 0 if report.ok else 1


def _check_options(args: argparse.Namespace) -> None:
    if not args.to:
        raise UserError("name where to restore: --to s3://BUCKET[/PREFIX] or --to DIR")
    if args.sample is not None and (not args.drill or args.sample < 1):
        raise UserError("--sample N (N >= 1) goes with --drill")
    if args.drill and (args.dry_run or args.force):
        raise UserError("a drill writes into a scratch target: --dry-run and --force do not apply")


def _problems(report: Any) -> None:
    """What was left alone or failed, on stderr."""
    if report.differs:
        print(
            f"neuromirror: restore: {len(report.differs)} object(s) hold other bytes and were left alone "
            "(DIFFERS above; --force overwrites)",
            file=sys.stderr,
        )
    if report.failed:
        print(f"neuromirror: restore: {len(report.failed)} object(s) not restored (FAILED above)", file=sys.stderr)


def _drill(args: argparse.Namespace) -> int:
    from neuromirror import api

    api.Mirror.target(args.to, check=False)  # a bad target said before the mirror is looked for
    with open_api(args) as m:
        drilled = m.drill([spec_arg(s) for s in args.specs], to=args.to, sample=args.sample, jobs=args.jobs)
    if args.json:
        print_json(drilled.to_json())
    elif drilled.lines():
        print("\n".join(drilled.lines()))
    if drilled.result != "ok":
        print(f"neuromirror: restore --drill: {drilled.result}", file=sys.stderr)
    return 0 if drilled.result == "ok" else 1

"""``neuromirror keep SPEC[@VERSION]... --to STORE``: the content of versions copied into the lab's store."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from neuromirror.api.getting import Bars
from neuromirror.commands.common import UserError, add_ceiling, add_dask, add_json, open_api, print_json, spec_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keep",
        help="copy the content of versions into the lab's store, so they outlive the archive",
        description="Copy the content of the named versions (default: every published version and the latest "
        "draft) from the archive's registered URLs into a store, each file verified against its key before it "
        "is stored, and record the store in the datasets' git-annex branches: a clone then gets from the store "
        "whatever the archive no longer serves (a directory store is read first, an S3 store after the archive). "
        "Reruns copy only what is missing.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="e.g. dandi:000027@0.230629.1955, dandi:000027, 'dandi:*'")
    p.add_argument(
        "--lock",
        action="append",
        default=[],
        metavar="FILE",
        help="keep exactly the versions this lock file names (at its commits; repeatable, with or without SPECs)",
    )
    p.add_argument(
        "--to",
        "--store",
        dest="store",
        action="append",
        default=[],
        metavar="STORE",
        help="the store: a directory (path or file:///path) or an S3 bucket (s3://BUCKET[/PREFIX]; endpoint "
        "NEUROMIRROR_STORE_ENDPOINT, credentials from the AWS_* environment), laid out as git-annex's directory "
        "or S3 special remote, or a packed store (pack+file:///PATH, pack+s3://BUCKET[/PREFIX]: keys in pack "
        "files, objects by bytes not by keys) (env NEUROMIRROR_STORE); repeat it to keep into several stores",
    )
    p.add_argument(
        "--from",
        dest="from_stores",
        action="append",
        default=[],
        metavar="STORE",
        help="copy from this store only (repeatable), never asking the archive: move kept content into a new "
        "store (a directory store into a packed one)",
    )
    p.add_argument(
        "--copies",
        type=int,
        default=None,
        metavar="N",
        help="the wanted number of verified copies outside the archive, recorded per source (default: the "
        "recorded number, else 1; status --copies and verify --kept count against it); a version with fewer "
        "after the run makes keep exit 1",
    )
    p.add_argument(
        "--pack-size",
        metavar="SIZE",
        help="a new packed store's pack size (pack+file:// or pack+s3://; default 256MiB; recorded in the store)",
    )
    p.add_argument(
        "--storage-class",
        metavar="CLASS",
        type=str.upper,
        help="a new S3 store's storage class (s3:// or pack+s3://): STANDARD, STANDARD_IA, GLACIER_IR, GLACIER or "
        "DEEP_ARCHIVE (recorded in the store; reads of a cold pack ask for its thaw and exit 75)",
    )
    p.add_argument("--all-versions", action="store_true", help="every recorded version, older drafts too")
    p.add_argument(
        "--prune",
        action="store_true",
        help="retention: the versions of the named sources each store was given before and this run does not "
        "select are dropped from it, with every key no kept version needs (a packed store rewrites packs mostly "
        "made of them)",
    )
    p.add_argument(
        "--covered-by",
        action="append",
        default=[],
        metavar="LIST",
        help="keep only what this other backup does not hold at the pinned size (and ETag): a file of archive "
        "keys (KEY[TAB SIZE[TAB ETAG]] a line, gzip too), a directory holding a copy at the archive's keys, a "
        "dandi/backup-status checkout (its differing blobs), an S3 Inventory (repeatable)",
    )
    p.add_argument(
        "--order",
        choices=("risk", "path"),
        default=None,
        help="risk (the default with --covered-by): first what only a noncurrent S3 version serves, by its "
        "expiry date, then what no copy holds, then the rest; path: the versions as named",
    )
    p.add_argument("-J", "--jobs", type=int, default=4, help="concurrent transfers (default 4; with --dask: per task)")
    add_ceiling(p, "-J or --dask")
    add_dask(
        p,
        "copy on this Dask scheduler's workers, in batches of keys, recording here; the workers share the root "
        "and reach the store",
    )
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="keep only paths matching GLOB")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="leave out paths matching GLOB")
    p.add_argument("--max-file-size", metavar="SIZE", help="skip files larger than SIZE (bytes, or 10M, 1G, 5GiB)")
    p.add_argument(
        "--budget",
        metavar="SIZE",
        help="stop before the store would hold more than SIZE (what it holds already counts); exit 1",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.specs and not args.lock:
        raise UserError("name what to keep: SPEC[@VERSION]... or --lock FILE")
    if args.copies is not None and args.copies < 1:
        raise UserError("--copies must be at least 1")
    specs = [spec_arg(s) for s in args.specs]
    with open_api(args) as m, _said_as(args), Bars() as bars:  # copies None: the recorded wanted count
        result = m.keep(
            specs,
            args.store or None,
            copies=args.copies,
            include=args.include,
            exclude=args.exclude,
            max_file_size=args.max_file_size,
            budget=args.budget,
            jobs=args.jobs,
            all_versions=args.all_versions,
            locks=args.lock or (),
            progress=None if args.quiet or args.json else bars,
            from_stores=args.from_stores,
            prune=args.prune,
            pack_size=args.pack_size,
            storage_class=args.storage_class,
            covered_by=args.covered_by,
            order=args.order,
            dask=args.dask,
            max_rate=args.max_rate,
            max_in_flight=args.max_in_flight,
        )
    if args.json:
        print_json(result.to_json())
    else:
        print("\n".join(result.lines()))
    _problems(result)
    return 0 if result.ok else 1


@contextmanager
def _said_as(args: argparse.Namespace) -> Iterator[None]:
    """A store's or a size's mistake named as the user named it: ``--to X: ...``, ``--from X: ...``,
    ``NEUROMIRROR_STORE=X: ...``, ``--budget: ...``."""
    try:
        yield
    except UserError as exc:
        said = str(exc)
        env = os.environ.get("NEUROMIRROR_STORE", "")
        named = [(f"--to {n}", n) for n in args.store] or ([(f"NEUROMIRROR_STORE={env}", env)] if env else [])
        named += [(f"--from {n}", n) for n in args.from_stores]
        named += [("--max-file-size", "max_file_size"), ("--budget", "budget"), ("--pack-size", "pack_size")]
        named += [(f"--covered-by {n}", n) for n in args.covered_by] + [("--order", "order")]
        for label, name in named:
            if name and said.startswith(name + ":"):
                raise UserError(label + said[len(name) :]) from None
        raise


def _problems(result: Any) -> None:
    """Each store's trouble on stderr."""
    for report in result.runs:
        if report.error is not None:
            state = "is full" if report.full else "is down"
            print(f"neuromirror: keep: store {report.store} {state}: {report.error}", file=sys.stderr)
        if report.failed:
            print(
                f"neuromirror: keep: {report.failed} file(s) not kept in {report.store} (FAILED above)", file=sys.stderr
            )
        budget = report.budget_line(option="--budget")
        if budget:
            print(f"neuromirror: {budget}", file=sys.stderr)
    copies = result.copies
    if copies > 1 and result.short:
        short = ", ".join(c.label for c in result.short)
        print(f"neuromirror: keep: fewer than {copies} verified copies of some files of {short}", file=sys.stderr)

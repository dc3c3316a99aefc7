"""``neuromirror keep SPEC[@VERSION]... --to STORE``: the content of versions copied into the lab's store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from neuromirror.commands.common import UserError, add_json, check_folder, open_api, print_json, spec_arg


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
    p.add_argument("-J", "--jobs", type=int, default=4, help="concurrent transfers (default 4)")
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


def _size(option: str, value: object) -> int | None:
    from neuromirror.util.sizes import parse_size

    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UserError("-J must be at least 1")
    if not args.specs and not args.lock:
        raise UserError("name what to keep: SPEC[@VERSION]... or --lock FILE")
    specs = [spec_arg(s) for s in args.specs]
    stores = _stores(args)
    if args.copies is not None and args.copies < 1:
        raise UserError("--copies must be at least 1")
    with open_api(args) as m:  # copies None: the recorded wanted count
        result = m.keep(
            specs,
            stores,
            copies=args.copies,
            include=args.include,
            exclude=args.exclude,
            max_file_size=_size("--max-file-size", args.max_file_size),
            budget=_size("--budget", args.budget),
            jobs=args.jobs,
            all_versions=args.all_versions,
            locks=args.lock or (),
            progress=not (args.quiet or args.json),
            from_stores=_from_stores(args.from_stores),
            prune=args.prune,
        )
    if args.json:
        print_json(result.to_json())
    else:
        _print_runs(result)
    return _problems(result)


def _stores(args: argparse.Namespace) -> list:
    """The stores ``--to`` names (else ``NEUROMIRROR_STORE``), each once; a directory store's path checked."""
    from neuromirror.store.location import STORE_ENV, open_store, store_name

    names = list(dict.fromkeys(args.store)) or [store_name(None)]
    pack_size = _size("--pack-size", args.pack_size)
    stores = []
    for n in names:
        try:
            stores.append(open_store(store_name(n), pack_size=pack_size, storage_class=args.storage_class))
        except UserError as exc:  # the store's own line, named as the user named it (--to X: ...)
            said = str(exc)
            label = f"--to {n}" if args.store else f"{STORE_ENV}={n}"
            raise UserError(label + said[len(n) :] if said.startswith(n) else said) from None
    if len({s.url for s in stores}) != len(stores):
        raise UserError("the same store is named twice")
    for store in stores:  # --pack-size / --storage-class against a store that has its own: a usage error
        getattr(store, "check_settings", lambda: None)()
    for name, store in zip(names, stores):
        where = getattr(store, "path", None) if store.kind in ("directory", "pack") else None
        if where is not None:  # else a file there read as the store being down
            label = f"--to {name}" if args.store else f"{STORE_ENV}={name}"
            check_folder(label, str(where), " (a store is a directory: give a new or an existing store)")
    return stores


def _from_stores(names: list[str]) -> list:
    """The stores ``--from`` names: each must be a store already (nothing is made by reading)."""
    from neuromirror.store.location import open_store

    out = []
    for name in dict.fromkeys(names):
        store = open_store(name)
        where = getattr(store, "path", None)
        if where is not None and not (where / ".neuromirror-store.json").is_file():
            raise UserError(f"--from {name}: not a store (no .neuromirror-store.json there)")
        out.append(store)
    return out


def _print_runs(result: Any) -> None:
    for report in result.runs:
        if len(result.runs) > 1:
            print(f"== {report.store}")
        for v in report.versions:
            for line in v.lines():
                print(line)
        print(report.summary())
        if report.pruned is not None:
            print(report.pruned.line())
    if len(result.runs) > 1 or result.copies > 1:
        for c in result.counts:
            print(c.line())


def _problems(result: Any) -> int:
    """Each store's trouble on stderr; 1 if a store was down or fell short, or copies are wanting."""
    code = 0
    for report in result.runs:
        if report.error is not None:
            print(f"neuromirror: keep: store {report.store} is down: {report.error}", file=sys.stderr)
            code = 1
        if report.failed:
            print(
                f"neuromirror: keep: {report.failed} file(s) not kept in {report.store} (FAILED above)", file=sys.stderr
            )
        budget = report.budget_line()
        if budget:
            print(f"neuromirror: {budget}", file=sys.stderr)
        if not report.ok:
            code = 1
    copies = result.copies
    if copies > 1 and result.short:
        short = ", ".join(c.label for c in result.short)
        print(f"neuromirror: keep: fewer than {copies} verified copies of some files of {short}", file=sys.stderr)
        code = 1
    return code

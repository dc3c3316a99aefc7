"""``neuromirror get SPEC@VERSION [PATH...] --to DIR``: a pinned version, content verified."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from neuromirror.commands.common import (
    UserError,
    add_json,
    check_folder,
    mirror_if_exists,
    print_json,
    root_of,
    spec_arg,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "get",
        help="clone a dataset at a pinned version and fetch (verified) content",
        description="Clone the dataset of SPEC, check out VERSION's commit (default: the latest version) and fetch "
        "the content of PATHs (default: everything) from the archive's URLs; git-annex checks every "
        "byte against the archive's checksum.",
    )
    p.add_argument("spec", help="e.g. dandi:000027@0.230629.1955 (or @draft; default: the latest recorded version)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories inside the dataset (default: all)")
    p.add_argument(
        "--to", required=True, metavar="DIR", help="directory for the clone (new, or a previous get's clone)"
    )
    add_retrieval_options(p)
    add_json(p)
    p.set_defaults(func=run)


def add_retrieval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="from_url",
        metavar="URL",
        help="clone from a published sibling: the BASE given to 'neuromirror publish --to', a RIA store "
        "('ria+https://HOST/PATH': the dataset by its alias, #~dandi/000027), or the dataset's own URL "
        "(default: the mirror's dataset)",
    )
    p.add_argument(
        "--store",
        metavar="STORE",
        help="the lab's store (a directory kept by 'neuromirror keep') to fall back to when the archive's URLs "
        "fail, also if the dataset does not record it; overrides a lock's store (env NEUROMIRROR_STORE)",
    )
    p.add_argument("-J", "--jobs", type=int, default=4, help="parallel downloads (default 4)")
    p.add_argument(
        "--allow-ip",
        metavar="ADDRS",
        default=None,
        help="set annex.security.allowed-ip-addresses to ADDRS in the new clone only (e.g. 'all' for "
        "archives on loopback/private addresses; env NEUROMIRROR_ALLOW_IP)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def store_preparer(args: argparse.Namespace, recorded: Sequence[str] = ()) -> Optional[Callable[[Path, str], int]]:
    """``prepare`` for :func:`~neuromirror.pin.fetch.fetch`: the store of ``--store``, else those
    ``recorded`` (a lock's), else ``NEUROMIRROR_STORE``, each made usable in each clone; None without
    one (notes to stderr)."""
    from neuromirror.pin.stores import store_for_retrieval, use_store
    from neuromirror.store.location import STORE_ENV

    names = [args.store] if args.store else list(recorded) or [os.environ.get(STORE_ENV) or ""]
    stores = []
    for name in names:
        store, note = store_for_retrieval(name or None, explicit=bool(args.store))
        if note and not getattr(args, "json", False):
            print(f"neuromirror: note: {note}", file=sys.stderr)
        if store is not None:
            stores.append(store)
    if not stores:
        return None
    return lambda repo, commit: sum(use_store(repo, commit, s) for s in stores)


def check_destination(to: str) -> None:
    """``--to`` must be a directory, or a new one this user can create: said before anything is cloned."""
    check_folder(f"--to {to}", to, " (give a new directory or a previous get's clone)")


def run(args: argparse.Namespace) -> int:
    from neuromirror.pin.clone import (
        check_paths,
        checkout,
        clone,
        ensure_commit,
        resolve_version_in_clone,
        tag_commit,
    )
    from neuromirror.pin.fetch import failure_lines, fetch
    from neuromirror.pin.locations import resolve_url
    from neuromirror.pin.record import pin_record
    from neuromirror.pin.retrieve import RetrieveError, allow_ip_default
    from neuromirror.spec import dataset_relpath

    spec = spec_arg(args.spec)
    if spec.is_glob:
        raise UserError("get takes one source, not a pattern")
    check_destination(args.to)
    mirror = mirror_if_exists(args)
    rec: Optional[dict] = None
    relpath: Optional[str] = None
    try:
        if mirror is not None and mirror.index.source(spec.source) is not None:
            rec = pin_record(mirror, spec)
            relpath = mirror.index.source(spec.source)["dataset"]
    finally:
        if mirror is not None:
            mirror.close()
    if rec is None and not args.from_url:
        where = f"the mirror at {mirror.root}" if mirror else f"{root_of(args)} (no mirror there)"
        raise UserError(f"{spec.source} is not in {where}: pass --from URL of a published copy, or --root")
    try:
        if rec is not None:
            url = resolve_url(args.from_url, relpath or "") if args.from_url else rec["dataset"]
        else:
            url = resolve_url(args.from_url, dataset_relpath(spec))
        dest, reused = clone(url, Path(args.to), allow_ip=allow_ip_default(args.allow_ip))
        if rec is None:
            rec = resolve_version_in_clone(dest, spec.source, spec.version)
        commit = rec["commit"]
        ensure_commit(dest, commit, url)
        if rec.get("tag"):
            tagged = tag_commit(dest, rec["tag"])
            if tagged and tagged != commit:
                raise RetrieveError(
                    f"tag {rec['tag']} at {url} points at {tagged[:12]}, but "
                    f"{spec.source}@{rec['version']} is commit {commit[:12]}: refusing a moved tag"
                )
        checkout(dest, commit)
        paths = check_paths(dest, commit, args.paths)
        label = f"{spec.source}@{rec['version']}"
        allow_ip = allow_ip_default(args.allow_ip)
        report = fetch(
            dest,
            commit,
            paths,
            jobs=args.jobs,
            progress=not (args.quiet or args.json),
            label=label,
            allow_ip=allow_ip,
            prepare=store_preparer(args),
        )
    except RetrieveError as exc:
        print(f"neuromirror: get failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(
            {
                "source": spec.source,
                "version": rec["version"],
                "commit": commit,
                "tag": rec.get("tag"),
                "doi": rec.get("doi"),
                "dir": str(dest),
                "from": url,
                "reused": reused,
                "paths": paths or ["."],
                "fetched": report.fetched,
                "fetched_bytes": report.fetched_bytes,
                "present": report.present,
                "git_files": report.git_files,
                "subdatasets": report.subdatasets,
                "failed": [{"path": p, "error": e} for p, e in report.failed],
                "ok": not report.failed,
            }
        )
    else:
        where = os.path.relpath(dest) if not os.path.relpath(dest).startswith("..") else str(dest)
        print(f"{spec.source}@{rec['version']} (commit {commit[:12]}) in {where}: {report.line()}")
    if report.failed:
        print(f"neuromirror: get: {len(report.failed)} file(s) not fetched or not verified:", file=sys.stderr)
        for line in failure_lines(report):
            print(line, file=sys.stderr)
        return 1
    return 0

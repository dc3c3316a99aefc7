"""``neuromirror get SPEC@VERSION [PATH...] --to DIR``: a pinned version, content verified.

``get SPEC@VERSION [PATH] --region X0:X1,Y0:Y1,Z0:Z1 --format tiff --to FILE``: a region of a pinned
OME-Zarr image (a BOSS channel) as a TIFF stack (:mod:`neuromirror.read.ome.regions`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from neuromirror.commands.common import (
    UserError,
    add_json,
    check_folder,
    mirror_if_exists,
    print_json,
    root_of,
    spec_arg,
)

if TYPE_CHECKING:
    from neuromirror.pin.fetch import GetReport, GotVersion, Retrieval
    from neuromirror.spec import Spec


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
        "--to",
        required=True,
        metavar="DIR",
        help="directory for the clone (new, or a previous get's clone); with --format tiff, the TIFF file",
    )
    add_retrieval_options(p)
    add_region_options(p)
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
        help="the lab's store (a directory or a packed store kept by 'neuromirror keep') to fall back to when the "
        "archive's URLs fail, also if the dataset does not record it; overrides a lock's store (env "
        "NEUROMIRROR_STORE)",
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


def add_region_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "a region as a TIFF stack",
        "read a region of a pinned OME-Zarr image (a BOSS channel, or the image at PATH) from its pinned chunks "
        "(kept ones from the store; a BOSS chunk no store keeps from the BOSS, checked against the pin) and write "
        "it to --to FILE, one page per z plane; nothing is cloned",
    )
    g.add_argument(
        "--region",
        metavar="X0:X1,Y0:Y1,Z0:Z1",
        help="the voxels of the level, stops exclusive (as intern's get_cutout takes them)",
    )
    g.add_argument("--res", type=int, metavar="N", help="the resolution level (default: the finest the pin has)")
    g.add_argument("--channel", metavar="C", help="the BOSS channel (needed when the experiment has several)")
    g.add_argument("--format", choices=["tiff"], help="tiff: a multi-page TIFF (tifffile); needs --region")


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


def retrieval(args: argparse.Namespace) -> Retrieval:
    """The retrieval options (:func:`add_retrieval_options`) as :class:`~neuromirror.pin.fetch.Retrieval`."""
    from neuromirror.pin.fetch import Retrieval

    return Retrieval(
        from_url=args.from_url,
        allow_ip=args.allow_ip,
        jobs=args.jobs,
        progress=not (args.quiet or args.json),
        prepare_for=lambda recorded: store_preparer(args, recorded),
    )


def run(args: argparse.Namespace) -> int:
    from neuromirror.pin.fetch import get_version
    from neuromirror.pin.retrieve import RetrieveError

    spec = spec_arg(args.spec)
    if spec.is_glob:
        raise UserError("get takes one source, not a pattern")
    if args.format or args.region or args.res is not None or args.channel:
        return _region(args, spec)
    check_destination(args.to)
    rec, relpath = _recorded(args, spec)
    try:
        got = get_version(spec, rec, relpath, Path(args.to), args.paths, retrieval(args))
    except RetrieveError as exc:
        print(f"neuromirror: get failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(_json_of(spec, got))
    else:
        where = os.path.relpath(got.dest) if not os.path.relpath(got.dest).startswith("..") else str(got.dest)
        print(f"{spec.source}@{got.rec['version']} (commit {got.commit[:12]}) in {where}: {got.report.line()}")
    if got.report.failed:
        _print_failures(got.report)
        return 1
    return 0


def _region(args: argparse.Namespace, spec: Spec) -> int:
    """``--region ... --format tiff``: the region's TIFF from the pinned chunks (no clone)."""
    from neuromirror.read.ome.level import RegionError
    from neuromirror.read.ome.regions import Region, RegionRequest, export_tiff

    if args.format != "tiff" or not args.region:
        raise UserError("--region, --res and --channel go with --format tiff (and --format tiff needs --region)")
    if args.from_url or args.store or len(args.paths) > 1:
        raise UserError("get --format tiff reads the mirror's pin: one image PATH at most, no --from or --store")
    request = RegionRequest(
        root_of(args),
        args.index,
        spec,
        Region.parse(args.region),
        Path(args.to),
        res=args.res,
        channel=args.channel,
        image=args.paths[0] if args.paths else None,
        jobs=args.jobs,
    )
    try:
        report = export_tiff(request)
    except RegionError as exc:
        print(f"neuromirror: get failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(report.to_json())
    else:
        print(report.line())
    return 0


def _recorded(args: argparse.Namespace, spec: Spec) -> tuple[Optional[dict], Optional[str]]:
    """The version's record in the mirror and its dataset's path there; (None, None) when the mirror
    does not have the source (then --from must say where to clone from)."""
    from neuromirror.pin.record import pin_record

    mirror = mirror_if_exists(args)
    rec: Optional[dict] = None
    relpath: Optional[str] = None
    try:
        if mirror is not None and mirror.index.source(spec.source) is not None:
            rec = pin_record(mirror, spec)
            relpath = mirror.index.source(spec.source).dataset
    finally:
        if mirror is not None:
            mirror.close()
    if rec is None and not args.from_url:
        where = f"the mirror at {mirror.root}" if mirror else f"{root_of(args)} (no mirror there)"
        raise UserError(f"{spec.source} is not in {where}: pass --from URL of a published copy, or --root")
    return rec, relpath


def _json_of(spec: Spec, got: GotVersion) -> dict:
    rec, report = got.rec, got.report
    return {
        "source": spec.source,
        "version": rec["version"],
        "commit": got.commit,
        "tag": rec.get("tag"),
        "doi": rec.get("doi"),
        "dir": str(got.dest),
        "from": got.url,
        "reused": got.reused,
        "paths": got.paths or ["."],
        "fetched": report.fetched,
        "fetched_bytes": report.fetched_bytes,
        "present": report.present,
        "git_files": report.git_files,
        "subdatasets": report.subdatasets,
        "failed": [{"path": p, "error": e} for p, e in report.failed],
        "ok": not report.failed,
    }


def _print_failures(report: GetReport) -> None:
    from neuromirror.pin.fetch import failure_lines

    print(f"neuromirror: get: {len(report.failed)} file(s) not fetched or not verified:", file=sys.stderr)
    for line in failure_lines(report):
        print(line, file=sys.stderr)

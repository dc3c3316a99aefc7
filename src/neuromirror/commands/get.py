"""``neuromirror get SPEC@VERSION [PATH...] --to DIR``: a pinned version, content verified.

``get SPEC@VERSION [PATH] --region X0:X1,Y0:Y1,Z0:Z1 --format tiff --to FILE``: a region of a pinned
OME-Zarr image (a BOSS channel) as a TIFF stack (:mod:`neuromirror.read.ome.regions`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from neuromirror import api
from neuromirror.api.getting import Bars
from neuromirror.commands.common import UserError, add_json, check_folder, root_of


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
        help="directory for the clone (new, or a previous get's clone); with --format, the file it writes",
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
        help="the lab's store kept by 'neuromirror keep' (a directory, s3://BUCKET[/PREFIX] or a packed store) to fall "
        "back to when the "
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
    known = api.formats()  # the registered readers (neuromirror.readers): an unknown one is refused by the API
    g.add_argument(
        "--format",
        metavar="NAME",
        help="; ".join(f"{n}: {w.help}" for n, w in known.items()) + "; needs --region",
    )
    g.add_argument("--force", action="store_true", help="with --format: replace the file --to names if it exists")


def retrieval(args: argparse.Namespace) -> dict[str, Any]:
    """The retrieval options (:func:`add_retrieval_options`) as the API's keyword arguments; the byte bars unless
    ``-q`` or ``--json``."""
    quiet = args.quiet or args.json
    return dict(from_url=args.from_url, store=args.store, jobs=args.jobs, allow_ip=args.allow_ip, progress=None if quiet else Bars())  # fmt: skip


def print_notes(args: argparse.Namespace, notes: list[str]) -> None:
    """Why a store was not used, on stderr (not with ``--json``)."""
    for note in notes if not args.json else ():
        print(f"neuromirror: note: {note}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    region: dict[str, Any] = {"region": args.region, "res": args.res, "channel": args.channel, "format": args.format}
    if any(v is not None for v in region.values()):
        _check_region_options(args)
        region["force"] = args.force
    else:
        if args.force:
            raise UserError("--force goes with --format (a get into a directory adds to a previous clone)")
        check_folder(f"--to {args.to}", args.to, " (give a new directory or a previous get's clone)")
    with api.Mirror(root_of(args), args.index) as m:  # with --from, no mirror is needed
        try:
            got = m.get(args.spec, args.paths, to=args.to, **retrieval(args), **region)
        except api.NotMirrored as exc:
            raise UserError(f"{exc}: pass --from URL of a published copy, or --root") from None
        except (api.Unavailable, api.NoSuchPath) as exc:  # a path the version lacks: exit 1, as it always was
            print(f"neuromirror: {exc}", file=sys.stderr)
            return 1
    print_notes(args, getattr(got, "notes", []))
    if args.json:
        got.write_json(sys.stdout)
    else:
        print("\n".join(got.lines()))
    for line in getattr(got, "failure_lines", list)():
        print(line, file=sys.stderr)
    return 0 if got.ok else 1


def _check_region_options(args: argparse.Namespace) -> None:
    """``--region`` and its options go together, without ``--from`` or ``--store``: said with the flags' names."""
    if not args.format or not args.region:
        raise UserError("--region, --res and --channel go with --format (and --format needs --region)")
    if args.from_url or args.store or len(args.paths) > 1:
        raise UserError("get --format reads the mirror's pin: one image PATH at most, no --from or --store")

"""The command line of ``scripts/bench``: the scenarios' names and every scenario's options.

Why its own room: the options are most of what a reader of :mod:`neuromirror.bench.run` would
scroll past; they are grouped per scenario (its issue), each with its default, and checked here
(unknown scenarios, options that need ``--rtt``) before anything starts.
"""

from __future__ import annotations

import argparse
from typing import Callable, Optional, Sequence

from neuromirror.bench.scenarios.beside import beside_options
from neuromirror.bench.scenarios.far.nwb_many import NWB_SCENARIOS, nwb_options
from neuromirror.bench.scenarios.lost.gap import gap_options
from neuromirror.bench.scenarios.lost.inventory_cold import add_options as _inventory_cold_options
from neuromirror.bench.scenarios.lost.inventory_read import add_options as _inventory_read_options
from neuromirror.bench.scenarios.lost.repin import add_options as _repin_options
from neuromirror.bench.scenarios.packs.cluster import add_options as _keep_cluster_options
from neuromirror.bench.scenarios.packs.service_cycles import add_options as _pack_service_options
from neuromirror.bench.scenarios.publish78.common import SCENARIOS as ISSUE78_SCENARIOS
from neuromirror.bench.scenarios.publish78.common import add_options as _issue78_options
from neuromirror.bench.scenarios.serve.soak import add_options as _service_soak_options
from neuromirror.bench.scenarios.tiff_region import add_options as _tiff_region_options

ALL = (
    "head",
    "dandi",
    "anchors",
    "aind",
    "index",
    "zarr-dandiset",
    "aind-zarr",
    "archive",
    "clone-get",
    "keep",
    "keep-archive",
    "restore",
    "zarr-many",
    "publish-ria",
    "read",
    "read-loss",
    "soak",
    "archive-quiet",
    "read-nwb",
    "lost-get",
    "keep-pack",
    "keep-pack-s3",
    "verify-pack",
    "pack-cycles",
    "pack-service-cycles",
    "lost-stores",
    "unreachable-store",
    "restore-pack",
    "pack-thaw",
    "service-soak",
    "ceiling",
    "audit-scale",
    "tiff-region",
    "gap-plan",
    "inventory-read",
    "inventory-cold",
    "keep-cluster",
    "repin",
    *ISSUE78_SCENARIOS,
    *NWB_SCENARIOS,
)
#: run by default (no --scenarios): the per-size ones (the scale ones are asked for by name)
DEFAULT = ("head", "dandi", "anchors", "aind", "index")
#: with --rtt these run side by side at RTT 0 and the RTT (neuromirror.bench.scenarios.far.sides)
NETWORK_SCENARIOS = ("dandi", "zarr-many", "zarr-dandiset", "read-nwb")


#: what ``scripts/bench --help`` says first (the first paragraph of :mod:`neuromirror.bench.run`)
_DESCRIPTION = "The benchmark behind ``scripts/bench``: is mirroring limited by the archive or by neuromirror?"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="10000,100000", help="comma-separated N (default 10000,100000)")
    p.add_argument("--million", action="store_true", help="also run N=1000000 (hours: cold pinning is bound by moto)")
    p.add_argument(
        "--scenarios",
        default=None,
        help=f"comma-separated subset of {','.join(ALL)} (default {','.join(DEFAULT)}; dandi-cold "
        "always runs for head/dandi/anchors/clone-get; zarr-dandiset, aind-zarr and archive run "
        "once, at the sizes below, not per --sizes)",
    )
    g = p.add_argument_group("scale scenarios (issue 13)")
    g.add_argument("--zarrs", type=int, default=200, help="zarr-dandiset: Zarr assets Z (default 200)")
    g.add_argument(
        "--zarr-objects", type=int, default=5000, help="zarr-dandiset / archive: objects per Zarr M (default 5000)"
    )
    g.add_argument("--zarr-blobs", type=int, default=1000, help="zarr-dandiset: blob assets (default 1000)")
    g.add_argument(
        "--aind-zarr-objects", type=int, default=1_000_000, help="aind-zarr: objects per OME-Zarr store (default 10^6)"
    )
    g.add_argument(
        "--aind-zarr-stores", type=int, default=4, help="aind-zarr: OME-Zarr stores in the asset (default 4)"
    )
    g.add_argument("--archive-dandisets", type=int, default=50, help="archive: stand-in dandisets (default 50)")
    g.add_argument(
        "--archive-large", type=int, default=10_000, help="archive: assets of the 3 large ones (default 10^4)"
    )
    _int_groups(
        p,
        (
            (
                "zarr-many (issue 25): a dandiset of many small Zarrs",
                ("--many-zarrs", 20_000, "zarr-many: Zarr assets N (default 20000)"),
                ("--many-zarr-objects", 20, "zarr-many: objects per Zarr (default 20)"),
                ("--many-zarr-blobs", 100, "zarr-many: blob assets (default 100)"),
            ),
            (
                "publish-ria (issue 24): publish into a RIA store, clone it over HTTP",
                ("--publish-zarrs", 1000, "publish-ria: Zarr datasets (default 1000)"),
                ("--publish-clone-files", 10_000, "publish-ria: files to clone (default 10^4)"),
            ),
            (
                "read (issue 31): read pins through the view and neuromirror://",
                ("--read-files", 10_000, "read: files of the dandiset (default 10^4)"),
                ("--read-rounds", 10, "read: timed rounds over the sample files (default 10)"),
                ("--read-readers", 64, "read: concurrent readers of one file (default 64)"),
                ("--read-zarrs", 2000, "read: Zarrs mirrored for the view's memory (default 2000)"),
                ("--read-zarr-objects", 100_000, "read: objects of the one big Zarr (default 10^5)"),
            ),
            (
                "archive-quiet (issue 32): a no-change cycle of dandi:* over N dandisets",
                ("--quiet-dandisets", 2000, "archive-quiet: dandisets N (default 2000)"),
            ),
            (
                "keep (issue 23): neuromirror keep against git annex copy --from web --to STORE",
                ("--keep-small", 10_000, "keep: files of ~10 kB (default 10^4; 0 skips them)"),
                ("--keep-large", 4, "keep: large files (default 4; 0 skips them)"),
                ("--keep-large-mb", 256, "keep: size of each large file in MB (default 256)"),
            ),
        ),
    )
    g = p.add_argument_group("restore (issue 42): neuromirror restore against git annex copy --to S3 and boto3")
    g.add_argument("--restore-small", type=int, default=10_000, help="restore: files of ~10 kB (default 10^4)")
    g.add_argument("--restore-large", type=int, default=4, help="restore: large files (default 4; 0 skips them)")
    g.add_argument("--restore-large-mb", type=int, default=256, help="restore: size of each large file in MB")
    g.add_argument(
        "--restore-dry-keys",
        type=lambda s: int(float(s)),
        default=1_000_000,
        help="restore: kept keys of the dry run at scale (default 10^6; 0 skips it; smaller: extrapolated)",
    )
    g = p.add_argument_group("keep-archive (issue 33): the archive's shape kept into two stores, killed, resumed")
    g.add_argument(
        "--keep-archive-keys",
        type=lambda s: int(float(s)),
        default=1_000_000,
        help="keep-archive: distinct keys (default 10^6)",
    )
    g.add_argument("--keep-archive-dandisets", type=int, default=8, help="keep-archive: dandisets (default 8)")
    g.add_argument(
        "--keep-archive-kill-at",
        type=float,
        default=0.3,
        help="keep-archive: share of the 2 x keys copies at which the first keep is killed (default 0.3)",
    )
    g.add_argument(
        "--keep-archive-fraction",
        type=float,
        default=1 / 30,
        help="keep-archive: the slice verify --stores re-reads (default 1/30)",
    )
    g = p.add_argument_group("soak (issue 32): K syncs with a change each, a publish every Nth, maintain after each")
    g.add_argument("--soak-files", type=int, default=10_000, help="soak: files in the dandiset (default 10^4)")
    g.add_argument("--soak-syncs", type=int, default=1000, help="soak: syncs K, one added file each (default 1000)")
    g.add_argument("--soak-publish-every", type=int, default=10, help="soak: publish every Nth sync (default 10)")
    g.add_argument(
        "--soak-minutes", type=float, default=0, help="soak: start no cycle after M minutes (default 0: no limit)"
    )
    g = p.add_argument_group(
        "lost-get (issue 53): a clone's get of kept files the archive lost, vs git annex get --from"
    )
    g.add_argument("--lost-zarr-chunks", type=int, default=10_000, help="lost-get: chunks of the old Zarr state")
    g.add_argument("--lost-rounds", type=int, default=3, help="lost-get: alternating rounds per side (default 3)")
    _pack_options(p)
    _network_options(p)
    _service_soak_options(p)
    _pack_service_options(p)
    _tiff_region_options(p)
    _inventory_read_options(p)
    _inventory_cold_options(p)
    _keep_cluster_options(p)
    _issue78_options(p)
    beside_options(p)
    gap_options(p)
    _repin_options(p)
    nwb_options(p)
    p.add_argument(
        "--index-rows",
        type=int,
        default=1_000_000,
        help="file rows in the synthesised index (default 10^6; the target is about 10^7)",
    )
    p.add_argument("--batch-rows", type=int, default=100_000, help="rows for the git-annex batch anchor (default 10^5)")
    p.add_argument("--addurls-rows", type=int, default=2000, help="rows for the datalad addurls anchor (default 2000)")
    p.add_argument("--head-rows", type=int, default=10_000, help="HEADs in the reference loop (default 10^4)")
    p.add_argument("--out", help="JSON file to write (default bench-results/bench-<time>.json)")
    p.add_argument("--workdir", help="where mirrors are made (default: a temporary directory, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the mirrors and the work directory")
    p.add_argument(
        "--compare",
        metavar="REV",
        help="run the chosen scenarios for this checkout and for commit REV (a temporary worktree, "
        "the same venv), alternating rounds; report each side's median CPU, system CPU and wall and "
        "their ratios (docs/performance.md)",
    )
    p.add_argument("--compare-rounds", type=int, default=2, help="--compare: rounds per side (default 2)")
    args = p.parse_args(argv)
    args.sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    if args.million and 1_000_000 not in args.sizes:
        args.sizes.append(1_000_000)
    if args.scenarios is None:
        args.scenarios = "dandi" if args.rtt is not None else ",".join(DEFAULT)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if args.rtt is None and (args.throttle or args.bandwidth):
        p.error("--throttle and --bandwidth need --rtt")
    if args.rtt is None and "read-nwb" in args.scenarios:
        p.error("read-nwb needs --rtt (e.g. --rtt 50ms)")
    bad = set(args.scenarios) - set(ALL)
    if bad:
        p.error(f"unknown scenarios {sorted(bad)}")
    return args


def _int_groups(p: argparse.ArgumentParser, groups: Sequence[tuple]) -> None:
    """Option groups of whole numbers: ``(title, (flag, default, help), ...)`` each, in this order."""
    for title, *options in groups:
        g = p.add_argument_group(title)
        for flag, default, text in options:
            g.add_argument(flag, type=int, default=default, help=text)


def _pack_options(p: argparse.ArgumentParser) -> None:
    from neuromirror.util.sizes import parse_size

    g = p.add_argument_group(
        "keep-pack, keep-pack-s3, verify-pack, pack-cycles, lost-stores, restore-pack, pack-thaw (issue 57): keep "
        "into packed stores against a directory store, git annex copy and an s3:// store; K service cycles of 10 "
        "small keys into one packed store; a clone's get of lost keys from packed and S3 stores; restore from a "
        "packed store; DEEP_ARCHIVE packs thawed"
    )
    g.add_argument(
        "--keep-pack-objects",
        type=lambda s: int(float(s)),
        default=100_000,
        help="keep-pack*: objects of ~10 kB per shape (one Zarr; Zarrs of --keep-pack-zarr-objects; default 10^5, "
        "target 10^6)",
    )
    g.add_argument("--keep-pack-zarr-objects", type=int, default=50, help="keep-pack*: objects per small Zarr (50)")
    g.add_argument(
        "--keep-pack-shapes",
        type=lambda s: [x for x in s.split(",") if x],
        default=["zarr", "zarrs"],
        help="keep-pack*: the shapes, of zarr (one Zarr) and zarrs (many small ones); default both",
    )
    g.add_argument(
        "--keep-pack-sides",
        type=lambda s: [x for x in s.split(",") if x],
        default=["pack", "rerun", "directory", "annex"],
        help="keep-pack: the sides measured, of pack, rerun, directory, annex; default all (pack,rerun alone: "
        "the packed keep's memory at 10^6 in an hour, with no ratio judged)",
    )
    g.add_argument(
        "--verify-pack-rounds", type=int, default=1, help="verify-pack: alternating rounds per store, medians (1)"
    )
    g.add_argument("--keep-pack-size", type=parse_size, default=256 << 20, help="keep-pack*: --pack-size (256MiB)")
    g.add_argument("--pack-cycles", type=int, default=1000, help="pack-cycles: cycles K (default 1000)")
    g.add_argument(
        "--pack-cycles-pack-size", type=parse_size, default=256 << 10, help="pack-cycles: pack size (256KiB)"
    )
    for flag, kind, default, text in (
        ("--keep-pack-peer-objects", int, 20_000, "keep-pack zarr: git annex copy's sample past this (20,000)"),
        ("--keep-pack-s3-objects", int, 50_000, "keep-pack-s3: the s3:// side's sample past this (50,000)"),
        ("--lost-stores-chunks", int, 1000, "lost-stores: chunks of the lost Zarr (default 1000)"),
        ("--lost-stores-rounds", int, 2, "lost-stores: alternating rounds per store kind (default 2)"),
        ("--unreachable-rounds", int, 3, "unreachable-store (issue 76): alternating rounds per kind (default 3)"),
        ("--restore-pack-files", int, 10_000, "restore-pack: files of 10 kB (default 10^4)"),
        ("--restore-pack-rounds", int, 2, "restore-pack: alternating rounds per side (default 2)"),
        ("--pack-thaw-files", int, 1000, "pack-thaw: files of 10 kB kept into DEEP_ARCHIVE packs (default 1000)"),
        ("--pack-thaw-pack-size", parse_size, 1 << 20, "pack-thaw: pack size (default 1MiB)"),
    ):
        g.add_argument(flag, type=kind, default=default, help=text)


def _network_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "network (issue 50): the archives behind shaping proxies; dandi, zarr-many and zarr-dandiset "
        "run at RTT 0 and at --rtt in one run (default scenario: dandi); read-nwb reads an NWB file at --rtt "
        "through neuromirror:// and with remfile"
    )
    for flag, kind, default, text in (
        ("--rtt", _duration, None, "round trip of the proxies' side, e.g. 50ms (default: no proxies)"),
        (
            "--throttle",
            float,
            0.0,
            "with --rtt: also a throttled cold dandi sync, this fraction of S3 HEADs "
            "answered SlowDown and of API GETs 429",
        ),
        ("--throttle-for", _duration, 30.0, "--throttle: for how long (default 30s)"),
        ("--bandwidth", _rate, None, "with --rtt: a bandwidth cap per connection, e.g. 10MB/s"),
        ("--nwb-mb", float, 64.0, "read-nwb: MiB of samples in the NWB file (default 64)"),
        ("--nwb-rounds", int, 3, "read-nwb: rounds, each one read by remfile and one through neuromirror://"),
    ):
        g.add_argument(flag, type=kind, default=default, help=text)


def _network_value(parser: str) -> Callable[[str], float]:
    """An argument type reading a duration ("50ms") or a rate ("10MB/s") as the shaping proxy does."""

    def parse(text: str) -> float:
        from neuromirror.standins import network

        try:
            return float(getattr(network, parser)(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_duration, _rate = _network_value("parse_duration"), _network_value("parse_rate")

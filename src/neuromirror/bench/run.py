"""The benchmark behind ``scripts/bench``: is mirroring limited by the archive or by neuromirror?

Not part of the test suite.  It starts the stand-in archives in this process
(moto S3 + the DANDI API stand-in, on loopback), fills them with synthetic
archives of N files (metadata only, plus an empty-ish S3 object per blob so that
URL pinning has something real to HEAD), and runs every scenario the way a user
would: ``neuromirror --root R sync ... --json -q`` in a subprocess whose JSON
report carries the phase timings.  Per scenario it records the wall time, files
per second, the peak RSS of the whole process tree (the sync and its git /
git-annex children, polled every 50 ms) and the time split into listing, URL
pinning, annex registration + commit, and index writing.

Scenarios per size N:

1. ``dandi-cold``     cold mirror of a dandiset with N assets
2. ``dandi-resync``   resync with no change
3. ``dandi-3changes`` resync after 1 asset added, 1 removed, 1 changed
4. ``aind-cold``      cold mirror of an AIND asset with N objects (``aind-resync`` too)
5. anchors on the same rows: ``git annex fromkey --batch`` + ``registerurl --batch``
   + ``git commit`` (``anchor-batch``), and ``datalad addurls --key ... -x '*'`` on a
   subsample (``anchor-addurls``, ~16 files/s, hence at most ``--addurls-rows`` rows)
6. ``head-reference`` a plain concurrent HEAD loop (32 workers, like the DANDI source)
   against the same S3 objects, in its own process: the rate the stand-in sustains.

What is done to the stand-ins so that they measure neuromirror and not moto, and how they
are filled fast: :mod:`neuromirror.bench.moto_patch`, :mod:`neuromirror.bench.archives`.
The archive-scale scenarios (issue 13) are in :mod:`neuromirror.bench.scenarios.scale`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import machine, say, startup_time
from neuromirror.bench.report import add_ratios, report
from neuromirror.bench.scenarios.archive_quiet import archive_quiet_targets, bench_archive_quiet
from neuromirror.bench.scenarios.beside import bench_beside, beside_options, beside_targets
from neuromirror.bench.scenarios.far.nwb_many import NWB_SCENARIOS, bench_nwb, nwb_options, nwb_targets
from neuromirror.bench.scenarios.index_queries import bench_index
from neuromirror.bench.scenarios.keep import bench_keep, keep_targets
from neuromirror.bench.scenarios.keep_archive import bench_keep_archive, keep_archive_targets
from neuromirror.bench.scenarios.lost.lost_get import bench_lost_get
from neuromirror.bench.scenarios.packs.cycles import bench_pack_cycles, pack_cycles_targets
from neuromirror.bench.scenarios.packs.keep import bench_keep_pack, keep_pack_targets
from neuromirror.bench.scenarios.packs.lostget import bench_lost_stores, lost_stores_targets
from neuromirror.bench.scenarios.packs.restore import bench_restore_pack, restore_pack_targets
from neuromirror.bench.scenarios.packs.thaw import bench_pack_thaw, pack_thaw_targets
from neuromirror.bench.scenarios.per_size import bench_size
from neuromirror.bench.scenarios.publish_ria import bench_publish_ria, publish_ria_targets
from neuromirror.bench.scenarios.read_loss import bench_read_loss
from neuromirror.bench.scenarios.read_view import bench_read, read_targets
from neuromirror.bench.scenarios.restore import bench_restore, restore_targets
from neuromirror.bench.scenarios.scale import run_scale
from neuromirror.bench.scenarios.serve.soak import add_options as _service_soak_options
from neuromirror.bench.scenarios.serve.soak import bench_service_soak, service_soak_targets
from neuromirror.bench.scenarios.soak import bench_soak
from neuromirror.bench.scenarios.tiff_region import add_options as _tiff_region_options
from neuromirror.bench.scenarios.tiff_region import bench_tiff_region, tiff_region_targets
from neuromirror.bench.scenarios.zarr_many import bench_zarr_many
from neuromirror.bench.targets import check_targets, lost_get_targets, network_targets
from neuromirror.util.dates import now_z

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
    "lost-stores",
    "restore-pack",
    "pack-thaw",
    "service-soak",
    "ceiling",
    "audit-scale",
    "tiff-region",
    *NWB_SCENARIOS,
)
#: run by default (no --scenarios): the per-size ones (the scale ones are asked for by name)
DEFAULT = ("head", "dandi", "anchors", "aind", "index")
#: with --rtt these run side by side at RTT 0 and the RTT (neuromirror.bench.scenarios.far.sides)
NETWORK_SCENARIOS = ("dandi", "zarr-many", "zarr-dandiset", "read-nwb")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
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
    g = p.add_argument_group("zarr-many (issue 25): a dandiset of many small Zarrs")
    g.add_argument("--many-zarrs", type=int, default=20_000, help="zarr-many: Zarr assets N (default 20000)")
    g.add_argument("--many-zarr-objects", type=int, default=20, help="zarr-many: objects per Zarr (default 20)")
    g.add_argument("--many-zarr-blobs", type=int, default=100, help="zarr-many: blob assets (default 100)")
    g = p.add_argument_group("publish-ria (issue 24): publish into a RIA store, clone it over HTTP")
    g.add_argument("--publish-zarrs", type=int, default=1000, help="publish-ria: Zarr datasets (default 1000)")
    g.add_argument("--publish-clone-files", type=int, default=10_000, help="publish-ria: files to clone (default 10^4)")
    g = p.add_argument_group("read (issue 31): read pins through the view and neuromirror://")
    g.add_argument("--read-files", type=int, default=10_000, help="read: files of the dandiset (default 10^4)")
    g.add_argument("--read-rounds", type=int, default=10, help="read: timed rounds over the sample files (default 10)")
    g.add_argument("--read-readers", type=int, default=64, help="read: concurrent readers of one file (default 64)")
    g.add_argument(
        "--read-zarrs", type=int, default=2000, help="read: Zarrs mirrored for the view's memory (default 2000)"
    )
    g.add_argument(
        "--read-zarr-objects", type=int, default=100_000, help="read: objects of the one big Zarr (default 10^5)"
    )
    g = p.add_argument_group("archive-quiet (issue 32): a no-change cycle of dandi:* over N dandisets")
    g.add_argument("--quiet-dandisets", type=int, default=2000, help="archive-quiet: dandisets N (default 2000)")
    g = p.add_argument_group("keep (issue 23): neuromirror keep against git annex copy --from web --to STORE")
    g.add_argument("--keep-small", type=int, default=10_000, help="keep: files of ~10 kB (default 10^4; 0 skips them)")
    g.add_argument("--keep-large", type=int, default=4, help="keep: large files (default 4; 0 skips them)")
    g.add_argument("--keep-large-mb", type=int, default=256, help="keep: size of each large file in MB (default 256)")
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
    _tiff_region_options(p)
    beside_options(p)
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
    g.add_argument("--keep-pack-size", type=parse_size, default=256 << 20, help="keep-pack*: --pack-size (256MiB)")
    g.add_argument("--pack-cycles", type=int, default=1000, help="pack-cycles: cycles K (default 1000)")
    g.add_argument(
        "--pack-cycles-pack-size", type=parse_size, default=256 << 10, help="pack-cycles: pack size (256KiB)"
    )
    for flag, kind, default, text in (
        ("--lost-stores-chunks", int, 1000, "lost-stores: chunks of the lost Zarr (default 1000)"),
        ("--lost-stores-rounds", int, 2, "lost-stores: alternating rounds per store kind (default 2)"),
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for k, v in (("DANDI_NO_ET", "1"), ("DANDI_CACHE", "ignore")):
        os.environ.setdefault(k, v)
    started = now_z()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="neuromirror-bench-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else Path("bench-results") / f"bench-{started.replace(':', '')}.json"
    doc: dict[str, Any] = {
        "started": started,
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items()},
        "results": [],
        "index": None,
        "targets": [],
    }
    say(f"work directory {work}; sizes {args.sizes}; scenarios {args.scenarios}; results -> {out}")
    if doc["machine"]["loadavg_at_start"][0] > (os.cpu_count() or 1) * 0.5:
        say(f"warning: load average {doc['machine']['loadavg_at_start']}: timings will be noisy")
    doc["startup"] = startup_time()
    archives = None
    try:
        if args.compare:
            from neuromirror.bench.compare import compare_report, compare_rows, run_compare

            def once() -> list[dict]:
                nonlocal archives
                sub = {"results": [], "startup": doc["startup"], "index": None}
                archives = _scenarios(args, archives, work, sub, None)
                return sub["results"]

            doc["results"] = run_compare(args.compare, args.compare_rounds, once)
            doc["compare"] = compare_rows(doc["results"])
            doc["compare_report"] = compare_report(doc["compare"])
        else:
            archives = _scenarios(args, archives, work, doc, out)
    finally:
        if archives is not None:
            archives.close()
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    add_ratios(doc["results"])
    if not args.compare:  # two commits' rows: the comparison is the result, not the targets
        doc["targets"] = check_targets(doc["results"], doc["startup"], doc["index"]) + keep_targets(doc["results"])
        doc["targets"] += publish_ria_targets(doc["results"]) + read_targets(doc["results"])
        doc["targets"] += archive_quiet_targets(doc["results"]) + keep_archive_targets(doc["results"])
        doc["targets"] += restore_targets(doc["results"]) + nwb_targets(doc["results"])
        doc["targets"] += network_targets(doc["results"]) + lost_get_targets(doc["results"])
        doc["targets"] += keep_pack_targets(doc["results"]) + pack_cycles_targets(doc["results"])
        doc["targets"] += lost_stores_targets(doc["results"]) + restore_pack_targets(doc["results"])
        doc["targets"] += pack_thaw_targets(doc["results"]) + service_soak_targets(doc["results"])
        doc["targets"] += tiff_region_targets(doc["results"])
        doc["targets"] += beside_targets(doc["results"])
    doc["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = report(doc)
    if doc.get("compare_report"):
        text += "\n\n" + doc["compare_report"]
    doc["report"] = text
    _write(out, doc)
    print(text)
    print(f"\nJSON: {out}")
    return 0


def _scenarios(
    args: argparse.Namespace, archives: Optional[Archives], work: Path, doc: dict, out: Optional[Path]
) -> Optional[Archives]:
    """The chosen scenarios, their rows appended to ``doc["results"]``; the stand-ins (started if needed)."""
    if args.rtt is not None and set(args.scenarios) & set(NETWORK_SCENARIOS):
        from neuromirror.bench.scenarios.far.sides import bench_network

        archives = archives or Archives()
        doc["results"] += bench_network(args, archives, work, doc["startup"]["help_s"])
        _write(out, doc)
        rest = [s for s in args.scenarios if s not in NETWORK_SCENARIOS]
        if not rest:
            return archives
        args = argparse.Namespace(**{**vars(args), "scenarios": rest})
    if set(args.scenarios) - {"index"}:
        archives = archives or Archives()
        a, help_s = archives, doc["startup"]["help_s"]
        if set(args.scenarios) & {"zarr-dandiset", "aind-zarr", "archive"}:
            run_scale(args, a, work, help_s, doc["results"])
            _write(out, doc)
        #: the other scenarios in the order they run, each one's rows written out once it is done
        runs: list[tuple[str, Callable[[], list[dict]]]] = [
            (
                "zarr-many",
                lambda: bench_zarr_many(
                    a,
                    work,
                    help_s,
                    args.many_zarrs,
                    args.many_zarr_objects,
                    args.many_zarr_blobs,
                    args.keep,
                    drop=len(args.scenarios) > 1,
                ),
            ),
            (
                "publish-ria",
                lambda: bench_publish_ria(a, work, help_s, args.publish_zarrs, args.publish_clone_files, args.keep),
            ),
            (
                "read",
                lambda: bench_read(
                    a,
                    work,
                    help_s,
                    files=args.read_files,
                    rounds=args.read_rounds,
                    readers=args.read_readers,
                    zarrs=args.read_zarrs,
                    zarr_objects=args.read_zarr_objects,
                    keep=args.keep,
                ),
            ),
            ("read-loss", lambda: bench_read_loss(a, work, help_s, rounds=args.read_rounds * 5)),
            ("archive-quiet", lambda: bench_archive_quiet(a, work, args.quiet_dandisets)),
            ("keep", lambda: bench_keep(args, a, work, help_s)),
            ("restore", lambda: bench_restore(args, a, work, help_s)),
            (
                "keep-archive",
                lambda: bench_keep_archive(
                    a,
                    work,
                    help_s,
                    int(args.keep_archive_keys),
                    dandisets=args.keep_archive_dandisets,
                    kill_at=args.keep_archive_kill_at,
                    fraction=args.keep_archive_fraction,
                    keep=args.keep,
                ),
            ),
            ("soak", lambda: bench_soak(args, a, work, help_s)),
            ("lost-get", lambda: bench_lost_get(a, work, help_s, args.lost_zarr_chunks, args.lost_rounds)),
            ("keep-pack", lambda: bench_keep_pack(args, a, work, help_s, "keep-pack")),
            ("keep-pack-s3", lambda: bench_keep_pack(args, a, work, help_s, "keep-pack-s3")),
            ("verify-pack", lambda: bench_keep_pack(args, a, work, help_s, "verify-pack")),
            ("pack-cycles", lambda: bench_pack_cycles(work, args.pack_cycles, int(args.pack_cycles_pack_size))),
            (
                "lost-stores",
                lambda: bench_lost_stores(a, work, help_s, args.lost_stores_chunks, args.lost_stores_rounds, args.keep),
            ),
            ("restore-pack", lambda: bench_restore_pack(args, a, work, help_s)),
            ("pack-thaw", lambda: bench_pack_thaw(args, a, work, help_s)),
            ("service-soak", lambda: bench_service_soak(args, a, work)),
            ("tiff-region", lambda: bench_tiff_region(args, work)),
            ("ceiling", lambda: bench_beside("ceiling", args, a, work)),
            ("audit-scale", lambda: bench_beside("audit-scale", args, a, work)),
            *[(n, lambda n=n: bench_nwb(n, args, a, work)) for n in NWB_SCENARIOS],
        ]
        for name, run in runs:
            if name in args.scenarios:
                doc["results"] += run()
                _write(out, doc)
        for n in args.sizes if set(args.scenarios) & set(DEFAULT + ("clone-get",)) - {"index"} else []:
            try:
                bench_size(n, args, a, work, help_s, doc["results"])
            except Exception as exc:  # keep what was measured, go on with the next size
                say(f"N={n}: failed: {exc}")
                doc["results"].append({"scenario": "size", "n": n, "error": str(exc)[-1000:]})
            add_ratios(doc["results"])
            _write(out, doc)
    if "index" in args.scenarios and args.index_rows > 0:
        doc["index"] = bench_index(args.index_rows, work, doc["startup"]["help_s"])
    return archives


def _write(path: Optional[Path], doc: dict) -> None:
    if path is None:  # a round of --compare: the whole run is written at its end
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())

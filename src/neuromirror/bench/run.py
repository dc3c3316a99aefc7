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
3. ``dandi-2changes`` resync after 1 asset added, 1 replaced, read by the draft's changes (``-whole``: paged whole)
4. ``dandi-3changes`` resync after 1 asset added, 1 removed, 1 changed
5. ``aind-cold``      cold mirror of an AIND asset with N objects (``aind-resync`` too)
6. anchors on the same rows: ``git annex fromkey --batch`` + ``registerurl --batch``
   + ``git commit`` (``anchor-batch``), and ``datalad addurls --key ... -x '*'`` on a
   subsample (``anchor-addurls``, ~16 files/s, hence at most ``--addurls-rows`` rows)
7. ``head-reference`` a plain concurrent HEAD loop (32 workers, like the DANDI source)
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
from neuromirror.bench.options import ALL, DEFAULT, NETWORK_SCENARIOS, parse_args  # noqa: F401 - ALL: the scenarios' names, here as before
from neuromirror.bench.report import add_ratios, report
from neuromirror.bench.scenarios.beside import bench_beside, beside_targets
from neuromirror.bench.scenarios.far.nwb_many import NWB_SCENARIOS, bench_nwb, nwb_targets
from neuromirror.bench.scenarios.index_queries import bench_index
from neuromirror.bench.scenarios.keep import bench_keep, keep_targets
from neuromirror.bench.scenarios.keep_archive import bench_keep_archive, keep_archive_targets
from neuromirror.bench.scenarios.lost.gap import bench_gap_plan, gap_targets
from neuromirror.bench.scenarios.lost.inventory_cold import bench_inventory_cold, inventory_cold_targets
from neuromirror.bench.scenarios.lost.inventory_read import bench_inventory_read, inventory_read_targets
from neuromirror.bench.scenarios.lost.lost_get import bench_lost_get
from neuromirror.bench.scenarios.lost.repin import bench_repin, repin_targets
from neuromirror.bench.scenarios.packs.cluster import bench_keep_cluster, keep_cluster_targets
from neuromirror.bench.scenarios.packs.cycles import bench_pack_cycles, pack_cycles_targets
from neuromirror.bench.scenarios.packs.keep import bench_keep_pack, keep_pack_targets
from neuromirror.bench.scenarios.packs.lostget import bench_lost_stores, lost_stores_targets
from neuromirror.bench.scenarios.packs.restore import bench_restore_pack, restore_pack_targets
from neuromirror.bench.scenarios.packs.service_cycles import bench_pack_service_cycles, pack_service_cycles_targets
from neuromirror.bench.scenarios.packs.thaw import bench_pack_thaw, pack_thaw_targets
from neuromirror.bench.scenarios.packs.unreachable import bench_unreachable_store, unreachable_store_targets
from neuromirror.bench.scenarios.per_size import bench_size
from neuromirror.bench.scenarios.publish78.common import issue78_targets
from neuromirror.bench.scenarios.publish_ria import bench_publish_ria, publish_ria_targets
from neuromirror.bench.scenarios.read_loss import bench_read_loss
from neuromirror.bench.scenarios.read_view import bench_read, read_targets
from neuromirror.bench.scenarios.restore import bench_restore, restore_targets
from neuromirror.bench.scenarios.scale import run_scale
from neuromirror.bench.scenarios.serve.archive_quiet import archive_quiet_targets, bench_archive_quiet
from neuromirror.bench.scenarios.serve.soak import bench_service_soak, service_soak_targets
from neuromirror.bench.scenarios.serve.sync_soak import bench_soak
from neuromirror.bench.scenarios.tiff_region import bench_tiff_region, tiff_region_targets
from neuromirror.bench.scenarios.zarr_many import bench_zarr_many
from neuromirror.bench.targets import check_targets, lost_get_targets, network_targets
from neuromirror.util.dates import now_z


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
        doc["targets"] += tiff_region_targets(doc["results"]) + pack_service_cycles_targets(doc["results"])
        doc["targets"] += beside_targets(doc["results"]) + unreachable_store_targets(doc["results"])
        doc["targets"] += gap_targets(doc["results"])
        doc["targets"] += inventory_read_targets(doc["results"]) + inventory_cold_targets(doc["results"])
        doc["targets"] += keep_cluster_targets(doc["results"])
        doc["targets"] += repin_targets(doc["results"])
        doc["targets"] += issue78_targets(doc["results"])
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
        _on_archives(args, archives, work, doc, out)
    if "index" in args.scenarios and args.index_rows > 0:
        doc["index"] = bench_index(args.index_rows, work, doc["startup"]["help_s"])
    return archives


def _on_archives(args: argparse.Namespace, a: Archives, work: Path, doc: dict, out: Optional[Path]) -> None:
    """The chosen scenarios that run against the stand-ins: the scale ones, then the named ones in
    their order, then the per-size ones; each one's rows written out once it is done."""
    help_s = doc["startup"]["help_s"]
    if set(args.scenarios) & {"zarr-dandiset", "aind-zarr", "archive"}:
        run_scale(args, a, work, help_s, doc["results"])
        _write(out, doc)
    for name, run in _runs(args, a, work, help_s):
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


def _issue78(module: str, args: argparse.Namespace, a: Archives, work: Path, help_s: float) -> list[dict]:
    """Issue 78's scenarios, imported when asked for (the GitHub stand-in, icechunk)."""
    import importlib

    return importlib.import_module(f"neuromirror.bench.scenarios.publish78.{module}").bench(args, a, work, help_s)


def _runs(
    args: argparse.Namespace, a: Archives, work: Path, help_s: float
) -> list[tuple[str, Callable[[], list[dict]]]]:
    """The named scenarios in the order they run, each with how it is run from the options."""
    return [
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
        ("pack-service-cycles", lambda: bench_pack_service_cycles(args, a, work)),
        (
            "lost-stores",
            lambda: bench_lost_stores(a, work, help_s, args.lost_stores_chunks, args.lost_stores_rounds, args.keep),
        ),
        ("unreachable-store", lambda: bench_unreachable_store(a, work, help_s, args.unreachable_rounds)),
        ("restore-pack", lambda: bench_restore_pack(args, a, work, help_s)),
        ("pack-thaw", lambda: bench_pack_thaw(args, a, work, help_s)),
        ("service-soak", lambda: bench_service_soak(args, a, work)),
        ("tiff-region", lambda: bench_tiff_region(args, work)),
        ("inventory-read", lambda: bench_inventory_read(args, work)),
        ("inventory-cold", lambda: bench_inventory_cold(args, a, work, help_s)),
        ("keep-cluster", lambda: bench_keep_cluster(args, a, work, help_s)),
        ("publish-github", lambda: _issue78("github", args, a, work, help_s)),
        ("icechunk-read", lambda: _issue78("icechunk_read", args, a, work, help_s)),
        ("ceiling", lambda: bench_beside("ceiling", args, a, work)),
        ("audit-scale", lambda: bench_beside("audit-scale", args, a, work)),
        ("gap-plan", lambda: bench_gap_plan(args, a, work)),
        ("repin", lambda: bench_repin(args, a, work, help_s)),
        *[(n, lambda n=n: bench_nwb(n, args, a, work)) for n in NWB_SCENARIOS],
    ]


def _write(path: Optional[Path], doc: dict) -> None:
    if path is None:  # a round of --compare: the whole run is written at its end
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())

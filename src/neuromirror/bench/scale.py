"""The archive-scale scenarios (issue 13): run once, at their own sizes, not per ``--sizes`` N.

- ``zarr-dandiset``: a dandiset of Z Zarr assets x M objects plus B blob assets
  (default 200 x 5,000 + 1,000): cold mirror, resync with no change, resync after
  2 Zarrs changed (1 object added, 1 rewritten, 1 deleted in each) and 1 blob asset
  added.  Also counts the dandiset's commits per sync and the Zarrs listed.
- ``aind-zarr``: one AIND asset holding one OME-Zarr store of N objects (default
  10^6) plus its sidecar JSON: cold mirror, resync with no change.
- ``archive``: ``sync 'dandi:*' -J 4`` over D stand-in dandisets (default 50: most
  of 10 assets, 3 of 10^4, two with Zarrs); cold, then a resync after 3 changed.

(``clone-get``, also of issue 13, runs per size: :mod:`neuromirror.bench.clone_get`.)
The stand-ins are filled through :func:`neuromirror.bench.archives.direct_puts`.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives, direct_puts, put_empty_blob, zarr_files
from neuromirror.bench.measure import say
from neuromirror.bench.moto_patch import invalidate_listing_cache, listing_served_from_memory, moto_bucket_backend
from neuromirror.bench.syncs import run_sync

SCALE_SCENARIOS = ("zarr-dandiset", "aind-zarr", "archive", "clone-get")


def commits(ds: Path, grep: str = "^Neuromirror-") -> int:
    """Commits made by syncs (a dandiset's: ``Neuromirror-Source``; a Zarr's: ``Neuromirror-Zarr``)."""
    out = subprocess.run(
        ["git", "-C", str(ds), "rev-list", "--count", f"--grep={grep}", "HEAD"], capture_output=True, text=True
    )
    return int(out.stdout.strip() or 0)


def zarr_split(res: dict) -> dict:
    """The Zarr jobs' own time split (summed over the executor's workers), into the result row."""
    t = res.get("timings", {})
    for k in ("listing", "checksum", "create", "commit", "wait"):
        if f"zarr-{k}" in t:
            res[f"zarr_{k}_s"] = round(t[f"zarr-{k}"], 3)
    return res


def bench_zarr_dandiset(
    archives: Archives, work: Path, startup: float, z: int, m: int, blobs: int, keep: bool = False, drop: bool = True
) -> list[dict]:
    when = datetime(2025, 6, 1, tzinfo=timezone.utc)
    d = archives.dandi
    t = time.perf_counter()
    ident = d.create_dandiset(name=f"bench zarrs {z}x{m}", created=when)
    ids = d.add_synthetic_assets(ident, blobs, when=when)
    be = moto_bucket_backend(d.bucket)
    for aid in ids:
        put_empty_blob(be, d, aid)
    zarr_ids = []
    with direct_puts(archives):
        for i in range(z):
            aid = d.add_zarr_asset(ident, f"sub-{i:04d}/sub-{i:04d}_sample.ome.zarr", zarr_files(m), when=when)
            zarr = d.asset(aid).zarr
            assert zarr is not None  # a Zarr asset has its Zarr
            zarr_ids.append(zarr.zarr_id)
    n = z * m + blobs
    say(
        f"zarr-dandiset: stand-in dandiset {ident}: {z} Zarrs x {m} objects + {blobs} blobs in "
        f"{time.perf_counter() - t:.1f} s"
    )
    root = work / "root-zarr-dandiset"
    api = ["--dandi-api", d.api_url]
    ds = root / "dandi" / ident
    out = []
    size = f"{z}x{m}+{blobs}"
    for name in ("zarr-dandiset-cold", "zarr-dandiset-resync"):
        before = commits(ds) if ds.exists() else 0
        d.reset_request_log()
        res = zarr_split(run_sync(name, n, root, f"dandi:{ident}", api, archives, startup))
        res.update(
            size=size,
            dandiset_commits=commits(ds) - before,
            api_requests=d.request_count,
            zarr_objects_per_s=round(z * m / res["wall_s"], 1) if name.endswith("cold") else None,
        )
        out.append(res)
    # 2 Zarrs changed (1 added, 1 rewritten, 1 deleted each) and 1 blob asset added
    later = when + timedelta(hours=1)
    with direct_puts(archives):
        for zid in zarr_ids[:2]:
            keys = d.zarr(zid).sorted_keys()
            d.modify_zarr(zid, put={"0/new/added": b"added", keys[-1]: b"rewritten"}, delete=[keys[-2]], when=later)
        d.put_asset(ident, "sub-new/sub-new_added.nwb", b"a blob added by the bench\n", when=later)
    before = commits(ds)
    d.reset_request_log()
    res = zarr_split(run_sync("zarr-dandiset-2zarrs1blob", n, root, f"dandi:{ident}", api, archives, startup))
    res.update(
        size=size,
        dandiset_commits=commits(ds) - before,
        api_requests=d.request_count,
        zarr_commits=[commits(ds / f"sub-{i:04d}/sub-{i:04d}_sample.ome.zarr") for i in range(3)],
    )
    out.append(res)
    if not keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    if drop:  # moto closes a temporary file per object: 10^6 of them take many minutes
        archives.drop_objects(d.bucket)
    return out


def bench_aind_zarr(
    archives: Archives, work: Path, startup: float, n: int, keep: bool = False, drop: bool = True
) -> list[dict]:
    name = f"SmartSPIM_{n}_2024-01-01_00-00-00"
    bucket = archives.AIND_BUCKET
    be = moto_bucket_backend(bucket)
    t = time.perf_counter()
    sidecar = {
        "data_description.json": json.dumps(
            {
                "name": name,
                "subject_id": "1",
                "modality": ["SPIM"],
                "creation_time": "2024-01-01T00:00:00",
                "data_level": "raw",
            }
        ),
        "subject.json": json.dumps({"subject_id": "1", "sex": "Female"}),
    }
    for rel, text in sidecar.items():
        be.put_object(bucket, f"{name}/{rel}", text.encode(), disable_notification=True)
    store = f"{name}/SPIM.ome.zarr"
    be.put_object(bucket, f"{store}/.zgroup", b'{"zarr_format": 2}', disable_notification=True)
    for i in range(max(0, n - 1)):
        be.put_object(bucket, f"{store}/0/{i // 1000:04d}/{i % 1000}", i.to_bytes(8, "big"), disable_notification=True)
    invalidate_listing_cache()
    say(
        f"aind-zarr: stand-in asset {name}: one OME-Zarr store of {n} objects + 2 sidecars in "
        f"{time.perf_counter() - t:.1f} s"
    )
    root = work / "root-aind-zarr"
    s3 = ["--bucket", bucket, "--s3-endpoint", archives.s3.endpoint_url]
    out = []
    with listing_served_from_memory():
        t = time.perf_counter()
        pages = warm_listing(archives, bucket, f"{name}/")
        say(
            f"aind-zarr: moto rendered the asset's {pages} listing pages in {time.perf_counter() - t:.1f} s "
            "(not measured: the runs below get them from memory)"
        )
        for scenario in ("aind-zarr-cold", "aind-zarr-resync"):
            res = run_sync(scenario, n, root, f"aind:{name}", s3, archives, startup, files=n + 2)
            total = res.get("sync_total_s") or 0
            res["listing_share"] = round(res["listing_s"] / total, 3) if total else None
            res["listing_pages_from_memory"] = pages
            out.append(res)
    if not keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    if drop:
        archives.drop_objects(bucket)
    return out


def warm_listing(archives: Archives, bucket: str, prefix: str) -> int:
    """List ``prefix`` once, as the sync will (same requests), so that moto renders each page now."""
    from neuromirror.sources.aind.options import S3Settings
    from neuromirror.sources.aind.s3 import s3_client
    from neuromirror.sources.s3listing import paginate_versions

    client = s3_client(S3Settings(bucket=bucket, endpoint=archives.s3.endpoint_url))
    return sum(1 for _ in paginate_versions(client, Bucket=bucket, Prefix=prefix))


def bench_archive(
    archives: Archives,
    work: Path,
    startup: float,
    dandisets: int,
    large: int,
    large_n: int,
    zarrs: int,
    zarr_m: int,
    jobs: int = 4,
    keep: bool = False,
) -> list[dict]:
    """``sync 'dandi:*' -J jobs`` over a fresh stand-in archive (its own DANDI stand-in)."""
    from neuromirror.standins.dandi.server import DandiStandIn

    when = datetime(2025, 9, 1, tzinfo=timezone.utc)
    t = time.perf_counter()
    d = DandiStandIn(archives.s3, bucket="dandiarchive-bench-all").start()
    try:
        be = None
        idents = []
        total = 0
        with direct_puts(archives):
            for i in range(dandisets):
                ident = d.create_dandiset(name=f"archive {i}", created=when)
                idents.append(ident)
                k = large_n if i < large else 10
                ids = d.add_synthetic_assets(ident, k, when=when)
                be = be or moto_bucket_backend(d.bucket)
                for aid in ids:
                    put_empty_blob(be, d, aid)
                total += k
                if large <= i < large + 2:  # two dandisets with Zarrs
                    for j in range(zarrs):
                        d.add_zarr_asset(ident, f"sub-z/sub-z_{j}.ome.zarr", zarr_files(zarr_m), when=when)
                    total += zarrs * zarr_m
        say(
            f"archive: {dandisets} stand-in dandisets ({large} of {large_n} assets, 2 with {zarrs} Zarrs x "
            f"{zarr_m}), {total} files in {time.perf_counter() - t:.1f} s"
        )
        root = work / "root-archive"
        api = ["--dandi-api", d.api_url, "-J", str(jobs)]
        out = [run_sync("archive-cold", total, root, "dandi:*", api, archives, startup)]
        later = when + timedelta(hours=1)
        for ident in (idents[-1], idents[-2], idents[0]):  # two small ones and a large one
            d.put_asset(ident, "sub-new/sub-new_added.nwb", b"added by the bench\n", when=later)
        d.reset_request_log()
        res = run_sync("archive-3changed", total, root, "dandi:*", api, archives, startup)
        res["api_requests"] = d.request_count
        out.append(res)
        for r in out:
            r["size"] = f"{dandisets} dandisets"
        if not keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        return out
    finally:
        d.stop()
        try:
            archives.drop_objects("dandiarchive-bench-all")
        except KeyError:
            pass


def symlink_rate(work: Path, n: int = 10_000) -> float:
    """Symlinks created per second in ``work`` right now: the checkout of a cold mirror is n of them, and
    this machine's kernel took from 30 to 700 us apiece within one session (see docs/performance.md)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(dir=work, prefix="symlink-probe-"))
    try:
        t = time.perf_counter()
        for i in range(n):
            if i % 1000 == 0:
                (d / str(i // 1000)).mkdir()
            (d / str(i // 1000) / str(i)).symlink_to("../../.git/annex/objects/Xx/Yy/MD5E-s8--0/MD5E-s8--0")
        return round(n / (time.perf_counter() - t), 1)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_scale(args: Any, archives: Archives, work: Path, startup: float, results: list[dict]) -> None:
    """The scale scenarios asked for in ``args.scenarios``; results appended as they come."""
    want = set(args.scenarios)
    # a scenario's objects are dropped from moto only when another scale scenario follows
    last = next((n for n in reversed(("zarr-dandiset", "aind-zarr", "archive")) if n in want), None)
    for name, fn in (
        (
            "zarr-dandiset",
            lambda: bench_zarr_dandiset(
                archives,
                work,
                startup,
                args.zarrs,
                args.zarr_objects,
                args.zarr_blobs,
                args.keep,
                drop=last != "zarr-dandiset",
            ),
        ),
        (
            "aind-zarr",
            lambda: bench_aind_zarr(
                archives, work, startup, args.aind_zarr_objects, args.keep, drop=last != "aind-zarr"
            ),
        ),
        (
            "archive",
            lambda: bench_archive(
                archives,
                work,
                startup,
                args.archive_dandisets,
                3,
                args.archive_large,
                2,
                args.zarr_objects,
                keep=args.keep,
            ),
        ),
    ):
        if name not in want:
            continue
        try:
            before = symlink_rate(work)
            rows = fn()
            after = symlink_rate(work)
            say(f"{name}: this file system created {before:,.0f} symlinks/s before the scenario, {after:,.0f} after")
            for r in rows:
                r["fs_symlinks_per_s"] = [before, after]
            results.extend(rows)
        except Exception as exc:  # keep what was measured
            say(f"{name} failed: {exc}")
            results.append({"scenario": name, "n": 0, "error": str(exc)[-1000:]})

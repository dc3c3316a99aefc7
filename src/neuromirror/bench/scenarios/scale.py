"""The archive-scale scenarios (issue 13): run once, at their own sizes, not per ``--sizes`` N.

- ``zarr-dandiset``: a dandiset of Z Zarr assets x M objects plus B blob assets
  (default 200 x 5,000 + 1,000): cold mirror, resync with no change, resync after
  2 Zarrs changed (1 object added, 1 rewritten, 1 deleted in each) and 1 blob asset
  added.  Also counts the dandiset's commits per sync and the Zarrs listed.
- ``aind-zarr``: one AIND asset holding S OME-Zarr stores of M objects (default 4 x
  10^6) plus its sidecar JSON, from the generated S3 stand-in (issue 25): cold mirror,
  resync with no change, ``datalad clone`` of the asset's dataset.
- ``archive``: ``sync 'dandi:*' -J 4`` over D stand-in dandisets (default 50: most
  of 10 assets, 3 of 10^4, two with Zarrs); cold, then a resync after 3 changed.

(``clone-get``, also of issue 13, runs per size: :mod:`neuromirror.bench.clone_get`.)
The moto stand-ins are filled through :func:`neuromirror.bench.archives.direct_puts`.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives, change_two_zarrs_and_a_blob, direct_puts, put_empty_blob, zarr_files
from neuromirror.bench.measure import child_env, own_cpu, run_measured, say
from neuromirror.bench.moto_patch import moto_bucket_backend, render_ahead
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge

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


#: issue 40's targets of a cold Zarr-heavy dandiset (200 x 5,000): (row, field, bound, kind, what)
ZARR_DANDISET_TARGETS = (
    ("zarr-dandiset-cold", "cpu_us_per_object", 80.0, "max", "CPU us per object, process tree (issue 40)"),
    ("zarr-dandiset-cold", "peak_rss_mb", 300.0, "under", "peak RSS MB (issue 40)"),
    ("zarr-dandiset-cold", "x_one_boto3_client", 2.0, "min", "objects/s over one boto3 listing client (issue 40)"),
)

#: one boto3 client listing the same Zarrs' object versions one after the other: the reference rate
_BOTO_LIST = """
import sys, boto3
endpoint, bucket = sys.argv[1], sys.argv[2]
c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
pages = c.get_paginator("list_object_versions")
n = 0
for prefix in sys.stdin.read().split():
    for page in pages.paginate(Bucket=bucket, Prefix=prefix):
        n += len(page.get("Versions", ()))
print(n)
"""


def one_boto3_client(archives: Archives, bucket: str, zarr_ids: list[str], n: int, size: str) -> dict:
    """``zarr-dandiset-boto3``: the objects/s of one boto3 client listing every Zarr's versions in turn."""
    import sys

    say(f"zarr-dandiset: one boto3 client lists the {len(zarr_ids)} Zarrs' versions ...")
    env = child_env()
    env.setdefault("AWS_ACCESS_KEY_ID", "bench")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    prefixes = "".join(f"zarr/{z}/\n" for z in zarr_ids).encode()
    own = own_cpu()
    r = run_measured([sys.executable, "-c", _BOTO_LIST, archives.s3.endpoint_url, bucket], env=env, input=prefixes)
    listed = int(r["stdout"].split()[-1])
    if listed != n:
        raise RuntimeError(f"zarr-dandiset: one boto3 client listed {listed} objects, not {n}")
    say(f"zarr-dandiset: one boto3 client: {listed / r['wall']:,.0f} objects/s ({r['wall']:.1f} s)")
    return {
        "scenario": "zarr-dandiset-boto3",
        "n": n,
        "size": size,
        "wall_s": round(r["wall"], 3),
        "objects_per_s": round(listed / r["wall"], 1),
        "cpu_s": round(r["cpu"], 2),
        "bench_process_cpu_s": round(own_cpu() - own, 2),
        "peak_rss_mb": round(r["rss_mb"], 1),
    }


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
    render_ahead(d.bucket)
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
        if name.endswith("cold"):
            res["cpu_us_per_object"] = round(1e6 * res["cpu_s"] / (z * m), 1)
        out.append(res)
    reference = one_boto3_client(archives, d.bucket, zarr_ids, z * m, size)
    cold = out[0]
    cold["x_one_boto3_client"] = round(cold["zarr_objects_per_s"] / reference["objects_per_s"], 2)
    out.append(reference)
    # 2 Zarrs changed (1 added, 1 rewritten, 1 deleted each) and 1 blob asset added
    change_two_zarrs_and_a_blob(archives, ident, zarr_ids, when + timedelta(hours=1))
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
    judge(out, ZARR_DANDISET_TARGETS, f"zarr-dandiset {size}")
    if not keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    if drop:  # moto closes a temporary file per object: 10^6 of them take many minutes
        archives.drop_objects(d.bucket)
    return out


#: the generated stand-in's bucket (``aind-zarr``): computed, not filled, so moto holds none of it
AIND_GENERATED_BUCKET = "aind-open-data-generated"


def bench_aind_zarr(
    archives: Archives, work: Path, startup: float, per_store: int, stores: int = 4, keep: bool = False
) -> list[dict]:
    """One AIND asset of ``stores`` OME-Zarr stores x ``per_store`` objects + 2 sidecars (issue 25).

    The bucket is generated (:mod:`neuromirror.standins.s3_generated`): 4 x 10^6 objects
    cost its server no memory and no filling, and every listing page is made when asked
    (the CPU its threads spend answering, taken from the same cores, is ``standin_cpu_s``).  Cold sync,
    no-change resync, then ``datalad clone`` of the asset's dataset without ``-r``.
    """
    from neuromirror.standins.s3_generated import GeneratedBucket, GeneratedS3, aind_asset

    name = f"SmartSPIM_{stores}x{per_store}_2024-01-01_00-00-00"
    asset = aind_asset(name, stores, per_store)
    n, size = stores * per_store, f"{stores}x{per_store}+{len(asset.sidecars)}"
    say(f"aind-zarr: generated asset {name}: {stores} OME-Zarr stores x {per_store} objects + 2 sidecars")
    root = work / "root-aind-zarr"
    out = []
    with GeneratedS3(GeneratedBucket(AIND_GENERATED_BUCKET, [asset])) as s3:
        extra = ["--bucket", AIND_GENERATED_BUCKET, "--s3-endpoint", s3.endpoint_url]
        for scenario in ("aind-zarr-cold", "aind-zarr-resync"):
            s3.counts(reset=True)
            s3.cpu_seconds(reset=True)
            res = run_sync(scenario, n, root, f"aind:{name}", extra, archives, startup, files=asset.objects)
            res.update(size=size, stores=stores, standin_cpu_s=round(s3.cpu_seconds(), 2))
            res["s3_requests"] = s3.counts()
            res["heads"] = res["s3_requests"].get("head", 0)
            total = res.get("sync_total_s") or 0
            res["listing_share"] = round(res["listing_s"] / total, 3) if total else None
            out.append(res)
    out.append(clone_asset(root / "aind" / name, work, n, size))
    if not keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return out


def clone_asset(ds: Path, work: Path, n: int, size: str) -> dict:
    """``datalad clone`` of the asset's dataset (no ``-r``): what a user pays to read an asset's metadata.

    The clone's index entries and subdatasets say what it carried (every object of
    every store, or a gitlink per store).
    """
    import shutil

    dest = work / "clone-aind-zarr"
    say(f"aind-zarr: datalad clone {ds.name} ...")
    r = run_measured(["datalad", "clone", str(ds), str(dest)], env=child_env())
    entries = subdatasets = 0
    with subprocess.Popen(["git", "-C", str(dest), "ls-files", "-s"], stdout=subprocess.PIPE) as ls:
        assert ls.stdout is not None
        for line in ls.stdout:
            entries += 1
            subdatasets += line.startswith(b"160000 ")
    shutil.rmtree(dest, ignore_errors=True)
    res = {
        "scenario": "aind-zarr-clone",
        "n": n,
        "size": size,
        "wall_s": round(r["wall"], 3),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "cpu_s": round(r["cpu"], 2),
        "clone_index_entries": entries,
        "clone_subdatasets": subdatasets,
    }
    say(f"aind-zarr: datalad clone {r['wall']:.2f} s, {entries:,} index entries, {subdatasets} subdatasets")
    return res


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
            lambda: bench_aind_zarr(archives, work, startup, args.aind_zarr_objects, args.aind_zarr_stores, args.keep),
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

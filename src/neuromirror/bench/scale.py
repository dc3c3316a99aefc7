"""The archive-scale scenarios of ``scripts/bench`` (issue 13), beside the per-size ones in :mod:`.bench`.

- ``zarr-dandiset``: a dandiset of Z Zarr assets x M objects plus B blob assets
  (default 200 x 5,000 + 1,000): cold mirror, resync with no change, resync after
  2 Zarrs changed (1 object added, 1 rewritten, 1 deleted in each) and 1 blob asset
  added.  Also counts the dandiset's commits per sync and the Zarrs listed.
- ``aind-zarr``: one AIND asset holding one OME-Zarr store of N objects (default
  10^6) plus its sidecar JSON: cold mirror, resync with no change.
- ``archive``: ``sync 'dandi:*' -J 4`` over D stand-in dandisets (default 50: most
  of 10 assets, 3 of 10^4, two with Zarrs); cold, then a resync after 3 changed.
- ``clone-get``: the first ``datalad get`` of one file in a fresh ``datalad clone``
  of the dandi-cold mirror dataset, in the mirror itself and with ``neuromirror get``.

What is done to the stand-ins here (this process only, on top of :mod:`.bench`'s
moto patch): objects are put straight into moto's backend
(``S3Backend.put_object``) instead of through boto3 and moto's HTTP server — the
stand-in's ``s3.put`` is rebound for the fill — so that filling 10^6 objects
takes a minute, not an hour.  Nothing the sync asks is answered differently.
"""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from neuromirror.bench.run import (
    Archives,
    child_env,
    invalidate_listing_cache,
    listing_served_from_memory,
    moto_bucket_backend,
    neuromirror_cmd,
    run_measured,
    run_sync,
    say,
)

SCALE_SCENARIOS = ("zarr-dandiset", "aind-zarr", "archive", "clone-get")


@contextmanager
def direct_puts(archives: Archives) -> Iterator[None]:
    """Uploads of the stand-ins go straight into moto's backend (see the module)."""
    s3 = archives.s3
    original = s3.put

    def put(bucket: str, key: str, data: bytes, **kwargs: Any) -> str:
        if kwargs:
            return original(bucket, key, data, **kwargs)
        k = moto_bucket_backend(bucket).put_object(bucket, key, data, disable_notification=True)
        return str(k.version_id or "null")

    s3.put = put  # type: ignore[method-assign]
    try:
        yield
    finally:
        s3.put = original  # type: ignore[method-assign]
        invalidate_listing_cache()


def zarr_files(m: int, tag: str = "") -> dict[str, bytes]:
    """An OME-Zarr-like store of ``m`` objects: metadata at the top, chunks 1,000 per folder."""
    files = {".zgroup": b'{"zarr_format": 2}', ".zattrs": json.dumps({"tag": tag}).encode()}
    for i in range(max(0, m - len(files))):
        files[f"0/{i // 1000}/{i % 1000}"] = f"{tag}{i}".encode()
    return files


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
        blob = d.asset(aid).blob
        blob.version_id = be.put_object(blob.bucket, blob.key, b"", disable_notification=True).version_id
        blob.uploaded = True
    zarr_ids = []
    with direct_puts(archives):
        for i in range(z):
            aid = d.add_zarr_asset(ident, f"sub-{i:04d}/sub-{i:04d}_sample.ome.zarr", zarr_files(m), when=when)
            zarr_ids.append(d.asset(aid).zarr.zarr_id)
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
    from neuromirror.sources.aind_s3 import S3Settings, s3_client
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
    from neuromirror.standins.dandi import DandiStandIn

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
                    blob = d.asset(aid).blob
                    blob.version_id = be.put_object(blob.bucket, blob.key, b"", disable_notification=True).version_id
                    blob.uploaded = True
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


def _git_env(env: dict, *pairs: tuple[str, str]) -> dict:
    """``env`` with git config ``pairs`` added through GIT_CONFIG_COUNT (as a user's ``git -c``)."""
    env = dict(env)
    n = int(env.get("GIT_CONFIG_COUNT") or 0)
    for k, v in pairs:
        env[f"GIT_CONFIG_KEY_{n}"], env[f"GIT_CONFIG_VALUE_{n}"] = k, v
        n += 1
    env["GIT_CONFIG_COUNT"] = str(n)
    return env


def bench_clone_get(ds: Path, root: Path, work: Path, n: int, one: str) -> dict:
    """First ``datalad get`` of one file: in a fresh clone (plain, and with annex.supportunlocked=false),
    in the mirror itself, and with ``neuromirror get``."""
    import shutil

    base = _git_env(child_env(), ("annex.security.allowed-ip-addresses", "all"))
    locked = _git_env(base, ("annex.supportunlocked", "false"))
    res: dict[str, Any] = {"scenario": "clone-get", "n": n, "file": one}
    for variant, env in (("clone", base), ("clone_locked_only", locked)):
        clone = work / f"{variant}-{n}"
        r = run_measured(["datalad", "clone", str(ds), str(clone)], env=env)
        res[f"{variant}_s"] = round(r["wall"], 3)
        for key in ("first_get", "second_get"):
            r = run_measured(["datalad", "get", "--", one], env=env, cwd=clone, check=False)
            res[f"{variant}_{key}_s"] = round(r["wall"], 3)
            if r["rc"]:
                res[f"{variant}_{key}_error"] = r["stderr"].decode(errors="replace").strip()[-300:]
        shutil.rmtree(clone, ignore_errors=True)
    r = run_measured(["datalad", "get", "--", one], env=base, cwd=ds, check=False)
    res["mirror_first_get_s"] = round(r["wall"], 3)
    dest = work / f"nm-get-{n}"
    r = run_measured(
        [
            *neuromirror_cmd(),
            "--root",
            str(root),
            "get",
            f"dandi:{ds.name}",
            one,
            "--to",
            str(dest),
            "--allow-ip",
            "all",
            "-q",
        ],
        env=base,
        check=False,
    )
    res["neuromirror_get_s"] = round(r["wall"], 3)
    if r["rc"]:
        res["neuromirror_get_error"] = r["stderr"].decode(errors="replace").strip()[-300:]
    shutil.rmtree(dest, ignore_errors=True)
    res["wall_s"] = res["clone_first_get_s"]
    say(
        f"N={n}: clone-get: datalad clone {res['clone_s']:.1f} s + first get {res['clone_first_get_s']:.1f} s "
        f"(again {res['clone_second_get_s']:.1f} s); with annex.supportunlocked=false: clone "
        f"{res['clone_locked_only_s']:.1f} s + first get {res['clone_locked_only_first_get_s']:.1f} s; "
        f"in the mirror {res['mirror_first_get_s']:.1f} s; neuromirror get (clone + get) {res['neuromirror_get_s']:.1f} s"
    )
    return res


def check_scale_targets(results: list[dict], target: Any) -> None:
    """The issue-13 targets, for the scenarios that ran."""
    by = {r["scenario"]: r for r in results if not r.get("error")}
    if "zarr-dandiset-cold" in by:
        r = by["zarr-dandiset-cold"]
        target(
            f"zarr-dandiset {r['size']} cold: Zarr objects/s end to end",
            f"{r['zarr_objects_per_s']:,.0f}",
            ">= 5,000",
            r["zarr_objects_per_s"] >= 5000,
        )
        target(
            f"zarr-dandiset {r['size']} cold: peak RSS",
            f"{r['peak_rss_mb']:.0f} MB",
            "< 1024 MB",
            r["peak_rss_mb"] < 1024,
        )
        target(
            f"zarr-dandiset {r['size']} cold: dandiset commits",
            str(r["dandiset_commits"]),
            "1",
            r["dandiset_commits"] == 1,
        )
    if "zarr-dandiset-resync" in by:
        r = by["zarr-dandiset-resync"]
        target(
            f"zarr-dandiset {r['size']} no-change resync beyond start-up",
            f"{r['beyond_startup_s']:.2f} s",
            "< 5 s",
            r["beyond_startup_s"] < 5 and r["outcome"] == "unchanged",
        )
    if "zarr-dandiset-2zarrs1blob" in by:
        r = by["zarr-dandiset-2zarrs1blob"]
        target(
            f"zarr-dandiset {r['size']} 2 Zarrs + 1 blob changed", f"{r['wall_s']:.2f} s", "< 30 s", r["wall_s"] < 30
        )
    if "aind-zarr-cold" in by:
        r = by["aind-zarr-cold"]
        target(
            f"aind-zarr N={r['n']} cold: objects/s", f"{r['files_per_s']:,.0f}", ">= 5,000", r["files_per_s"] >= 5000
        )
        target(
            f"aind-zarr N={r['n']} cold: peak RSS", f"{r['peak_rss_mb']:.0f} MB", "< 1024 MB", r["peak_rss_mb"] < 1024
        )
    if "aind-zarr-resync" in by:
        r = by["aind-zarr-resync"]
        target(
            f"aind-zarr N={r['n']} no-change resync: listing's share",
            f"{r['listing_share']}",
            "most of it",
            (r["listing_share"] or 0) > 0.5,
            f"{r['wall_s']:.1f} s wall",
        )
    if "archive-3changed" in by:
        r = by["archive-3changed"]
        target(f"archive {r['size']}: resync with 3 changed", f"{r['wall_s']:.1f} s", "< 60 s", r["wall_s"] < 60)
    for r in results:
        if r["scenario"] == "clone-get" and not r.get("error"):
            target(
                f"N={r['n']}: first datalad get in a fresh clone (plain)",
                f"{r['clone_first_get_s']:.2f} s",
                "< 5 s",
                r["clone_first_get_s"] < 5 and not r.get("clone_first_get_error"),
            )
            target(
                f"N={r['n']}: first datalad get in a fresh clone (annex.supportunlocked=false)",
                f"{r['clone_locked_only_first_get_s']:.2f} s",
                "< 5 s",
                r["clone_locked_only_first_get_s"] < 5 and not r.get("clone_locked_only_first_get_error"),
            )


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


def first_annexed(ds: Path) -> Optional[str]:
    out = subprocess.run(["git", "-C", str(ds), "ls-files", "-z", "--", "*.nwb"], capture_output=True).stdout
    names = [f.decode() for f in out.split(b"\0") if f]
    return names[len(names) // 2] if names else None

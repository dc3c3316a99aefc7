"""``publish-ria`` (issue 24): publishing a mirror into a DataLad RIA store, and cloning from it over HTTP.

A dandiset of N Zarr assets (default 1,000, 5 objects each, plus 10 blobs) is synced, then
published with ``neuromirror publish --to ria+file://STORE`` in a subprocess, as a user runs it:

1. ``publish-ria-cold``: into a fresh store — N+1 datasets (each Zarr is a dataset of its own);
   datasets/s;
2. ``publish-ria-nochange``: again, nothing changed (seconds);
3. ``publish-ria-2changed``: after 2 Zarrs changed and were resynced (seconds).

Then ``publish-ria-clone-get``: a dandiset of M files (default 10^4; one of them with real bytes,
the others only HEADed by the sync) is synced and published into the same store, the store is
served by ``python -m http.server`` (a process of its own, as in tests/test_publish_ria.py), and
``datalad clone 'ria+http://127.0.0.1:PORT#~dandi/ID'`` + ``datalad get`` of the one file are
timed (seconds; the bytes are checked).

Targets (:func:`publish_ria_targets`): cold >= 20 datasets/s, no change < 5 s, 2 changed < 5 s,
clone + get of one file < 10 s.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives, direct_puts, put_empty_blob, zarr_dandiset
from neuromirror.bench.clone_get import _git_env
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.moto_patch import moto_bucket_backend
from neuromirror.bench.served import served_directory
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported

#: (scenario, field, bound, "min" | "under", what): neuromirror.bench.targets.row_targets
TARGETS = (
    ("publish-ria-cold", "datasets_per_s", 20.0, "min", "publish-ria cold: datasets/s"),
    ("publish-ria-nochange", "wall_s", 5.0, "under", "publish-ria with no change: s"),
    ("publish-ria-2changed", "wall_s", 5.0, "under", "publish-ria after 2 Zarrs changed: s"),
    ("publish-ria-clone-get", "wall_s", 10.0, "under", "clone over HTTP from the RIA store + get of one file: s"),
)
ZARR_OBJECTS = 5
BLOBS = 10


def _publish(name: str, root: Path, spec: str, store: Path, datasets: int) -> dict:
    say(f"{name}: neuromirror publish {spec} --to ria+file://{store} ...")
    cmd = [*neuromirror_cmd(), "--root", str(root), "publish", spec, "--to", f"ria+file://{store}", "--json"]
    r = run_measured(cmd, env=child_env())
    report = json.loads(r["stdout"])
    if not report.get("ok"):
        raise RuntimeError(f"{name}: publish failed: {report.get('errors')}")
    pub = report["published"]
    res = {
        "scenario": name,
        "n": datasets,
        "wall_s": round(r["wall"], 3),
        "cpu_s": round(r["cpu"], 2),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "datasets_per_s": round(datasets / r["wall"], 1) if r["wall"] else None,
        "created": sum(1 for p in pub if p["created"]),
        "updated_refs": sum(len(p["updated"]) for p in pub),
        "clone_url": pub[0]["clone_url"] if pub else None,
    }
    say(f"{name}: {res['wall_s']} s wall, {res['cpu_s']} s CPU, {res['datasets_per_s']} datasets/s")
    return res


def _clone_get(archives: Archives, work: Path, startup: float, store: Path, m: int, when: datetime) -> dict:
    """A dandiset of ``m`` files into the store; clone it over HTTP and get its one real file."""
    d = archives.dandi
    ident = d.create_dandiset(name=f"bench publish-ria clone {m}", created=when)
    be = moto_bucket_backend(d.bucket)
    with direct_puts(archives):
        for aid in d.add_synthetic_assets(ident, m - 1, when=when):
            put_empty_blob(be, d, aid)
    one, content = "sub-real/sub-real_ecephys.nwb", b"the one file a user gets\n" * 4000
    d.put_asset(ident, one, content, when=when)
    root = work / "root-publish-ria-clone"
    run_sync("publish-ria-clone-sync", m, root, f"dandi:{ident}", ["--dandi-api", d.api_url], archives, startup)
    _publish("publish-ria-clone-publish", root, f"dandi:{ident}", store, 1)
    env = _git_env(child_env(), ("annex.security.allowed-ip-addresses", "all"))
    clone = work / "publish-ria-clone"
    with served_directory(store) as url:
        say(f"publish-ria-clone-get: datalad clone 'ria+{url}#~dandi/{ident}' + datalad get {one} ...")
        t = time.perf_counter()
        c = run_measured(["datalad", "clone", f"ria+{url}#~dandi/{ident}", str(clone)], env=env)
        g = run_measured(["datalad", "get", "--", one], env=env, cwd=clone)
        wall = time.perf_counter() - t
    if (clone / one).read_bytes() != content:
        raise RuntimeError("publish-ria-clone-get: the file got over HTTP is not the archive's")
    res = {
        "scenario": "publish-ria-clone-get",
        "n": m,
        "wall_s": round(wall, 3),
        "clone_s": round(c["wall"], 3),
        "get_s": round(g["wall"], 3),
        "peak_rss_mb": round(max(c["rss_mb"], g["rss_mb"]), 1),
    }
    say(f"publish-ria-clone-get: clone {res['clone_s']} s + get {res['get_s']} s")
    shutil.rmtree(clone, ignore_errors=True)
    return res


def bench_publish_ria(
    archives: Archives, work: Path, startup: float, zarrs: int = 1000, clone_files: int = 10_000, keep: bool = False
) -> list[dict]:
    """The four rows of the scenario (see the module), each with its ``targets``."""
    when = datetime(2025, 8, 1, tzinfo=timezone.utc)
    t = time.perf_counter()
    ident, zarr_ids = zarr_dandiset(archives, zarrs, ZARR_OBJECTS, BLOBS, when, f"bench publish-ria {zarrs} zarrs")
    say(f"publish-ria: stand-in dandiset {ident}: {zarrs} Zarrs in {time.perf_counter() - t:.1f} s")
    d = archives.dandi
    root, store = work / "root-publish-ria", work / "ria-store"
    spec, api = f"dandi:{ident}", ["--dandi-api", d.api_url]
    files = zarrs * ZARR_OBJECTS + BLOBS
    sync = run_sync("publish-ria-sync", files, root, spec, api, archives, startup)
    out = [_publish("publish-ria-cold", root, spec, store, zarrs + 1)]
    out[0]["sync_s"] = sync["wall_s"]
    out.append(_publish("publish-ria-nochange", root, spec, store, zarrs + 1))
    later = when + timedelta(hours=1)
    with direct_puts(archives):
        for zid in zarr_ids[:2]:
            keys = d.zarr(zid).sorted_keys()
            d.modify_zarr(zid, put={"0/new/added": b"added", keys[-1]: b"rewritten"}, when=later)
    run_sync("publish-ria-resync", files, root, spec, api, archives, startup)
    out.append(_publish("publish-ria-2changed", root, spec, store, zarrs + 1))
    if clone_files > 0:
        out.append(_clone_get(archives, work, startup, store, clone_files, when))
    judge(out, TARGETS)
    if not keep:
        for p in (root, store, work / "root-publish-ria-clone"):
            shutil.rmtree(p, ignore_errors=True)
    archives.drop_objects(d.bucket)
    return out


def publish_ria_targets(results: list[dict]) -> list[dict[str, Any]]:
    """Issue 24's targets as rows of the run's target report (``{target, value, limit, ok, note}``)."""
    out: list[dict[str, Any]] = []
    for result in results:
        if str(result.get("scenario", "")).startswith("publish-ria"):
            note = f"N={result['n']}" + (f", sync {result['sync_s']} s" if result.get("sync_s") else "")
            out += reported(result, note)
    return out

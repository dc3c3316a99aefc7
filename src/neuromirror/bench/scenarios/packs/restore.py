"""``restore-pack`` (issue 57): ``restore`` from a packed store into the archive's bucket, against a directory store.

A draft dandiset of ``--restore-pack-files`` assets of 10 kB (distinct random bytes) is synced and its
content kept into a directory store and into ``pack+file://`` (packs of ``--keep-pack-size``).  Then, for
``--restore-pack-rounds`` rounds, the sides alternating (who goes first too): loss as loss — every S3
version of the dandiset's blobs deleted from the archive's bucket — then ``restore dandi:ID --to
s3://ARCHIVE-BUCKET --from STORE -J 8 --json``: every object read from the one store, hashed, written back
under its own key (the restored versions registered on the git-annex branch, the dead ones retired, as
after any real loss).

Rows ``restore-pack`` and ``restore-pack-directory``: each side's median wall, CPU and objects/s over the
rounds, the objects written (every one, each round), every round; ``x_directory`` on ``restore-pack``: its
objects/s over the directory store's (target >= 1.0).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import neuromirror_cmd, run_measured, say
from neuromirror.bench.moto_patch import invalidate_listing_cache
from neuromirror.bench.scenarios.keep import JOBS, _dandiset
from neuromirror.bench.scenarios.restore import _env
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported

SIZE = 10_000
TARGETS = (
    ("restore-pack", "x_directory", 1.0, "min", "restore-pack: objects/s from a packed store over a directory store's"),
    ("restore-pack", "unwritten", 0, "max", "restore-pack: objects a restore from the packed store did not write"),
    ("restore-pack-directory", "unwritten", 0, "max", "restore-pack: objects a restore from the directory store did not write"),
)  # fmt: skip


def blob_keys(archives: Archives, ident: str) -> set[str]:
    """The S3 keys of the draft's blobs of dandiset ``ident``."""
    return {a.blob.key for a in archives.dandi.dandiset(ident).draft.assets.values() if a.blob is not None}


def lose(archives: Archives, keys: set[str]) -> int:
    """Every S3 version (and delete marker) of ``keys`` in the archive's bucket deleted: the loss restore repairs."""
    client, bucket = archives.s3.client(), archives.dandi.bucket
    gone = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="blobs/"):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if v["Key"] in keys:
                gone.append({"Key": v["Key"], "VersionId": v["VersionId"]})
    for i in range(0, len(gone), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": gone[i : i + 1000], "Quiet": True})
    invalidate_listing_cache()
    return len(gone)


def _restore_round(archives: Archives, root: Path, spec: str, store: str, env: dict, n: int) -> dict:
    """One restore of the lost blobs into the archive's bucket from ``store``: its wall, CPU, objects
    written, memory and the machine's load (an error's last words if it failed)."""
    cmd = [*neuromirror_cmd(), "--root", str(root), "restore", spec, "--to", f"s3://{archives.dandi.bucket}"]
    r = run_measured([*cmd, "--from", store, "-J", str(JOBS), "--json"], env=env, check=False)
    report = json.loads(r["stdout"] or "{}") if r["stdout"].strip().startswith(b"{") else {}
    written = (report.get("written") or {}).get("objects", 0)
    got = {"round": n, "rc": r["rc"], "wall_s": round(r["wall"], 3), "cpu_s": round(r["cpu"], 2)}
    got.update(written=written, rss_mb=round(r["rss_mb"], 1), load=round(os.getloadavg()[0], 2))
    if r["rc"]:
        got["error"] = r["stderr"].decode(errors="replace").strip()[-300:]
    return got


def _summary(name: str, store: str, files: int, mine: list[dict]) -> dict[str, Any]:
    """A store kind's row over its rounds: median wall and CPU, objects/s, the most left unwritten, peak RSS."""
    wall = statistics.median(r["wall_s"] for r in mine)
    res: dict[str, Any] = {"scenario": name, "n": files, "bytes": files * SIZE, "store": store}
    res.update(wall_s=round(wall, 3), cpu_s=round(statistics.median(r["cpu_s"] for r in mine), 2))
    res.update(objects_per_s=round(files / wall, 1) if wall else None, rounds=mine)
    res.update(unwritten=max(files - r["written"] for r in mine), rss_mb=max(r["rss_mb"] for r in mine))
    return res


def bench_restore_pack(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    """The scenario's two rows (see the module), judged."""
    files, rounds, pack_size = args.restore_pack_files, args.restore_pack_rounds, int(args.keep_pack_size)
    ident = _dandiset(archives, files, SIZE, "restore-pack")
    root, spec = work / "root-restore-pack", f"dandi:{ident}"
    run_sync("restore-pack-sync", files, root, spec, ["--dandi-api", archives.dandi.api_url], archives, startup)
    env, keys = _env(archives), blob_keys(archives, ident)
    stores = {
        "restore-pack": f"pack+file://{work / 'restore-pack-store'}",
        "restore-pack-directory": str(work / "restore-pack-directory"),
    }
    for name, url in stores.items():
        say(f"{name}: keep {files} x {SIZE} bytes into {url} ...")
        extra = ["--pack-size", str(pack_size)] if url.startswith("pack+") else []
        run_measured([*neuromirror_cmd(), "--root", str(root), "keep", spec, "--to", url, "-J", str(JOBS), "-q", *extra], env=env)  # fmt: skip
    runs: dict[str, list[dict]] = {name: [] for name in stores}
    for i in range(rounds):
        for name in stores if i % 2 == 0 else tuple(reversed(stores)):
            lost = lose(archives, keys)
            say(f"{name}: round {i + 1} of {rounds}: {lost} blob versions deleted; restore --from {stores[name]} ...")
            got = _restore_round(archives, root, spec, stores[name], env, i + 1)
            runs[name].append(got)
            say(f"{name}: {got}")
    out = [_summary(name, stores[name], files, mine) for name, mine in runs.items()]
    ours, theirs = out
    if ours["objects_per_s"] and theirs["objects_per_s"]:
        ours["x_directory"] = round(ours["objects_per_s"] / theirs["objects_per_s"], 3)
        ours["x_directory_cpu"] = round(theirs["cpu_s"] / ours["cpu_s"], 3) if ours["cpu_s"] else None
    for res in out:
        res["pack_size"] = pack_size
    judge(out, TARGETS)
    shutil.rmtree(work / "restore-pack-store", ignore_errors=True)
    shutil.rmtree(work / "restore-pack-directory", ignore_errors=True)
    return out


def restore_pack_targets(results: list[dict]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in results:
        if r.get("scenario") in ("restore-pack", "restore-pack-directory"):
            out += reported(r, f"{r['n']:,} x 10 kB (target: 10^4), {len(r['rounds'])} round(s), median wall")
    return out

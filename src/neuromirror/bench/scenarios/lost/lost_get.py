"""``lost-get`` (issue 53): a clone's ``datalad get`` of kept files the archive lost, against the store's own get.

A stand-in dandiset holds 24 blobs (4 kB to 1 MiB) and a Zarr of ``--lost-zarr-chunks`` small chunks; it
is published, synced, the Zarr is rewritten upstream (every object, so the published state is an old
one) and synced again, and ``neuromirror keep dandi:ID@VERSION --to DIR`` copies the published version
into a directory store.  Then loss as loss, the mirror never told: every S3 version of the 24 blobs and
every noncurrent version under the Zarr's prefix (the old state's objects) is deleted from the stand-in.

Each measurement is in a fresh ``datalad clone`` of the mirror's dataset (the published version checked
out, ``annex.security.allowed-ip-addresses all`` in the clone and, for subdatasets, in the environment):

- ``lost-get-files``: (a) ``datalad get`` of the 24 files against (b) ``git annex get --from STORE`` of
  the same files;
- ``lost-get-zarr``: (a) ``datalad get -r ZARR`` (the subdataset's install included) against (b)
  ``git annex get --from STORE .`` inside the subdataset, after ``datalad get -n ZARR`` installed it
  (not timed: ``install_s``).

The sides alternate for ``--lost-rounds`` rounds (who goes first too); the rows carry each side's median
wall and CPU, their ratio (datalad over git-annex: the targets), every round, and the requests the archive
(the S3 stand-in and the API) saw during each get: how many, and the most any one URL was asked (a
retried dead URL shows as 2 or more).  As typed by a user: neither side is given ``-J``.

DataLad's own start-up is measured beside them, each round (``datalad --version`` in the clone:
``startup_s``), because ``datalad get`` runs the same ``git annex get`` after it: no ``datalad get`` can
take less than start-up plus git-annex's get, so ``ratio_floor`` = (start-up + git-annex) / git-annex is
the least ratio any mirror could show, and ``ratio_beyond_startup`` = (datalad - start-up) / git-annex
what the get itself costs over the store's.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from neuromirror.bench.archives import Archives, direct_puts
from neuromirror.bench.clone_get import _git_env
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.moto_patch import invalidate_listing_cache
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import LOST_GET_TARGETS, judge

BLOBS = 24
ZARR = "sub-01/sub-01_old.zarr"


def _blobs() -> dict[str, bytes]:
    """24 files, 4 kB to 1 MiB (geometric), random bytes."""
    return {
        f"sub-{i // 6:02d}/sub-{i // 6:02d}_obj-{i:02d}.nwb": os.urandom(int(4096 * 256 ** (i / (BLOBS - 1))))
        for i in range(BLOBS)
    }


def _zarr(chunks: int, tag: str) -> dict[str, bytes]:
    """A Zarr of ``chunks`` small chunks (~100-400 bytes, 1,000 per folder) and its metadata, all ``tag``'s."""
    files = {".zgroup": b'{"zarr_format": 2}', ".zattrs": json.dumps({"state": tag}).encode()}
    for i in range(chunks):
        files[f"0/{i // 1000}/{i % 1000}"] = f"{tag}:{i}:".encode() * (12 + i % 32)
    return files


def _delete_versions(client: Any, bucket: str, prefix: str, *, old_only: bool) -> int:
    """Every S3 version (and delete marker) under ``prefix``, or only the noncurrent ones: gone for good."""
    gone = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []) + ([] if old_only else page.get("DeleteMarkers", [])):
            if not (old_only and v["IsLatest"]):
                gone.append({"Key": v["Key"], "VersionId": v["VersionId"]})
    for i in range(0, len(gone), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": gone[i : i + 1000], "Quiet": True})
    invalidate_listing_cache()
    return len(gone)


def _counted(archives: Archives, action: Callable[[], dict]) -> dict:
    """``action``'s result with the requests the archive (S3 and API) saw while it ran: how many, and the most
    any one URL (path and ``versionId``) was asked."""
    s3_log = archives.s3.log_requests()
    archives.dandi.reset_request_log()
    try:
        got = action()
    finally:
        archives.s3.log_requests(False)
    seen = [*s3_log, *list(archives.dandi.request_log)]
    urls: Counter[tuple[str, str]] = Counter()
    for method, target in seen:
        parts = urlsplit(target)
        version = [v for k, v in parse_qsl(parts.query) if k == "versionId"]
        urls[(method, parts.path + (f"?versionId={version[0]}" if version else ""))] += 1
    return {**got, "archive_requests": len(seen), "archive_repeats": max(urls.values(), default=0)}


def _present(repo: Path, *where: str) -> tuple[int, int]:
    """Annexed files present and missing in ``repo`` (under ``where``)."""

    def count(*args: str) -> int:
        out = subprocess.run(["git", "annex", "find", *args, "--", *where], cwd=repo, capture_output=True).stdout
        return len([ln for ln in out.splitlines() if ln])

    return count(), count("--not", "--in", "here")


def blobs_dandiset(archives: Archives, name: str, when: datetime) -> tuple[str, dict[str, bytes]]:
    """A new dandiset on the stand-in with the 24 blobs of :func:`_blobs` in its draft: (its id, the blobs)."""
    ident = archives.dandi.create_dandiset(name=name, created=when)
    blobs = _blobs()
    with direct_puts(archives):
        for path, data in blobs.items():
            archives.dandi.put_asset(ident, path, data, when=when)
    return ident, blobs


def bench_lost_get(archives: Archives, work: Path, startup: float, chunks: int, rounds: int) -> list[dict]:
    d = archives.dandi
    when = datetime(2026, 1, 5, tzinfo=timezone.utc)
    ident, blobs = blobs_dandiset(archives, "lost get", when)
    with direct_puts(archives):
        aid = d.add_zarr_asset(ident, ZARR, _zarr(chunks, "old"), when=when + timedelta(minutes=1))
    zarr = d.asset(aid).zarr
    assert zarr is not None
    version = d.publish(ident, when=when + timedelta(hours=1))
    root, api, n = work / "root-lost-get", ["--dandi-api", d.api_url], BLOBS + chunks
    run_sync("lost-get-sync", n, root, f"dandi:{ident}", api, archives, startup)
    with direct_puts(archives):
        d.modify_zarr(zarr.zarr_id, put=_zarr(chunks, "new"), when=when + timedelta(hours=2))
    run_sync("lost-get-resync", n, root, f"dandi:{ident}", api, archives, startup)
    store = work / "store-lost-get"
    env = _git_env(child_env(), ("annex.security.allowed-ip-addresses", "all"))
    say(f"lost-get: neuromirror keep dandi:{ident}@{version} --to {store} ({n} files) ...")
    kept = run_measured(
        [*neuromirror_cmd(), "--root", str(root), "keep", f"dandi:{ident}@{version}", "--to", str(store), "-q"], env=env
    )
    name = json.loads((store / ".neuromirror-store.json").read_text())["name"]
    client = archives.s3.client()
    lost = 0
    for path in blobs:
        blob = d.asset_at(ident, path, version).blob
        assert blob is not None  # the 24 are blobs
        lost += _delete_versions(client, blob.bucket, blob.key, old_only=False)
    lost_chunks = _delete_versions(client, zarr.bucket, f"zarr/{zarr.zarr_id}/", old_only=True)
    say(f"lost-get: kept in {kept['wall']:.1f} s; deleted {lost} blob versions and {lost_chunks} of the old Zarr state")
    ds, paths = root / "dandi" / ident, sorted(blobs)
    count = 0

    def fresh() -> Path:
        nonlocal count
        count += 1
        clone = work / f"lost-get-clone-{count}"
        run_measured(["datalad", "clone", str(ds), str(clone)], env=env)
        for cmd in (["config", "annex.security.allowed-ip-addresses", "all"], ["checkout", "-q", version]):
            subprocess.run(["git", *cmd], cwd=clone, check=True, capture_output=True)
        return clone

    def timed(cmd: list[str], cwd: Path, repo: Path, *where: str) -> dict:
        r = run_measured(cmd, env=env, cwd=cwd, check=False)
        got, missing = _present(repo, *where)
        out = {"wall_s": round(r["wall"], 3), "cpu_s": round(r["cpu"], 2), "present": got, "missing": missing}
        if r["rc"]:
            out["error"] = r["stderr"].decode(errors="replace").strip()[-300:]
        return out

    def files(side: str) -> dict:
        clone = fresh()
        cmd = ["datalad", "get"] if side == "datalad" else ["git", "annex", "get", "--from", name]
        got = _counted(archives, lambda: timed([*cmd, "--", *paths], clone, clone, *paths))
        if side == "datalad":  # DataLad's start-up in the same clone, just after: the floor of any datalad get
            got["startup_s"] = round(run_measured(["datalad", "--version"], env=env, cwd=clone)["wall"], 3)
        shutil.rmtree(clone, ignore_errors=True)
        return got

    def zarr_get(side: str) -> dict:
        clone = fresh()
        if side == "datalad":
            got = _counted(archives, lambda: timed(["datalad", "get", "-r", ZARR], clone, clone / ZARR))
        else:
            installed = run_measured(["datalad", "get", "-n", ZARR], env=env, cwd=clone)
            get = ["git", "annex", "get", "--from", name, "."]
            got = _counted(archives, lambda: timed(get, clone / ZARR, clone / ZARR))
            got["install_s"] = round(installed["wall"], 3)
        shutil.rmtree(clone, ignore_errors=True)
        return got

    out = []
    for scenario, how, what in (
        ("lost-get-files", files, f"{BLOBS} files"),
        ("lost-get-zarr", zarr_get, f"{chunks} chunks"),
    ):
        runs: list[dict] = []
        for i in range(rounds):
            for side in ("datalad", "annex") if i % 2 == 0 else ("annex", "datalad"):
                say(f"{scenario}: round {i + 1} of {rounds}: {side} get of {what} ...")
                runs.append({"round": i + 1, "side": side, **how(side)})
                say(f"{scenario}: {runs[-1]}")
        out.append(_row(scenario, BLOBS if scenario == "lost-get-files" else chunks, runs))
    out[0]["bytes"] = sum(map(len, blobs.values()))
    out[0]["keep_s"], out[0]["deleted_versions"], out[1]["deleted_versions"] = round(kept["wall"], 2), lost, lost_chunks
    judge(out, LOST_GET_TARGETS)
    shutil.rmtree(store, ignore_errors=True)
    return out


def _side(runs: list[dict], side: str) -> tuple[float, float, dict[str, Any]]:
    """One side's median wall and CPU seconds, and its fields: the medians, the worst requests and misses, an error."""
    mine = [r for r in runs if r["side"] == side]
    wall = round(statistics.median(r["wall_s"] for r in mine), 3)
    cpu = round(statistics.median(r["cpu_s"] for r in mine), 2)
    fields: dict[str, Any] = {f"{side}_s": wall, f"{side}_cpu_s": cpu}
    fields.update({f"{side}_{f}": max(r[f] for r in mine) for f in ("archive_requests", "archive_repeats", "missing")})
    errors = [r["error"] for r in mine if r.get("error")]
    if errors:
        fields[f"{side}_error"] = errors[0]
    return wall, cpu, fields


def _row(scenario: str, n: int, runs: list[dict]) -> dict:
    """Each side's medians (wall, CPU), the ratio datalad / git-annex, the worst requests and misses, every round."""
    datalad_s, datalad_cpu, datalad = _side(runs, "datalad")
    annex_s, annex_cpu, annex = _side(runs, "annex")
    ratio = round(datalad_s / annex_s, 2) if annex_s else None
    row: dict[str, Any] = {"scenario": scenario, "n": n, "rounds": runs, **datalad, **annex}
    row.update(wall_s=datalad_s, ratio=ratio)
    startups = [r["startup_s"] for r in runs if "startup_s" in r]
    if startups and annex_s:
        startup = round(statistics.median(startups), 3)
        row.update(
            startup_s=startup,
            ratio_floor=round((startup + annex_s) / annex_s, 2),
            ratio_beyond_startup=round((datalad_s - startup) / annex_s, 2),
        )
    row.update(cpu_ratio=round(datalad_cpu / annex_cpu, 2) if annex_cpu else None)
    return row

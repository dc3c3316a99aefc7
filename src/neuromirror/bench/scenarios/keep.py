"""The ``keep`` scenario: ``neuromirror keep`` against the peer's way of doing it, in the same run.

The peer is ``git annex copy --from web --to STORE -J N`` on the same mirror dataset, into a
directory special remote of its own (the same store type as keep's directory store). Two shapes,
as issue 23 sets them: many small files (Zarr chunks of ~10 kB) and a few large ones (256 MB) from
the S3 stand-in. Each file's content is real (random bytes whose sha256 is the key's), so both sides
download and verify every byte. Then keep runs again with everything kept: what a scheduled service
pays when nothing changed.

For the large files a second reference (issue 33: "the machine's measured copy rate"): a plain copy
of the same objects, ``curl --parallel`` with the same number of transfers at once, each object's
pinned URL (``?versionId=``, the URL keep reads first) streamed to a file on the same file system as
the store (``keep-large-plain``).  The bytes come from the web (the S3 stand-in), so a plain HTTP
GET to disk is what copying them costs on this machine, the stand-in's serving rate included; a
``cp`` of files already on disk would measure the disk, not the copy keep makes.  curl neither
hashes nor syncs what it wrote; keep does both (one ``syncfs`` before the branch claims the bytes),
so the row also has the copy made durable (``sync -f`` of its directory after curl:
``mb_per_s_on_disk``), the same work keep must finish; both ratios are reported.  A third reference,
no network at all: ``dd`` of as many zeros with ``conv=fdatasync`` into the same file system
(``disk_mb_per_s``), the disk's durable write rate, above which no copy made durable can go.  On a machine
shared with others one run of each measures two different moments (curl's MB/s moved 1.5x within
minutes here), so keep (into a new store each time, removed after its round as curl's files are)
and the plain copy take turns ``ROUNDS`` times, and the rows are each side's median round, every
round's wall, CPU and load beside it (``rounds``).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives, direct_puts
from neuromirror.bench.clone_get import _git_env
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.syncs import run_sync

#: transfers at once, on both sides
JOBS = 8
#: large files: keep and the plain copy, one after the other, this many times; the median of each is compared
ROUNDS = 3


def _median_row(rounds: list[dict]) -> dict:
    """The round of median wall time, with every round's wall, CPU and load beside it."""
    ordered = sorted(rounds, key=lambda r: r["wall_s"])
    median = {k: v for k, v in ordered[len(ordered) // 2].items() if k != "report"}
    every = [
        {
            k: r[k]
            for k in ("wall_s", "mb_per_s", "cpu_s", "load", "sync_s", "mb_per_s_on_disk", "disk_mb_per_s")
            if k in r
        }
        for r in rounds
    ]
    return {**median, "rounds": every}


def _dandiset(archives: Archives, files: int, size: int, label: str) -> str:
    """A draft dandiset of ``files`` assets of ``size`` random bytes each, their blobs in the S3 stand-in."""
    when = datetime(2024, 3, 1, tzinfo=timezone.utc)
    ident = archives.dandi.create_dandiset(name=f"bench keep {label}", created=when)
    with direct_puts(archives):
        for i in range(files):
            archives.dandi.put_asset(ident, f"sub-{i // 100:03d}/obj-{i:06d}.dat", os.urandom(size), when=when)
    return ident


def _row(name: str, files: int, nbytes: int, r: dict) -> dict:
    return {
        "scenario": name,
        "n": files,
        "bytes": nbytes,
        "wall_s": round(r["wall"], 3),
        "files_per_s": round(files / r["wall"], 1) if r["wall"] else None,
        "mb_per_s": round(nbytes / 2**20 / r["wall"], 1) if r["wall"] else None,
        "rss_mb": round(r["rss_mb"], 1),
        "cpu_s": round(r["cpu"], 2),
        "load": round(os.getloadavg()[0], 2),  # the 1-minute load average as it ended
    }


def bench_keep_shape(archives: Archives, work: Path, startup: float, label: str, files: int, size: int) -> list[dict]:
    """keep, keep again, and the peer, for one shape of content; one result row each."""
    ident = _dandiset(archives, files, size, label)
    root = work / f"keep-{label}"
    run_sync(
        f"keep-{label}-sync", files, root, f"dandi:{ident}", ["--dandi-api", archives.dandi.api_url], archives, startup
    )
    ds = root / "dandi" / ident
    env = _git_env(child_env(), ("annex.security.allowed-ip-addresses", "all"))
    nbytes = files * size
    rows = []
    store = work / f"store-{label}"

    def keep_cmd(to: Path) -> list[str]:
        return [*neuromirror_cmd(), "--root", str(root), "keep", f"dandi:{ident}", "--to", str(to), "-J", str(JOBS)]

    cmd = keep_cmd(store)
    # large files: keep and the plain copy take turns, ROUNDS times (the same moments of a shared machine);
    # each round's keep into a new store, removed after it as the plain copy's files are, but the last
    rounds = ROUNDS if label == "large" else 1
    keep_rounds: list[dict] = []
    plain_rounds: list[dict] = []
    for i in range(1, rounds + 1):
        to = store if i == rounds else work / f"store-{label}-{i}"
        say(f"keep {label}: neuromirror keep ({files} x {size} bytes), round {i} of {rounds} ...")
        r = run_measured([*keep_cmd(to), "--json", "-q"], env=env)
        keep_rounds.append(_row(f"keep-{label}", files, nbytes, r))
        keep_rounds[-1]["report"] = json.loads(r["stdout"] or "null")
        if to != store:
            shutil.rmtree(to, ignore_errors=True)
        if label == "large":
            plain_rounds.append(_plain_copy(archives, ident, work / f"plain-{label}", files, nbytes))
    kept = _median_row(keep_rounds) if rounds > 1 else keep_rounds[0]
    rows.append({**kept, "report": keep_rounds[-1]["report"]})
    say(f"keep {label}: again, everything kept ...")
    rows.append(_row(f"keep-{label}-rerun", files, 0, run_measured([*cmd, "--json", "-q"], env=env)))
    peer = work / f"peer-{label}"
    peer.mkdir()
    run_measured(
        ["git", "annex", "initremote", "peer", "type=directory", f"directory={peer}", "encryption=none"],
        env=env,
        cwd=ds,
    )
    say(f"keep {label}: git annex copy --from web --to peer -J {JOBS} ...")
    r = run_measured(
        ["git", "annex", "copy", "--from", "web", "--to", "peer", "-J", str(JOBS), "--quiet", "."], env=env, cwd=ds
    )
    rows.append(_row(f"keep-{label}-peer", files, nbytes, r))
    if label == "large":
        rows.append(_median_row(plain_rounds))
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(peer, ignore_errors=True)
    ours, again, theirs = rows[:3]
    say(
        f"keep {label}: {ours['files_per_s']} files/s, {ours['mb_per_s']} MB/s, {ours['rss_mb']} MB, {ours['cpu_s']} s CPU; "
        f"again {again['wall_s']} s; git annex copy {theirs['files_per_s']} files/s, {theirs['mb_per_s']} MB/s, "
        f"{theirs['rss_mb']} MB, {theirs['cpu_s']} s CPU"
    )
    return rows


def _plain_copy(archives: Archives, ident: str, where: Path, files: int, nbytes: int) -> dict:
    """``curl --parallel`` of the dandiset's objects (their pinned URLs) into ``where``: the copy rate."""
    d = archives.dandi
    urls = []
    for a in d.dandiset(ident).draft.assets.values():
        assert a.blob is not None  # the scenario's assets are blobs
        urls.append(f"{d.s3.url(a.blob.bucket, a.blob.key)}?versionId={a.blob.version_id}")
    where.mkdir(parents=True, exist_ok=True)
    cmd = ["curl", "-sS", "--fail", "--parallel", "--parallel-max", str(JOBS)]
    for i, url in enumerate(urls):
        cmd += ["-o", str(where / f"{i:06d}.dat"), url]
    say(f"keep large: plain copy of the same {files} objects: curl --parallel-max {JOBS} ...")
    r = run_measured(cmd)
    synced = run_measured(["sync", "-f", str(where)])  # on disk, as keep's syncfs makes them before recording
    got = sum(p.stat().st_size for p in where.iterdir())
    shutil.rmtree(where, ignore_errors=True)
    if got != nbytes:
        raise RuntimeError(f"curl copied {got} bytes, not the {nbytes} of the objects")
    # the disk's own durable write rate, no network: the ceiling of any copy made durable (keep's syncfs)
    where.mkdir()
    chunk = 4 << 20
    disk = run_measured(
        ["dd", "if=/dev/zero", f"of={where / 'disk.dat'}", f"bs={chunk}", f"count={nbytes // chunk}", "conv=fdatasync"]
    )
    shutil.rmtree(where, ignore_errors=True)
    result = {
        **_row("keep-large-plain", files, nbytes, r),
        "sync_s": round(synced["wall"], 3),
        "mb_per_s_on_disk": round(nbytes / 2**20 / (r["wall"] + synced["wall"]), 1),
        "disk_mb_per_s": round((nbytes // chunk) * chunk / 2**20 / disk["wall"], 1),
    }
    say(
        f"keep large: plain copy {result['mb_per_s']} MB/s ({result['mb_per_s_on_disk']} MB/s with its sync), {result['cpu_s']} s "
        f"CPU; the disk alone (dd, fdatasync) {result['disk_mb_per_s']} MB/s"
    )
    return result


def bench_keep(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    """Both shapes: ``--keep-small`` files of ~10 kB and ``--keep-large`` files of ``--keep-large-mb`` (0: not that one)."""
    rows: list[dict] = []
    if args.keep_small:
        rows += bench_keep_shape(archives, work, startup, "small", args.keep_small, 10_000)
    if args.keep_large:
        rows += bench_keep_shape(archives, work, startup, "large", args.keep_large, args.keep_large_mb << 20)
    return rows


def keep_targets(results: list[dict]) -> list[dict[str, Any]]:
    """Issue 23's targets: 3x the peer's files/s (small), 90 % of its MB/s (large), RSS < 300 MB, rerun < 2 s;
    issue 33's: large files at 90 % of a plain copy's MB/s."""
    by = {r["scenario"]: r for r in results if str(r.get("scenario", "")).startswith("keep-")}
    out: list[dict[str, Any]] = []

    def target(name: str, ok: bool, value: str, limit: str) -> None:
        out.append({"target": name, "value": value, "limit": limit, "ok": bool(ok), "note": ""})

    small, peer = by.get("keep-small"), by.get("keep-small-peer")
    if small and peer:
        ratio = small["files_per_s"] / peer["files_per_s"]
        target("keep small files vs git annex copy: files/s", ratio >= 3, f"{ratio:.2f}x", ">= 3x")
    large, lpeer = by.get("keep-large"), by.get("keep-large-peer")
    if large and lpeer:
        ratio = large["mb_per_s"] / lpeer["mb_per_s"]
        target("keep large files vs git annex copy: MB/s", ratio >= 0.9, f"{ratio:.0%}", ">= 90 %")
    plain = by.get("keep-large-plain")
    # each reference's MB/s in the plain copy's row: curl to the page cache (issue 40's target), the same
    # made durable, and the disk's own durable write rate (the ceiling of any durable copy here)
    for field, what in (
        ("mb_per_s", "a plain copy (curl) of the same objects"),
        ("mb_per_s_on_disk", "the plain copy made durable (curl, then sync)"),
        ("disk_mb_per_s", "the disk's own durable write rate (dd, fdatasync)"),
    ):
        if large and plain and plain.get(field):
            ratio = large["mb_per_s"] / plain[field]
            value = f"{large['mb_per_s']} vs {plain[field]} MB/s = {ratio:.0%}"
            target(f"keep large files vs {what}: MB/s", ratio >= 0.9, value, ">= 90 %")
    for name in ("keep-small", "keep-large"):
        if name in by:
            target(f"{name}: peak RSS", by[name]["rss_mb"] < 300, f"{by[name]['rss_mb']} MB", "< 300 MB")
    rerun = by.get("keep-small-rerun")
    if rerun:
        target("keep-small again, everything kept", rerun["wall_s"] < 2, f"{rerun['wall_s']} s", "< 2 s")
    return out

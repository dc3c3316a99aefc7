"""``keep-archive`` (issue 33): the whole archive's shape kept into two stores, killed, resumed, re-checked.

The stand-in holds ``dandisets`` dandisets (default 8) whose content adds up to ``keys`` distinct
blobs (default 10^6), each dandiset with two published versions and a draft that share most of
their blobs, and a few blobs shared across dandisets (the next dandiset's draft carries 5 % of the
previous one's first version): the keys are deduplicated across versions and dandisets, as the
archive's are.  Sizes are mixed: mostly small (0.5 to 32 KiB, log-uniform), one key in
``LARGE_EVERY`` of 1 to 4 MiB.  Per dandiset: 60 % of its keys in version 1; version 2 replaces
5 % of them (new bytes at the same path) and adds 20 %; the draft adds 15 % and drops 2 %, so
every published version holds keys no later version has.  The objects go straight into moto
(:func:`neuromirror.bench.archives.direct_puts`); each dandiset is mirrored by one
``neuromirror sync`` (:func:`neuromirror.bench.syncs.run_sync`).

Then, each a ``neuromirror`` subprocess measured by :func:`neuromirror.bench.measure.run_measured`
(wall, CPU of the process tree, peak RSS of the tree):

1. ``keep-archive-killed``: ``keep dandi:* --to A --to B --copies 2 -J 8``, SIGKILLed (its whole
   process group) once ``kill_at`` of the 2 x keys copies are in the stores (keep's own crash point
   at that many stored keys, then the group; not a sleep);
2. ``keep-archive-resume``: the same command again, to its end: how many keys it copied, how many
   of those were already in the store before it started (``recopied``: nothing, if resuming works),
   and each store's objects counted afterwards (every key in both);
3. ``keep-archive-noop``: the same command with everything kept (each version taken from its
   marks, ``keep/marks.py``); ``keep-archive-noop-full``: again with the marks dropped (a rerun
   after ``reindex``, or what every changed version costs: each file read);
4. ``keep-archive-verify``: ``verify --stores --store A --fraction 1/30``: the rolling check's
   slice of one store; CPU seconds of its process tree, copies re-read per CPU second.

The targets are for 10^6 keys.  At a smaller size each number is extrapolated linearly to 10^6
keys (``*_at_1e6``) along the line through two measurements: the whole archive, and the same
command over its first dandiset alone (``one_dandiset``, 1/``dandisets`` of the keys), so that
what is fixed (start-up, imports) stays fixed and what grows with the keys grows.  Memory: the
copying run's peak plus the full no-op run's growth per key (the lists and sets of keys; the transfer
buffers and git-annex children of a copying run do not grow with the archive; a no-op from marks
holds no key).  The verify slice
is of one store (``--store A``), as the target says, at the archive's fraction.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives, direct_puts
from neuromirror.bench.clone_get import _git_env
from neuromirror.bench.measure import TreeRSS, child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported

JOBS = 8
TARGET_KEYS = 1_000_000
#: one key in this many is large (1-4 MiB); the rest are small (0.5-32 KiB)
LARGE_EVERY = 500
SHARES = {"v1": 0.60, "v2-changed": 0.05, "v2-added": 0.20, "draft-added": 0.15}
DRAFT_DROPPED = 0.02
CROSS_SHARED = 0.05
#: (row, field, bound, "min" | "max", what)
TARGETS = (
    ("keep-archive-resume", "rss_at_1e6_mb", 500.0, "max", "keep of 10^6 keys into two stores: peak RSS (MB)"),
    ("keep-archive-resume", "recopied", 0, "max", "keep resumed after a kill: keys copied again"),
    ("keep-archive-resume", "missing", 0, "max", "keep resumed after a kill: keys missing from a store"),
    ("keep-archive-noop", "wall_at_1e6_s", 60.0, "max", "keep of 10^6 keys, everything kept: rerun (s)"),
    (
        "keep-archive-verify",
        "cpu_at_1e6_s",
        600.0,
        "max",
        "verify --stores of 1/30 of a 10^6-key store: CPU s of the process tree",
    ),
)


class _Content:
    """Key ``j``'s bytes: distinct (an 8-byte prefix) and cheap (a slice of one random buffer)."""

    def __init__(self, seed: int = 33):
        rng = random.Random(seed)
        self.block = rng.randbytes(4 << 20)
        self.sizes: dict[int, int] = {}
        self._rng = rng

    def size(self, j: int) -> int:
        if j not in self.sizes:
            if j % LARGE_EVERY == LARGE_EVERY - 1:
                self.sizes[j] = self._rng.randint(1 << 20, 4 << 20)
            else:
                self.sizes[j] = int(math.exp(self._rng.uniform(math.log(512), math.log(32 << 10))))
        return self.sizes[j]

    def bytes(self, j: int) -> bytes:
        size = self.size(j)
        start = (j * 7919) % (len(self.block) - size + 1)
        return j.to_bytes(8, "big") + self.block[start : start + size - 8]


class _Dandiset:
    """One stand-in dandiset being filled: its draft's paths and the keys it was given."""

    def __init__(self, archives: Archives, content: _Content, i: int, when: datetime):
        self.d, self.content = archives.dandi, content
        self.ident = self.d.create_dandiset(name=f"bench keep-archive {i}", created=when)
        self.paths: dict[str, int] = {}
        self.puts = 0

    def put(self, path: str, j: int, at: datetime) -> None:
        self.d.put_asset(self.ident, path, self.content.bytes(j), when=at)
        self.paths[path] = j
        self.puts += 1


def fill(archives: Archives, keys: int, dandisets: int, when: datetime) -> dict[str, Any]:
    """The stand-in archive (see the module): its dandisets, files per version, keys and bytes."""
    d = archives.dandi
    content = _Content()
    per = max(1, keys // dandisets)
    taken = iter(range(keys))
    made: list[_Dandiset] = []
    previous_v1: list[int] = []  # the previous dandiset's version-1 keys (some shared into the next)

    def take(n: int) -> list[int]:
        return [j for _, j in zip(range(n), taken)]

    with direct_puts(archives):
        for i in range(dandisets):
            mine = per if i < dandisets - 1 else keys - per * (dandisets - 1)
            ds = _Dandiset(archives, content, i, when)
            made.append(ds)
            t = when + timedelta(days=i)
            v1 = take(round(mine * SHARES["v1"]))
            for n, j in enumerate(v1):
                ds.put(f"sub-{n // 1000:04d}/sub-{n // 1000:04d}_obj-{n:07d}.nwb", j, t)
            d.publish(ds.ident, when=t + timedelta(hours=1))
            changed = sorted(ds.paths)[:: max(1, round(1 / SHARES["v2-changed"]))]
            for path, j in zip(changed, take(len(changed))):
                ds.put(path, j, t + timedelta(hours=2))
            added = take(round(mine * SHARES["v2-added"]))
            for n, j in enumerate(added):
                ds.put(f"sub-v2/obj-{n:07d}.nwb", j, t + timedelta(hours=2))
            d.publish(ds.ident, when=t + timedelta(hours=3))
            for path in sorted(ds.paths)[:: max(1, round(1 / DRAFT_DROPPED))]:  # their keys stay in version 2
                d.delete_asset(ds.ident, path, when=t + timedelta(hours=4))
            for n, j in enumerate(take(max(0, mine - len(v1) - len(changed) - len(added)))):
                ds.put(f"sub-draft/obj-{n:07d}.nwb", j, t + timedelta(hours=4))
            for n, j in enumerate(previous_v1[: round(len(previous_v1) * CROSS_SHARED)]):
                ds.put(f"shared/obj-{n:07d}.nwb", j, t + timedelta(hours=4))
            previous_v1 = v1
    n = len(content.sizes)
    return {
        "dandisets": [ds.ident for ds in made],
        "keys": n,
        "files_put": sum(ds.puts for ds in made),
        "bytes": sum(content.sizes.values()),
        "large": sum(1 for size in content.sizes.values() if size >= 1 << 20),
    }


def _hashdirs(store: Path) -> list[str]:
    """The first level of a directory store's ``<hashdirlower>`` (none before its first key)."""
    try:
        return [e.path for e in os.scandir(store) if e.is_dir() and len(e.name) == 3]
    except FileNotFoundError:
        return []


def count_keys(store: Path) -> int:
    """Key directories in a directory store (``<hashdirlower>/<KEY>/``): made just before the key's rename."""
    n = 0
    for a in _hashdirs(store):
        for b in os.scandir(a):
            n += sum(1 for _ in os.scandir(b.path))
    return n


def count_objects(store: Path) -> int:
    """Files at their keys' final paths (``<hashdirlower>/<KEY>/<KEY>``): what the store holds."""
    n = 0
    for a in _hashdirs(store):
        for b in os.scandir(a):
            for k in os.scandir(b.path):
                n += os.path.isfile(os.path.join(k.path, k.name))
    return n


def _killed_run(cmd: list[str], env: dict, stores: list[Path], at: int) -> dict:
    """Start ``cmd`` in a process group of its own; SIGKILL the group once the stores hold ``at`` keys.

    keep kills itself at its ``at``-th stored key (the crash point ``keep-stored``), however fast it
    copies: a poll of the stores alone, every 0.2 s or more, could find a small archive all kept already
    (the toy size of tests/test_bench.py).  The poll stays, for the group's other processes."""
    t = time.perf_counter()
    env = {**env, "NEUROMIRROR_CRASH_AT": f"keep-stored#{at}"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    rss = TreeRSS(proc.pid)
    seen = 0
    try:
        while proc.poll() is None:
            c0 = time.perf_counter()
            seen = sum(count_keys(s) for s in stores)
            if seen >= at:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            # poll at most a fifth of the time: counting 10^5 directories is not free
            time.sleep(max(0.2, 4 * (time.perf_counter() - c0)))
    finally:
        proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # a git child keep left when it killed itself
        except ProcessLookupError:
            pass
        peak = rss.stop()
    if proc.returncode != -signal.SIGKILL:
        raise RuntimeError(f"keep ended ({proc.returncode}) before it had {at} copies in the stores ({seen})")
    return {"wall": time.perf_counter() - t, "rss_mb": peak / 2**20, "seen": seen}


def _noop_row(scenario: str, common: dict, r: dict, one: dict, keys: int, k1: int) -> dict:
    """A no-op rerun over the archive (``r``) and over its first dandiset alone (``one``), extrapolated."""
    return {
        "scenario": scenario,
        **common,
        "wall_s": round(r["wall"], 2),
        "cpu_s": round(r["cpu"], 1),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "one_dandiset": {
            "keys": k1,
            "wall_s": round(one["wall"], 2),
            "cpu_s": round(one["cpu"], 1),
            "peak_rss_mb": round(one["rss_mb"], 1),
        },
        "wall_at_1e6_s": round(_at_1e6(r["wall"], one["wall"], keys, k1), 1),
        "cpu_at_1e6_s": round(_at_1e6(r["cpu"], one["cpu"], keys, k1), 1),
        "transferred": [s["transferred"]["files"] for s in json.loads(r["stdout"])["stores"]],
    }


def _at_1e6(full: float, one: float, keys: int, keys_one: int) -> float:
    """A number measured at ``keys`` and at ``keys_one`` (the same run over one dandiset), grown along the
    line through both to 10^6 keys: what is fixed (start-up, imports, the stores' opening) stays fixed."""
    slope = max(0.0, full - one) / max(1, keys - keys_one)
    return full + slope * max(0, TARGET_KEYS - keys)


def _resumed(
    cmd: list[str], env: dict, stores: list[Path], keys: int, before: list[int], killed: dict, common: dict
) -> tuple[dict, float]:
    """The killed keep run again to its end: its row (what it copied again, what the stores hold, the
    versions still short) and the peak RSS of the two runs."""
    r = run_measured(cmd, env=env, check=False)
    report = json.loads(r["stdout"] or "null") or {}
    if r["rc"] != 0:
        raise RuntimeError(f"keep (resumed) failed ({r['rc']}): {r['stderr'].decode(errors='replace')[-1500:]}")
    transferred = [s["transferred"]["files"] for s in report["stores"]]
    after = [count_objects(s) for s in stores]
    short = [c for c in report.get("counts", []) if not c.get("ok")]
    peak = max(killed["rss_mb"], r["rss_mb"])
    resume = {
        "scenario": "keep-archive-resume",
        **common,
        "wall_s": round(r["wall"], 2),
        "cpu_s": round(r["cpu"], 1),
        "peak_rss_mb": round(peak, 1),
        "transferred": transferred,
        "files_per_s": round(sum(transferred) / r["wall"], 1) if r["wall"] else None,
        "recopied": sum(transferred) - sum(keys - b for b in before),
        "reread": [s["reread"]["files"] for s in report["stores"]],
        "objects_after": after,
        "missing": sum(keys - a for a in after),
        "versions_short": [c["source"] + "@" + c["version"] for c in short],
        "version_files": sum(c["files"] for c in report.get("counts", [])),
    }
    say(f"keep-archive: resumed in {r['wall']:.1f} s, copied {transferred}, stores hold {after}; again ...")
    return resume, peak


def bench_keep_archive(
    archives: Archives,
    work: Path,
    startup: float,
    keys: int,
    dandisets: int = 8,
    kill_at: float = 0.3,
    fraction: float = 1 / 30,
    keep: bool = False,
) -> list[dict]:
    """The rows of the scenario (see the module), each with its ``targets``."""
    when = datetime(2025, 3, 1, tzinfo=timezone.utc)
    t = time.perf_counter()
    shape = fill(archives, keys, dandisets, when)
    fill_s = time.perf_counter() - t
    keys = shape["keys"]
    say(
        f"keep-archive: {keys} keys ({shape['large']} large, {shape['bytes'] / 2**20:.0f} MiB) in "
        f"{shape['files_put']} files put over {dandisets} dandisets x 3 versions, in {fill_s:.1f} s"
    )
    root = work / "root-keep-archive"
    api = ["--dandi-api", archives.dandi.api_url]
    syncs = [
        run_sync(f"keep-archive-sync-{i}", keys // dandisets, root, f"dandi:{ident}", api, archives, startup)
        for i, ident in enumerate(shape["dandisets"])
    ]
    stores = [work / "keep-archive-store-a", work / "keep-archive-store-b"]
    env = _git_env(child_env(), ("annex.security.allowed-ip-addresses", "all"))
    specs = [f"dandi:{i}" for i in shape["dandisets"]]
    cmd = [*neuromirror_cmd(), "--root", str(root), "keep", *specs]
    cmd += [a for s in stores for a in ("--to", str(s))] + ["--copies", "2", "-J", str(JOBS), "--json", "-q"]
    common = {"n": keys, "dandisets": dandisets, "sync_s": round(sum(s["wall_s"] for s in syncs), 1)}

    at = max(1, int(2 * keys * kill_at))
    say(f"keep-archive: keep into two stores, killed at {at} of {2 * keys} copies ...")
    killed = _killed_run(cmd, env, stores, at)
    before = [count_objects(s) for s in stores]
    rows = [
        {
            "scenario": "keep-archive-killed",
            **common,
            "wall_s": round(killed["wall"], 2),
            "peak_rss_mb": round(killed["rss_mb"], 1),
            "copies_at_kill": before,
        }
    ]
    say(f"keep-archive: killed after {killed['wall']:.1f} s, the stores held {before}; resuming ...")
    resume, peak = _resumed(cmd, env, stores, keys, before, killed, common)
    rows.append(resume)
    r = run_measured(cmd, env=env)
    one_cmd = [c for c in cmd if c not in specs[1:]]  # the first dandiset only: its own keys, none shared in
    one = run_measured(one_cmd, env=env)
    k1 = keys // dandisets
    rows.append(_noop_row("keep-archive-noop", common, r, one, keys, k1))
    # the same without marks: every file read, as before marks (and after a reindex)
    _drop_marks(root)
    r = run_measured(cmd, env=env)
    _drop_marks(root)
    one = run_measured(one_cmd, env=env)
    rows.append(_noop_row("keep-archive-noop-full", common, r, one, keys, k1))
    # memory: the copying run's peak, plus what a full no-op run's peak grows per key (the lists and sets of keys)
    resume["rss_per_key_kb"] = round(max(0.0, r["rss_mb"] - one["rss_mb"]) * 1024 / max(1, keys - k1), 3)
    resume["rss_at_1e6_mb"] = round(peak + resume["rss_per_key_kb"] * max(0, TARGET_KEYS - keys) / 1024, 0)
    rows.append(_verify(root, env, stores[0], specs, keys, k1, fraction, common))
    judge(rows, TARGETS)
    if not keep:
        for p in [root, *stores]:
            _remove(p)
    archives.drop_objects(archives.dandi.bucket)
    return rows


def _drop_marks(root: Path) -> None:
    """Every keep mark of the mirror's index dropped: the next keep reads every file (and marks again)."""
    import sqlite3

    conn = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    try:
        with conn:
            conn.execute("DELETE FROM keep_marks")
    except sqlite3.OperationalError:
        pass  # no table: no marks
    finally:
        conn.close()


def _verify(
    root: Path, env: dict, store: Path, specs: list[str], keys: int, k1: int, fraction: float, common: dict
) -> dict:
    """``verify --stores --store A --fraction F`` over the whole archive, and over its first dandiset."""
    say(f"keep-archive: verify --stores --store A --fraction {fraction:.5f} ...")
    cmd = [*neuromirror_cmd(), "--root", str(root), "verify", "--stores", "--store", str(store)]
    cmd += ["--fraction", f"{fraction:.8f}", "-J", "4", "--json", "-q"]
    r = run_measured(cmd, env=env)
    one = run_measured([*cmd, specs[0]], env=env)
    report = json.loads(r["stdout"])
    checked = report["checked"]
    return {
        "scenario": "keep-archive-verify",
        **common,
        "wall_s": round(r["wall"], 2),
        "cpu_s": round(r["cpu"], 1),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "checked": checked,
        "good": report["good"],
        "copies_per_cpu_s": round(checked / r["cpu"], 1) if r["cpu"] else None,
        "one_dandiset": {"keys": k1, "cpu_s": round(one["cpu"], 1), "checked": json.loads(one["stdout"])["checked"]},
        "cpu_at_1e6_s": round(_at_1e6(r["cpu"], one["cpu"], keys, k1), 1),
    }


def _remove(path: Path) -> None:
    """A store's key directories are read-only, as git-annex leaves them: writable again, then removed."""
    if not path.exists():
        return
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def keep_archive_targets(results: list[dict]) -> list[dict[str, Any]]:
    """Issue 33's whole-archive targets as rows of the run's target report."""
    out: list[dict[str, Any]] = []
    for row in results:
        if not str(row.get("scenario", "")).startswith("keep-archive-"):
            continue
        keys = int(row.get("n", 0))
        note = f"measured at {keys:,} keys" + ("" if keys >= TARGET_KEYS else ", extrapolated to 10^6")
        out += reported(row, note)
    return out

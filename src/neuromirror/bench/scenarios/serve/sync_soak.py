"""``soak`` (issue 32): a mirror synced again and again, as the service runs it for months.

A dandiset of N files (``--soak-files``, default 10^4) is synced, then K cycles (``--soak-syncs``,
default 1,000) each add one file to the draft and sync it (``neuromirror sync``, a subprocess, as
cron or the service runs it); every ``--soak-publish-every``-th cycle (default 10) publishes it
into a RIA store (``publish --to ria+file://STORE``), and every cycle ends with ``neuromirror
maintain SPEC --to STORE``, what the service does after each sync.  Per cycle: the index's rows
(``count(*)`` of each table) and bytes (with its WAL), the dataset's ``.git`` bytes and loose
objects, the store copy's loose objects and packs, the sync's wall time and peak RSS, maintain's
wall time.  ``--soak-minutes M`` stops starting cycles after M minutes (the row says how many ran).

At the end: the store is served over dumb HTTP (``python -m http.server``, a process of its own)
and ``datalad clone``d from it, counting the requests the server saw; and the mirror's ``.git`` is
compared with a fresh clone's, part by part (objects, the work tree's index, git-annex's files,
reflogs, the rest).

**What "a fresh clone" is.**  What a user gets from the mirror over the network: ``git clone
--no-local`` (git packs what it sends anew, as over HTTP or SSH; a local ``datalad clone`` hard-links
the mirror's packs and says nothing), then ``git annex init`` (what ``datalad clone`` runs) and one
``git annex whereis``: a checked-out work tree, so ``.git/index`` (one entry per file, ~100 bytes
each) and git-annex's index of its branch (``.git/annex/index``, ~3 entries per key) are in it, as
they are in the mirror.  A ``git clone --mirror`` has neither: the 1.81x of 2026-11-24 (200 files,
K = 30) was against one, objects 1.15x; at 1,000 files and K = 30 the mirror's ``.git`` was 1.65x a
``clone --mirror`` and 1.09x a working clone (1.69 against 1.56 MB: objects 1.07 against 0.94 MB,
``index`` 107 kB and ``annex/index`` 338 against 392 kB in both).  ``git_over_fresh`` compares with the working clone (the target);
``git_over_mirror_clone`` and ``objects_over_fresh`` are kept beside it.

**What grows in the mirror and not in a clone** (found by ``du`` of both, K = 30): packs made a few
objects at a time (geometric repacking, no new delta search: ``objects_over_fresh``), and reflogs
(``logs/``: ~150 bytes per ref per sync, HEAD, master and git-annex: ~3.8 MB a year of hourly syncs).
``maintain`` drops reflog entries older than 30 days (:mod:`neuromirror.maintain.git`), so a year is
bounded by a month's; a soak runs in less than a day, so its reflogs are all kept and counted here.
git-annex's own files (``.git/annex/index``, ``keysdb``) are what any working clone has after its
first git-annex command; ``.git/annex/fsck`` (~40 kB, written when the dataset is made) is a fixed
cost.  Unreachable objects (kept by ``maintain``: it never prunes) were 2 blobs after 30 syncs.

The summary row (``soak``) carries what the issue's targets read: index rows added per one-file
change (over the last half of the cycles) and per no-change sync (the one extra sync at the end),
``.git`` bytes over a fresh clone's, the most loose objects seen (dataset and store copy), the
clone's HTTP requests, the median sync time of the last ten cycles over the first ten's, peak RSS
first and last.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.served import served_directory
from neuromirror.bench.syncs import run_sync
from neuromirror.maintain.git import measure


def index_rows(path: Path) -> dict[str, int]:
    """``count(*)`` of every table of the index (read-only; the sync that wrote it has ended)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: int(con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in sorted(names)}
    finally:
        con.close()


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


def index_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def parts(git_dir: Path) -> dict[str, int]:
    """Bytes of a ``.git`` by what they are: git's objects, the work tree's index, git-annex's branch index,
    the rest of git-annex's files, reflogs, the rest (hooks, config, refs)."""
    objects, index, annex_index = git_dir / "objects", git_dir / "index", git_dir / "annex" / "index"
    out = {
        "objects": tree_bytes(objects),
        "index": index.stat().st_size if index.exists() else 0,
        "annex_index": annex_index.stat().st_size if annex_index.exists() else 0,
        "annex_other": tree_bytes(git_dir / "annex") - (annex_index.stat().st_size if annex_index.exists() else 0),
        "logs": tree_bytes(git_dir / "logs"),
    }
    out["rest"] = tree_bytes(git_dir) - sum(out.values())
    return out


def fresh_clones(ds: Path) -> dict[str, Any]:
    """A working clone as a user makes one over the network (see the module's docstring) and a
    ``git clone --mirror``: their ``.git`` by part, and the mirror's objects."""
    with tempfile.TemporaryDirectory(prefix="soak-clone-") as tmp:
        work, bare = Path(tmp) / "work", Path(tmp) / "mirror"
        subprocess.run(["git", "clone", "-q", "--no-local", str(ds), str(work)], check=True, env=child_env())
        subprocess.run(["git", "annex", "init", "-q"], cwd=work, check=True, env=child_env())
        one = next((p for p in subprocess.check_output(["git", "ls-files"], cwd=work, text=True).splitlines()), None)
        if one:
            subprocess.run(["git", "annex", "whereis", "--", one], cwd=work, capture_output=True, env=child_env())
        subprocess.run(["git", "clone", "-q", "--no-local", "--mirror", str(ds), str(bare)], check=True)
        return {
            "work": parts(work / ".git"),
            "mirror": tree_bytes(bare),
            "mirror_objects": tree_bytes(bare / "objects"),
        }


def http_clone_requests(store: Path, ident: str, work: Path) -> dict[str, Any]:
    """``datalad clone 'ria+http://...#~dandi/ID'`` of the store: the requests the server saw (the probe
    that saw it start is not one: only lines naming a method count), and the clone's seconds."""
    from neuromirror.util.toolpath import ensure_tools_on_path

    ensure_tools_on_path("datalad")
    log, dest = work / "soak-http.log", work / "soak-http-clone"
    env = {**child_env(), "GIT_CONFIG_COUNT": "1"}
    env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"] = "annex.security.allowed-ip-addresses", "all"
    with served_directory(store, log) as url:
        t = time.perf_counter()
        subprocess.run(
            ["datalad", "clone", f"ria+{url}#~dandi/{ident}", str(dest)], check=True, capture_output=True, env=env
        )
        wall = time.perf_counter() - t
    lines = log.read_text(errors="replace").splitlines()
    requests = [ln for ln in lines if '"GET ' in ln or '"HEAD ' in ln]
    shutil.rmtree(dest, ignore_errors=True)
    return {
        "http_requests": len(requests),
        "http_loose_requests": sum(
            1 for ln in requests if "/objects/" in ln and "/pack/" not in ln and "/info/" not in ln
        ),
        "http_clone_s": round(wall, 3),
    }


def bench_soak(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    n, k, every = args.soak_files, args.soak_syncs, max(1, args.soak_publish_every)
    when = datetime(2024, 6, 1, tzinfo=timezone.utc)
    ident, _ = archives.dandiset(n, when)
    spec, root, store = f"dandi:{ident}", work / "soak", work / "soak-store"
    extra = ["--dandi-api", archives.dandi.api_url]
    run_sync("soak-cold", n, root, spec, extra, archives, startup)
    ds, index = root / "dandi" / ident, root / ".neuromirror" / "index.sqlite"
    to = f"ria+file://{store}"
    base = [*neuromirror_cmd(), "--root", str(root)]
    cycles: list[dict] = []
    budget = time.monotonic() + args.soak_minutes * 60 if args.soak_minutes else None
    for i in range(1, k + 1):
        if budget is not None and time.monotonic() > budget:
            say(f"soak: --soak-minutes {args.soak_minutes} reached after {i - 1} cycles")
            break
        archives.dandi.put_asset(
            ident, f"sub-soak/soak-{i:05d}.nwb", f"cycle {i}\n".encode(), when=when + timedelta(hours=i)
        )
        r = run_sync(f"soak-{i}", n, root, spec, extra, archives, startup)
        published = i % every == 0
        if published:
            run_measured([*base, "publish", spec, "--to", to, "--json"], env=child_env())
        m = run_measured([*base, "maintain", spec, "--to", to, "--json"], env=child_env())
        packed = json.loads(m["stdout"])["packed"]
        git = measure(ds / ".git")
        copy = (store / "alias" / "dandi" / ident).resolve()
        scopy = measure(copy) if copy.is_dir() else None
        cycles.append(
            {
                "cycle": i,
                "sync_s": r["wall_s"],
                "sync_cpu_s": r["cpu_s"],
                "peak_rss_mb": r["peak_rss_mb"],
                "outcome": r["outcome"],
                "index_rows": index_rows(index),
                "index_bytes": index_bytes(index),
                "git_bytes": tree_bytes(ds / ".git"),
                "logs_bytes": tree_bytes(ds / ".git" / "logs"),
                "objects_bytes": git.loose_bytes + git.pack_bytes,
                "loose": git.loose,
                "packs": git.packs,
                "published": published,
                "store_loose": scopy.loose if scopy else None,
                "store_packs": scopy.packs if scopy else None,
                "maintain_s": round(m["wall"], 3),
                "packed": packed,
            }
        )
        if i == 1 or i % max(1, k // 20) == 0 or i == k:
            c = cycles[-1]
            say(
                f"soak {i}/{k}: sync {c['sync_s']} s, {sum(c['index_rows'].values())} index rows, "
                f".git {c['git_bytes'] >> 10} KiB, {c['loose']} loose, maintain {c['maintain_s']} s"
            )
    # one more sync with nothing changed: what it adds to the index beyond its run row
    rows_before = index_rows(index)
    run_sync("soak-nochange", n, root, spec, extra, archives, startup)
    rows_after = index_rows(index)
    nochange = {
        t: rows_after.get(t, 0) - rows_before.get(t, 0)
        for t in rows_after
        if rows_after.get(t, 0) != rows_before.get(t, 0)
    }
    run_measured([*base, "publish", spec, "--to", to, "--json"], env=child_env())
    run_measured([*base, "maintain", spec, "--to", to, "--json"], env=child_env())
    copy = (store / "alias" / "dandi" / ident).resolve()
    final = {"store_at_clone": measure(copy).as_dict(), **http_clone_requests(store, ident, work)}
    summary = _summary(n, len(cycles), cycles, fresh_clones(ds), parts(ds / ".git"))
    summary.update(final, nochange_rows=nochange, syncs_asked=k, publish_every=every)
    say(
        f"soak: {summary['rows_per_change']} index rows per change, no-change sync added {nochange}; "
        f".git {summary['git_over_fresh']}x a fresh working clone ({summary['git_over_mirror_clone']}x a "
        f"clone --mirror; objects {summary['objects_over_fresh']}x), at most {summary['max_loose']} loose "
        f"objects ({summary['max_store_loose']} in the store), HTTP clone {summary['http_requests']} requests, "
        f"sync at K {summary['sync_k_over_10']}x cycle 10 (CPU {summary['sync_cpu_k_over_10']}x), RSS {summary['rss_first_mb']} -> {summary['rss_last_mb']} MB"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)
    return [summary]


def _ratio(a: float, b: float) -> Optional[float]:
    """``a`` over ``b`` to two places; None when there is no ``b`` to compare with."""
    return round(a / b, 2) if b else None


def _summary(n: int, k: int, cycles: list[dict], clones: dict[str, Any], mine: dict[str, int]) -> dict:
    half = cycles[len(cycles) // 2 :] or cycles

    def rows(c: dict) -> int:
        return sum(v for t, v in c["index_rows"].items() if t != "runs")

    per_change = (rows(half[-1]) - rows(half[0])) / max(1, len(half) - 1) if len(half) > 1 else None
    # medians of ten cycles (the first ten, the last ten): one sync's time is noisy on a shared machine
    early = statistics.median(c["sync_s"] for c in cycles[:10])
    late = statistics.median(c["sync_s"] for c in cycles[-10:])
    # CPU seconds of the sync's process tree: what the sync costs, whatever else the machine runs
    cpu_early = statistics.median(c["sync_cpu_s"] for c in cycles[:10])
    cpu_late = statistics.median(c["sync_cpu_s"] for c in cycles[-10:])
    last = cycles[-1]
    store_loose = [c["store_loose"] for c in cycles if c["store_loose"] is not None]
    fresh, fresh_objects, bare = sum(clones["work"].values()), clones["work"]["objects"], clones["mirror"]
    return {
        "scenario": "soak",
        "n": n,
        "syncs": k,
        "wall_s": round(sum(c["sync_s"] for c in cycles), 3),
        "rows_per_change": round(per_change, 1) if per_change is not None else None,
        "index_rows_last": last["index_rows"],
        "index_bytes_last": last["index_bytes"],
        "git_bytes_last": last["git_bytes"],
        "fresh_clone_bytes": fresh,
        "git_over_fresh": _ratio(last["git_bytes"], fresh),
        "mirror_clone_bytes": bare,
        "git_over_mirror_clone": _ratio(last["git_bytes"], bare),
        "git_parts": mine,
        "fresh_clone_parts": clones["work"],
        "objects_bytes_last": last["objects_bytes"],
        "fresh_clone_objects_bytes": fresh_objects,
        "objects_over_fresh": _ratio(last["objects_bytes"], fresh_objects),
        "max_loose": max(c["loose"] for c in cycles),
        "max_store_loose": max(store_loose) if store_loose else None,
        "sync_10_s": round(early, 3),
        "sync_k_s": round(late, 3),
        "sync_k_over_10": _ratio(late, early),
        "sync_cpu_10_s": round(cpu_early, 3),
        "sync_cpu_k_s": round(cpu_late, 3),
        "sync_cpu_k_over_10": _ratio(cpu_late, cpu_early),
        "peak_rss_mb": max(c["peak_rss_mb"] for c in cycles),
        "rss_first_mb": cycles[0]["peak_rss_mb"],
        "rss_last_mb": last["peak_rss_mb"],
        "cycles": cycles,
    }

"""``soak`` (issue 32): a mirror synced again and again, as the service runs it for months.

A dandiset of N files (``--soak-files``, default 10^4) is synced, then K cycles (``--soak-syncs``,
default 1,000) each add one file to the draft and sync it (``neuromirror sync``, a subprocess, as
cron or the service runs it); every ``--soak-publish-every``-th cycle (default 10) publishes it
into a RIA store (``publish --to ria+file://STORE``), and every cycle ends with ``neuromirror
maintain SPEC --to STORE``, what the service does after each sync.  Per cycle: the index's rows
(``count(*)`` of each table) and bytes (with its WAL), the dataset's ``.git`` bytes and loose
objects, the store copy's loose objects and packs, the sync's wall time and peak RSS, maintain's
wall time.  At the end: a fresh clone's ``.git`` bytes, to compare the mirror's with.

The summary row (``soak``) carries what the issue's targets read: index rows added per one-file
change (over the last half of the cycles), ``.git`` bytes over a fresh clone's, the most loose
objects seen, the median sync time of the last ten cycles over the first ten's, peak RSS first and last.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
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


def fresh_clone_bytes(ds: Path) -> tuple[int, int]:
    """A ``git clone --mirror`` of the dataset (every branch and tag): its bytes and its objects' bytes,
    what the dataset needs at least (the mirror's ``.git`` also holds git-annex's own files)."""
    with tempfile.TemporaryDirectory(prefix="soak-clone-") as tmp:
        dest = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", "--no-local", "--mirror", str(ds), str(dest)], check=True)
        c = measure(dest)
        return tree_bytes(dest), c.loose_bytes + c.pack_bytes


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
    for i in range(1, k + 1):
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
                "peak_rss_mb": r["peak_rss_mb"],
                "outcome": r["outcome"],
                "index_rows": index_rows(index),
                "index_bytes": index_bytes(index),
                "git_bytes": tree_bytes(ds / ".git"),
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
        if i == 1 or i % max(1, k // 10) == 0 or i == k:
            c = cycles[-1]
            say(
                f"soak {i}/{k}: sync {c['sync_s']} s, {sum(c['index_rows'].values())} index rows, "
                f".git {c['git_bytes'] >> 10} KiB, {c['loose']} loose, maintain {c['maintain_s']} s"
            )
    summary = _summary(n, k, cycles, *fresh_clone_bytes(ds))
    say(
        f"soak: {summary['rows_per_change']} index rows per change, .git {summary['git_over_fresh']}x a fresh clone "
        f"(objects {summary['objects_over_fresh']}x), "
        f"at most {summary['max_loose']} loose objects, sync at K {summary['sync_k_over_10']}x cycle 10"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)
    return [summary]


def _summary(n: int, k: int, cycles: list[dict], fresh: int, fresh_objects: int) -> dict:
    half = cycles[len(cycles) // 2 :] or cycles

    def rows(c: dict) -> int:
        return sum(v for t, v in c["index_rows"].items() if t != "runs")

    per_change = (rows(half[-1]) - rows(half[0])) / max(1, len(half) - 1) if len(half) > 1 else None
    # medians of ten cycles (the first ten, the last ten): one sync's time is noisy on a shared machine
    early = statistics.median(c["sync_s"] for c in cycles[:10])
    late = statistics.median(c["sync_s"] for c in cycles[-10:])
    last = cycles[-1]
    store_loose = [c["store_loose"] for c in cycles if c["store_loose"] is not None]
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
        "git_over_fresh": round(last["git_bytes"] / fresh, 2) if fresh else None,
        "objects_bytes_last": last["objects_bytes"],
        "fresh_clone_objects_bytes": fresh_objects,
        "objects_over_fresh": round(last["objects_bytes"] / fresh_objects, 2) if fresh_objects else None,
        "max_loose": max(c["loose"] for c in cycles),
        "max_store_loose": max(store_loose) if store_loose else None,
        "sync_10_s": round(early, 3),
        "sync_k_s": round(late, 3),
        "sync_k_over_10": round(late / early, 2) if early else None,
        "peak_rss_mb": max(c["peak_rss_mb"] for c in cycles),
        "rss_first_mb": cycles[0]["peak_rss_mb"],
        "rss_last_mb": last["peak_rss_mb"],
        "cycles": cycles,
    }

"""The anchors: the same rows registered by git-annex's own batch mode and by ``datalad addurls``.

They say what "fast" means for the sync's registration + commit: ``anchor-batch`` is plain
``git annex fromkey --batch`` + ``registerurl --batch`` + ``git commit``, ``anchor-addurls``
is ``datalad addurls --key ... -x '*'`` on a subsample (~16 files/s, hence at most
``--addurls-rows`` rows).  The rows are the cold mirror's, read from its index.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from neuromirror.annex.branch_writer import register_args
from neuromirror.bench.measure import child_env, run_measured, say


def rows_of(index_path: Path, source: str) -> list[tuple[str, str, list[str], Optional[str]]]:
    """(path, key, urls, sha256) of the annexed files of the source's first version."""
    import sqlite3

    conn = sqlite3.connect(str(index_path))
    vid = conn.execute("SELECT MIN(id) FROM versions WHERE source=?", [source]).fetchone()[0]
    rows = [
        (p, k, json.loads(u), c)
        for p, k, u, c in conn.execute(
            "SELECT e.path, e.key, e.urls, e.checksum FROM version_files vf JOIN entries e ON e.id = vf.entry_id"
            " WHERE vf.version_id=? AND e.key IS NOT NULL ORDER BY e.path",
            [vid],
        )
    ]
    conn.close()
    return rows


def anchor_batch(rows: list, work: Path, n: int) -> dict:
    """Plain git-annex: fromkey --batch + registerurl --batch + git commit, on the same rows."""
    ds = work / "anchor-batch"
    env = child_env()
    for cmd in (
        ["git", "init", "-q", str(ds)],
        ["git", "-C", str(ds), "annex", "init", "-q", "bench"],
        ["git", "-C", str(ds), "commit", "-q", "--allow-empty", "-m", "init"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, env=env)
    say(f"N={n}: anchor-batch: git-annex's batch fromkey and URL registration + commit of {len(rows)} files ...")
    reg = "".join(f"{k} {u}\n" for _, k, urls, _ in rows for u in urls).encode()
    fk = "".join(f"{k} {p}\n" for p, k, _, _ in rows).encode()
    steps = [
        (["git", "-C", str(ds), *register_args(compact=False)], reg),  # the batch engine's registerurl, timed here
        (["git", "-C", str(ds), "-c", "annex.alwayscompact=false", "annex", "fromkey", "--force", "--batch"], fk),
        (["git", "-C", str(ds), "commit", "-q", "-m", "anchor"], None),
    ]
    wall = rss = 0.0
    for cmd, data in steps:
        r = run_measured(cmd, env=env, input=data)
        wall += r["wall"]
        rss = max(rss, r["rss_mb"])
    res = {
        "scenario": "anchor-batch",
        "n": n,
        "rows": len(rows),
        "wall_s": round(wall, 3),
        "files_per_s": round(len(rows) / wall, 1),
        "peak_rss_mb": round(rss, 1),
    }
    say(f"N={n}: anchor-batch: {res['files_per_s']:.0f} files/s")
    shutil.rmtree(ds, ignore_errors=True)
    return res


def anchor_addurls(rows: list, work: Path, n: int) -> dict:
    """``datalad addurls --key et:SHA256-s{size}--{sha256} -x '*'`` (no download) on a subsample."""
    ds = work / "anchor-addurls"
    env = child_env()
    subprocess.run(["datalad", "create", str(ds)], check=True, capture_output=True, env=env)
    table = work / "addurls.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "url", "size", "sha256"])
        for p, k, urls, sha in rows:
            size = k.split("-s", 1)[1].split("--", 1)[0]
            w.writerow([p, urls[0], size, sha])
    say(f"N={n}: anchor-addurls: datalad addurls --key of {len(rows)} rows (a subsample) ...")
    r = run_measured(
        [
            "datalad",
            "addurls",
            "-d",
            str(ds),
            "--key",
            "et:SHA256-s{size}--{sha256}",
            "-x",
            "*",
            str(table),
            "{url}",
            "{path}",
        ],
        env=env,
        cwd=ds,
    )
    files = int(subprocess.run(["git", "-C", str(ds), "ls-files"], capture_output=True, text=True).stdout.count("\n"))
    res = {
        "scenario": "anchor-addurls",
        "n": n,
        "rows": len(rows),
        "files_in_commit": files,
        "wall_s": round(r["wall"], 3),
        "files_per_s": round(len(rows) / r["wall"], 1),
        "peak_rss_mb": round(r["rss_mb"], 1),
    }
    say(f"N={n}: anchor-addurls: {res['files_per_s']:.1f} files/s")
    shutil.rmtree(ds, ignore_errors=True)
    return res

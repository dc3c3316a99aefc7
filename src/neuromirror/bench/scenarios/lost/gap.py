"""``scripts/bench --scenarios gap-plan`` (issue 75): gap-fill against a LIST of 10^6 archive keys.

A dandiset of ``--gap-files`` blobs (1 KiB of random bytes each) on the stand-in, synced; the other backup's
LIST (gzip, ``KEY<TAB>SIZE``) of ``--gap-list-keys`` rows: every blob of the dandiset but ``--gap-uncovered``
of them, the rest keys of the archive the mirror never saw.  Measured:

* ``read_s`` and ``plan_s``: the LIST read (:func:`neuromirror.account.covered.read_lists`) and the plan over
  the synced mirror (:func:`neuromirror.account.gapfill.plan_gap`), in-process: planning is their sum;
* ``judge_files_per_s``: 10^6 files of a Zarr-heavy mirror placed at their archive keys and looked up in the
  same LIST (the plan's per-file work, without the index's walk), per CPU-second;
* ``neuromirror keep dandi:ID --to STORE --covered-by LIST --json`` end to end beside ``--version``, with the
  S3 stand-in's requests counted: only the uncovered keys may be asked for, each once.

Targets: planning < 10 s; archive requests == uncovered keys.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TARGET_PLAN_S = 10.0


def gap_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gap-plan (issue 75): keep --covered-by against a LIST of 10^6 archive keys")
    g.add_argument("--gap-files", type=int, default=2000, help="gap-plan: blobs of the synced dandiset (default 2000)")
    g.add_argument("--gap-list-keys", type=int, default=1_000_000, help="gap-plan: rows of the LIST (default 10^6)")
    g.add_argument("--gap-uncovered", type=int, default=20, help="gap-plan: blobs the LIST lacks (default 20)")


def bench_gap_plan(args: Any, archives: Any, work: Path) -> list[dict]:
    from neuromirror.bench.archives import direct_puts
    from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say

    n, rows, lacking = args.gap_files, max(args.gap_list_keys, args.gap_files), min(args.gap_uncovered, args.gap_files)
    root, d = work / "gap-plan", archives.dandi
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    ident = d.create_dandiset(name="bench gap-plan", created=when)
    say(f"gap-plan: {n} blobs, a LIST of {rows} keys lacking {lacking} of them ...")
    with direct_puts(archives):
        ids = [d.put_asset(ident, f"sub-{i // 100:03d}/f-{i:06d}.dat", os.urandom(1024), when=when) for i in range(n)]
    env = child_env()
    run_measured([*neuromirror_cmd(), "--root", str(root), "sync", f"dandi:{ident}", "--dandi-api", d.api_url], env=env)
    blobs = [(d.asset(a).blob.key, d.asset(a).blob.size) for a in ids]
    listed = work / "gap-list.tsv.gz"
    write_list(listed, blobs[lacking:], rows)
    read_s, plan_s, plan = _plan(root, f"dandi:{ident}", listed)
    judge = judge_rate(listed, rows)
    log = archives.s3.log_requests()
    try:
        r = run_measured(
            [*neuromirror_cmd(), "--root", str(root), "keep", f"dandi:{ident}", "--to", str(work / "gap-store"),
             "--covered-by", str(listed), "--json"],
            env=env,
        )  # fmt: skip
    finally:
        archives.s3.log_requests(False)
    version = run_measured([*neuromirror_cmd(), "--version"], env=env)
    asked = [p for m, p in log if m in ("GET", "HEAD")]
    wanted = {k for k, _ in blobs[:lacking]}
    exact = len(asked) == lacking and {p.split("?")[0].split("/", 2)[-1] for p in asked} == wanted
    return [
        {
            "scenario": "gap-plan",
            "n": n,
            "list_keys": rows,
            "uncovered": lacking,
            "read_s": round(read_s, 3),
            "plan_s": round(plan_s, 3),
            "planning_s": round(read_s + plan_s, 3),
            "planning_cpu_s": round(plan["read_cpu_s"] + plan["plan_cpu_s"], 3),
            "covered": plan["covered"]["objects"],
            "judge_files_per_s": round(judge, 1),
            "keep_wall_s": round(r["wall"], 3),
            "keep_rss_mb": round(r["rss_mb"], 1),
            "version_s": round(version["wall"], 3),
            "archive_requests": len(asked),
            "requests_exact": exact,
            "kept": json.loads(r["stdout"])["transferred"]["files"],
        }
    ]


def write_list(path: Path, held: list[tuple[str, int]], rows: int) -> None:
    """The other backup's LIST: ``held`` at their sizes, then made-up keys of the archive up to ``rows``."""
    with gzip.open(path, "wt", compresslevel=1) as fh:
        fh.writelines(f"{k}\t{s}\n" for k, s in held)
        for _ in range(rows - len(held)):
            u = str(uuid.uuid4())
            fh.write(f"blobs/{u[:3]}/{u[3:6]}/{u}\t{len(u) * 1000}\n")


def _plan(root: Path, spec: str, listed: Path) -> tuple[float, float, dict]:
    from neuromirror import api
    from neuromirror.account.covered import read_lists
    from neuromirror.account.gapfill import plan_gap

    t, cpu = time.perf_counter(), time.process_time()
    cover = read_lists([str(listed)])
    read_s, read_cpu = time.perf_counter() - t, time.process_time() - cpu
    with api.open(root) as m:
        targets = m.versions(spec)
        t, cpu = time.perf_counter(), time.process_time()
        plan = plan_gap(m.datasets, list(targets), cover)
        plan_s, plan_cpu = time.perf_counter() - t, time.process_time() - cpu
    return read_s, plan_s, {**plan.to_json(), "read_cpu_s": read_cpu, "plan_cpu_s": plan_cpu}


def judge_rate(listed: Path, files: int) -> float:
    """Files a second placed at their archive keys and looked up in the LIST (a Zarr-heavy mirror's 10^6 chunks,
    half of them in the LIST), on one core."""
    from neuromirror.account.covered import read_lists
    from neuromirror.account.gapfill import GapPlan, judge
    from neuromirror.records import VersionFile
    from neuromirror.restore.objects import locator_for, place

    cover = read_lists([str(listed)])
    locator = locator_for("dandi:000001")
    zarr = uuid.uuid4()
    made = [
        VersionFile(
            f"x.zarr/0/{i}",
            f"MD5E-s{1000 + i}--{i:032x}",
            1000 + i,
            "MD5E",
            f"{i:032x}",
            (f"https://dandiarchive.s3.amazonaws.com/zarr/{zarr}/0/{i}?versionId=v{i}",),
            None,
            Path("."),
        )
        for i in range(files)
    ]
    plan = GapPlan("risk", [str(listed)])
    out: list[tuple[str, int]] = []
    cpu = time.process_time()
    batch: list[tuple[VersionFile, object]] = []
    for f in made:
        batch.append((f, place(f, "dandi:000001", "draft", locator)))
        if len(batch) >= 5000:
            judge(plan, cover, batch, out)
    judge(plan, cover, batch, out)
    return files / (time.process_time() - cpu)


def gap_targets(results: list[dict]) -> list[dict]:
    out = []
    for r in (r for r in results if r.get("scenario") == "gap-plan"):
        out.append(
            {
                "target": f"gap-fill: planning against a {r['list_keys']:,}-key LIST < {TARGET_PLAN_S:.0f} s",
                "value": r["planning_s"],
                "limit": TARGET_PLAN_S,
                "ok": r["planning_s"] < TARGET_PLAN_S,
                "note": f"read {r['read_s']} s + plan {r['plan_s']} s over {r['n']} files (CPU {r['planning_cpu_s']} s); "
                f"{r['judge_files_per_s']:,.0f} files/s placed and judged per CPU-second",
            }
        )
        out.append(
            {
                "target": "gap-fill: archive requests only for the uncovered keys (exactly)",
                "value": r["archive_requests"],
                "limit": r["uncovered"],
                "ok": bool(r["requests_exact"]),
                "note": f"keep --covered-by end to end {r['keep_wall_s']} s (--version {r['version_s']} s), "
                f"peak RSS {r['keep_rss_mb']} MB, kept {r['kept']}",
            }
        )
    return out

"""One ``neuromirror sync`` as a user runs it, and the numbers its JSON report gives.

Each sync scenario is a subprocess (``neuromirror --root R sync SPEC --json -q``) whose
report carries the phase timings; :func:`run_sync` turns it into one result row: wall
time, files per second, peak RSS, the time split into listing, URL pinning, annex
registration + commit and index writing, and the HEADs the stand-in answered.  What a
later git or git-annex process pays in the dataset the sync wrote is measured here too.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

from neuromirror.bench.archives import StandIns
from neuromirror.bench.measure import child_env, neuromirror_cmd, own_cpu, run_measured, say


def sync_cmd(root: Path, spec: str, extra: Sequence[str]) -> list[str]:
    return [*neuromirror_cmd(), "--root", str(root), "sync", spec, *extra, "--json", "-q"]


def profiled(name: str, cmd: list[str]) -> list[str]:
    """``cmd`` under ``py-spy record`` (threads and child processes, folded stacks into
    ``$NEUROMIRROR_BENCH_PROFILE/<name>.txt``) when that variable names a directory: where a
    scenario's CPU goes, beside what it costs (``pip install -e .[profile]``)."""
    out = os.environ.get("NEUROMIRROR_BENCH_PROFILE")
    if not out:
        return cmd
    Path(out).mkdir(parents=True, exist_ok=True)
    spy = ["py-spy", "record", "--subprocesses", "--gil", "--rate", "250", "--format", "raw"]
    return [*spy, "--output", str(Path(out) / f"{name}.txt"), "--", *cmd]


def without_profiler(out: bytes) -> bytes:
    """A report's stdout less what ``py-spy`` printed there (its lines start with ``py-spy>``)."""
    return b"\n".join(line for line in out.splitlines() if not line.startswith(b"py-spy>"))


def run_sync(
    name: str,
    n: int,
    root: Path,
    spec: str,
    extra: Sequence[str],
    archives: StandIns,
    startup: float,
    files: Optional[int] = None,
) -> dict:
    archives.counters.reset()
    say(f"N={n}: {name}: neuromirror sync {spec} ...")
    own = own_cpu()
    r = run_measured(profiled(name, sync_cmd(root, spec, extra)), env=child_env())
    own = own_cpu() - own
    report = json.loads(without_profiler(r["stdout"]))
    if isinstance(report, list):  # several sources ('dandi:*'): one report each
        report = merge_reports(report)
    heads = archives.counters.reset()
    if report.get("outcome") == "failed":
        raise RuntimeError(f"{name}: sync failed: {report.get('error')}")
    t = report.get("timings", {})
    pinning = t.get("pinning", 0.0)
    listing = max(0.0, t.get("listing+diff", 0.0) - pinning)
    reg = t.get("registration+commit", 0.0)
    annex_branch = t.get("annex-branch", 0.0)  # the git-annex branch's stream, inside registration+commit
    checkout_wait = t.get("checkout-wait", 0.0)  # the checkout's time beyond that stream
    idx = t.get("index", 0.0)
    prev = t.get("previous-state", 0.0)
    total = t.get("total", 0.0)
    # issue 32: the rest of a sync named (the dataset checked, made ready, the root's gitlink committed)
    setup = sum(t.get(k, 0.0) for k in ("recover", "prepare", "head-check", "pending", "store"))
    root_register = t.get("root-register", 0.0)
    changed = report.get("added", 0) + report.get("removed", 0) + report.get("changed", 0)
    res = {
        "scenario": name,
        "n": n,
        "wall_s": round(r["wall"], 3),
        "files_per_s": round((files if files is not None else n) / r["wall"], 1),
        "beyond_startup_s": round(r["wall"] - startup, 3),
        "sync_total_s": total,
        "listing_s": round(listing, 3),
        "pinning_s": round(pinning, 3),
        "registration_commit_s": round(reg, 3),
        "annex_branch_s": round(annex_branch, 3),
        "checkout_wait_s": round(checkout_wait, 3),
        "index_s": round(idx, 3),
        "previous_state_s": round(prev, 3),
        "setup_s": round(setup, 3),
        "root_register_s": round(root_register, 3),
        "unnamed_s": t.get("unnamed"),
        "other_s": round(r["wall"] - listing - pinning - reg - idx - prev - setup - root_register, 3),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "cpu_s": round(r["cpu"], 2),
        "cpu_user_s": round(r["cpu"] - r["cpu_sys"], 2),
        "cpu_sys_s": round(r["cpu_sys"], 2),
        # the bench's own process meanwhile: the in-process stand-ins answering (and the 50 ms poller),
        # on the same cores as the sync
        "bench_process_cpu_s": round(own, 2),
        "rss_at_peak": r["rss_at_peak"],
        "outcome": report.get("outcome"),
        "changes": changed,
        "heads": sum(heads.values()),
        "heads_repeated": sum(1 for c in heads.values() if c > 1),
        "timings": t,
    }
    if report.get("network"):  # per archive endpoint: requests, throttled answers, retries, in-flight limits
        res["network"] = report["network"]
    if "sources" in report:
        res["sources"], res["sources_updated"] = report["sources"], report["sources_updated"]
    if reg > 0 and changed:
        res["registration_files_per_s"] = round(changed / reg, 1)
    if pinning > 0 and res["heads"]:
        res["pinning_heads_per_s"] = round(res["heads"] / pinning, 1)
    say(
        f"N={n}: {name}: {r['wall']:.2f} s wall, outcome {res['outcome']}, {changed} changes, "
        f"{res['heads']} HEADs, peak RSS {res['peak_rss_mb']:.0f} MB"
    )
    return res


def merge_reports(reports: list[dict]) -> dict:
    """The reports of a multi-source sync as one: counts and phase times summed (over sources run
    in parallel, so the phases can add up to more than the wall time)."""
    outcomes = [r.get("outcome") for r in reports]
    timings: Counter = Counter()
    for r in reports:
        timings.update(r.get("timings") or {})
    errors = [f"{r.get('source')}: {r.get('error')}" for r in reports if r.get("outcome") == "failed"]
    return {
        "outcome": "failed" if errors else "ok" if "ok" in outcomes else "unchanged",
        "error": "; ".join(errors[:3]) or None,
        "added": sum(r.get("added", 0) for r in reports),
        "removed": sum(r.get("removed", 0) for r in reports),
        "changed": sum(r.get("changed", 0) for r in reports),
        "timings": dict(timings),
        "sources": len(reports),
        "sources_updated": outcomes.count("ok"),
    }


def git_counts(ds: Path) -> dict:
    """Entries the last commit changed, in the tree and on the git-annex branch."""

    def n(*args: str) -> int:
        out = subprocess.run(["git", "-C", str(ds), *args], capture_output=True, text=True).stdout
        return len([ln for ln in out.splitlines() if ln.strip()])

    return {
        "tree_entries_changed": n("diff-tree", "-r", "--name-only", "HEAD~1", "HEAD"),
        "annex_branch_entries_changed": n("diff-tree", "-r", "--name-only", "git-annex~1", "git-annex"),
    }


def later_git_annex(ds: Path, n: int) -> dict:
    """What a later git-annex process pays after the mirror wrote with fast-import.

    ``whereis`` of one file (git-annex catches its branch index up with the commit
    made behind its back), ``fsck --fast`` of that file (the first one fills
    git-annex's keys database from the tree, once), each twice, and ``git status``
    after touching dandiset.yaml (with git-annex's filter on, git would run it and
    the keys-database fill with it, every time).  Seconds each: the second runs and
    ``git status`` should not grow with N.
    """
    env = child_env()
    files = subprocess.run(["git", "-C", str(ds), "ls-files", "-z"], capture_output=True, env=env).stdout.split(b"\0")
    one = next(f.decode() for f in files if f.endswith(b".nwb"))
    res: dict = {}
    for name, cmd in (
        ("whereis_s", ["git", "-C", str(ds), "annex", "whereis", "--", one]),
        ("fsck_fast_s", ["git", "-C", str(ds), "annex", "fsck", "--fast", "--", one]),
        ("whereis_again_s", ["git", "-C", str(ds), "annex", "whereis", "--", one]),
        ("fsck_fast_again_s", ["git", "-C", str(ds), "annex", "fsck", "--fast", "--", one]),
    ):
        r = run_measured(cmd, env=env)
        res[name] = round(r["wall"], 3)
        res[name.replace("_s", "_rss_mb")] = round(r["rss_mb"], 1)
    (ds / "dandiset.yaml").touch()
    r = run_measured(["git", "-C", str(ds), "status", "--porcelain"], env=env)
    res["status_after_touch_s"] = round(r["wall"], 3)
    if r["stdout"].strip():
        raise RuntimeError(f"dataset {ds} is not clean after the sync: {r['stdout'][:200]!r}")
    say(
        f"N={n}: later git-annex processes: whereis {res['whereis_s']:.2f} then {res['whereis_again_s']:.2f} s, "
        f"fsck --fast {res['fsck_fast_s']:.2f} then {res['fsck_fast_again_s']:.2f} s, "
        f"git status (clean filter) {res['status_after_touch_s']:.2f} s"
    )
    return res

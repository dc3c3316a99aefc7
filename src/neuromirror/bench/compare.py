"""``scripts/bench --compare REV``: the chosen scenarios for this checkout and another commit, side by side.

A number measured yesterday on another load is no reference for one measured today: issue 40's
regression (3x the CPU of a cold Zarr-heavy sync) went unnoticed across several sessions for
that reason.  Here both commits run in the same bench process, against the same stand-ins, in
alternating rounds (this, other; other, this; ...), so a load that comes and goes falls on both.
The other commit is checked out in a temporary worktree (``git worktree add --detach``) and its
``src/`` is put first on the ``PYTHONPATH`` of the bench's children (the ``neuromirror`` they
start), with this venv's packages: the harness, the stand-ins and the scenarios are this
checkout's, only the code under test changes.  Each scenario row gets ``side`` (``this`` or the
REV) and ``round``; :func:`compare_rows` makes one row per scenario with each side's median CPU
(user + system of the process tree), user CPU, system CPU and wall, and this / other as ratios (below 1:
this checkout is cheaper).  CPU is what to read on a shared machine; wall moves with the load.
"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Optional

from neuromirror.bench import measure
from neuromirror.bench.measure import say

#: a scenario row's fields compared (median per side).  User CPU beside the whole: a sync's system CPU is
#: mostly the kernel making its work tree (git read-tree's 10^4 symlinks at 0.1-0.5 ms each), which moved
#: 0.9-5.2 s between runs of the same code on the shared machine and made a 1.07x of a cold sync whose
#: user CPU was the same on both sides (bench/RUNS.md, 2026-11-29 11:51)
FIELDS = (("cpu_s", "CPU s"), ("cpu_user_s", "user s"), ("cpu_sys_s", "system s"), ("wall_s", "wall s"))


def checkout_root() -> Path:
    """The git work tree this neuromirror runs from (its ``src/`` layout's parent)."""
    return Path(measure.__file__).resolve().parents[3]


def add_worktree(rev: str) -> tuple[Path, str]:
    """``rev`` checked out (detached) in a temporary worktree of this checkout; (path, full sha)."""
    repo = checkout_root()
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if sha.returncode != 0:
        raise SystemExit(f"scripts/bench: --compare {rev}: not a commit of {repo}")
    where = Path(tempfile.mkdtemp(prefix="neuromirror-compare-")) / "tree"
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", str(where), sha.stdout.strip()],
        capture_output=True,
        check=True,
    )
    return where, sha.stdout.strip()


def remove_worktree(where: Path) -> None:
    subprocess.run(
        ["git", "-C", str(checkout_root()), "worktree", "remove", "--force", str(where)], capture_output=True
    )
    shutil.rmtree(where.parent, ignore_errors=True)


def run_compare(rev: str, rounds: int, run_once: Callable[[], list[dict]]) -> list[dict]:
    """``run_once`` (the chosen scenarios, returning their rows) ``rounds`` times per side, alternating."""
    where, sha = add_worktree(rev)
    other = f"{rev}" if rev.startswith(sha[:7]) else f"{rev} ({sha[:10]})"
    say(f"compare: this checkout against {other}, checked out in {where}; {rounds} rounds")
    rows: list[dict] = []
    # a bench stopped with SIGTERM (kill, timeout) still removes the worktree (the finally below)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for r in range(rounds):
            order = (None, str(where / "src")) if r % 2 == 0 else (str(where / "src"), None)
            for path in order:
                side = "this" if path is None else other
                say(f"compare: round {r + 1}/{rounds}: {side}")
                measure.CHILD_PYTHONPATH = path
                try:
                    got = run_once()
                finally:
                    measure.CHILD_PYTHONPATH = None
                for row in got:
                    row.update(side=side, round=r + 1)
                rows += got
    finally:
        signal.signal(signal.SIGTERM, previous)
        remove_worktree(where)
    return rows


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _median(rows: list[dict], field: str) -> Optional[float]:
    vals = [r[field] for r in rows if isinstance(r.get(field), (int, float))]
    return round(statistics.median(vals), 3) if vals else None


def compare_rows(rows: list[dict]) -> list[dict]:
    """One row per scenario (and size): each side's medians and this / other."""
    sides = list(dict.fromkeys(r["side"] for r in rows))
    other = next((s for s in sides if s != "this"), None)
    out = []
    for key in dict.fromkeys((r["scenario"], r.get("n")) for r in rows if "error" not in r):
        mine = [r for r in rows if (r["scenario"], r.get("n")) == key and r["side"] == "this"]
        theirs = [r for r in rows if (r["scenario"], r.get("n")) == key and r["side"] == other]
        out.append(_pair(key, other, mine, theirs))
    return out


def _pair(key: tuple, other: Optional[str], mine: list[dict], theirs: list[dict]) -> dict:
    """A scenario's (and size's) row: each side's median of every field, and this side's over the other's."""
    row: dict = {"scenario": key[0], "n": key[1], "other": other, "rounds": len(mine)}
    for field, _ in FIELDS:
        a, b = _median(mine, field), _median(theirs, field)
        row[f"this_{field}"], row[f"other_{field}"] = a, b
        row[f"ratio_{field}"] = round(a / b, 3) if a is not None and b else None
    return row


def compare_report(table: list[dict]) -> str:
    """The side-by-side table ``scripts/bench --compare`` prints."""
    if not table:
        return "compare: no rows"
    lines = [f"this checkout against {table[0]['other']} (medians of {table[0]['rounds']} alternating rounds)"]
    head = ["scenario", "N"] + [f"{label} this/other/ratio" for _, label in FIELDS]
    lines.append(" | ".join(head))
    for pair in table:
        cells = [str(pair["scenario"]), str(pair["n"])]
        for field, _ in FIELDS:
            a, b, q = pair[f"this_{field}"], pair[f"other_{field}"], pair[f"ratio_{field}"]
            cells.append(f"{a} / {b} / {q}x" if q is not None else f"{a} / {b}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)

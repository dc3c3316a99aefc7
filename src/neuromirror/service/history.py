"""A source's past, read from the index for the status pages: its runs and its versions.

Each query walks the ``(source, id)`` index of its table from the newest row, so a
page costs the same with ten runs recorded or ten million.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Optional

from neuromirror.index import runs as run_rows
from neuromirror.index.rows import Version
from neuromirror.util.dates import parse_iso

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: runs shown in a source's strip on the overview
STRIP_RUNS = 30
#: runs listed on a source's own page
HISTORY_RUNS = 200


@dataclass
class Run:
    """One sync attempt, as a person reads it: when, how long, how it ended, what it changed."""

    id: int
    source: str
    started: str
    ended: Optional[str]
    outcome: str
    error: Optional[str]
    added: int
    removed: int
    changed: int
    trigger: Optional[str]
    versions: list[str] = field(default_factory=list)  # labels recorded by the run (history pages only)

    @property
    def duration(self) -> Optional[float]:
        start, end = parse_iso(self.started), parse_iso(self.ended)
        return (end - start).total_seconds() if start and end else None

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.versions)

    def changes(self) -> str:
        """``+3 -1 ~2`` (added, removed, changed files), or what else happened."""
        if self.outcome == "running":
            return "running"
        if self.added or self.removed or self.changed:
            return f"+{self.added} -{self.removed} ~{self.changed}"
        return "no change" if self.outcome in ("ok", "unchanged") else "-"


def _run(row: Iterable[Any]) -> Run:
    r = list(row)
    return Run(r[0], r[1], r[2], r[3], r[4] or "running", r[5], r[6] or 0, r[7] or 0, r[8] or 0, r[9])


def recent_runs(index: Index, sources: Iterable[str], n: int = STRIP_RUNS) -> dict[str, list[Run]]:
    """The last ``n`` runs of each source, oldest first (as a strip is read, left to right)."""
    out: dict[str, list[Run]] = {}
    for sid in sources:
        rows = run_rows.newest_runs(index, sid, n)
        out[sid] = [_run(r) for r in reversed(rows)]
    return out


def run_history(index: Index, source: str, n: int = HISTORY_RUNS) -> list[Run]:
    """The last ``n`` runs of a source, newest first, with the versions each recorded."""
    runs = []
    for row in run_rows.newest_runs(index, source, n, with_report=True):
        run = _run(row[:-1])
        try:
            run.versions = [str(v.get("label")) for v in json.loads(row[-1] or "{}").get("versions") or []]
        except (ValueError, AttributeError):
            pass
        runs.append(run)
    return runs


def versions(index: Index, source: str) -> list[Version]:
    """The source's recorded versions, newest first."""
    return list(reversed(index.versions(source)))


def sync_durations(index: Index, buckets: Iterable[float]) -> dict[str, tuple[list[int], int, float]]:
    """Per source: (cumulative counts per bucket bound, count, sum) of the durations of finished runs.

    Runs that ended (ok, unchanged, failed, interrupted), from the index: the
    histogram covers every sync, by hand or by the service, across restarts.
    """
    bounds = list(buckets)
    out = {}
    for row in run_rows.duration_histogram(index, bounds):
        out[row[0]] = ([int(c or 0) for c in row[1 : 1 + len(bounds)]], int(row[-2]), float(row[-1]))
    return out

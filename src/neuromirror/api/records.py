"""The mirror's records of its own work, read and written for the service: its runs, the records its steps add
to a run's report (``keep``, ``publish``, ``at_risk``...), what keeps marked and what the quiet hour remembers
between cycles, as typed answers.

The service stands on the API as the commands do (issue 77): its pages, ``/metrics``, its scheduler's restart
and its steps after a sync read and write these records through :attr:`neuromirror.api.Mirror.records` (on the
mirror each worker thread or page opens: one connection each), never the index itself, and import nothing of
the index's modules (tests/test_layers.py holds both).  Each runs table read walks the
``(source, id)`` index from the newest row, so a page costs the same with ten runs recorded or ten million.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from neuromirror.index import runs as run_rows
from neuromirror.index import store_checks
from neuromirror.util.dates import parse_iso

if TYPE_CHECKING:
    from neuromirror.index.db import Index
    from neuromirror.index.retention import Retention, Tidied
    from neuromirror.index.rows import Version

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


@dataclass(frozen=True)
class Streak:
    """A failing source's failures since its last success: its backoff, read back at a restart."""

    source: str
    failures: int
    last_failure: str  # when the last one ended
    error: str  # its error


class Records:
    """The runs, their reports' records and the keep marks of one mirror's index."""

    def __init__(self, index: Index) -> None:
        self._index = index

    # -- runs, for the pages and /metrics ---------------------------------------------------------

    def recent_runs(self, sources: Iterable[str], n: int = STRIP_RUNS) -> dict[str, list[Run]]:
        """The last ``n`` runs of each source, oldest first (as a strip is read, left to right)."""
        return {sid: [_run(r) for r in reversed(run_rows.newest_runs(self._index, sid, n))] for sid in sources}

    def run_history(self, source: str, n: int = HISTORY_RUNS) -> list[Run]:
        """The last ``n`` runs of a source, newest first, with the versions each recorded."""
        runs = []
        for row in run_rows.newest_runs(self._index, source, n, with_report=True):
            run = _run(row[:-1])
            try:
                run.versions = [str(v.get("label")) for v in json.loads(row[-1] or "{}").get("versions") or []]
            except (ValueError, AttributeError):
                pass
            runs.append(run)
        return runs

    def versions(self, source: str) -> list[Version]:
        """The source's recorded versions, newest first."""
        return list(reversed(self._index.versions(source)))

    def head_version(self, source: str) -> Optional[Version]:
        """The version recorded for the source's dataset HEAD (its last draft or snapshot state, else its latest):
        the quiet hour asks whether its archive's listing can see every change of it."""
        return self._index.head_version(source)

    def sync_durations(self, buckets: Iterable[float]) -> dict[str, tuple[list[int], int, float]]:
        """Per source: (cumulative counts per bucket bound, count, sum) of the durations of finished runs.

        Runs that ended (ok, unchanged, failed, interrupted), from the index: the histogram covers every sync,
        by hand or by the service, across restarts."""
        bounds = list(buckets)
        out = {}
        for row in run_rows.duration_histogram(self._index, bounds):
            out[row[0]] = ([int(c or 0) for c in row[1 : 1 + len(bounds)]], int(row[-2]), float(row[-1]))
        return out

    def newest_run(self) -> Optional[int]:
        """The id of the newest run recorded (None: none yet): what a page computed since may be reused for."""
        return run_rows.newest_run(self._index)

    def record_failed_run(self, source: str, error: str, *, trigger: str = "service") -> None:
        """A run of ``source`` that failed before any sync began (an entry not expanded: a glob not listed),
        recorded as one, so that its backoff and pages count it (the caller holds the source's lock)."""
        run_id = self._index.start_run(source, trigger)
        self._index.end_run(run_id, {"source": source, "outcome": "failed", "error": error})

    def change_totals(self) -> dict[str, dict[str, int]]:
        """Per source: the files its runs ``added``, ``removed`` and ``changed``, all runs counted."""
        return {
            sid: {"added": a or 0, "removed": r or 0, "changed": c or 0}
            for sid, a, r, c in run_rows.change_totals(self._index)
        }

    # -- runs, for the scheduler's restart and stop ----------------------------------------------

    def running_runs(self) -> list[tuple[int, str]]:
        """(run id, source) of every run marked running: at a start, those whose process died."""
        return run_rows.running_runs(self._index)

    def abandon_run(self, run_id: int, error: str) -> None:
        """A run whose process died: 'abandoned' now, with why (unless it ended meanwhile)."""
        run_rows.abandon_run(self._index, run_id, error)

    def interrupt_service_run(self, source: str) -> None:
        """The service's last run of ``source``, stopped at a safe point: 'interrupted', not 'failed'."""
        run_rows.interrupt_service_run(self._index, source)

    def abandon_service_run(self, source: str, error: str) -> None:
        """The service's run of ``source`` still going when the grace period ended: 'interrupted', with why."""
        run_rows.abandon_service_run(self._index, source, error)

    def last_success_start(self, patterns: list[str]) -> Optional[str]:
        """When the last successful run of a source matching one of two GLOB ``patterns`` started."""
        return run_rows.last_success_start(self._index, patterns)

    def failure_streaks(self, patterns: list[str]) -> list[Streak]:
        """The failing sources matching one of two GLOB ``patterns``, each with its streak."""
        return [Streak(*row) for row in run_rows.failure_streaks(self._index, patterns)]

    def tidy_if_due(self, policy: Callable[[str], Retention]) -> Optional[Tidied]:
        """Run history past the retention ``policy`` removed and the index compacted, when the last tidy (of
        any process) is an hour old; None: not due."""
        from neuromirror.index.retention import tidy_if_due

        return tidy_if_due(self._index, policy)

    # -- the records a step adds to a run's report ------------------------------------------------

    def reports(self, field: str, source: Optional[str] = None) -> list[tuple[str, dict[str, Any]]]:
        """(source, record) of the runs whose report holds ``field`` (of ``source`` only, if given), oldest run
        first: the last one per source is its latest keep, publish or at-risk record."""
        return [(sid, json.loads(raw)) for sid, raw in run_rows.report_records(self._index, field, source)]

    def record_in_run(self, sid: str, outcome: dict[str, Any], *, field: str = "keep") -> None:
        """Add ``outcome`` as ``field`` to the report of the source's last finished run (the sync just ended)."""
        row = run_rows.last_finished_report(self._index, sid)
        if row is None:
            return
        report: dict[str, Any] = json.loads(row[1]) if row[1] else {}
        report[field] = outcome
        with self._index.transaction():
            run_rows.set_report(self._index, row[0], report)

    # -- what keeps marked ------------------------------------------------------------------------

    def versions_digest(self, sid: str, *, marks: bool = False) -> str:
        """What the source's recorded versions are now (each version's id and commit; ``marks``: and what keeps
        marked of each, per store), as a digest: equal before and after a sync or keep that changed nothing,
        whoever ran it (the service, ``neuromirror sync`` or ``keep`` by hand)."""
        from neuromirror.dataset.versions import select_versions
        from neuromirror.spec import Spec

        archive, name = sid.split(":", 1)
        rows = [
            (v.id, v.commit, store_checks.marks_of(self._index, v.id) if marks else None)
            for v in select_versions(self._index, [Spec(archive, name)], all_versions=True)
        ]
        return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def wanted(self, sid: str) -> int:
        """How many copies of the source's content its keeps want (1 unless ``keep --copies`` said)."""
        return store_checks.wanted(self._index, sid)

    def lags(self) -> list[dict[str, Any]]:
        """Every version's recorded keep lag (``version_id``, ``source``, ``label``, ``seen``, ``complete``,
        ``lag``), oldest first."""
        return store_checks.lags(self._index)

    # -- what the service remembers between cycles -------------------------------------------------

    def remembered(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        """key -> value of those of ``keys`` remembered under ``namespace`` (the index's ``cache`` table): the
        quiet hour's stamps per source and watermark per entry, kept across restarts."""
        return self._index.cache_get_many(namespace, keys)

    def remember(self, namespace: str, items: Iterable[tuple[str, str]]) -> None:
        """Remember each (key, value) of ``items`` under ``namespace``, replacing what was; in one transaction."""
        self._index.cache_put_many(namespace, items)

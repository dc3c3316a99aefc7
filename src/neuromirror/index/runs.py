"""The runs table: a sync's attempts, their outcomes and reports.

:meth:`.db.Index.start_run` and :meth:`~.db.Index.end_run` write a row per sync; the service's steps
after it add their records to its ``report`` (``keep``, ``publish``, ``at_risk``, ...). The readers
here serve the status report, the status pages, ``/metrics`` and the service's restart, which issue
no SQL of their own (issue 51). Each reads every source at once, or one source's newest rows through
the ``(source, id)`` index: a page costs the same with ten runs recorded or ten million.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

from neuromirror.index.connection import utcnow

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: the columns of a run as the status pages show it (api.records.Run), in its fields' order
RUN_COLUMNS = "id, source, started, ended, outcome, error, added, removed, changed, trigger"


# -- per source, for the status report ----------------------------------------------------


def outcome_counts(index: Index) -> list[tuple[str, Optional[str], int]]:
    """(source, outcome, runs): how a source's syncs ended, counted."""
    return index.db.conn.execute("SELECT source, outcome, COUNT(*) FROM runs GROUP BY source, outcome").fetchall()


def last_runs(index: Index) -> list[tuple[str, str, Optional[str], Optional[str], Optional[str]]]:
    """(source, started, outcome, trigger, report JSON) of each source's newest run: what it did last."""
    return index.db.conn.execute(
        "SELECT r.source, r.started, r.outcome, r.trigger, r.report FROM runs r"
        " JOIN (SELECT source, MAX(id) id FROM runs GROUP BY source) m ON r.id = m.id"
    ).fetchall()


def last_success_ends(index: Index) -> list[tuple[str, Optional[str]]]:
    """(source, end) of each source's latest successful run: how fresh its mirror is."""
    return index.db.conn.execute(
        "SELECT source, MAX(ended) FROM runs WHERE outcome IN ('ok', 'unchanged') GROUP BY source"
    ).fetchall()


def refused_in_last_success(index: Index) -> list[tuple[str, int, Optional[str]]]:
    """(source, items refused, report JSON) of the newest successful run, where it refused any: what the
    mirror holds back now."""
    return index.db.conn.execute(
        "SELECT r.source, r.refused, r.report FROM runs r JOIN (SELECT source, MAX(id) id FROM runs"
        " WHERE outcome IN ('ok', 'unchanged') GROUP BY source) m ON r.id = m.id WHERE r.refused > 0"
    ).fetchall()


def last_failures(index: Index) -> list[tuple[str, Optional[str], Optional[str]]]:
    """(source, end, error) of each source's newest failed run: the error a status row shows."""
    return index.db.conn.execute(
        "SELECT r.source, r.ended, r.error FROM runs r"
        " JOIN (SELECT source, MAX(id) id FROM runs WHERE outcome = 'failed' GROUP BY source) m ON r.id = m.id"
    ).fetchall()


def failures_since_success(index: Index) -> list[tuple[str, int]]:
    """(source, failed runs since its last success), for failing sources: the streak a status row shows."""
    return index.db.conn.execute(
        "SELECT f.source, COUNT(*) FROM runs f WHERE f.outcome = 'failed' AND f.id > COALESCE((SELECT MAX(id)"
        " FROM runs s WHERE s.source = f.source AND s.outcome IN ('ok', 'unchanged')), 0) GROUP BY f.source"
    ).fetchall()


def running_since(index: Index) -> list[tuple[str, str]]:
    """(source, start) of the oldest run still marked running: a sync under way (or one that died)."""
    return index.db.conn.execute(
        "SELECT source, MIN(started) FROM runs WHERE outcome = 'running' GROUP BY source"
    ).fetchall()


def change_totals(index: Index) -> list[tuple[str, Optional[int], Optional[int], Optional[int]]]:
    """(source, files added, removed, changed) summed over its finished runs, for ``/metrics``."""
    return index.db.conn.execute(
        "SELECT source, SUM(added), SUM(removed), SUM(changed) FROM runs WHERE ended IS NOT NULL GROUP BY source"
    ).fetchall()


def duration_histogram(index: Index, bounds: list[float]) -> list[tuple]:
    """Per source: (source, runs of at most each bound, runs, total seconds) of its finished runs, for the
    ``/metrics`` histogram; one pass over the table."""
    cases = ", ".join(f"SUM(d <= {float(b)!r})" for b in bounds)
    sql = (
        f"SELECT source, {cases}, COUNT(*), TOTAL(d) FROM (SELECT source,"
        " MAX(0.0, (julianday(ended) - julianday(started)) * 86400.0) AS d FROM runs"
        " WHERE ended IS NOT NULL AND outcome IN ('ok', 'unchanged', 'failed', 'interrupted')) GROUP BY source"
    )
    return index.db.conn.execute(sql).fetchall()


# -- what the audit reads (neuromirror.audit) --------------------------------------------

#: a successful run, and one whose report says something was wrong upstream, as the partial indexes
#: ``idx_runs_success`` and ``idx_runs_noted`` (:data:`.schema.RUNS_AUDIT`) say it: SQLite uses such an index
#: only where the query repeats its condition, so the queries below are written with these strings
SUCCESS = "outcome IN ('ok', 'unchanged')"
NOTED = f"{SUCCESS} AND (refused > 0 OR pending > 0 OR json_array_length(report, '$.warnings') > 0)"


def noted_reports(index: Index) -> list[tuple[str, int, Optional[str], Optional[str], Optional[str]]]:
    """(source, run id, started, ended, report JSON) of the successful runs, by source and oldest first, whose
    report refused, held pending or warned about anything: what the syncs saw wrong (through ``idx_runs_noted``,
    not every run's row)."""
    return index.db.conn.execute(
        f"SELECT source, id, started, ended, report FROM runs WHERE {NOTED} ORDER BY source, id"
    ).fetchall()


def last_successes(index: Index) -> list[tuple[str, int, Optional[str]]]:
    """(source, run id, end) of each source's newest successful run: the mirror's last look at the archive
    (one index seek a source: grouping the runs read every row)."""
    return index.db.conn.execute(
        "SELECT r.source, r.id, r.ended FROM sources s JOIN runs r ON r.id ="
        f" (SELECT id FROM runs WHERE source = s.id AND {SUCCESS} ORDER BY id DESC LIMIT 1)"
    ).fetchall()


def pending_items(index: Index) -> list[tuple[str, str, Optional[str], Optional[str]]]:
    """(source, path, reason, seen) of every item a sync saw and could not mirror yet (the ``pending`` table)."""
    return index.db.conn.execute("SELECT source, path, reason, seen FROM pending ORDER BY source, path").fetchall()


# -- one source's newest runs ------------------------------------------------------------


def newest_runs(index: Index, source: str, n: int, *, with_report: bool = False) -> list[tuple]:
    """The :data:`RUN_COLUMNS` (then the report JSON, ``with_report``) of ``source``'s newest ``n`` runs,
    newest first: a status page's strip or history."""
    report = ", report" if with_report else ""
    return index.db.conn.execute(
        f"SELECT {RUN_COLUMNS}{report} FROM runs WHERE source = ? ORDER BY id DESC LIMIT ?", [source, n]
    ).fetchall()


def newest_run(index: Index) -> Optional[int]:
    """The id of the newest run recorded (None: none yet): a page computed since is still the mirror's."""
    row = index.db.conn.execute("SELECT max(id) FROM runs").fetchone()
    return row[0] if row else None


# -- the records the service adds to a run's report --------------------------------------


def last_finished_report(index: Index, source: str) -> Optional[tuple[int, Optional[str]]]:
    """(id, report JSON) of ``source``'s newest finished run: the sync a step after it reports into."""
    return index.db.conn.execute(
        "SELECT id, report FROM runs WHERE source=? AND ended IS NOT NULL ORDER BY id DESC LIMIT 1", [source]
    ).fetchone()


def set_report(index: Index, run_id: int, report: dict) -> None:
    """Replace a run's report (a step's record added to it)."""
    index.db.conn.execute("UPDATE runs SET report=? WHERE id=?", [json.dumps(report), run_id])


def report_records(index: Index, field: str, source: Optional[str] = None) -> list[tuple[str, str]]:
    """(source, JSON of the report's ``field``), oldest run first, of the runs whose report has one (of
    ``source`` only, if given): the last one per source is its latest keep, publish or at-risk record."""
    record = f"json_extract(report, '$.{field}')"
    sql = f"SELECT source, {record} FROM runs WHERE {record} IS NOT NULL"
    if source is not None:
        return index.db.conn.execute(sql + " AND source = ? ORDER BY id", [source]).fetchall()
    return index.db.conn.execute(sql + " ORDER BY id").fetchall()


# -- the service's restart and stop -------------------------------------------------------


def running_runs(index: Index) -> list[tuple[int, str]]:
    """(run id, source) of every run marked running: at a start, those whose process died."""
    return index.db.conn.execute("SELECT id, source FROM runs WHERE outcome = 'running'").fetchall()


def abandon_run(index: Index, run_id: int, error: str) -> None:
    """A run whose process died: 'abandoned' now, with why (unless it ended meanwhile)."""
    index.db.conn.execute(
        "UPDATE runs SET outcome='abandoned', ended=?, error=? WHERE id=? AND outcome='running'",
        [utcnow(), error, run_id],
    )


def last_success_start(index: Index, patterns: list[str]) -> Optional[str]:
    """When the last successful run of a source matching one of two GLOB ``patterns`` started: the
    schedule's last fire, read back at a restart."""
    row = index.db.conn.execute(
        "SELECT MAX(started) FROM runs WHERE (source GLOB ? OR source GLOB ?) AND outcome IN ('ok', 'unchanged')",
        patterns,
    ).fetchone()
    return row[0] if row else None


def failure_streaks(index: Index, patterns: list[str]) -> list[tuple[str, int, str, str]]:
    """(source, failures since the last success, end of the last failure, its error) for failing sources
    matching one of two GLOB ``patterns``: their backoff, read back at a restart."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in index.db.conn.execute(
            """
            SELECT f.source, COUNT(*), MAX(f.ended),
                   (SELECT error FROM runs e WHERE e.source = f.source AND e.outcome = 'failed' ORDER BY id DESC LIMIT 1)
            FROM runs f
            WHERE (f.source GLOB ? OR f.source GLOB ?) AND f.outcome = 'failed'
              AND f.id > COALESCE((SELECT MAX(id) FROM runs s WHERE s.source = f.source
                                   AND s.outcome IN ('ok', 'unchanged')), 0)
            GROUP BY f.source
            """,
            patterns,
        )
    ]


def interrupt_service_run(index: Index, source: str) -> None:
    """The service's last run of ``source``, stopped at a safe point: 'interrupted', not 'failed'."""
    index.db.conn.execute(
        "UPDATE runs SET outcome='interrupted' WHERE id = (SELECT MAX(id) FROM runs WHERE source=? AND"
        " trigger='service') AND outcome IN ('failed', 'running')",
        [source],
    )


def abandon_service_run(index: Index, source: str, error: str) -> None:
    """The service's run of ``source`` still going when the grace period ended: 'interrupted', with why."""
    index.db.conn.execute(
        "UPDATE runs SET outcome='interrupted', ended=?, error=? WHERE id = (SELECT MAX(id) FROM runs"
        " WHERE source=? AND trigger='service') AND outcome='running'",
        [utcnow(), error, source],
    )

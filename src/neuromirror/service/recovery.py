"""What the service leaves in, and restores from, the index and the root across stops and restarts.

* At start: runs left ``running`` by a process that died become ``abandoned``;
  each source's failure streak (and so its backoff) and last success are read
  back from the ``runs`` table, so a restart neither resets a failing source nor
  forgets a missed run.
* At stop: a sync stopped at a safe point is recorded ``interrupted``; one still
  running after the grace period is abandoned — recorded ``interrupted`` too, and
  its dataset's last (whole) commit recorded in the root superdataset, which is
  never left with a modified subdataset entry.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

log = logging.getLogger("neuromirror.service")


def recover_abandoned_runs(mirror: Any) -> None:
    """Runs left 'running' by a process that died: marked 'abandoned' if nobody holds their source."""
    from neuromirror.dataset.mirror import LockBusy
    from neuromirror.index.db import utcnow

    rows = list(mirror.index.db.query("SELECT id, source FROM runs WHERE outcome = 'running'"))
    for row in rows:
        try:
            with mirror.lock(row["source"], wait=0):
                mirror.index.db.conn.execute(
                    "UPDATE runs SET outcome='abandoned', ended=?, error=? WHERE id=? AND outcome='running'",
                    [utcnow(), "the process running this sync ended before it finished", row["id"]],
                )
        except LockBusy:
            continue


def last_success_start(index: Any, patterns: list[str]) -> Optional[str]:
    """When the last successful run of a source matching one of two GLOB ``patterns`` started."""
    row = index.db.conn.execute(
        "SELECT MAX(started) FROM runs WHERE (source GLOB ? OR source GLOB ?) AND outcome IN ('ok', 'unchanged')",
        patterns,
    ).fetchone()
    return row[0] if row else None


def failure_streaks(index: Any, patterns: list[str]) -> list[tuple[str, int, str, str]]:
    """(source, failures since the last success, end of the last failure, its error) for failing sources."""
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


def mark_interrupted(mirror: Any, sid: str) -> None:
    """The service's last run of ``sid``, stopped at a safe point: 'interrupted', not 'failed'."""
    mirror.index.db.conn.execute(
        "UPDATE runs SET outcome='interrupted' WHERE id = (SELECT MAX(id) FROM runs WHERE source=? AND"
        " trigger='service') AND outcome IN ('failed', 'running')",
        [sid],
    )


def mark_abandoned(mirror: Any, sids: Iterable[str]) -> None:
    """Runs still going when the grace period ended: 'interrupted', with why."""
    from neuromirror.index.db import utcnow

    try:
        for sid in sids:
            mirror.index.db.conn.execute(
                "UPDATE runs SET outcome='interrupted', ended=?, error=? WHERE id = (SELECT MAX(id) FROM runs"
                " WHERE source=? AND trigger='service') AND outcome='running'",
                [utcnow(), "abandoned when the service stopped; the next sync recovers the dataset", sid],
            )
    except Exception as exc:
        log.warning("could not record abandoned runs: %s", exc)


def register_abandoned(mirror: Any, sids: Iterable[str]) -> None:
    """The root records each abandoned dataset's last (whole) commit: no modified subdataset left behind.

    A sync abandoned after it committed a version but before it updated the root
    would otherwise leave the root modified until the next sync.  (A commit the
    abandoned thread completes in the moment before the process exits is
    registered by the next sync.)
    """
    try:
        datasets = {r.id: r.dataset for r in mirror.index.sources()}
        for sid in sids:
            if datasets.get(sid) and (mirror.root / datasets[sid] / ".git").exists():
                mirror.register_quietly(datasets[sid], f"[neuromirror] {sid}: registered (sync abandoned)", wait=2)
    except Exception as exc:
        log.warning("could not register abandoned datasets in the root: %s", exc)

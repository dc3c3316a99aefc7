"""Run history kept by a policy, and the index file kept compact.

Every sync adds a ``runs`` row (its report, the service's publish and keep records): an
hourly service adds 8,760 a year per source, kept for ever before this.  A
:class:`Retention` (``retention: {runs: N, days: D}`` in the mirror definition, per source
entry or at the top level; docs/service.md) says how many of a source's runs to keep and
for how long: a run goes once it is beyond the source's newest ``runs`` **or** older than
``days``.  Whatever the policy, a source keeps the runs its status and metrics read: its
newest run, its newest successful one (failure streaks count from it), its newest with a
publish record and newest successful publish (the clone URL on the status page) and its
newest keep record; a run still running is never touched.

Rows go in small transactions (:data:`BATCH` rows): a sync waiting for the write lock
waits milliseconds.  Afterwards :func:`compact` gives free pages back to the disk
(``PRAGMA incremental_vacuum`` on an index with ``auto_vacuum=INCREMENTAL``, which new
and migrated indexes have; a full ``VACUUM`` only on an older file whose free pages exceed
:data:`VACUUM_FRACTION`) and checkpoints the WAL, truncating it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from neuromirror.index.connection import open_held, transaction

if TYPE_CHECKING:
    from neuromirror.index.db import Index

DEFAULT_RUNS = 500
DEFAULT_DAYS = 90.0
#: rows deleted per transaction
BATCH = 500
#: pages given back per transaction of the incremental vacuum
VACUUM_PAGES = 2000
#: free pages (of all) above which an index without incremental auto-vacuum is rewritten whole
VACUUM_FRACTION = 0.25
#: how long the WAL checkpoint waits for readers and writers before leaving it for next time (ms)
CHECKPOINT_WAIT_MS = 1000

_PROTECTED = """
SELECT MAX(id) FROM runs WHERE source = :s
UNION SELECT MAX(id) FROM runs WHERE source = :s AND outcome IN ('ok', 'unchanged')
UNION SELECT MAX(id) FROM runs WHERE source = :s AND json_extract(report, '$.publish') IS NOT NULL
UNION SELECT MAX(id) FROM runs WHERE source = :s AND json_extract(report, '$.publish.outcome') = 'ok'
UNION SELECT MAX(id) FROM runs WHERE source = :s AND json_extract(report, '$.keep') IS NOT NULL
"""


@dataclass(frozen=True)
class Retention:
    """How much of a source's run history the index keeps: its newest ``runs``, none older than ``days``."""

    runs: int = DEFAULT_RUNS
    days: float = DEFAULT_DAYS

    def to_json(self) -> dict:
        return {"runs": self.runs, "days": self.days}


@dataclass
class Tidied:
    """What :func:`tidy` did: runs removed, pages given back, the WAL checkpointed."""

    runs_removed: int = 0
    pages_freed: int = 0
    vacuumed: bool = False
    checkpointed: bool = False

    def to_json(self) -> dict:
        return dict(self.__dict__)


def policy_for(entries: Iterable[tuple[str, Optional[Retention]]], default: Retention) -> Callable[[str], Retention]:
    """A source id -> its policy: the first (spec pattern, policy) matching it, else ``default``."""
    rules = [(spec, r) for spec, r in entries if r is not None]

    def of(source: str) -> Retention:
        return next((r for spec, r in rules if fnmatchcase(source, spec)), default)

    return of


def prune_runs(index: Index, policy: Callable[[str], Retention], *, now: Optional[datetime] = None) -> int:
    """Remove the runs every source's policy no longer keeps, :data:`BATCH` a transaction; how many."""
    conn = index.db.conn
    now = now or datetime.now(timezone.utc)
    removed = 0
    for (source,) in conn.execute("SELECT DISTINCT source FROM runs").fetchall():
        keep = policy(source)
        cutoff = (now - timedelta(days=keep.days)).strftime("%Y-%m-%dT%H:%M:%S")
        nth = conn.execute(
            "SELECT id FROM runs WHERE source = ? ORDER BY id DESC LIMIT 1 OFFSET ?", [source, max(keep.runs, 1) - 1]
        ).fetchone()
        below = nth[0] if nth else 0
        protected = {r[0] for r in conn.execute(_PROTECTED, {"s": source}) if r[0] is not None}
        while True:
            with transaction(conn):
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM runs WHERE source = ? AND outcome != 'running' AND (id < ? OR started < ?)"
                        f" AND id NOT IN ({','.join('?' * len(protected))}) ORDER BY id LIMIT ?",
                        [source, below, cutoff, *protected, BATCH],
                    )
                ]
                conn.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in ids])
            removed += len(ids)
            if len(ids) < BATCH:
                break
    return removed


def compact(index: Index, result: Optional[Tidied] = None) -> Tidied:
    """Free pages back to the disk when worth it; the WAL checkpointed and truncated."""
    out = result or Tidied()
    conn = index.db.conn
    mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0] or 1
    if free and mode == 2:  # INCREMENTAL
        left = free
        while left:  # VACUUM_PAGES a transaction; sqlite3_exec (executescript) steps the pragma to its end,
            # where execute() would free one page
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
            now_free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if now_free >= left:
                break
            left = now_free
        out.pages_freed = free - left
    elif free > VACUUM_FRACTION * pages:
        try:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
            out.vacuumed, out.pages_freed = True, free
        except sqlite3.OperationalError:  # busy: next time
            pass
    # a connection of its own, with a short wait: a checkpoint that waits for a long sync is left for next time
    ck = open_held(index.path, timeout=CHECKPOINT_WAIT_MS / 1000, isolation_level=None)
    try:
        busy = ck.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        out.checkpointed = busy == 0
    except sqlite3.OperationalError:
        out.checkpointed = False
    finally:
        ck.close()
    return out


def tidy(index: Index, policy: Callable[[str], Retention], *, now: Optional[datetime] = None) -> Tidied:
    """Runs pruned by ``policy``, then the file compacted: what the service does after a cycle."""
    out = Tidied(runs_removed=prune_runs(index, policy, now=now))
    return compact(index, out)


#: how often the service tidies the index (seconds): after the first cycle that ends this long after the last
TIDY_EVERY = 3600.0
_TIDIED_AT = "tidied_at"


def tidy_if_due(
    index: Index, policy: Callable[[str], Retention], *, every: float = TIDY_EVERY, now: Optional[datetime] = None
) -> Optional[Tidied]:
    """:func:`tidy` when the last tidy (of any process: the time is in the index) is ``every`` seconds old.

    The claim is one transaction: two workers ending a cycle together tidy once.
    """
    now = now or datetime.now(timezone.utc)
    conn = index.db.conn
    with transaction(conn):
        row = conn.execute("SELECT value FROM meta WHERE name = ?", [_TIDIED_AT]).fetchone()
        if row is not None:
            try:
                last = datetime.fromisoformat(row[0])
            except ValueError:
                last = None
            if last is not None and (now - last).total_seconds() < every:
                return None
        conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", [_TIDIED_AT, now.isoformat()])
    return tidy(index, policy, now=now)

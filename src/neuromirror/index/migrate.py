"""An index of an older schema brought to the current one on first open, in one transaction.

Schema 1 -> 2: each version's rows of ``version_files`` become a fileset (:mod:`.filesets`),
the versions of a source in the order they were recorded (each made from the one before,
as a sync makes it), then the table is dropped and ``version_files`` becomes a view.  All
of it is one SQLite transaction: a process killed anywhere in it (``NEUROMIRROR_CRASH_AT=
index-migrate``, or a power cut) leaves the schema 1 file as it was, and the next open
migrates again.  Concurrent openers wait on the write lock and then find the work done.

Afterwards the file is rewritten once (``VACUUM``), outside the transaction: it gives the
dropped table's pages back to the disk (most of the file) and turns ``auto_vacuum`` to
INCREMENTAL for :mod:`.retention`.  A kill during that rewrite leaves the migrated index
(SQLite's VACUUM is itself atomic); retention vacuums it later.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from pathlib import Path

from neuromirror.index import filesets
from neuromirror.index.connection import transaction
from neuromirror.util.crashpoints import crashpoint

log = logging.getLogger(__name__)

_STAGED = "neuromirror_migrate"


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema the index file says it has (1 when it does not say: the first schema had no row)."""
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else 1


def migrate(conn: sqlite3.Connection, path: Path, have: int, target: int) -> None:
    """Bring the index at ``path`` from schema ``have`` to ``target`` (one transaction)."""
    t0 = time.monotonic()
    say(
        f"neuromirror: migrating the index {path} from schema {have} to {target}"
        " (each version's file list stored once per state); an interruption leaves it as it was"
    )
    with transaction(conn):
        have = schema_version(conn)  # another process may have migrated while this one waited
        if have >= target:
            return
        versions = _v1_to_v2(conn)
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", [str(target)])
        crashpoint("index-migrate-commit")
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:  # another connection reads: retention vacuums later
        log.info("index %s: not compacted after the migration: %s", path, exc)
    log.info("index %s: migrated %d versions in %.1f s", path, versions, time.monotonic() - t0)


def say(line: str) -> None:
    """A line on stderr whatever the logging level: an operator should see a migration happen."""
    print(line, file=sys.stderr, flush=True)


def _v1_to_v2(conn: sqlite3.Connection) -> int:
    """Filesets from ``version_files``, version by version; the table dropped; the view made."""
    conn.execute("ALTER TABLE versions ADD COLUMN fileset INTEGER")
    for sql in filesets.DDL:
        if "VIEW" not in sql:  # the view takes the old table's name: made after the drop
            conn.execute(sql)
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_STAGED} (entry_id INTEGER PRIMARY KEY)")
    n = 0
    rows = conn.execute("SELECT id, source FROM versions ORDER BY source, id").fetchall()
    for vid, source in rows:
        conn.execute(f"DELETE FROM temp.{_STAGED}")
        conn.execute(
            f"INSERT OR IGNORE INTO temp.{_STAGED} SELECT entry_id FROM version_files WHERE version_id = ?", [vid]
        )
        fid = filesets.assign_fileset(conn, source, _STAGED)
        conn.execute("UPDATE versions SET fileset = ? WHERE id = ?", [fid, vid])
        n += 1
        crashpoint("index-migrate")
    conn.execute(f"DROP TABLE temp.{_STAGED}")
    conn.execute("DROP TABLE version_files")
    filesets.create(conn)
    return n

"""An index of an older schema brought to the current one on first open, in one transaction; the named
migrations (:data:`.schema.NAMED`) applied once each and recorded in the ``migrations`` table.

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

A named migration adds tables beside the schema (``CREATE ... IF NOT EXISTS``): the ones the index has
not recorded are applied on open, together, in one transaction that records their names
(:func:`apply_named`), which the next open reads in one query.  An index file this process may not
write (another user's mirror, read for ``status``) is left as it is: its readers find no table and
report nothing, as before the tables were made on open.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from pathlib import Path
from typing import Sequence

from neuromirror.index import filesets
from neuromirror.index.connection import transaction, utcnow
from neuromirror.util.crashpoints import crashpoint

log = logging.getLogger(__name__)

_STAGED = "neuromirror_migrate"
#: the named migrations applied to the index, one row each (the table of sqlite-utils' ``Migrations``)
MIGRATIONS = "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)"


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema the index file says it has (1 when it does not say: the first schema had no row)."""
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else 1


def applied(conn: sqlite3.Connection) -> set[str]:
    """The names of the named migrations the index has recorded (none before the table was made)."""
    try:
        return {r[0] for r in conn.execute("SELECT name FROM migrations")}
    except sqlite3.OperationalError:  # no such table: an index made before named migrations
        return set()


def apply_named(conn: sqlite3.Connection, named: Sequence[tuple[str, Sequence[str]]], *, within: bool = False) -> None:
    """Each of ``named`` (name, statements) the index has not recorded: run, then recorded, in one transaction
    (``within``: the caller's).  Nothing to do costs one query; a read-only index file is left as it is."""
    if within:
        _apply(conn, named)
        return
    if {name for name, _ in named} <= applied(conn):
        return
    try:
        with transaction(conn):
            _apply(conn, named)  # another process may have applied them while this one waited
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise
        log.debug("index: named migrations not applied to a read-only file: %s", exc)


def _apply(conn: sqlite3.Connection, named: Sequence[tuple[str, Sequence[str]]]) -> None:
    conn.execute(MIGRATIONS)
    done = applied(conn)
    for name, statements in named:
        if name in done:
            continue
        for sql in statements:
            conn.execute(sql)
        conn.execute("INSERT INTO migrations (name, applied) VALUES (?, ?)", [name, utcnow()])
        log.debug("index: migration %s applied", name)


def migrate(conn: sqlite3.Connection, path: Path, have: int, target: int, layout: Sequence[str]) -> None:
    """Bring the index at ``path`` from schema ``have`` to ``target`` (one transaction); ``layout``: the
    statements of schema 2's file lists (:data:`.schema.FILESETS`, the view last)."""
    t0 = time.monotonic()
    say(
        f"neuromirror: migrating the index {path} from schema {have} to {target}"
        " (each version's file list stored once per state); an interruption leaves it as it was"
    )
    with transaction(conn):
        have = schema_version(conn)  # another process may have migrated while this one waited
        if have >= target:
            return
        versions = _v1_to_v2(conn, layout)
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


def _v1_to_v2(conn: sqlite3.Connection, layout: Sequence[str]) -> int:
    """Filesets from ``version_files``, version by version; the table dropped; the view made."""
    conn.execute("ALTER TABLE versions ADD COLUMN fileset INTEGER")
    for sql in layout:
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
    for sql in layout:
        conn.execute(sql)
    return n

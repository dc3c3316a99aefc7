"""The index's schema, every table of it in one place: created whole on a new file, brought up to date
on an older one when it is opened (:class:`~.db.Index`), never at the top of the functions that use it.

Two kinds of change, both applied on open:

* the **schema version** (``meta.schema_version``, :data:`SCHEMA_VERSION`) counts the changes an older
  neuromirror could not read: schema 1 stored a row per file per version (``version_files``); schema 2
  stores each distinct file list once, shared with the states around it (:mod:`.filesets`), and keeps
  ``version_files`` as a view for SQL readers (:func:`.migrate.migrate`: one transaction, then VACUUM).
  An index newer than this code is refused.
* **named migrations** (:data:`NAMED`, as sqlite-utils' ``Migrations``): tables added beside the
  schema, each applied once and recorded by name in the ``migrations`` table
  (:func:`.migrate.apply_named`).  An older neuromirror reads such an index as before (it ignores
  tables it does not know); an index it made gets the tables it lacks on its next open here.
  Add a table by appending a migration, never by editing one already released.

A new file gets ``auto_vacuum=INCREMENTAL`` (set by :class:`~.db.Index` before anything is written)
so that :mod:`.retention` can give pages back to the disk without rewriting the file.
docs/architecture.md's table of the index's tables names every table and view made here
(tests/test_schema_home.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Optional

from neuromirror.errors import ReadOnly, UserError
from neuromirror.index.connection import transaction
from neuromirror.index.migrate import apply_named, migrate, schema_version

SCHEMA_VERSION = 2

#: schema 2's own tables (the shape sqlite-utils gave them when it created them)
BASE = (
    'CREATE TABLE IF NOT EXISTS "meta" (\n   "name" TEXT PRIMARY KEY,\n   "value" TEXT\n)',
    'CREATE TABLE IF NOT EXISTS "sources" (\n   "id" TEXT PRIMARY KEY,\n   "archive" TEXT,\n   "remote_id" TEXT,\n'
    '   "dataset" TEXT,\n   "created" TEXT,\n   "meta" TEXT\n)',
    'CREATE TABLE IF NOT EXISTS "versions" (\n   "id" INTEGER PRIMARY KEY,\n   "source" TEXT REFERENCES "sources"("id"),\n'
    '   "label" TEXT,\n   "kind" TEXT,\n   "commit" TEXT,\n   "tag" TEXT,\n   "synced_at" TEXT,\n'
    '   "remote_modified" TEXT,\n   "date" TEXT,\n   "files" INTEGER,\n   "bytes" INTEGER,\n   "doi" TEXT,\n'
    '   "citation" TEXT,\n   "meta" TEXT,\n   "fileset" INTEGER\n)',
    'CREATE INDEX IF NOT EXISTS "idx_versions_source_id"\n    ON "versions" ("source", "id")',
    'CREATE INDEX IF NOT EXISTS "idx_versions_source_label"\n    ON "versions" ("source", "label")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "idx_versions_source_commit_label"\n    ON "versions" ("source", "commit", "label")',
    'CREATE TABLE IF NOT EXISTS "entries" (\n   "id" INTEGER PRIMARY KEY,\n   "source" TEXT,\n   "path" TEXT,\n'
    '   "key" TEXT,\n   "size" INTEGER,\n   "checksum_kind" TEXT,\n   "checksum" TEXT,\n   "urls" TEXT,\n'
    '   "remote_id" TEXT\n)',
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_entries_identity ON entries"
    "(source, path, ifnull(key, ''), ifnull(checksum, ''), urls)",
    'CREATE INDEX IF NOT EXISTS "idx_entries_checksum"\n    ON "entries" ("checksum")',
    'CREATE INDEX IF NOT EXISTS "idx_entries_key"\n    ON "entries" ("key")',
    'CREATE TABLE IF NOT EXISTS "runs" (\n   "id" INTEGER PRIMARY KEY,\n   "source" TEXT,\n   "started" TEXT,\n'
    '   "ended" TEXT,\n   "outcome" TEXT,\n   "error" TEXT,\n   "added" INTEGER,\n   "removed" INTEGER,\n'
    '   "changed" INTEGER,\n   "refused" INTEGER,\n   "pending" INTEGER,\n   "report" TEXT,\n   "trigger" TEXT\n)',
    'CREATE INDEX IF NOT EXISTS "idx_runs_source_id"\n    ON "runs" ("source", "id")',
    'CREATE TABLE IF NOT EXISTS "cache" (\n   "namespace" TEXT,\n   "key" TEXT,\n   "value" TEXT,\n'
    '   PRIMARY KEY ("namespace", "key")\n)',
    'CREATE TABLE IF NOT EXISTS "pending" (\n   "source" TEXT,\n   "path" TEXT,\n   "reason" TEXT,\n'
    '   "remote_id" TEXT,\n   "seen" TEXT,\n   PRIMARY KEY ("source", "path")\n)',
)

#: schema 2's file lists (:mod:`.filesets`; ``versions`` and ``entries`` must exist); the view last
FILESETS = (
    "CREATE TABLE IF NOT EXISTS filesets (id INTEGER PRIMARY KEY, source TEXT NOT NULL, entries INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_filesets_source ON filesets(source, id)",
    "CREATE TABLE IF NOT EXISTS fileset_spans (source TEXT NOT NULL, until INTEGER NOT NULL,"
    " entry_id INTEGER NOT NULL, since INTEGER NOT NULL, PRIMARY KEY (source, until, entry_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS idx_fileset_spans_entry ON fileset_spans(entry_id, since)",
    "CREATE INDEX IF NOT EXISTS idx_versions_fileset ON versions(source, fileset)",
    # a version's subdatasets (nested totals of `versions`) without reading its other files
    "CREATE INDEX IF NOT EXISTS idx_entries_subdataset ON entries(source) WHERE checksum_kind = 'subdataset'",
    "CREATE VIEW IF NOT EXISTS version_files AS SELECT v.id AS version_id, s.entry_id AS entry_id"
    " FROM versions v JOIN fileset_spans s ON s.source = v.source AND s.until > v.fileset AND s.since <= v.fileset",
)

#: stored copies' check times, the stores, the copies wanted, keep lags and marks (:mod:`.store_checks`)
STORE_CHECKS = (
    "CREATE TABLE IF NOT EXISTS store_checks (store TEXT NOT NULL, key TEXT NOT NULL, checked REAL,"
    " stored REAL, PRIMARY KEY (store, key)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS idx_store_checks_checked ON store_checks(store, checked)",
    # checks_of asks by key over every store: without it each batch of 900 keys scans the whole table
    "CREATE INDEX IF NOT EXISTS idx_store_checks_key ON store_checks(key)",
    "CREATE TABLE IF NOT EXISTS stores (uuid TEXT PRIMARY KEY, url TEXT, kind TEXT, name TEXT, seen REAL)",
    "CREATE TABLE IF NOT EXISTS copies_wanted (source TEXT PRIMARY KEY, copies INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keep_lag (version_id INTEGER PRIMARY KEY, source TEXT, label TEXT,"
    " seen REAL, complete REAL, lag REAL)",
    "CREATE TABLE IF NOT EXISTS keep_marks (version_id INTEGER NOT NULL, store TEXT NOT NULL, source TEXT,"
    " fileset INTEGER, version_commit TEXT, terms TEXT, branches TEXT, counts TEXT, marked REAL,"
    " PRIMARY KEY (version_id, store))",
)

#: the files inside nested Zarr stores, per store commit (:mod:`.zarr_catalog`)
ZARR_CATALOG = (
    # the catalogue's names before issue 41 ("store" is the lab's store only): a cache, filled again on demand
    "DROP TABLE IF EXISTS store_files",
    "DROP TABLE IF EXISTS store_catalog",
    'CREATE TABLE IF NOT EXISTS zarr_files ("commit" TEXT NOT NULL, path TEXT NOT NULL, key TEXT, size INTEGER,'
    ' checksum_kind TEXT, checksum TEXT, PRIMARY KEY ("commit", path)) WITHOUT ROWID',
    "CREATE INDEX IF NOT EXISTS idx_zarr_files_checksum ON zarr_files(checksum)",
    "CREATE INDEX IF NOT EXISTS idx_zarr_files_key ON zarr_files(key)",
    'CREATE TABLE IF NOT EXISTS zarr_catalog ("commit" TEXT PRIMARY KEY, files INTEGER)',
)

#: archive URLs a reader found gone (:mod:`neuromirror.read.loss`, through :func:`.store_checks.lost_status`...)
LOST_URLS = (
    "CREATE TABLE IF NOT EXISTS lost_urls (url TEXT PRIMARY KEY, key TEXT, status TEXT, seen REAL) WITHOUT ROWID",
)

#: restore drills and their results (:mod:`neuromirror.restore.drills`, through :func:`.store_checks.record_drill`)
DRILLS = (
    "CREATE TABLE IF NOT EXISTS drills (id INTEGER PRIMARY KEY, started REAL, finished REAL, scope TEXT,"
    " target TEXT, objects INTEGER, bytes INTEGER, seconds REAL, mismatches INTEGER, failed INTEGER,"
    " result TEXT, report TEXT)",
)

#: cold packs of packed stores whose thaw was asked for and not yet seen done (:mod:`.store_checks`)
PACK_THAWS = (
    "CREATE TABLE IF NOT EXISTS pack_thaws (store TEXT NOT NULL, pack TEXT NOT NULL, url TEXT, storage_class TEXT,"
    " asked REAL, PRIMARY KEY (store, pack)) WITHOUT ROWID",
)

#: the versions each store was given by a keep, whole or not: what retention may drop from a packed store
#: (:mod:`neuromirror.keep.prune`, through :func:`.store_checks.note_kept`); an older index's marks (whole
#: versions) are its first rows
KEPT_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS kept_versions (store TEXT NOT NULL, version_id INTEGER NOT NULL, source TEXT,"
    " kept REAL, PRIMARY KEY (store, version_id)) WITHOUT ROWID",
    "INSERT OR IGNORE INTO kept_versions (store, version_id, source, kept)"
    " SELECT store, version_id, source, marked FROM keep_marks WHERE store != '*copies*'",
)

#: the fields of NWB files read from their LINDI references, per git-annex key (:mod:`neuromirror.read.references.fields`)
NWB_FIELDS = (
    "CREATE TABLE IF NOT EXISTS nwb_fields (key TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (key, field, value)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS idx_nwb_fields_value ON nwb_fields(field, value COLLATE NOCASE)",
)

#: the audit's reads of the runs (:func:`.runs.last_successes`, :func:`.runs.noted_reports`): each source's
#: newest successful run, and the successful runs whose report refused, held pending or warned, found without
#: reading every run's row (``audit`` over 2,000 dandisets of 500 runs each read all 10^6: half its time).
#: Partial indexes: the planner uses one where a query's WHERE repeats its condition (:data:`.runs.SUCCESS`,
#: :data:`.runs.NOTED`); SQLite keeps them as runs are written, and a new or rebuilt index has them from the start.
RUNS_AUDIT = (
    "CREATE INDEX IF NOT EXISTS idx_runs_success ON runs(source, id) WHERE outcome IN ('ok', 'unchanged')",
    "CREATE INDEX IF NOT EXISTS idx_runs_noted ON runs(source, id) WHERE outcome IN ('ok', 'unchanged')"
    " AND (refused > 0 OR pending > 0 OR json_array_length(report, '$.warnings') > 0)",
)

#: the named migrations, in the order they are applied; each made its tables on first use before issue 51
#: (``CREATE ... IF NOT EXISTS``: an index that has them already records the name and keeps its rows)
NAMED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("store-checks", STORE_CHECKS),
    ("zarr-catalog", ZARR_CATALOG),
    ("lost-urls", LOST_URLS),
    ("drills", DRILLS),
    ("pack-thaws", PACK_THAWS),
    ("kept-versions", KEPT_VERSIONS),
    ("nwb-fields", NWB_FIELDS),
    ("runs-audit", RUNS_AUDIT),
)


def ensure_schema(db: Any, path: Path, read_only: Optional[str] = None) -> None:
    """Create the schema on a new index; migrate an older one (:mod:`.migrate`); refuse a newer one.

    An index this process cannot write (``read_only`` says why) is read as it is: one of an older schema
    is refused in one line (its upgrade is a write); its named migrations wait for a writer."""
    conn = db.conn
    if "sources" not in db.table_names():
        if read_only:
            raise UserError(f"{path}: not a neuromirror index (no sources table), and {read_only} here")
        create_schema(db)
        return
    have = schema_version(conn)
    if have > SCHEMA_VERSION:
        raise UserError(
            f"{path}: index schema {have} is newer than this neuromirror knows ({SCHEMA_VERSION}); upgrade neuromirror"
        )
    if have < SCHEMA_VERSION:
        if read_only:
            raise ReadOnly(
                f"{path}: index schema {have} needs upgrading to {SCHEMA_VERSION}, which a read-only index cannot take"
                f" ({read_only}): run neuromirror once where the root is writable"
            )
        migrate(conn, path, have, SCHEMA_VERSION, FILESETS)
    apply_named(conn, NAMED)


def create_schema(db: Any) -> None:
    """Every table of the current schema, its named migrations recorded as applied, in one transaction."""
    conn = db.conn
    with transaction(conn):
        for sql in BASE + FILESETS:
            conn.execute(sql)
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('schema_version', ?)"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [str(SCHEMA_VERSION)],
        )
        apply_named(conn, NAMED, within=True)


def ensure_named(conn: sqlite3.Connection) -> None:
    """The named migrations, on a connection of its own to an index file of the current schema (a reader's,
    :func:`.store_checks.open_losses`); a schema this code does not (yet) read is left to :class:`~.db.Index`."""
    try:
        if schema_version(conn) != SCHEMA_VERSION:
            return
    except sqlite3.OperationalError:  # no meta table: not an index (yet)
        return
    apply_named(conn, NAMED)

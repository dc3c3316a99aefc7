"""The SQLite index: a fast view of what the datasets hold.

The datasets are the truth; ``neuromirror reindex`` rebuilds this file from
them.  Layout, chosen so that 10^7 file rows never slow ``versions``/``pin``:

* ``sources``   one row per mirrored thing (``dandi:000027``).
* ``versions``  one row per recorded state: label, commit, tag, counts.
  ``versions``/``pin`` read only this table (indexed by source).
* ``entries``   distinct file states (source, path, key, checksums, URLs),
  shared by every version that contains them.
* ``filesets``, ``fileset_spans``: which entries make each distinct file list, stored
  once and shared with the lists before and after it (:mod:`.filesets`); each version
  points at one (``versions.fileset``).  The view ``version_files`` (version_id,
  entry_id) reads them as one table.
* ``runs``      every sync attempt: start, end, outcome, counts, error.
* ``cache``     values that never change (a blob's S3 versionId).
* ``pending``   items seen but not mirrored yet, and why.

Every table of the index (these, and those of keep, verify, search, readers and drills) is made in
:mod:`.schema`, when the file is opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Iterable, Iterator, Optional

from neuromirror.errors import ReadOnly
from neuromirror.index.connection import (  # noqa: F401  (Index's callers use them)
    HELD,
    HELD_LOCK,
    Database,
    connect,
    connect_reader,
    damage_of,
    damaged,
    hold,
    is_damage,
    let_go,
    transaction,
    utcnow,
)
from neuromirror.index.rows import SourceRow, Version
from neuromirror.records import FileRow, VersionFile

if TYPE_CHECKING:
    from neuromirror.index.version_rows import Over, StagedVersion

from neuromirror.index.filesets import IN_FILESET
from neuromirror.index.schema import SCHEMA_VERSION  # noqa: F401  (its readers import it from here)

#: paths per query of version_files_at (SQLite's oldest limit is 999 parameters)
MANY_PATHS = 500

#: a version's row with its source's dataset (a record's ``relpath``); a query adds its WHERE
_VERSIONS = "SELECT v.*, s.dataset AS relpath FROM versions v LEFT JOIN sources s ON s.id = v.source"

#: a fileset's files (parameters: fileset id twice, source), in the column order of _previous_files
_VERSION_FILES = (
    "SELECT e.path, e.key, e.size, e.checksum_kind, e.checksum, e.urls, e.remote_id FROM entries e"
    f" JOIN fileset_spans s ON {IN_FILESET} WHERE e.source = ?"
)


def _previous_files(rows: list[tuple]) -> Iterator[VersionFile]:
    """Rows of (path, key, size, checksum_kind, checksum, urls JSON, remote_id) as files.

    The URL lists of a whole page are decoded by one ``json.loads``: per row, the
    Python side of ``json.loads`` costs more than the parse (~0.5 s per 10^5 rows).
    """
    urls = json.loads("[" + ",".join(r[5] or "[]" for r in rows) + "]")
    for r, u in zip(rows, urls):
        yield VersionFile(r[0], r[1], r[2], r[3], r[4], tuple(u), r[6])


class Index:
    """The index file, opened to write it; or to read it only: a Dask worker's view (``readonly``), or an index
    this process cannot write (a read-only mount of the root, another user's root: :attr:`read_only` says why),
    where every verb that reads works and SQLite refuses any write."""

    def __init__(self, path: Path | str, *, readonly: bool = False):
        self.path = Path(path)
        # the file's header read with a descriptor of its own, only while this process has no connection to it
        # (any of its connections: a reader's for lost URLs too, see connection.HELD): closing any descriptor of
        # a file drops every POSIX lock the process holds on it, SQLite's included (two service workers then
        # wrote at once: "database disk image is malformed"; another process deleted the WAL under a reader's
        # connection: "disk I/O error")
        with HELD_LOCK:
            if not HELD.get(os.path.realpath(self.path)):
                why = damage_of(self.path)
                if why:
                    raise damaged(self.path, why)
            self._held = hold(self.path)
        try:
            self._connect(readonly)
        except BaseException:
            self._forget()
            raise

    def _forget(self) -> None:
        let_go(self._held)

    def _connect(self, readonly: bool) -> None:
        #: why this process cannot write the index (``read-only file system``), None when it can
        self.read_only: Optional[str] = None
        if not readonly:
            from neuromirror.util.disk import unwritable

            self.read_only = unwritable(self.path)
            if self.read_only and not self.path.exists():
                raise ReadOnly(f"the index cannot be made at {self.path} ({self.read_only})")
        try:
            if readonly or self.read_only:
                self.db = Database(connect_reader(self.path))
                if self.read_only:
                    self._ensure_schema()
            else:
                self._open()
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise damaged(self.path, str(exc)) from None
            raise

    def _open(self) -> None:
        """The index opened to write: made when new, its schema brought up to date."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        conn = connect(self.path)
        if new:  # before the WAL switch writes the header: free pages go back to the disk (index.retention)
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.db = Database(conn)
        # switching a new file to WAL and creating the schema take an exclusive lock that
        # SQLite's busy timeout does not wait for: parallel syncs opening a fresh index retry
        for attempt in range(50):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                self._ensure_schema()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)

    # -- schema ---------------------------------------------------------
    def _ensure_schema(self) -> None:
        from neuromirror.index.schema import ensure_schema

        ensure_schema(self.db, self.path, read_only=self.read_only)

    def transaction(self) -> ContextManager[None]:
        return transaction(self.db.conn)

    def close(self) -> None:
        self.db.conn.close()
        if not getattr(self, "_closed", False):
            self._closed = True
            self._forget()

    # -- sources --------------------------------------------------------
    def ensure_source(
        self, source: str, archive: str, remote_id: str, dataset: str, meta: Optional[dict] = None
    ) -> None:
        existing = self.source(source)
        if existing is None:
            self.db.conn.execute(
                "INSERT INTO sources (id, archive, remote_id, dataset, created, meta) VALUES (?,?,?,?,?,?)",
                [source, archive, remote_id, dataset, utcnow(), json.dumps(meta or {})],
            )
        elif meta is not None:
            self.db.conn.execute("UPDATE sources SET meta=?, dataset=? WHERE id=?", [json.dumps(meta), dataset, source])

    def source(self, source: str) -> Optional[SourceRow]:
        rows = list(self.db.query("SELECT * FROM sources WHERE id = ?", [source]))
        return SourceRow.from_sql(rows[0]) if rows else None

    def sources(self, archive: Optional[str] = None) -> list[SourceRow]:
        if archive:
            rows = self.db.query("SELECT * FROM sources WHERE archive = ? ORDER BY id", [archive])
        else:
            rows = self.db.query("SELECT * FROM sources ORDER BY id")
        return [SourceRow.from_sql(r) for r in rows]

    def source_ids(self) -> set[str]:
        """The sources mirrored here, by id alone (a cycle's plan: a source listed but not among them is new)."""
        return {row[0] for row in self.db.conn.execute("SELECT id FROM sources")}

    def source_datasets(self) -> list[tuple[str, str]]:
        """(source, its dataset's path under the root) of every source, in one query (the status report)."""
        return self.db.conn.execute("SELECT id, dataset FROM sources").fetchall()

    # -- versions -------------------------------------------------------
    def newest_version_dates(self) -> dict[str, Optional[str]]:
        """Per source with a recorded version: its newest version's date (the archive's, else when synced)."""
        sql = "SELECT source, max(coalesce(date, synced_at)) FROM versions GROUP BY source"
        return dict(self.db.conn.execute(sql).fetchall())

    def version_counts(self) -> list[tuple[str, int]]:
        """(source, recorded versions) of every source that has any, in one query (the status report)."""
        return self.db.conn.execute("SELECT source, COUNT(*) FROM versions GROUP BY source").fetchall()

    def heads(self) -> list[tuple[str, str, int, int, str]]:
        """(source, label, files, bytes, kind) of every source's dataset HEAD, in one query (the status report):
        its last draft or snapshot row, else its last published one."""
        return self.db.conn.execute(
            "SELECT v.source, v.label, v.files, v.bytes, v.kind FROM versions v JOIN (SELECT source,"
            " COALESCE(MAX(CASE WHEN kind != 'published' THEN id END), MAX(id)) id FROM versions GROUP BY source) m"
            " ON v.id = m.id"
        ).fetchall()

    def versions(self, source: str) -> list[Version]:
        """Every recorded state of ``source``, oldest first."""
        return [Version.from_sql(r) for r in self.db.query(f"{_VERSIONS} WHERE v.source = ? ORDER BY v.id", [source])]

    def latest_version(self, source: str, label: Optional[str] = None) -> Optional[Version]:
        if label is None:
            sql, args = f"{_VERSIONS} WHERE v.source = ? ORDER BY v.id DESC LIMIT 1", [source]
        else:
            sql, args = f"{_VERSIONS} WHERE v.source = ? AND v.label = ? ORDER BY v.id DESC LIMIT 1", [source, label]
        rows = list(self.db.query(sql, args))
        return Version.from_sql(rows[0]) if rows else None

    def head_version(self, source: str) -> Optional[Version]:
        """The version recorded for the dataset's HEAD: the last draft/snapshot row."""
        sql = f"{_VERSIONS} WHERE v.source = ? AND v.kind != 'published' ORDER BY v.id DESC LIMIT 1"
        rows = list(self.db.query(sql, [source]))
        if rows:
            return Version.from_sql(rows[0])
        return self.latest_version(source)

    def set_remote_modified(self, version_id: int, stamp: Optional[str]) -> None:
        """The draft unchanged but touched upstream: its new stamp on the recorded version."""
        self.db.conn.execute("UPDATE versions SET remote_modified=? WHERE id=?", [stamp, version_id])

    def states_by_short_commit(self, source: str, given: str) -> list[Version]:
        """The rows whose commit starts with ``given`` (a short commit a user typed), oldest first."""
        sql = f'{_VERSIONS} WHERE v.source = ? AND substr(v."commit", 1, ?) = ? ORDER BY v.id'
        return [Version.from_sql(r) for r in self.db.query(sql, [source, len(given), given])]

    def version_by_commit(self, source: str, commit: str) -> Optional[Version]:
        sql = f'{_VERSIONS} WHERE v.source = ? AND v."commit" = ? ORDER BY v.id DESC LIMIT 1'
        rows = list(self.db.query(sql, [source, commit]))
        return Version.from_sql(rows[0]) if rows else None

    def record_version(
        self,
        source: str,
        *,
        label: str,
        kind: str,
        commit: str,
        tag: Optional[str],
        remote_modified: Optional[str],
        date: Optional[str],
        entries: Iterable[FileRow],
        doi: Optional[str] = None,
        citation: Optional[str] = None,
        meta: Optional[dict] = None,
        synced_at: Optional[str] = None,
    ) -> int:
        """Record a version and its complete file list in one transaction.

        Written only after the commit (and tag) exist, so the index can never
        name a commit the dataset lacks.
        """
        from neuromirror.index.version_rows import Stats, link_version, write_entries

        stats = Stats()
        with self.transaction():
            write_entries(self.db.conn, source, entries, stats)
            return link_version(
                self.db.conn,
                source,
                stats,
                dict(
                    label=label,
                    kind=kind,
                    commit=commit,
                    tag=tag,
                    remote_modified=remote_modified,
                    date=date,
                    doi=doi,
                    citation=citation,
                    meta=meta,
                    synced_at=synced_at or utcnow(),
                ),
            )

    def stage_version(self, source: str, entries: Iterable[FileRow], over: Optional[Over] = None) -> StagedVersion:
        """Start writing a version's files while its commit is made (:mod:`.version_rows`); with ``over``,
        ``entries`` are laid over a recorded version's files (:func:`~.version_rows.carry_entries`)."""
        from neuromirror.index.version_rows import StagedVersion

        return StagedVersion(self.path, source, entries, over)

    def version_files(self, version_id: int, page: int = 5000) -> Iterator[VersionFile]:
        """A version's files in path order (UTF-8 byte order), a page per short query.

        No cursor stays open while the caller works: in WAL mode a connection
        that writes (a source caching a checksum) while its own read is still
        open fails at once with "database is locked" if another sync wrote
        meanwhile.  Keyset paging on (source, path) uses the entries index.
        """
        row = self.db.conn.execute("SELECT source, fileset FROM versions WHERE id = ?", [version_id]).fetchone()
        if row is None:
            return
        (source, fid), last = row, ""
        while True:
            rows = self.db.conn.execute(
                _VERSION_FILES + " AND e.path > ? ORDER BY e.path LIMIT ?",
                [fid, fid, source, last, page],
            ).fetchall()
            yield from _previous_files(rows)
            if len(rows) < page:
                return
            last = rows[-1][0]

    def version_file(self, version_id: int, source: str, path: str) -> Optional[VersionFile]:
        """One file of a version (a point lookup on the entries index), or None."""
        return self.version_files_at(version_id, source, [path]).get(path)

    def version_files_at(self, version_id: int, source: str, paths: list[str]) -> dict[str, VersionFile]:
        """The files of a version at ``paths`` (those it has): point lookups, ``MANY_PATHS`` per query."""
        found: dict[str, VersionFile] = {}
        row = self.db.conn.execute("SELECT fileset FROM versions WHERE id = ?", [version_id]).fetchone()
        if row is None:
            return found
        fid = row[0]
        for i in range(0, len(paths), MANY_PATHS):
            chunk = paths[i : i + MANY_PATHS]
            rows = self.db.conn.execute(
                _VERSION_FILES + f" AND e.path IN ({','.join('?' * len(chunk))})",
                [fid, fid, source, *chunk],
            ).fetchall()
            found.update((f.path, f) for f in _previous_files(rows))
        return found

    def forget_source(self, source: str) -> None:
        from neuromirror.index import filesets

        with self.transaction():
            filesets.forget(self.db.conn, source)
            self.db.conn.execute("DELETE FROM versions WHERE source=?", [source])
            self.db.conn.execute("DELETE FROM entries WHERE source=?", [source])
            self.db.conn.execute("DELETE FROM pending WHERE source=?", [source])

    def remove_source(self, source: str) -> None:
        """Everything the index knows of a source: its rows, runs and pending items, and the source itself."""
        self.forget_source(source)
        with self.transaction():
            self.db.conn.execute("DELETE FROM runs WHERE source=?", [source])
            self.db.conn.execute("DELETE FROM sources WHERE id=?", [source])

    # -- runs -----------------------------------------------------------
    def start_run(self, source: str, trigger: str = "cli") -> int:
        cur = self.db.conn.execute(
            "INSERT INTO runs (source, started, outcome, trigger) VALUES (?,?,?,?)",
            [source, utcnow(), "running", trigger],
        )
        assert cur.lastrowid is not None  # an INSERT's row
        return cur.lastrowid

    def end_run(self, run_id: int, report: dict) -> None:
        self.db.conn.execute(
            "UPDATE runs SET ended=?, outcome=?, error=?, added=?, removed=?, changed=?, refused=?, pending=?, report=? WHERE id=?",
            [
                utcnow(),
                report.get("outcome"),
                report.get("error"),
                report.get("added", 0),
                report.get("removed", 0),
                report.get("changed", 0),
                len(report.get("refused", [])),
                len(report.get("pending", [])),
                json.dumps(report),
                run_id,
            ],
        )

    def runs(self, source: Optional[str] = None, limit: int = 50) -> list[dict]:
        if source:
            return list(self.db.query("SELECT * FROM runs WHERE source=? ORDER BY id DESC LIMIT ?", [source, limit]))
        return list(self.db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [limit]))

    # -- cache and pending ---------------------------------------------
    def cache_get(self, namespace: str, key: str) -> Optional[str]:
        row = self.db.conn.execute("SELECT value FROM cache WHERE namespace=? AND key=?", [namespace, key]).fetchone()
        return row[0] if row else None

    def cache_put(self, namespace: str, key: str, value: str) -> None:
        self.db.conn.execute(
            "INSERT OR REPLACE INTO cache (namespace, key, value) VALUES (?,?,?)", [namespace, key, value]
        )

    def cache_get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        """key -> value for those of ``keys`` that are cached (one query per 500 keys)."""
        keys = list(keys)
        found: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            found.update(
                self.db.conn.execute(
                    f"SELECT key, value FROM cache WHERE namespace=? AND key IN ({','.join('?' * len(chunk))})",
                    [namespace, *chunk],
                ).fetchall()
            )
        return found

    def cache_put_many(self, namespace: str, items: Iterable[tuple[str, str]]) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO cache (namespace, key, value) VALUES (?,?,?)",
                [(namespace, k, v) for k, v in items],
            )

    def set_pending(self, source: str, items: Iterable[Any]) -> None:
        with self.transaction():
            self.db.conn.execute("DELETE FROM pending WHERE source=?", [source])
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO pending (source, path, reason, remote_id, seen) VALUES (?,?,?,?,?)",
                [(source, p.path, p.reason, p.remote_id, utcnow()) for p in items],
            )

    def pending(self, source: str) -> list[dict]:
        return list(
            self.db.query("SELECT path, reason, remote_id, seen FROM pending WHERE source=? ORDER BY path", [source])
        )

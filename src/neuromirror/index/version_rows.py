"""A version's file rows in the index: written in one transaction, or staged while its commit is made.

A version's files go into ``entries`` (distinct file states) and are linked to the
version through its fileset (:mod:`.filesets`).  An ``entries`` row that no fileset holds is
invisible: every reader goes through the filesets, and the next sync that
meets the same file state reuses the row (``INSERT OR IGNORE`` on its identity).
That is what lets :class:`StagedVersion` write the rows of a large version on a
thread of its own while the version's commit is still being made, in short
transactions, and link them in one short transaction once the commit exists: the
index still never names a commit the dataset lacks, and a crash while staging
leaves nothing a reader sees.

Why: recording 10^6 files after the commit took 38 s of a cold AIND sync, on the
critical path, holding the index's write lock all along.  Staged, the SQLite work
runs beside the commit (its C code releases the GIL), each transaction holds the
lock for ~2 s (parallel syncs are not held up), and the version's own transaction
copies entry ids from a TEMP table (0.5 s for 10^6).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Optional

from neuromirror.index.connection import connect, transaction, utcnow
from neuromirror.index.filesets import assign_fileset
from neuromirror.records import FileRow
from neuromirror.util import counts
from neuromirror.util.crashpoints import crashpoint

#: rows per statement batch, and per transaction of a staged version
BATCH = 5000
STAGE_TRANSACTION = 100_000
#: page cache of the staging connection (KiB): the entries' key and checksum indexes take rows
#: in random order (10^6 rows: 36 s with SQLite's default 2 MB, 29 s with 32 MB, 25 s with 128 MB);
#: it runs beside the commit, whose git processes hold ~600 MB at 10^6 objects: a modest cache
STAGE_CACHE_KIB = 8192

_INSERT_ENTRY = (
    "INSERT OR IGNORE INTO entries (source, path, key, size, checksum_kind, checksum, urls, remote_id)"
    " VALUES (?,?,?,?,?,?,?,?)"
)
_ENTRY_ID = (
    "SELECT id FROM entries WHERE source=? AND path=? AND ifnull(key,'')=ifnull(?,'')"
    " AND ifnull(checksum,'')=ifnull(?,'') AND urls=?"
)
#: the entry ids of the version being written: a TEMP table, private to its connection
_STAGED = "neuromirror_staged"


class Over(NamedTuple):
    """A version written as changes over a recorded one: its files are ``version``'s but those at ``paths``,
    plus the rows staged after them (:func:`carry_entries`)."""

    version: int
    paths: frozenset[str]


class Stats:
    """How many files and bytes a version holds (the versions row's counts)."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0


def write_entries(
    conn: sqlite3.Connection, source: str, entries: Iterable[FileRow], stats: Stats, commit_every: Optional[int] = None
) -> None:
    """Insert ``entries``' rows and append their ids to the connection's staging table.

    With ``commit_every`` the rows go in transactions of that many; without, the caller's
    transaction holds them all.
    """
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_STAGED} (entry_id INTEGER PRIMARY KEY)")
    batch: list[tuple] = []
    in_txn = 0

    def flush() -> None:
        nonlocal batch, in_txn
        if commit_every and not in_txn:
            conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT_ENTRY, batch)
        counts.add("index-rows-written", len(batch))  # NEUROMIRROR_COUNTS: a resync by changes writes only those
        conn.executemany(
            f"INSERT OR IGNORE INTO temp.{_STAGED} (entry_id) " + _ENTRY_ID,
            [(b[0], b[1], b[2], b[5], b[6]) for b in batch],
        )
        in_txn += len(batch)
        batch = []
        if commit_every and in_txn >= commit_every:
            conn.execute("COMMIT")
            in_txn = 0
        crashpoint("index-write")

    for e in entries:
        stats.files += 1
        stats.bytes += e.size or 0
        batch.append((source, e.path, e.key, e.size, e.checksum_kind, e.checksum, json.dumps(_urls(e)), e.remote_id))
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    if commit_every and in_txn:
        conn.execute("COMMIT")
    crashpoint("index-write")


def carry_entries(conn: sqlite3.Connection, source: str, over: Over, stats: Stats) -> None:
    """Stage the entry ids of version ``over.version``'s files but those at ``over.paths``: a version made as
    changes over it (a draft resync read from its changes) carries the rest forward as the same rows, one
    INSERT ... SELECT in SQLite, where writing them again cost a Python row and two statements each."""
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_STAGED} (entry_id INTEGER PRIMARY KEY)")
    conn.execute(
        f"INSERT OR IGNORE INTO temp.{_STAGED} (entry_id) SELECT s.entry_id FROM versions v JOIN fileset_spans s"
        " ON s.source = v.source AND s.since <= v.fileset AND s.until > v.fileset WHERE v.id = ? AND v.source = ?",
        [over.version, source],
    )
    conn.executemany(
        f"DELETE FROM temp.{_STAGED} WHERE entry_id IN (SELECT id FROM entries WHERE source = ? AND path = ?)",
        [(source, p) for p in over.paths],
    )
    n, size = conn.execute(
        f"SELECT count(*), total(ifnull(e.size, 0)) FROM temp.{_STAGED} t JOIN entries e ON e.id = t.entry_id"
    ).fetchone()
    stats.files += int(n)
    stats.bytes += int(size)


def link_version(conn: sqlite3.Connection, source: str, stats: Stats, fields: dict[str, Any]) -> int:
    """The versions row and its files (the staged entry ids' fileset), inside the caller's transaction."""
    commit, label = fields["commit"], fields["label"]
    fid = assign_fileset(conn, source, _STAGED)
    conn.execute('DELETE FROM versions WHERE source=? AND "commit"=? AND label=?', [source, commit, label])
    cur = conn.execute(
        'INSERT INTO versions (source, label, kind, "commit", tag, synced_at, remote_modified, date, files, bytes, doi,'
        " citation, meta, fileset) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            source,
            label,
            fields["kind"],
            commit,
            fields.get("tag"),
            fields.get("synced_at") or utcnow(),
            fields.get("remote_modified"),
            fields.get("date"),
            stats.files,
            stats.bytes,
            fields.get("doi"),
            fields.get("citation"),
            json.dumps(fields.get("meta") or {}),
            fid,
        ],
    )
    assert cur.lastrowid is not None  # an INSERT's row
    vid = cur.lastrowid
    conn.execute(f"DELETE FROM temp.{_STAGED}")
    return vid


def add_entry_urls(conn: sqlite3.Connection, source: str, pairs: Iterable[tuple[str, str]]) -> int:
    """``(key, url)``: each URL added to the recorded URLs of ``source``'s file states of that key
    (``restore`` writing a key's bytes back gives it a new versioned URL; the git-annex branch has it,
    and ``reindex`` reads it from there).  A row whose file state, with the URL, is already recorded
    (the same path, key and URLs) is left as it is.  The rows changed."""
    return _edit_entry_urls(conn, source, pairs, lambda have, urls: have + [u for u in urls if u not in have])


def drop_entry_urls(conn: sqlite3.Connection, source: str, pairs: Iterable[tuple[str, str]]) -> int:
    """``(key, url)``: each URL taken out of the recorded URLs of ``source``'s file states of that key
    (:func:`add_entry_urls`' inverse: ``restore`` retiring the dead URL of a version the archive lost, once
    it gave the bytes back under a new one).  A row that would then equal another file state is left as
    it is.  The rows changed."""
    return _edit_entry_urls(conn, source, pairs, lambda have, urls: [u for u in have if u not in urls])


def _edit_entry_urls(
    conn: sqlite3.Connection,
    source: str,
    pairs: Iterable[tuple[str, str]],
    edit: Callable[[list[str], list[str]], list[str]],
) -> int:
    """Each file state of ``source`` whose key ``pairs`` names, its URL list made ``edit(have, urls)``."""
    by_key: dict[str, list[str]] = {}
    for key, url in pairs:
        by_key.setdefault(key, []).append(url)
    changed = 0
    with transaction(conn):
        for key, urls in by_key.items():
            rows = conn.execute("SELECT id, urls FROM entries WHERE source=? AND key=?", [source, key]).fetchall()
            for entry_id, old in rows:
                have = json.loads(old or "[]")
                new = edit(have, list(dict.fromkeys(urls)))
                if new != have:
                    cur = conn.execute("UPDATE OR IGNORE entries SET urls=? WHERE id=?", [json.dumps(new), entry_id])
                    changed += cur.rowcount
    return changed


class StagedVersion:
    """A version's files written into the index on a thread of their own; :meth:`finish` records
    the version once its commit exists, :meth:`abort` when it will not.

    The thread has its own connection (its TEMP table of entry ids is private to it);
    it reads ``entries`` once, so the caller must not read them meanwhile.
    """

    def __init__(self, index_path: Path, source: str, entries: Iterable[FileRow], over: Optional[Over] = None) -> None:
        self.source = source
        self._over = over
        self.stats = Stats()
        self._entries = entries
        self._conn = connect(index_path)
        self._error: Optional[BaseException] = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"index rows of {source}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._conn.execute(f"PRAGMA cache_size=-{STAGE_CACHE_KIB}")
            if self._over is not None:
                carry_entries(self._conn, self.source, self._over, self.stats)
            write_entries(self._conn, self.source, self._stopping(), self.stats, commit_every=STAGE_TRANSACTION)
            self._conn.execute("PRAGMA shrink_memory")  # the cache's pages, until the version is linked
        except BaseException as exc:  # handed to finish()
            self._error = exc
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    def _stopping(self) -> Iterable[FileRow]:
        for e in self._entries:
            if self._stop:
                raise _Aborted()
            yield e

    def finish(self, **fields: Any) -> int:
        """Link the staged rows to a new versions row in one transaction; its id."""
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            with transaction(self._conn):
                vid = link_version(self._conn, self.source, self.stats, fields)
                crashpoint("index-write")
            return vid
        finally:
            self._conn.close()

    def abort(self) -> None:
        """The commit failed: stop staging (the rows written stay unlinked, invisible)."""
        self._stop = True
        self._thread.join()
        self._conn.close()


class _Aborted(Exception):
    pass


def _urls(e: FileRow) -> list[str]:
    """An annexed file's URLs; a file in git has none here (its archive URLs are on the git-annex branch only,
    so that an index rebuilt from the datasets is the same)."""
    return list(e.urls) if e.key is not None else []

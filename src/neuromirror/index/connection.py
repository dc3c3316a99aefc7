"""How the index is opened and written: one place for the pragmas and the transaction discipline (the Index
itself and the staged version rows written on their own thread), for a reader's connection to a file it may
not write (a read-only mount), and for telling a damaged file from an index.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from neuromirror.errors import IndexDamaged

#: what SQLite says of a file that is not, or no longer, a whole database
DAMAGE = ("file is not a database", "database disk image is malformed", "malformed database schema")
#: the first bytes of every SQLite database file
MAGIC = b"SQLite format 3\0"


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: this process's open connections (and :class:`~neuromirror.index.db.Index` openings) per index file, by its
#: real path.  Closing ANY descriptor of a file drops every POSIX lock the process holds on it, SQLite's
#: included: a header read (:func:`damage_of`) beside an open connection drops its shared lock, and another
#: process's last close (the view's ``serve``) then takes the file as unused and deletes its ``-wal`` and
#: ``-shm`` under that connection; the next connection of this process fails ("disk I/O error").
HELD: dict[str, int] = {}
HELD_LOCK = threading.RLock()  # re-entered: Index holds it across its header read and its hold


def hold(path: Path | str) -> str:
    """Count one more user of the index file at ``path`` in this process; the key :func:`let_go` takes."""
    key = os.path.realpath(path)
    with HELD_LOCK:
        HELD[key] = HELD.get(key, 0) + 1
    return key


def let_go(key: str) -> None:
    with HELD_LOCK:
        HELD[key] = HELD.get(key, 1) - 1
        if HELD[key] <= 0:
            del HELD[key]


class Held(sqlite3.Connection):
    """A connection to an index file, counted in :data:`HELD` from its opening to its close (or its collection:
    a reader's connection per thread is never closed by hand)."""

    _held: Optional[str] = None

    def close(self) -> None:
        self._let_go()
        super().close()

    def __del__(self) -> None:
        self._let_go()

    def _let_go(self) -> None:
        key, self._held = self._held, None
        if key is not None:
            let_go(key)


def open_held(path: Path, database: Optional[str] = None, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect`` to the index file at ``path`` (``database``: a URI naming it), counted in :data:`HELD`."""
    key = hold(path)
    try:
        conn = sqlite3.connect(database or str(path), factory=Held, check_same_thread=False, **kwargs)
    except BaseException:
        let_go(key)
        raise
    conn._held = key
    return conn


def connect(path: Path) -> sqlite3.Connection:
    """A writing connection to the index file, as every writer of it sets one up (its WAL mode is the file's)."""
    conn = open_held(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def connect_reader(path: Path, timeout: float = 60) -> sqlite3.Connection:
    """A connection that never writes, to an index this process may not be able to write.

    A WAL database is read with its ``-shm`` file, which SQLite makes beside it: in a directory this process
    cannot write (a read-only mount, another user's root) and with no ``-shm`` there, ``mode=ro`` cannot
    open it ("unable to open database file").  The file is then read as ``immutable``: no locks, no WAL; no
    ``-wal`` lives there either, since no writer has the file open (a writer makes both beside it).
    Where the directory can be written, the connection is an ordinary one held to reads (``query_only``):
    a ``mode=ro`` one cannot make the ``-shm`` a writer's last close removed, and read as ``immutable`` it would
    miss what a writer (the service) puts in the WAL meanwhile: "database disk image is malformed"."""
    uri = path.absolute().as_uri()
    if path.exists() and os.access(path.parent, os.W_OK):
        conn = open_held(path, timeout=timeout, isolation_level=None)
        conn.execute("PRAGMA query_only=ON")
        return conn
    try:
        conn = open_held(path, f"{uri}?mode=ro", uri=True, timeout=timeout, isolation_level=None)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return conn
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc) or not path.exists():
            raise
    return open_held(path, f"{uri}?mode=ro&immutable=1", uri=True, timeout=timeout, isolation_level=None)


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying that the file is not (or no longer) a whole database."""
    return isinstance(exc, sqlite3.DatabaseError) and any(d in str(exc) for d in DAMAGE)


def damaged(path: Path, why: str) -> IndexDamaged:
    """The one line for an index that cannot be read as one, and what mends it."""
    return IndexDamaged(
        f"the index {path} is damaged ({why}): run `neuromirror reindex` to rebuild it from the datasets"
    )


def damage_of(path: Path) -> Optional[str]:
    """What is wrong with the file at ``path`` as a SQLite database, read from its 100-byte header, or None.

    Foreign bytes fail the magic; a truncated file is shorter than the pages its header counts (a count
    SQLite keeps valid beside its change counter).  A ``-wal`` or ``-journal`` beside it means a writer
    has it open (a checkpoint may be growing it): only the magic is judged then.  An empty file is the
    caller's to judge (a new index, or one emptied under a mirror that has datasets)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(100)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None
    if size == 0:
        return None
    if len(head) < 100 or not head.startswith(MAGIC):
        return "file is not a database"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    busy = any(Path(f"{path}{s}").exists() for s in ("-wal", "-journal"))
    if head[24:28] == head[92:96] and pages and size < pages * page and not busy:
        return f"truncated: {size} of its {pages * page} bytes"
    return None


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, taking the lock at once (a read turned write could deadlock), rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def _import_sqlite_utils() -> Any:
    """``sqlite_utils`` without the pandas and numpy it imports when they are installed.

    They serve its DataFrame and numpy-type support, which the index never uses, and
    cost ~1.5 s and ~40 MB that would stay for the whole sync (or service).  A module
    set to None in ``sys.modules`` makes ``import`` raise ImportError, which sqlite_utils
    takes as "not installed"; they stay importable for anyone else afterwards.
    """
    blocked = [m for m in ("pandas", "numpy") if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # type: ignore[assignment]  # None is the documented 'not installed' marker
    try:
        import sqlite_utils
    finally:
        for m in blocked:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]
    return sqlite_utils


class Database:
    """The part of ``sqlite_utils.Database`` the index uses on every run, on plain sqlite3.

    ``import sqlite_utils`` costs 1.5-2 s (it imports pandas and numpy when they are
    installed), more than a resync with no change or ``neuromirror versions`` may
    take in all; it is imported only for what needs it (any other attribute, delegated
    to a real ``sqlite_utils.Database``; the schema is plain SQL, :mod:`.schema`), and
    then without pandas and numpy (:func:`_import_sqlite_utils`).
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._full: Any = None

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters) if parameters is not None else self.conn.execute(sql)

    def query(self, sql: str, params: Any = None) -> Iterator[dict]:
        cursor = self.execute(sql, params or ())
        keys = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(keys, row))

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    def _sqlite_utils(self) -> Any:
        if self._full is None:
            self._full = _import_sqlite_utils().Database(self.conn)
        return self._full

    def __getitem__(self, table: str) -> Any:
        return self._sqlite_utils()[table]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._sqlite_utils(), name)

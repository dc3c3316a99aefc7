"""When each stored copy was last checked, per key and store; the stores themselves; the copies wanted;
the archive URLs readers found gone; the restore drills.

A copy counts as *verified* once its bytes were read back and matched the key: ``keep`` records
that for every key it put in a store (the bytes were hashed on the way in), ``verify --stores``
for every copy it re-read.  ``status --copies``, ``verify --kept`` and the service's rolling check
read these rows; the git-annex branch stays the truth of *where* copies are (a clone reads it),
this table only says *when* each was last seen right.  A bad copy's row is removed with its
location-log entry.

Tables (made when the index is opened, :data:`.schema.STORE_CHECKS`; dropping them loses only the check times):

* ``store_checks (store, key, checked, stored)``: ``store`` the store's UUID, ``checked`` the last
  good check (unix seconds), ``stored`` when neuromirror put it there (None: found there);
* ``stores (uuid, url, kind, name, seen)``: what a UUID is, for reports;
* ``copies_wanted (source, copies)``: the wanted number of copies per source (``keep --copies``,
  a mirror definition's ``copies:``), so that reports that run without the definition know it;
* ``keep_lag (version_id, source, label, seen, complete, lag)``: when a version's last wanted copy
  landed, ``lag`` seconds after the mirror first recorded it;
* ``keep_marks (version_id, store, ...)``: a fast view for a keep rerun (:mod:`neuromirror.keep.marks`):
  "every key of this version (fileset, commit, filters) is recorded in ``store`` and checked, at these
  git-annex branch commits", with the counts the report needs; ``store`` :data:`COUNTS` for the
  version's copies counted over every store.  One row per version and store; a bad or missing copy
  (:func:`forget`) drops its store's marks and every count mark; dropping the table costs one full keep.

And beside them, for the modules above this layer that read and write them (they issue no SQL):

* ``lost_urls (url, key, status, seen)``: an archive URL a reader found gone (:mod:`neuromirror.read.loss`),
  read and written on a reader's own connection (:func:`open_losses`);
* ``drills (id, started, finished, scope, ...)``: each restore drill and its report
  (:mod:`neuromirror.restore.drills`).

An index of an older neuromirror gets the tables it lacks on open; one opened read-only (a Dask worker,
another user's file) may lack them: the readers below then find nothing and report nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from neuromirror.index.connection import open_held
from neuromirror.index.rows import DrillRow, Version
from neuromirror.index.schema import STORE_CHECKS as SCHEMA  # noqa: F401  (bench/scenarios/restore.py)
from neuromirror.index.schema import ensure_named

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: the ``store`` of a version's mark of its copies counted over every store
COUNTS = "*copies*"
_BATCH = 900  # SQLite's variable limit is 999 in old builds


def _rows(index: Index, sql: str, args: Sequence = ()) -> list[tuple]:
    try:
        return index.db.conn.execute(sql, list(args)).fetchall()
    except sqlite3.OperationalError:  # no such table: never written here
        return []


def record_store(index: Index, uuid: str, url: str, kind: str, name: str) -> None:
    with index.transaction():
        index.db.conn.execute(
            "INSERT INTO stores (uuid, url, kind, name, seen) VALUES (?, ?, ?, ?, ?) ON CONFLICT(uuid) DO UPDATE"
            " SET url=excluded.url, kind=excluded.kind, name=excluded.name, seen=excluded.seen",
            [uuid, url, kind, name, time.time()],
        )


def known_stores(index: Index) -> dict[str, dict]:
    """uuid -> {url, kind, name} of every store keep or verify has used here."""
    rows = _rows(index, "SELECT uuid, url, kind, name FROM stores")
    return {r[0]: {"url": r[1], "kind": r[2], "name": r[3]} for r in rows}


def record_checked(
    index: Index, store: str, keys: Iterable[str], *, when: Optional[float] = None, stored: bool = False
) -> None:
    """``keys`` read back (or written verified) in ``store`` at ``when``; ``stored``: neuromirror put them there."""
    now = when if when is not None else time.time()
    # in key order: the table's B-tree is then walked front to back, not at random (10^5 keys: 0.57 s
    # against 2.3 s in the order verify found them)
    rows = [(store, k, now, now if stored else None) for k in sorted(set(keys))]
    if not rows:
        return
    with index.transaction():
        index.db.conn.executemany(
            "INSERT INTO store_checks (store, key, checked, stored) VALUES (?, ?, ?, ?) ON CONFLICT(store, key)"
            " DO UPDATE SET checked=excluded.checked, stored=COALESCE(excluded.stored, store_checks.stored)",
            rows,
        )


def forget(index: Index, store: str, keys: Iterable[str], *, marks: bool = True) -> None:
    """A copy found bad or missing: no check time for it any more, and no mark of ``store`` or count mark
    holds (the key's versions are not known here: every one is read in full by the next keep).
    ``marks=False``: keys retention dropped, which no kept version has (their marks still hold)."""
    with index.transaction():
        index.db.conn.executemany(
            "DELETE FROM store_checks WHERE store=? AND key=?", [(store, k) for k in sorted(set(keys))]
        )
        if marks:
            index.db.conn.execute("DELETE FROM keep_marks WHERE store IN (?, ?)", [store, COUNTS])


def marks_of(index: Index, version_id: int) -> dict[str, dict]:
    """store (or :data:`COUNTS`) -> the version's mark: fileset, version_commit, terms, branches, counts, marked."""
    rows = _rows(
        index,
        "SELECT store, fileset, version_commit, terms, branches, counts, marked FROM keep_marks WHERE version_id=?",
        [version_id],
    )
    cols = ("fileset", "version_commit", "terms", "branches", "counts", "marked")
    return {r[0]: dict(zip(cols, r[1:])) for r in rows}


def set_mark(
    index: Index,
    version_id: int,
    store: str,
    *,
    source: str,
    fileset: Optional[int],
    version_commit: str,
    terms: str,
    branches: str,
    counts: str,
) -> None:
    """The version's mark for ``store`` (one row per version and store: replaced)."""
    with index.transaction():
        index.db.conn.execute(
            "INSERT OR REPLACE INTO keep_marks (version_id, store, source, fileset, version_commit, terms, branches,"
            " counts, marked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [version_id, store, source, fileset, version_commit, terms, branches, counts, time.time()],
        )


def restamp_mark(index: Index, version_id: int, store: str, branches: str) -> None:
    """A mark found to hold at newer git-annex branch commits: those recorded."""
    with index.transaction():
        index.db.conn.execute(
            "UPDATE keep_marks SET branches=? WHERE version_id=? AND store=?", [branches, version_id, store]
        )


def drop_marks(index: Index, source: Optional[str] = None) -> None:
    """The marks of a source's versions (None: every mark): its next keep reads them in full."""
    with index.transaction():
        if source is None:
            index.db.conn.execute("DELETE FROM keep_marks")
        else:
            index.db.conn.execute("DELETE FROM keep_marks WHERE source=?", [source])


def checks_of(index: Index, keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """key -> {store uuid: last good check} for ``keys``."""
    out: dict[str, dict[str, float]] = {}
    keys = list(dict.fromkeys(keys))
    for i in range(0, len(keys), _BATCH):
        part = keys[i : i + _BATCH]
        sql = f"SELECT key, store, checked FROM store_checks WHERE key IN ({','.join('?' * len(part))})"
        for key, store, checked in _rows(index, sql, part):
            if checked is not None:
                out.setdefault(key, {})[store] = float(checked)
    return out


def stored_times(index: Index, keys: Sequence[str]) -> dict[str, list[float]]:
    """key -> when neuromirror put it in each store (the keep lag's end points)."""
    out: dict[str, list[float]] = {}
    keys = list(dict.fromkeys(keys))
    for i in range(0, len(keys), _BATCH):
        part = keys[i : i + _BATCH]
        sql = f"SELECT key, stored FROM store_checks WHERE stored IS NOT NULL AND key IN ({','.join('?' * len(part))})"
        for key, stored in _rows(index, sql, part):
            out.setdefault(key, []).append(float(stored))
    return out


def set_wanted(index: Index, source: str, copies: int) -> None:
    with index.transaction():
        index.db.conn.execute(
            "INSERT INTO copies_wanted (source, copies) VALUES (?, ?) ON CONFLICT(source) DO UPDATE"
            " SET copies=excluded.copies",
            [source, copies],
        )


def wanted(index: Index, source: str, default: int = 1) -> int:
    rows = _rows(index, "SELECT copies FROM copies_wanted WHERE source=?", [source])
    return int(rows[0][0]) if rows else default


def copies_sources(index: Index) -> list[str]:
    """The sources ``status --copies`` and ``verify --stores`` cover without a SPEC, in the index's order: every
    source with a wanted number (its missing copies shown as missing) and every one a keep gave a store (its
    copies are somewhere to re-read, wanted number or not: a source kept without ``--copies`` beside one kept
    with it was once left unread, its loss unseen); when no source has a wanted number, every source."""
    known = [s.id for s in index.sources()]
    counted = {str(s) for (s,) in _rows(index, "SELECT source FROM copies_wanted")}
    if not counted:
        return known
    counted |= {s for s, _ in kept_pairs(index)}
    return [s for s in known if s in counted]


def record_lag(index: Index, version_id: int, source: str, label: str, seen: float, complete: float) -> bool:
    """The version's last wanted copy landed at ``complete``; False if recorded before (the first counts)."""
    with index.transaction():
        cur = index.db.conn.execute(
            "INSERT OR IGNORE INTO keep_lag (version_id, source, label, seen, complete, lag) VALUES (?, ?, ?, ?, ?, ?)",
            [version_id, source, label, seen, complete, max(0.0, complete - seen)],
        )
    return cur.rowcount > 0


def lags(index: Index) -> list[dict]:
    """Every version's recorded keep lag, oldest first."""
    rows = _rows(index, "SELECT version_id, source, label, seen, complete, lag FROM keep_lag ORDER BY complete")
    return [dict(zip(("version_id", "source", "label", "seen", "complete", "lag"), r)) for r in rows]


# -- archive URLs found gone (read.loss: a reader's own connection, one per thread) -------------------
def open_losses(path: Path) -> sqlite3.Connection:
    """A reader's connection to the index file at ``path`` for the lost URLs, the tables an index of an
    older neuromirror lacks made (not on a file this process may not write: it then knows no loss)."""
    conn = open_held(path, timeout=10, isolation_level=None)  # counted: see connection.HELD
    try:
        ensure_named(conn)
    except sqlite3.OperationalError:
        pass  # busy past the timeout, or read-only: the readers below find no table and know nothing
    return conn


def lost_status(conn: sqlite3.Connection, url: str) -> Optional[str]:
    """What ``url`` answered when a reader found it gone, or None (not known gone, or no table)."""
    try:
        row = conn.execute("SELECT status FROM lost_urls WHERE url = ?", (url,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else str(row[0])


def record_lost(conn: sqlite3.Connection, url: str, key: Optional[str], status: str) -> None:
    """``url`` (of ``key``) answered ``status`` (gone) now; raises ``sqlite3.OperationalError`` on a read-only index."""
    conn.execute(
        "INSERT OR REPLACE INTO lost_urls (url, key, status, seen) VALUES (?, ?, ?, ?)", (url, key, status, time.time())
    )


def forget_lost(conn: sqlite3.Connection, url: str) -> None:
    """``url`` serves again (nothing on a read-only index)."""
    try:
        conn.execute("DELETE FROM lost_urls WHERE url = ?", (url,))
    except sqlite3.OperationalError:
        pass


# -- restore drills (restore.drills) ----------------------------------------------------------------
#: a drill's columns as :func:`drill_rows` gives them (:class:`~neuromirror.index.rows.DrillRow`)
DRILL_COLUMNS = (
    "started",
    "finished",
    "scope",
    "target",
    "objects",
    "bytes",
    "seconds",
    "mismatches",
    "failed",
    "result",
)


def record_drill(
    index: Index,
    *,
    started: float,
    finished: float,
    scope: str,
    target: str,
    objects: int,
    size: int,
    seconds: float,
    mismatches: int,
    failed: int,
    result: str,
    report: str,
) -> None:
    """A drill's result (``size``: the bytes written; ``report``: its JSON); nothing on a read-only index."""
    row = [started, finished, scope, target, objects, size, seconds, mismatches, failed, result, report]
    try:
        with index.transaction():
            index.db.conn.execute(
                f"INSERT INTO drills ({', '.join(DRILL_COLUMNS)}, report) VALUES ({','.join('?' * len(row))})", row
            )
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise


def drill_scopes(index: Index) -> list[tuple[int, str]]:
    """(id, scope) of every drill, newest first."""
    return [(int(r[0]), r[1]) for r in _rows(index, "SELECT id, scope FROM drills ORDER BY id DESC")]


def drill_rows(
    index: Index, *, scope: Optional[str] = None, ids: Optional[Sequence[int]] = None, limit: Optional[int] = None
) -> list[DrillRow]:
    """Drills newest first (of ``scope``; with an id in ``ids``): their :data:`DRILL_COLUMNS`, report and id."""
    where: list[str] = []
    args: list[Any] = []
    if scope is not None:
        where.append("scope = ?")
        args.append(scope)
    if ids is not None:
        where.append(f"id IN ({','.join('?' * len(ids))})")
        args.extend(ids)
    sql = f"SELECT {', '.join(DRILL_COLUMNS)}, report, id FROM drills"
    sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
    sql += f" LIMIT {int(limit)}" if limit is not None else ""
    n = len(DRILL_COLUMNS)
    return [
        DrillRow(int(r[n + 1]), dict(zip(DRILL_COLUMNS, r[:n])), json.loads(r[n]) if r[n] else {})
        for r in _rows(index, sql, args)
    ]


# -- cold packs whose thaw a read asked for (pack_thaws): status, /metrics and exit 75's "since" ----------
@dataclass(frozen=True)
class Thaw:
    store: str  # the store's UUID
    pack: str
    url: str
    storage_class: str
    asked: float


def record_thaws(index: Index, store: str, url: str, packs: Iterable[tuple[str, str]]) -> None:
    """``packs`` ((pack, storage class)) thawing in ``store``: recorded once (the first ask's time stays)."""
    now = time.time()
    with index.transaction():
        index.db.conn.executemany(
            "INSERT INTO pack_thaws (store, pack, url, storage_class, asked) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(store, pack) DO NOTHING",
            [(store, pack, url, klass, now) for pack, klass in packs],
        )


def clear_thaws(index: Index, store: str, packs: Iterable[str]) -> None:
    """Packs found readable (thawed): no longer outstanding."""
    done = list(packs)
    if done:
        with index.transaction():
            index.db.conn.executemany("DELETE FROM pack_thaws WHERE store = ? AND pack = ?", [(store, p) for p in done])


def first_asked(index: Index, store: str) -> Optional[float]:
    rows = _rows(index, "SELECT min(asked) FROM pack_thaws WHERE store = ?", [store])
    return rows[0][0] if rows and rows[0][0] is not None else None


def outstanding(index: Index) -> list[Thaw]:
    """Every thaw asked for and not seen done, oldest first (read only: no table made)."""
    sql = "SELECT store, pack, url, storage_class, asked FROM pack_thaws ORDER BY asked"
    return [Thaw(str(s), str(p), str(u or ""), str(c or ""), float(a or 0)) for s, p, u, c, a in _rows(index, sql)]


# -- the versions each store was given (kept_versions): what retention may drop (keep --prune) ------------------
def note_kept(index: Index, store: str, versions: Iterable[tuple[int, str]]) -> None:
    """``versions`` ((version id, source)) given to ``store`` by a keep, whole or not (the first time stays)."""
    now = time.time()
    with index.transaction():
        index.db.conn.executemany(
            "INSERT INTO kept_versions (store, version_id, source, kept) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(store, version_id) DO NOTHING",
            [(store, vid, source, now) for vid, source in versions],
        )


def kept_in(index: Index, store: str) -> list[Version]:
    """Every version ``store`` was given, oldest first."""
    rows = index.db.query(
        "SELECT v.*, s.dataset AS relpath FROM kept_versions k JOIN versions v ON v.id = k.version_id"
        " LEFT JOIN sources s ON s.id = v.source WHERE k.store = ? ORDER BY k.version_id",
        [store],
    )
    return [Version.from_sql(r) for r in rows]


def drop_kept(index: Index, store: str, version_ids: Iterable[int]) -> None:
    """Versions retention dropped from ``store``: no longer given to it, and their marks there gone."""
    pairs = [(store, int(v)) for v in version_ids]
    with index.transaction():
        index.db.conn.executemany("DELETE FROM kept_versions WHERE store = ? AND version_id = ?", pairs)
        index.db.conn.executemany("DELETE FROM keep_marks WHERE store = ? AND version_id = ?", pairs)


def kept_pairs(index: Index) -> set[tuple[str, str]]:
    """(source, store UUID) of every version a keep gave a store: the stores a source is backed up to."""
    return {(str(s), str(u)) for s, u in _rows(index, "SELECT DISTINCT source, store FROM kept_versions")}


def newest_checks(index: Index) -> dict[str, float]:
    """store UUID -> its newest good check of any copy (keep's on the way in, or verify's)."""
    rows = _rows(index, "SELECT store, max(checked) FROM store_checks GROUP BY store")
    return {str(u): float(t) for u, t in rows if t is not None}


# -- the last verify --stores of each store (the cache table, namespace VERIFIED): the backup page --------------
VERIFIED = "store-verified"


def record_verified(index: Index, results: dict[str, dict]) -> None:
    """store UUID -> what the last ``verify --stores`` found there (``at``, ``checked``, ``bad``, ``missing``...)."""
    if results:
        index.cache_put_many(VERIFIED, [(u, json.dumps(r, sort_keys=True)) for u, r in results.items()])


def last_verified(index: Index, stores: Iterable[str]) -> dict[str, dict]:
    """store UUID -> its last ``verify --stores`` result (:func:`record_verified`), for the stores that had one."""
    return {u: json.loads(v) for u, v in index.cache_get_many(VERIFIED, list(stores)).items()}


# -- stores found not reachable (the cache table, namespace UNREACHABLE): since when, and why --------------------
UNREACHABLE = "store-unreachable"


def note_reach(index: Index, seen: dict[str, Optional[str]]) -> None:
    """store UUID -> why it was not reachable just now (None: it was): the first time it was not is kept until it
    is reachable again.  Nothing on a read-only index (the reports then say it from their own look)."""
    before = index.cache_get_many(UNREACHABLE, list(seen))
    now = time.time()
    put = [
        (u, json.dumps({"since": json.loads(before[u])["since"] if u in before else now, "why": why}))
        for u, why in seen.items()
        if why is not None and (u not in before or json.loads(before[u]).get("why") != why)
    ]
    back = [(UNREACHABLE, u) for u, why in seen.items() if why is None and u in before]
    try:
        index.cache_put_many(UNREACHABLE, put)
        if back:
            with index.transaction():
                index.db.conn.executemany("DELETE FROM cache WHERE namespace=? AND key=?", back)
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise


def unreachable(index: Index) -> dict[str, dict]:
    """store UUID -> {since (unix seconds), why} of every store last found not reachable."""
    rows = _rows(index, "SELECT key, value FROM cache WHERE namespace=?", [UNREACHABLE])
    return {str(k): json.loads(v) for k, v in rows}

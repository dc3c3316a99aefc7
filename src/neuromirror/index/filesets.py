"""A version's file list, stored once per distinct state and shared with the states around it.

A source's states form a line: each sync's file list is the one before with a few files
added, removed or changed.  The index numbers each distinct list (a ``filesets`` row: id,
source, entry count) and stores, per entry, the spans of filesets that hold it
(``fileset_spans``: the entry is in every fileset ``F`` of its source with
``since <= F < until``; ``until`` is :data:`OPEN` while the entry is in the source's newest
fileset).  A version points at its fileset (``versions.fileset``).

What a new state costs: a file added is one span row, a file removed or changed closes its
span (an UPDATE: no new row) and opens one for the new entry, an unchanged file costs nothing,
and a state equal to the newest fileset (a published version whose tree the draft already
had, a snapshot re-recorded) reuses it: no row at all.  Before this, every version stored
every file again (~1,100 rows a sync of a 1,000-file dandiset, whatever changed).

Reading: a fileset's entries are the spans with ``since <= F < until``.  The newest
fileset's are exactly the open spans (one range of the ``(source, until, entry_id)``
key); whether one entry is in a fileset is a seek on ``(entry_id, since)``.  SQL readers
(Datasette, ``search``, tests) use the ``version_files`` view, (version_id, entry_id) as
the table of schema 1 was; Python readers go through :class:`~neuromirror.index.db.Index`'s
``version_files`` / ``version_files_at``.  The tables, indexes and view are made with the
rest of the index's schema (:data:`.schema.FILESETS`).
"""

from __future__ import annotations

import sqlite3
from typing import Optional

#: ``until`` of a span still open: larger than any fileset id
OPEN = 1 << 62

#: the spans of the entry ``e`` that put it in the fileset given twice as parameter
IN_FILESET = "s.entry_id = e.id AND s.since <= ? AND s.until > ?"


def assign_fileset(conn: sqlite3.Connection, source: str, staged: str) -> int:
    """The fileset holding exactly the entry ids of the TEMP table ``staged`` (column ``entry_id``,
    its primary key), made from the source's newest one if it differs; inside the caller's transaction.

    Costs one seek per staged id (is it open?), one per open span (is it still staged?), and
    a row per entry that is new to the state.
    """
    n = conn.execute(f"SELECT count(*) FROM temp.{staged}").fetchone()[0]
    newest = conn.execute(
        "SELECT id, entries FROM filesets WHERE source = ? ORDER BY id DESC LIMIT 1", [source]
    ).fetchone()
    fresh = f"SELECT t.entry_id FROM temp.{staged} t WHERE NOT EXISTS (SELECT 1 FROM fileset_spans s WHERE s.source = ? AND s.until = {OPEN} AND s.entry_id = t.entry_id)"
    if newest is not None and newest[1] == n:
        if conn.execute(f"SELECT EXISTS ({fresh})", [source]).fetchone()[0] == 0:
            return int(newest[0])
    cur = conn.execute("INSERT INTO filesets (source, entries) VALUES (?, ?)", [source, n])
    assert cur.lastrowid is not None  # an INSERT's row
    fid = int(cur.lastrowid)
    # entries new to the state first (they are told apart from the open spans, which the UPDATE changes)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS neuromirror_fresh (entry_id INTEGER PRIMARY KEY)")
    conn.execute(f"INSERT INTO temp.neuromirror_fresh {fresh}", [source])
    conn.execute(
        f"UPDATE fileset_spans SET until = ? WHERE source = ? AND until = {OPEN}"
        f" AND entry_id NOT IN (SELECT entry_id FROM temp.{staged})",
        [fid, source],
    )
    conn.execute(
        f"INSERT INTO fileset_spans (source, until, entry_id, since) SELECT ?, {OPEN}, entry_id, ?"
        " FROM temp.neuromirror_fresh",
        [source, fid],
    )
    conn.execute("DELETE FROM temp.neuromirror_fresh")
    return fid


def forget(conn: sqlite3.Connection, source: str) -> None:
    """Every fileset and span of ``source`` (inside the caller's transaction)."""
    conn.execute("DELETE FROM fileset_spans WHERE source = ?", [source])
    conn.execute("DELETE FROM filesets WHERE source = ?", [source])


# -- what the audit reads (neuromirror.audit) ----------------------------------------------------


def open_unversioned_blobs(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(source, path, urls JSON) of every source's newest-state entries naming an archive blob (``/blobs/``)
    by no ``versionId``: blobs a sync could not pin (the audit's ``blob-unpinned``)."""
    return conn.execute(
        f"SELECT s.source, e.path, e.urls FROM fileset_spans s JOIN entries e ON e.id = s.entry_id"
        f" WHERE s.until = {OPEN} AND e.urls LIKE '%/blobs/%' AND e.urls NOT LIKE '%versionId=%'"
    ).fetchall()


def difference(conn: sqlite3.Connection, source: str, a: int, b: int, limit: int = 20) -> list[str]:
    """Paths whose entry is in one of filesets ``a`` and ``b`` of ``source`` and not in the other (at most
    ``limit``): what changed between two states."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT e.path FROM fileset_spans s JOIN entries e ON e.id = s.entry_id WHERE s.source = ?"
            " AND ((s.since <= ? AND s.until > ?) != (s.since <= ? AND s.until > ?)) ORDER BY e.path LIMIT ?",
            [source, a, a, b, b, limit],
        )
    ]


# -- what the backup page reads (neuromirror.service.pages.backup) ---------------------------------------

#: an annexed file of a recorded state, one row per span: the top level's entries, and the files of the Zarr
#: states the catalogue has read (``zarr_files``: a Zarr's objects live in its own dataset, not in ``entries``)
_HELD = (
    "SELECT s.source AS source, e.key AS key, e.size AS size, s.since AS since, s.until AS until"
    " FROM fileset_spans s JOIN entries e ON e.id = s.entry_id"
    " WHERE ifnull(e.key, '') != '' AND ifnull(e.checksum_kind, '') NOT IN ('git', 'subdataset')"
    " UNION ALL SELECT s.source, z.key, z.size, s.since, s.until FROM fileset_spans s"
    ' JOIN entries e ON e.id = s.entry_id JOIN zarr_files z ON z."commit" = e.checksum'
    " WHERE e.checksum_kind = 'subdataset' AND ifnull(z.key, '') != '' AND ifnull(z.checksum_kind, '') != 'git'"
)


def held_counts(conn: sqlite3.Connection) -> list[tuple[str, int, Optional[str], int, int, int]]:
    """(source, current, stores, objects, bytes, first fileset) over every annexed key any recorded state of any
    source holds, grouped: ``current`` 1 for the keys the source's newest state holds, ``stores`` the UUIDs
    (sorted, comma-separated; None: no store) of the stores holding a checked copy of each, ``first fileset``
    the earliest file list holding one of the group's keys.  One query for the whole mirror: a few rows per
    source whatever its versions and files."""
    return conn.execute(
        "SELECT source, cur, stores, count(*), sum(size), min(since) FROM (SELECT k.source AS source, k.size AS size,"
        " k.cur AS cur, k.since AS since, (SELECT group_concat(store) FROM (SELECT c.store AS store FROM store_checks c"
        " WHERE c.key = k.key AND c.checked IS NOT NULL ORDER BY c.store)) AS stores FROM (SELECT source, key,"
        f" max(size) AS size, max(until = {OPEN}) AS cur, min(since) AS since FROM ({_HELD}) GROUP BY source, key) k)"
        " GROUP BY source, cur, stores"
    ).fetchall()


def uncounted_zarrs(conn: sqlite3.Connection) -> dict[str, int]:
    """source -> Zarr states (subdataset commits) its recorded states pin whose files the catalogue has not read."""
    rows = conn.execute(
        "SELECT s.source, count(DISTINCT e.checksum) FROM fileset_spans s JOIN entries e ON e.id = s.entry_id"
        " WHERE e.checksum_kind = 'subdataset' AND e.checksum NOT IN (SELECT \"commit\" FROM zarr_catalog)"
        " GROUP BY s.source"
    )
    return {str(sid): int(n) for sid, n in rows}


def unkept_pinned_gone(conn: sqlite3.Connection) -> list[tuple[str, str, str, int, str, int]]:
    """(source, path, key, size, urls JSON, until) of the top-level files an older state holds by a versioned S3
    URL, whose key the newest state does not hold and no store holds a checked copy of: what may rest on a
    noncurrent S3 version.  ``until``: the first fileset without the entry."""
    return conn.execute(
        "SELECT s.source, e.path, e.key, e.size, e.urls, max(s.until) FROM fileset_spans s"
        f" JOIN entries e ON e.id = s.entry_id WHERE s.until != {OPEN} AND e.urls LIKE '%versionId=%'"
        " AND ifnull(e.key, '') != '' AND NOT EXISTS (SELECT 1 FROM store_checks c WHERE c.key = e.key"
        " AND c.checked IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM entries o JOIN fileset_spans os"
        f" ON os.entry_id = o.id WHERE o.key = e.key AND os.source = s.source AND os.until = {OPEN})"
        " GROUP BY s.source, e.id"
    ).fetchall()


def newest_versioned_urls(conn: sqlite3.Connection, source: str) -> list[str]:
    """The URLs JSON of the newest state's top-level files that name an S3 version (which versions are current)."""
    return [
        r[0]
        for r in conn.execute(
            f"SELECT e.urls FROM fileset_spans s JOIN entries e ON e.id = s.entry_id WHERE s.source = ?"
            f" AND s.until = {OPEN} AND e.urls LIKE '%versionId=%'",
            [source],
        )
    ]


def unkept_newest(conn: sqlite3.Connection, most: int = 20) -> list[tuple[str, str, str, int]]:
    """(source, path, key, size) of the first ``most`` annexed top-level files (by path) of each source's newest
    state that no store holds a checked copy of: what the backup page names as lost with the archive."""
    return conn.execute(
        "SELECT source, path, key, size FROM (SELECT s.source AS source, e.path AS path, e.key AS key,"
        " e.size AS size, row_number() OVER (PARTITION BY s.source ORDER BY e.path) AS n FROM fileset_spans s"
        f" JOIN entries e ON e.id = s.entry_id WHERE s.until = {OPEN} AND ifnull(e.key, '') != ''"
        " AND ifnull(e.checksum_kind, '') NOT IN ('git', 'subdataset') AND NOT EXISTS (SELECT 1 FROM store_checks c"
        " WHERE c.key = e.key AND c.checked IS NOT NULL)) WHERE n <= ? ORDER BY source, path",
        [most],
    ).fetchall()


def newest_pinned(conn: sqlite3.Connection, source: str) -> list[tuple[str, Optional[str], Optional[int], str]]:
    """(path, annex key, size, urls JSON) of the newest state's top-level files that name an S3 version:
    what ``audit --inventory`` looks for in the archive's inventory."""
    return conn.execute(
        f"SELECT e.path, e.key, e.size, e.urls FROM fileset_spans s JOIN entries e ON e.id = s.entry_id"
        f" WHERE s.source = ? AND s.until = {OPEN} AND e.urls LIKE '%versionId=%'",
        [source],
    ).fetchall()

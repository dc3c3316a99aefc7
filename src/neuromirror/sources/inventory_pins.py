"""Pins from the archive bucket's S3 Inventory: each current object's (versionId, size, ETag), looked up
instead of asked (``sync --inventory``, issue 75).

Why: a cold sync of DANDI pins each blob with a HEAD and lists each Zarr with ``ListObjectVersions``:
~10^8 requests at the archive's size, for what the bucket's daily inventory already lists.  Here the
inventory's current versions under the archive's prefixes (``blobs/``, ``zarr/``) are loaded once into
a SQLite file beside the index (one row per key, written only where a later date's inventory differs:
a new date costs the rows that changed), and the sync's blob pinning and Zarr listing read it
(:func:`blob_pin`, :func:`zarr_objects`) in every process it starts: the file is named in
``NEUROMIRROR_INVENTORY_PINS`` while the sync runs (:func:`pins_from`).  A key the inventory does not
hold (written after its date) is asked as before; a Zarr whose inventory listing does not give the
archive's checksum is listed again from the bucket (:mod:`neuromirror.engine.zarr.job`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from neuromirror.inventory import Inventory
from neuromirror.inventory.rows import PinFields
from neuromirror.sources import s3urls

#: the SQLite file a running sync's processes read the pins from
PINS_ENV = "NEUROMIRROR_INVENTORY_PINS"
#: the archive's prefixes whose current versions are loaded
PREFIXES = ("blobs/", "zarr/")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pins (key TEXT PRIMARY KEY, version_id TEXT, size INTEGER, etag TEXT,"
    " modified TEXT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)",
    # a blob's noncurrent versions (few: a blob is written once, deleted at most): the date's own, replaced whole
    "CREATE TABLE IF NOT EXISTS older (key TEXT, version_id TEXT, size INTEGER, etag TEXT, modified TEXT)",
    "CREATE INDEX IF NOT EXISTS idx_older_key ON older(key)",
)
#: a row written only where it differs: a later date's inventory touches the rows that changed
_UPSERT = (
    "INSERT INTO pins VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET version_id = excluded.version_id,"
    " size = excluded.size, etag = excluded.etag, modified = excluded.modified"
    " WHERE pins.version_id IS NOT excluded.version_id OR pins.size IS NOT excluded.size"
    " OR pins.etag IS NOT excluded.etag"
)


@dataclass(frozen=True)
class Loaded:
    """What loading an inventory date did: its bucket and date, the rows read, the pins written or removed
    (``again``: the pins file held this very date already, nothing was read)."""

    bucket: str
    date: str
    rows: int
    changed: int
    again: bool = False

    def note(self) -> str:
        said = f"S3 Inventory of s3://{self.bucket} dated {self.date}"
        if self.again:
            return f"{said}: already loaded, nothing read"
        return f"{said}: {self.rows} rows read, {self.changed} pin(s) new or changed"


def _fingerprint(inv: Inventory) -> str:
    """What a loaded date is known by: its bucket, date and data files (their MD5s), and the prefixes read."""
    parts = (inv.manifest.source_bucket, inv.date, *PREFIXES, *(f.md5 for f in inv.files))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def load(inv: Inventory, path: Path) -> Loaded:
    """The inventory's current versions under :data:`PREFIXES` written into the pins file ``path``
    (a key whose newest row is a delete marker is taken out), one data file at a time.  A date the file
    holds already (written in the same transaction as its pins) is not read again: a sync of each dandiset
    with the same ``--inventory`` reads it once, not ~5 us a row every time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        for sql in _SCHEMA:
            conn.execute(sql)
        mark = _fingerprint(inv)
        if conn.execute("SELECT value FROM meta WHERE name = 'loaded'").fetchone() == (mark,):
            return Loaded(inv.manifest.source_bucket, inv.date, 0, 0, again=True)
        conn.execute("DELETE FROM older")
        before = conn.total_changes
        rows = 0
        for file in inv.files:
            current = _Current()
            # one statement over the file's rows, fed as they are read: no row kept beyond its binding
            conn.executemany(_UPSERT, current.of(inv.pin_fields(file, PREFIXES)))
            conn.executemany("DELETE FROM pins WHERE key = ?", current.gone)
            conn.executemany("INSERT INTO older VALUES (?, ?, ?, ?, ?)", current.older)
            rows += current.rows
        changed = conn.total_changes - before - conn.execute("SELECT count(*) FROM older").fetchone()[0]
        bucket = inv.manifest.source_bucket
        conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", [("bucket", bucket), ("date", inv.date), ("loaded", mark)]
        )
        conn.commit()
        return Loaded(bucket, inv.date, rows, changed)
    finally:
        conn.close()


class _Current:
    """One data file's pin fields split: its current versions given as (key, version id, size, ETag,
    modified) to upsert as they are read; its current delete markers (:attr:`gone`) and its blobs' noncurrent
    versions (:attr:`older`) put aside (few: a blob is written once, deleted at most)."""

    def __init__(self) -> None:
        self.rows = 0
        self.gone: list[tuple[str]] = []
        self.older: list[tuple[Any, ...]] = []

    def of(self, fields: Iterable[PinFields]) -> Iterator[tuple[Any, ...]]:
        for self.rows, (key, vid, latest, marker, size, etag, when) in enumerate(fields, 1):
            if latest and marker:
                self.gone.append((key,))
            elif latest:
                yield key, vid, size, etag, when
            elif not marker and key.startswith("blobs/"):
                self.older.append((key, vid, size, etag, when))


@contextmanager
def pins_from(inv: Inventory, path: Path) -> Iterator[Loaded]:
    """The inventory loaded into ``path`` and named in :data:`PINS_ENV` while the block runs (the sync)."""
    loaded = load(inv, path)
    was = os.environ.get(PINS_ENV)
    os.environ[PINS_ENV] = str(path)
    try:
        yield loaded
    finally:
        if was is None:
            os.environ.pop(PINS_ENV, None)
        else:
            os.environ[PINS_ENV] = was


class _Reader:
    """The pins file, read-only, one connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()
        meta = dict(self._conn().execute("SELECT name, value FROM meta"))
        self.bucket, self.date = str(meta.get("bucket")), str(meta.get("date"))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        return conn

    def one(self, key: str) -> Optional[tuple[str, int, str]]:
        return self._conn().execute("SELECT version_id, size, etag FROM pins WHERE key = ?", [key]).fetchone()

    def older(self, key: str) -> list[tuple[Optional[str], str, int, str]]:
        """(modified, version id, size, ETag) of the noncurrent versions of ``key``."""
        return (
            self._conn().execute("SELECT modified, version_id, size, etag FROM older WHERE key = ?", [key]).fetchall()
        )

    def under(self, prefix: str) -> list[tuple[str, int, str, str, Optional[str]]]:
        """(key, size, etag, version id, modified) of every pin under ``prefix``, in key order."""
        return (
            self._conn()
            .execute(
                "SELECT key, size, etag, version_id, modified FROM pins WHERE key >= ? AND key < ? ORDER BY key",
                [prefix, prefix + "\U0010ffff"],
            )
            .fetchall()
        )


_readers: dict[str, _Reader] = {}
_lock = threading.Lock()


def _reader() -> Optional[_Reader]:
    """The pins of the running sync (None: no ``--inventory``)."""
    path = os.environ.get(PINS_ENV)
    if not path:
        return None
    with _lock:
        if path not in _readers:
            _readers[path] = _Reader(path)
        return _readers[path]


def blob_pin(
    url: str, endpoints: tuple[str, ...], archive_key: Callable[[str], bool], etag: Optional[str], size: int
) -> Optional[tuple[Optional[str], Optional[str]]]:
    """(versionId, what the sync's report should say) of the object at ``url``, as its HEAD would give it and,
    behind a delete marker, the listing of its versions: from the inventory.  None: no inventory, or the
    inventory does not hold the key (asked as before)."""
    pins = _reader()
    where = s3urls.locate(url, endpoints, archive_key=archive_key) if pins is not None else None
    if pins is None or where is None or where.bucket != pins.bucket:
        return None
    found = pins.one(where.key)
    if found and found[0]:
        return str(found[0]), None
    older = pins.older(where.key)
    if not older:
        return None
    want = (etag or "").strip('"').lower()
    held = sorted((str(when), vid) for when, vid, s, e in older if want and s == size and str(e).lower() == want)
    said = f"per the S3 Inventory of {pins.date}"
    if not held:
        return None, (
            f"its current S3 object is deleted ({said}) and no S3 version of it has the asset's ETag and size: "
            "not pinned (the plain S3 URL and the archive's download URL are registered)"
        )
    return held[-1][1], (
        f"its current S3 object is deleted ({said}); pinned to the noncurrent version {held[-1][1]}, "
        "whose ETag and size are the asset's"
    )


def zarr_objects(bucket: str, prefix: str) -> Optional[list[tuple[str, int, str, str, Optional[str]]]]:
    """(path inside the Zarr, size, ETag, versionId, modified) of every object the inventory lists under
    ``prefix`` of ``bucket``; None when there is no inventory or it holds nothing there (a newer Zarr)."""
    pins = _reader()
    if pins is None or bucket != pins.bucket:
        return None
    rows = pins.under(prefix)
    return [(key[len(prefix) :], size, etag, vid, when) for key, size, etag, vid, when in rows] or None

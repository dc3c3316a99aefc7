"""What a version holds inside its subdatasets (DANDI Zarr assets, AIND Zarrs): files and bytes.

A version's row counts a subdataset as one entry of no size: its objects are in its own
dataset, and the row is what the dataset's own tree holds (``verify`` checks it against
that tree).  A reader of ``versions`` wants the whole: an AIND asset of four Zarrs of
10^6 objects is not "3 files, 135 B".  The index already knows each state the mirror
made of a nested Zarr, from its cache:

* a DANDI Zarr's commit is cached under the archive's checksum (``dandi-zarr-commit``:
  ``"<zarr id> <md5>-<count>--<size> <access>"``), which says the Zarr's object count and size;
* an AIND Zarr's run records the object count and bytes of each commit it made or found
  (``store-size``: commit -> ``"<files> <bytes>"``).

A subdataset whose commit neither names (a mirror made before this, a reindexed root) is
counted as ``unknown``: its totals come back with the next sync that touches it.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, NamedTuple, Optional

from neuromirror.records import SUBDATASET

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: the cache namespace the Zarr run records its commits in (engine.zarr.run.COMMIT_CACHE)
ZARR_CACHE = "dandi-zarr-commit"
#: commit -> "<files> <bytes>" of a nested Zarr state (engine.zarr.nested; the name from before issue 51: it stays)
NESTED_SIZE_CACHE = "store-size"
_ZARR_CHECKSUM = re.compile(r"^[0-9a-f]{32}-(\d+)--(\d+)$")
_MANY = 500


@dataclass
class Nested:
    """A version's subdatasets and what they hold (``unknown``: subdatasets of no known size)."""

    subdatasets: int = 0
    files: int = 0
    bytes: int = 0
    unknown: int = 0

    def to_json(self) -> dict:
        return {"subdatasets": self.subdatasets, "files": self.files, "bytes": self.bytes, "unknown": self.unknown}


def nested_size_value(files: int, size: int) -> str:
    return f"{files} {size}"


def zarr_size(cache_key: str) -> Optional[tuple[int, int]]:
    """(objects, bytes) from a ``dandi-zarr-commit`` key, None if its checksum is not a Zarr's."""
    parts = cache_key.split(" ")
    m = _ZARR_CHECKSUM.match(parts[1]) if len(parts) == 3 else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def nested_totals(index: Index, version_ids: Iterable[int]) -> dict[int, Nested]:
    """version id -> its subdatasets' totals, for the versions that have subdatasets."""
    conn = index.db.conn
    commits_of = _subdataset_commits(conn, list(version_ids))
    if not commits_of:
        return {}
    sizes = _nested_sizes(conn, sorted({c for cs in commits_of.values() for c in cs}))
    out: dict[int, Nested] = {}
    for vid, commits in commits_of.items():
        n = out[vid] = Nested(subdatasets=len(commits))
        for commit in commits:
            known = sizes.get(commit)
            if known is None:
                n.unknown += 1
            else:
                n.files += known[0]
                n.bytes += known[1]
    return out


def _subdataset_commits(conn: sqlite3.Connection, ids: list[int]) -> dict[int, list[str]]:
    """version id -> the commits of the subdatasets its fileset holds (asked in chunks: SQLite's
    limit on parameters)."""
    commits_of: dict[int, list[str]] = {}
    for i in range(0, len(ids), _MANY):
        chunk = ids[i : i + _MANY]
        # the source's subdatasets (a partial index of entries), then whether each version's fileset holds them
        for vid, commit in conn.execute(
            "SELECT v.id, e.checksum FROM versions v"
            " JOIN entries e ON e.source = v.source AND e.checksum_kind = 'subdataset'"
            " JOIN fileset_spans s ON s.entry_id = e.id AND s.since <= v.fileset AND s.until > v.fileset"
            f" WHERE v.id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            commits_of.setdefault(vid, []).append(commit)
    return commits_of


def _nested_sizes(conn: sqlite3.Connection, wanted: list[str]) -> dict[str, tuple[int, int]]:
    """commit -> (files, bytes) of the nested states the cache knows: an AIND Zarr's recorded size,
    else a DANDI Zarr's from the checksum its commit was cached under."""
    sizes: dict[str, tuple[int, int]] = {}
    for i in range(0, len(wanted), _MANY):
        commits = wanted[i : i + _MANY]
        for key, value in conn.execute(
            f"SELECT key, value FROM cache WHERE namespace = ? AND key IN ({','.join('?' * len(commits))})",
            [NESTED_SIZE_CACHE, *commits],
        ):
            files, _, size = value.partition(" ")
            if files.isdigit() and size.isdigit():
                sizes[key] = (int(files), int(size))
    if len(sizes) < len(wanted):  # the Zarrs' commits are the cache's values: one pass over its Zarr rows
        want = set(wanted)
        for key, value in conn.execute("SELECT key, value FROM cache WHERE namespace = ?", [ZARR_CACHE]):
            if value in want and value not in sizes and (found := zarr_size(key)) is not None:
                sizes[value] = found
    return sizes


def zarr_commit(index: Index, zarr_id: str, checksum: str) -> Optional[str]:
    """The commit the mirror made of the DANDI Zarr ``zarr_id`` at ``checksum`` (any access), from the
    ``dandi-zarr-commit`` cache: where a reader finds that state held here; None if never made."""
    prefix = f"{zarr_id} {checksum} "  # the cache's key: "<zarr id> <checksum> <access>"
    row = index.db.conn.execute(
        "SELECT value FROM cache WHERE namespace = ? AND key >= ? AND key < ?",
        [ZARR_CACHE, prefix, prefix + "\uffff"],
    ).fetchone()
    return None if row is None else row[0]


def zarr_checksum(index: Index, zarr_id: str, commit: str) -> Optional[str]:
    """The archive's checksum of the DANDI Zarr ``zarr_id`` at the mirror's ``commit`` of it (the reverse of
    :func:`zarr_commit`): a reader may name a Zarr state by either; None if the mirror made no such commit."""
    prefix = f"{zarr_id} "
    row = index.db.conn.execute(
        "SELECT key FROM cache WHERE namespace = ? AND key >= ? AND key < ? AND value = ?",
        [ZARR_CACHE, prefix, prefix + "\uffff", commit],
    ).fetchone()
    return None if row is None else str(row[0]).split(" ")[1]


def subdataset_paths(index: Index, source: str, commit: str) -> list[str]:
    """The paths at which any of ``source``'s versions holds the subdataset at ``commit``."""
    rows = index.db.conn.execute(
        "SELECT DISTINCT path FROM entries WHERE source = ? AND checksum_kind = ? AND checksum = ?",
        [source, SUBDATASET, commit],
    ).fetchall()
    return [path for (path,) in rows]


class ZarrState(NamedTuple):
    """A DANDI Zarr state a recorded version holds: at ``path`` of ``source``, the Zarr ``zarr_id`` at ``checksum``."""

    source: str
    path: str
    zarr_id: str
    checksum: str


def zarr_states(index: Index, sources: Iterable[str]) -> list[ZarrState]:
    """Every DANDI Zarr state the versions of ``sources`` hold (``audit --recheck`` asks the archive for its
    manifest of each): the entries that pin a subdataset, joined to the cache naming the state each commit is."""
    wanted = set(sources)
    rows = index.db.conn.execute(
        "SELECT DISTINCT e.source, e.path, c.key FROM cache c JOIN entries e ON e.checksum = c.value"
        " WHERE c.namespace = ? AND e.checksum_kind = ?",
        [ZARR_CACHE, SUBDATASET],
    ).fetchall()
    out = {
        ZarrState(sid, path, *key.split(" ")[:2]) for sid, path, key in rows if sid in wanted and key.count(" ") == 2
    }
    return sorted(out)

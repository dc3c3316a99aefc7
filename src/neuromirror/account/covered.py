"""What another backup already holds of an archive (``--covered-by LIST``): keys with their size and ETag.

The archive's own backup is a copy neuromirror need not make again; what it lacks is what the lab must keep
first (``keep --covered-by``, ``status --coverage``).  A LIST is any of:

* a file of archive keys, one a line, optionally ``\\tSIZE`` and ``\\tETAG`` after it (gzip read as such);
* a directory holding the other backup's copy laid out at the archive's keys (``<dir>/blobs/abc/def/<uuid>``,
  ``<dir>/zarr/<id>/...``: the shape of DANDI's copy on the MIT ORCD mount), each file's size read;
* a checkout of dandi/backup-status (``data/content.json``, ``diffs/N/*.txt``): it publishes per-prefix
  totals and the blobs whose copy differs from the bucket (``size_difference.txt``, ``newer_on_bucket.txt``,
  keys under ``blobs/``), no list of what the copy holds: its keys are never covered, its totals are shown;
* an S3 Inventory of the other backup's bucket (a date's ``manifest.json``, or the inventory's destination
  prefix, ``s3://`` or a local copy, with its newest date), read by :mod:`neuromirror.inventory`: every version it
  lists but delete markers, at its size and ETag.

A key counts as covered only where its size (and ETag, when the LIST has one and the pinned version's is
known) matches.  Held as fingerprints (:mod:`neuromirror.util.memory.fingerprints`): 10^6 keys in ~30 bytes
each, a lookup a binary search.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Sequence

from neuromirror.errors import BadInput
from neuromirror.util.memory import fingerprints

if TYPE_CHECKING:
    import numpy as np

#: the lists dandi/backup-status publishes per partition: blobs whose copy differs from the bucket's
STATUS_DIFFS = ("size_difference.txt", "newer_on_bucket.txt")
_MD5 = re.compile(r"[0-9a-f]{32}(-\d+)?")


@dataclass(frozen=True)
class Figure:
    """A prefix's totals as the other backup reports them (dandi/backup-status's content table)."""

    prefix: str
    objects: Optional[int]
    bytes: Optional[int]
    archive_objects: Optional[int]
    archive_bytes: Optional[int]

    def to_json(self) -> dict:
        return {
            "prefix": self.prefix,
            "objects": self.objects,
            "bytes": self.bytes,
            "archive_objects": self.archive_objects,
            "archive_bytes": self.archive_bytes,
        }


@dataclass
class _Columns:
    keys: list[str] = field(default_factory=list)  # the batch not yet fingerprinted
    hashes: array = field(default_factory=lambda: array("q"))
    crcs: array = field(default_factory=lambda: array("L"))
    sizes: array = field(default_factory=lambda: array("q"))
    etags: array = field(default_factory=lambda: array("q"))

    def add(self, key: str, size: Optional[int], etag: Optional[str]) -> None:
        self.hashes.append(hash(key))
        self.crcs.append(fingerprints.crc32_of(key))
        self.sizes.append(-1 if size is None else size)
        self.etags.append(etag_hash(etag))


def etag_hash(etag: Optional[str]) -> int:
    """An ETag as a number to compare (0: none); quotes and case as S3 and listings vary them."""
    if not etag:
        return 0
    return hash(etag.strip().strip('"').lower()) or 1


class CoverList:
    """The keys one or more LISTs hold; :meth:`covers` says whether one holds a pinned object."""

    def __init__(self, names: Sequence[str] = ()) -> None:
        self.names = list(names)
        self.figures: list[Figure] = []
        self.differs: set[str] = set()  # keys a LIST says its copy of differs from the archive's
        self._cols = _Columns()
        self._sorted: Optional[tuple[np.ndarray, ...]] = None

    def add(self, key: str, size: Optional[int] = None, etag: Optional[str] = None) -> None:
        self._cols.add(key, size, etag)
        self._sorted = None

    def __len__(self) -> int:
        return len(self._cols.hashes)

    def _columns(self) -> tuple[np.ndarray, ...]:
        if self._sorted is None:
            import numpy as np

            c = self._cols
            self._sorted = fingerprints.ordered(
                np.frombuffer(c.hashes, dtype=np.int64),
                np.frombuffer(c.crcs, dtype=np.uint32 if c.crcs.itemsize == 4 else np.uint64).astype(np.uint32),
                np.frombuffer(c.sizes, dtype=np.int64),
                np.frombuffer(c.etags, dtype=np.int64),
            )
        return self._sorted

    def covers(self, key: str, size: Optional[int], etag: Optional[str] = None) -> bool:
        """Does a LIST hold ``key`` at ``size`` (and ``etag``, where both sides know one)?"""
        return self.match(key, size, etag) == "covered"

    def match_many(self, wanted: Sequence[tuple[str, Optional[int], Optional[str]]]) -> list[str]:
        """:meth:`match` of each (key, size, ETag), one binary search for all of them: a row found at the same
        size and ETag is settled here, the rare rest (a key named twice, a shared hash) by :meth:`match`."""
        if not wanted or not len(self):
            return [self.match(k, s, e) for k, s, e in wanted]
        import numpy as np

        h, c, sizes, etags = self._columns()
        at = fingerprints.first(h, c, [k for k, _, _ in wanted])
        found = at >= 0
        rows = np.where(found, at, 0)
        want_size = np.fromiter((-2 if s is None else s for _, s, _ in wanted), dtype=np.int64, count=len(wanted))
        want_etag = np.fromiter((etag_hash(e) for _, _, e in wanted), dtype=np.int64, count=len(wanted))
        got_etag = etags[rows]
        same = found & (sizes[rows] == want_size) & ((got_etag == 0) | (want_etag == 0) | (got_etag == want_etag))
        out = []
        for i, (key, size, etag) in enumerate(wanted):
            if key in self.differs:
                out.append("differs")
            elif same[i]:
                out.append("covered")
            else:
                out.append(self.match(key, size, etag) if found[i] else "absent")
        return out

    def match(self, key: str, size: Optional[int], etag: Optional[str] = None) -> str:
        """``covered``, ``absent`` (no LIST names it), or ``differs`` (named, at another size or ETag)."""
        if key in self.differs:
            return "differs"
        if not len(self):
            return "absent"
        h, c, sizes, etags = self._columns()
        rows = fingerprints.every(h, c, [key])[0]
        if not rows:
            return "absent"
        want = etag_hash(etag)
        for j in rows:
            s, e = int(sizes[j]), int(etags[j])
            if s >= 0 and s == size and (not e or not want or e == want):
                return "covered"
        return "differs"


def pinned_etag(annex_key: str) -> Optional[str]:
    """The S3 ETag the pinned object has, where its key says it: an MD5E key's MD5 is a single-part upload's
    ETag (a Zarr chunk, an AIND object); a SHA256E key (a DANDI blob) does not say it."""
    if not annex_key.startswith("MD5"):
        return None
    tail = annex_key.split("--", 1)[-1].split(".", 1)[0]
    return tail if _MD5.fullmatch(tail) else None


def read_lists(names: Iterable[str]) -> CoverList:
    """Every LIST ``names`` gives, read into one; a LIST that cannot be read is a one-line :class:`BadInput`
    naming it."""
    names = list(names)
    out = CoverList(names)
    for name in names:
        try:
            _read_one(out, name)
        except (OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
            raise BadInput(f"{name}: cannot read this covered-by list: {exc}") from None
    return out


def _read_one(out: CoverList, name: str) -> None:
    path = Path(name[len("file://") :] if name.startswith("file://") else name)
    if name.startswith("s3://") or path.name == "manifest.json" or _inventory_dir(path):
        _read_inventory(out, name)
    elif path.is_dir() and ((path / "data" / "content.json").is_file() or (path / "diffs").is_dir()):
        _read_status(out, path)
    elif path.is_dir():
        _read_copy(out, path)
    elif path.is_file():
        _read_keys(out, path)
    else:
        raise BadInput(f"{name}: no such file or directory (a covered-by list: a key file, a copy, an inventory)")


def _inventory_dir(path: Path) -> bool:
    """An inventory's destination on disk: dated folders (``2026-08-22T01-00Z``) holding ``manifest.json``."""
    return path.is_dir() and any(p.name[:2] == "20" and (p / "manifest.json").is_file() for p in path.iterdir())


def _read_inventory(out: CoverList, name: str) -> None:
    """Every object version the inventory lists (a delete marker holds no bytes), at its size and ETag: the
    other backup's bucket holds what any of its versions holds.  Read file by file (:mod:`neuromirror.inventory`)."""
    from neuromirror.inventory import open_inventory

    for row in open_inventory(name).rows():
        if not row.is_delete_marker and row.size is not None:
            out.add(row.key, row.size, row.etag)


def _lines(path: Path) -> Iterator[str]:
    with path.open("rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    opened = gzip.open(path, "rt", encoding="utf-8") if gz else path.open(encoding="utf-8")
    with opened as fh:
        yield from fh


def _read_keys(out: CoverList, path: Path) -> None:
    """``KEY[\\tSIZE[\\tETAG]]`` a line; blank lines and ``#`` comments skipped."""
    for n, line in enumerate(_lines(path), 1):
        line = line.rstrip("\r\n")
        if not line or line.startswith("#"):
            continue
        key, *rest = line.split("\t")
        size: Optional[int] = None
        if rest and rest[0]:
            if not rest[0].isdigit():
                raise ValueError(f"line {n}: the size {rest[0]!r} is not a number of bytes")
            size = int(rest[0])
        out.add(key.lstrip("/"), size, rest[1] if len(rest) > 1 else None)


def _read_copy(out: CoverList, root: Path) -> None:
    """Every file under ``root``, at its path as the archive's key, with its size (a copy has no ETag)."""
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(top, root)
        for f in files:
            if f.startswith("."):
                continue
            key = f if rel == "." else f"{rel}/{f}".replace(os.sep, "/")
            out.add(key, os.stat(os.path.join(top, f)).st_size)


def _read_status(out: CoverList, root: Path) -> None:
    """dandi/backup-status: its content table's totals per prefix, and the blobs each partition's diff lists
    name (keys under ``blobs/``) as differing from the archive."""
    for where in (root / "data" / "content.json", root / "content.json"):
        if where.is_file():
            out.figures += status_figures(json.loads(where.read_text()))
            break
    for diff in sorted(root.glob("diffs/*/*.txt")):
        if diff.name in STATUS_DIFFS:
            for line in _lines(diff):
                key = line.strip()
                if key:
                    out.differs.add(key if key.startswith("blobs/") else f"blobs/{key}")


def status_figures(doc: dict) -> list[Figure]:
    """backup-status's content table (``{"data": {"Location": [...], "Size (Local / Remote)": [...],
    "Number of Objects (Local / Remote)[^1]": [...]}}``) as figures: ``1.21 PB / 1.22 PB (98.55%)``."""
    data = doc.get("data") or {}
    where = data.get("Location") or []
    sizes: list = next((v for k, v in data.items() if k.startswith("Size")), [])
    counts: list = next((v for k, v in data.items() if k.startswith("Number of Objects")), [])
    out = []
    for i, prefix in enumerate(where):
        local_b, remote_b = _pair(sizes[i] if i < len(sizes) else "", size=True)
        local_n, remote_n = _pair(counts[i] if i < len(counts) else "", size=False)
        out.append(Figure(str(prefix), local_n, local_b, remote_n, remote_b))
    return out


def _pair(text: str, *, size: bool) -> tuple[Optional[int], Optional[int]]:
    from neuromirror.util.sizes import parse_size

    head = str(text).split("(", 1)[0]
    parts = [p.strip().replace(" ", "") for p in head.split("/")]
    if len(parts) != 2:
        return None, None
    try:
        if size:
            return parse_size(parts[0]), parse_size(parts[1])
        return int(parts[0]), int(parts[1])
    except ValueError:
        return None, None

"""A generated S3 bucket: objects computed from a compact description, never stored.

Why: issue 25's ``aind-zarr`` benchmark wants an AIND asset of 4 OME-Zarr stores x 10^6
objects.  moto holds every object in memory (~4 KB each) and takes minutes to fill a
million, so this stand-in holds only the *description* (asset names, sidecar bytes, stores
of M objects) and computes the rest.  The bucket's keys form a virtual sequence, sorted as
S3 sorts keys (by their UTF-8 bytes, which is Python's code point order for ``str``): key i
is computed from i, and a key's position is found by bisection.  A listing page is made on
request from its marker, a HEAD or GET finds its object the same way, and an object's bytes
are a function of its key, so that every listed ETag (the MD5 of the bytes) is what a GET of
the object returns.

The server that answers S3 requests from it is :mod:`neuromirror.standins.s3_generated`;
:func:`aind_asset` describes a SmartSPIM-like asset.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator, Mapping, Optional, Sequence, Union

__all__ = ["GeneratedAsset", "GeneratedBucket", "GeneratedStore", "aind_asset", "chunk_bytes", "version_id"]

#: chunk objects per folder of a generated store (as the moto-filled stores of the bench had)
PER_FOLDER = 1000
#: light-sheet channels, for store names (``ch488.ome.zarr``...)
CHANNELS = (488, 561, 639, 405, 445, 515, 594, 685)


@dataclass(frozen=True)
class GeneratedStore:
    """An OME-Zarr-like store of ``objects`` objects: ``.zattrs``, ``.zgroup``, ``0/.zarray``, then chunks."""

    name: str  # e.g. "ch488.ome.zarr", at the asset's top level
    objects: int


@dataclass(frozen=True)
class GeneratedAsset:
    """A top-level prefix of the bucket: sidecar files (name -> bytes) and stores."""

    name: str
    sidecars: Mapping[str, bytes] = field(default_factory=dict)
    stores: tuple[GeneratedStore, ...] = ()

    @property
    def objects(self) -> int:
        return len(self.sidecars) + sum(s.objects for s in self.stores)


def chunk_bytes(key: str) -> bytes:
    """A chunk object's bytes: its own key, so that every object is distinct and checkable by eye."""
    return key.encode("utf-8")


def version_id(key: str) -> str:
    """Each object has one version; its id is a function of the key (32 characters, as S3's)."""
    return hashlib.md5(b"version\0" + key.encode("utf-8")).hexdigest()


def aind_asset(name: str, stores: int = 4, objects: int = 1_000_000) -> GeneratedAsset:
    """A SmartSPIM-like asset: data_description.json, subject.json and ``stores`` stores of ``objects``."""
    subject = name.split("_")[1] if name.count("_") >= 3 else "1"
    dd = {
        "name": name,
        "subject_id": subject,
        "modality": ["SPIM"],
        "creation_time": "2024-01-01T00:00:00",
        "data_level": "raw",
    }
    sidecars = {
        "data_description.json": json.dumps(dd, indent=2).encode(),
        "subject.json": json.dumps({"subject_id": subject, "sex": "Female"}, indent=2).encode(),
    }
    names = [f"ch{CHANNELS[i]}" if i < len(CHANNELS) else f"ch{1000 + i}" for i in range(stores)]
    return GeneratedAsset(name, sidecars, tuple(GeneratedStore(f"{n}.ome.zarr", objects) for n in names))


# --------------------------------------------------------------------------- the key space


class _Single:
    """One object of given bytes (a sidecar)."""

    def __init__(self, key: str, data: bytes):
        self.first = key
        self._key, self._data = key, data

    def __len__(self) -> int:
        return 1

    def item(self, i: int) -> tuple[str, bytes]:
        return self._key, self._data


class _Store:
    """A store's keys, in S3 order: its metadata files (``.`` sorts before digits), then its chunks.

    Chunks are ``0/<folder>/<nnn>`` with fixed-width numbers, so that their order is numeric.
    """

    def __init__(self, prefix: str, objects: int):
        self.first = prefix
        self.prefix = prefix
        meta = {
            ".zattrs": json.dumps({"multiscales": [{"version": "0.4", "datasets": [{"path": "0"}]}]}).encode(),
            ".zgroup": b'{"zarr_format": 2}',
            "0/.zarray": json.dumps({"zarr_format": 2, "shape": [objects], "chunks": [1]}).encode(),
        }
        self.meta = [(prefix + rel, data) for rel, data in sorted(meta.items())][: max(0, objects)]
        self.chunks = max(0, objects - len(self.meta))
        width = max(4, len(str(max(0, self.chunks - 1) // PER_FOLDER)))
        self._format = prefix.replace("%", "%%") + f"0/%0{width}d/%03d"  # %-formatting: the cheapest per key

    def __len__(self) -> int:
        return len(self.meta) + self.chunks

    def item(self, i: int) -> tuple[str, bytes]:
        if i < len(self.meta):
            return self.meta[i]
        j = i - len(self.meta)
        key = self._format % divmod(j, PER_FOLDER)
        return key, key.encode("utf-8")  # chunk_bytes(key), without the call


_Segment = Union[_Single, _Store]


class GeneratedBucket:
    """The bucket's keys as a sorted sequence (``len``, ``[i]``, bisection), and the objects behind them.

    The keys of a store share its prefix, and the strings with a given prefix are
    contiguous in sorted order: so each store is one run of the sequence, placed by its
    prefix among the sidecars and the other stores.
    """

    def __init__(self, name: str, assets: Sequence[GeneratedAsset], modified: Optional[datetime] = None):
        self.name = name
        self.assets = tuple(assets)
        self.modified = modified or datetime(2024, 1, 1, tzinfo=timezone.utc)
        segments: list[_Segment] = []
        for a in self.assets:
            segments += [_Single(f"{a.name}/{rel}", data) for rel, data in a.sidecars.items()]
            segments += [_Store(f"{a.name}/{s.name}/", s.objects) for s in a.stores if s.objects > 0]
        self._segments = sorted(segments, key=lambda s: s.first)
        self._check_disjoint()
        self._starts: list[int] = []
        total = 0
        for s in self._segments:
            self._starts.append(total)
            total += len(s)
        self._len = total

    def _check_disjoint(self) -> None:
        """No key may fall inside another store's run, or the sequence would not be sorted."""
        for a, b in zip(self._segments, self._segments[1:]):
            if a.first == b.first or (isinstance(a, _Store) and b.first.startswith(a.prefix)):
                raise ValueError(f"generated bucket {self.name}: {b.first!r} overlaps {a.first!r}")

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> str:
        return self.item(i)[0]

    def item(self, i: int) -> tuple[str, bytes]:
        """Key and bytes of the i-th object."""
        if not 0 <= i < self._len:
            raise IndexError(i)
        s = bisect.bisect_right(self._starts, i) - 1
        return self._segments[s].item(i - self._starts[s])

    def items(self, start: int) -> Iterator[tuple[int, str, bytes]]:
        """(index, key, bytes) from ``start`` on, segment by segment (no bisection per object)."""
        if start >= self._len:
            return
        s = bisect.bisect_right(self._starts, start) - 1
        i = start - self._starts[s]
        for seg in self._segments[s:]:
            base = self._starts[s]
            for j in range(i, len(seg)):
                key, data = seg.item(j)
                yield base + j, key, data
            i, s = 0, s + 1

    def find(self, key: str) -> Optional[int]:
        """The index of ``key``, or None."""
        i = bisect.bisect_left(self, key)
        return i if i < self._len and self[i] == key else None

    def index_from(self, key: str) -> int:
        """The first index whose key is >= ``key``."""
        return bisect.bisect_left(self, key)

    def index_after(self, key: str) -> int:
        """The first index whose key is > ``key``."""
        return bisect.bisect_right(self, key)


def prefix_end(prefix: str) -> str:
    """The least string above every string starting with ``prefix`` (non-empty)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def walk(
    bucket: GeneratedBucket, start: int, prefix: str, delimiter: str, limit: int
) -> tuple[list[Union[tuple[str, bytes], str]], bool]:
    """Up to ``limit`` entries from index ``start`` under ``prefix``: objects (key, bytes) and common prefixes.

    A key with ``delimiter`` after the prefix rolls up into its common prefix, whose
    whole run is skipped by bisection (the top level of a bucket of 4 x 10^6 objects
    is a handful of steps).  Returns the entries and whether more follow.
    """
    out: list[Union[tuple[str, bytes], str]] = []
    i = max(start, bucket.index_from(prefix))
    while i < len(bucket):
        items = bucket.items(i)
        for i, key, data in items:
            if not key.startswith(prefix):
                return out, False
            if len(out) >= limit:
                return out, bool(out)  # max-keys=0: an empty page, not truncated (a client would loop)
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                out.append(common)
                i = bucket.index_from(prefix_end(common))  # go on past the common prefix's whole run
                break
            out.append((key, data))
        else:
            return out, False
    return out, False


def resume_index(bucket: GeneratedBucket, marker: str, delimiter: str) -> int:
    """Where a listing resumes after ``marker``: after its key, or after its whole run if it is a common prefix."""
    if not marker:
        return 0
    if delimiter and marker.endswith(delimiter):
        return bucket.index_from(prefix_end(marker))
    return bucket.index_after(marker)

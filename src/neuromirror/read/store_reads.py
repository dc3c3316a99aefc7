"""A store's copy of a key, as the mirror's own readers hold it (``neuromirror://``, the view, ``urls``).

A copy is a typed record, :class:`StoreCopy`: the store (opened once by the reader that found it) and the
key.  It is read through the store's own ranged read (:meth:`~neuromirror.store.base.Store.read_range`: a
directory store's file, an S3 object, a key's range of its pack, which the packed store looks up in its
index files when the bytes are read, again when a repack moved the key), asked whether it is there
(:meth:`~neuromirror.store.base.Store.has`), and printed where it lies now
(:meth:`~neuromirror.store.base.Store.copy_url`): ``urls`` prints a packed copy as its pack's URL with the
key's bytes as a fragment, ``#bytes=FIRST-LAST`` (inclusive, as an HTTP ``Range`` names them).  Nothing
here asks which kind a store is: what differs is the store's to say.

The stores a reader opens are held by that reader (:class:`StoreReaders`): a ``urls`` listing, a
``neuromirror://`` filesystem, the view.  Before, a copy was a URL string (``pack+s3://...#KEY``) parsed
back at each read and its store reopened through a cache global to the process.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Optional

from neuromirror.store.base import CopyURL, Store, key_size, not_there
from neuromirror.store.location import kind_of, kind_of_fields, open_store

#: the most bytes one read of a streamed copy asks its store for (the view streams a large file in such reads)
CHUNK = 8 << 20


@dataclass(frozen=True, eq=False)
class StoreCopy:
    """``key`` as ``store`` keeps it: read, checked and printed through the store (the store's own object,
    opened by the reader that found the copy; two copies are one when their stores' URLs and keys are)."""

    store: Store
    key: str

    def __eq__(self, other: object) -> bool:
        """The same copy: the same store (by its URL: two readers open it each) and the same key."""
        return isinstance(other, StoreCopy) and (other.store.url, other.key) == (self.store.url, self.key)

    def __hash__(self) -> int:
        return hash((self.store.url, self.key))

    @property
    def streamed(self) -> bool:
        """Does the mirror read it itself (a file here, an S3 object, a pack's range: no client could follow a
        redirect to it)?  Else it is read at its :attr:`url`, a plain HTTP URL (an S3 store given a public URL)."""
        return not self.store.capabilities.public_url

    @cached_property
    def located(self) -> Optional[CopyURL]:
        """Where the copy lies now (asked of the store once: a packed store's index files); None: the store
        names no place for it, or does not answer."""
        try:
            return self.store.copy_url(self.key)
        except Exception:  # noqa: BLE001 - a bucket's or a disk's error: the store still names the copy
            return None

    @property
    def url(self) -> str:
        """The copy as ``urls`` prints it: its URL, a key inside a pack with ``#bytes=FIRST-LAST``; a copy whose
        store does not answer as the store's reports name it (:meth:`~neuromirror.store.base.Store.copy_location`)."""
        at = self.located
        if at is None:
            return self.store.copy_location(self.key)
        return at.url if at.span is None else f"{at.url}#bytes={at.span[0]}-{at.span[0] + at.span[1] - 1}"

    @property
    def span(self) -> Optional[tuple[int, int]]:
        """(offset, length) of the key in the object :attr:`url` names (a pack); None: the whole object."""
        return None if self.located is None else self.located.span

    def read(self, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
        """Bytes ``[start:end]`` of the copy: one ranged read of its store (``FileNotFoundError``: not there)."""
        lo = max(0, start or 0)
        if end is not None and end <= lo:
            return b""
        return bytes(self.store.read_range(self.key, lo or None, end))

    def open(self, start: Optional[int] = None, end: Optional[int] = None) -> io.RawIOBase:
        """A stream of bytes ``[start:end]``: ranged reads of the store as it is read, each :data:`CHUNK` at most
        (a range asked for whole, when smaller: one request)."""
        return _Stream(self, max(0, start or 0), key_size(self.key) if end is None else end)

    def status(self) -> Optional[str]:
        """None when the store holds the copy (one request at most), else why not."""
        try:
            return None if self.store.has(self.key) else f"{self.store.url}: no copy of {self.key} there"
        except Exception as exc:  # noqa: BLE001 - a bucket's or a disk's error: the copy is not readable
            return f"{type(exc).__name__}: {exc}"


class _Stream(io.RawIOBase):
    """A copy's bytes from ``at`` to ``end`` (None: its end), read from the store a chunk at a time."""

    def __init__(self, copy: StoreCopy, at: int, end: Optional[int]) -> None:
        self._copy, self._at, self._end = copy, at, end
        self._buf, self._done = b"", False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._buf and not self._done:
            stop = self._at + CHUNK if self._end is None else min(self._end, self._at + CHUNK)
            self._buf = self._copy.read(self._at, stop)
            self._done = len(self._buf) < stop - self._at or stop == self._end
            self._at += len(self._buf)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


@dataclass(frozen=True, eq=False)
class StoreReader:
    """A store a dataset or the index names, as a reader reads it: its name, the store opened (None: not
    readable here) and its rank (0 on this machine, 1 a public URL, 2 remote: the registered kind's)."""

    name: str
    store: Optional[Store]
    rank: int = 2

    @property
    def readable(self) -> bool:
        return self.store is not None

    def copy(self, key: str) -> Optional[StoreCopy]:
        return None if self.store is None else StoreCopy(self.store, key)


class StoreReaders:
    """The stores one reader reads copies from, each opened once for the reader's lifetime (a ``urls``
    listing, a ``neuromirror://`` filesystem, the view): a packed store's index files are read once by it,
    a bucket's client made once.  Thread-safe.  A store is opened by its URL (nothing is asked of it until a
    copy is read), a branch's store by the registered kind that reads its ``remote.log`` fields back, with
    those fields (an endpoint, a public URL) where the process names none."""

    def __init__(self) -> None:
        self._opened: dict[str, Optional[Store]] = {}
        self._lock = threading.Lock()

    def _open(self, url: str, recorded: Optional[dict[str, str]] = None) -> Optional[Store]:
        with self._lock:
            if url not in self._opened:
                try:
                    store = open_store(url, recorded=recorded)
                    self._opened[url] = None if not_there(store) else store  # a directory gone: not read here
                except Exception:  # noqa: BLE001 - a kind no longer opened, a malformed place: not read here
                    self._opened[url] = None
            return self._opened[url]

    def _reader(self, name: str, url: str, recorded: Optional[dict[str, str]] = None) -> Optional[StoreReader]:
        kind = kind_of(url)
        if kind is None:
            return None
        store = self._open(url, recorded)
        rank = kind.rank if store is None or not store.capabilities.public_url else min(kind.rank, 1)
        return StoreReader(name, store, rank)

    def of_fields(self, stores: dict[str, dict[str, str]]) -> dict[str, StoreReader]:
        """uuid -> how to read each of ``stores`` (uuid -> its ``remote.log`` fields) a registered kind reads
        back, a store on this machine first."""
        out = {}
        for uuid, fields in stores.items():
            found = kind_of_fields(fields)
            reader = None if found is None else self._reader(fields.get("name", uuid), found[1], fields)
            if reader is not None:
                out[uuid] = reader
        return dict(sorted(out.items(), key=lambda item: item[1].rank))

    def of_records(self, records: Iterable[dict]) -> list[StoreReader]:
        """How to read each store of the index's records (url, name), a store on this machine first."""
        readers = [
            r for rec in records if rec.get("url") and (r := self._reader(str(rec.get("name") or ""), str(rec["url"])))
        ]
        return sorted((r for r in readers if r.readable), key=lambda r: r.rank)

    def of_repo(self, repo: Path) -> dict[str, StoreReader]:
        """uuid -> how to read each store ``repo``'s ``git-annex`` branch records."""
        from neuromirror.store.record import store_uuids

        return self.of_fields(store_uuids(repo))

    def kept_by_key(self, key: str, records: Iterable[dict]) -> Optional[StoreCopy]:
        """The copy of ``key`` a store of the index's ``records`` holds (asked of each: a keep while the view
        runs is seen), for a file no dataset here records (a manifest's row alone)."""
        for reader in self.of_records(records):
            copy = reader.copy(key)
            if copy is not None and copy.status() is None:
                return copy
        return None

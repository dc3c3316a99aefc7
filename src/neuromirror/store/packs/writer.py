"""The open pack: keys' bytes appended in a staged file, sealed when it reaches the pack size.

Sealing is the one way bytes become part of the store, in this order: the trailer written, the file
synced, the pack put in place under its SHA-256 (durable: :meth:`Backend.put_pack`), and only then its
index file written.  A kill before the pack is in place leaves a staged file (removed by the next writer
on this host once its process is dead); a kill between the pack and its index leaves a pack its trailer
describes (adopted by the next writer: :meth:`PackStore.clean_stale`); an index never names bytes that
are not durable.  Thread-safe: keep's transfers append from several threads, one key at a time.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Optional

from neuromirror.annex.keys import key_checksum
from neuromirror.store.base import StoreWriteError, key_size
from neuromirror.store.packs.backend import Backend, staged_name
from neuromirror.store.packs.layout import Entry, PackIndex, index_object, pack_object, trailer
from neuromirror.store.packs.thaw import now_iso
from neuromirror.util.crashpoints import crashpoint

#: a key's bytes held in memory up to this, then staged on disk, while they are verified
SPILL = 16 << 20


class PackWriter:
    def __init__(
        self,
        backend: Backend,
        pack_size: int,
        storage_class: str,
        on_sealed: Callable[[PackIndex], None],
    ) -> None:
        self.backend = backend
        self.pack_size = pack_size
        self.storage_class = storage_class
        self.on_sealed = on_sealed
        self.lock = threading.RLock()
        self._fh: Optional[IO[bytes]] = None
        self._path: Optional[Path] = None
        self._hash: Any = None
        self._size = 0
        self._entries: list[Entry] = []
        self.pending: dict[str, Entry] = {}  # keys appended, not sealed yet
        self.sealed: list[str] = []  # the packs this writer sealed, in order (a repack never deletes one)

    def append(self, key: str, chunks: Iterable[bytes | bytearray | memoryview], length: int, checksum: str) -> bool:
        """Append one key's (verified) ``length`` bytes; False when the open pack has the key already.

        The pack size is a ceiling: a key that would take the open pack past it goes into the next pack
        (a key larger than the pack size alone is a pack of its own)."""
        with self.lock:
            if key in self.pending:
                return False
            if self._entries and self._size + length > self.pack_size:
                self._seal()
            fh = self._open()
            offset = self._size
            for chunk in chunks:
                fh.write(chunk)
                self._hash.update(chunk)
                self._size += len(chunk)
            crashpoint("pack-write")  # the key's bytes in the staged pack only
            entry = Entry(key, "", offset, self._size - offset, checksum)
            self._entries.append(entry)
            self.pending[key] = entry
            if self._size - offset != length:
                raise OSError(f"{key}: {self._size - offset} bytes appended, {length} announced")
            return True

    def seal(self) -> Optional[PackIndex]:
        """Seal the open pack, if it holds anything: its bytes durable in the store, then its index."""
        with self.lock:
            return self._seal() if self._entries else None

    def discard(self) -> None:
        with self.lock:
            if self._fh is not None:
                self._fh.close()
            if self._path is not None:
                self._path.unlink(missing_ok=True)
            self._reset()

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            self._path = self.backend.staging() / staged_name()
            self._fh = open(self._path, "xb")
            self._hash = hashlib.sha256()
            self._size = 0
        return self._fh

    def _seal(self) -> PackIndex:
        assert self._fh is not None and self._path is not None
        tail = trailer(self._entries)
        self._fh.write(tail)
        self._hash.update(tail)
        self._size += len(tail)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        name = self._hash.hexdigest()
        crashpoint("pack-staged")  # a whole pack on local disk, not in the store
        self.backend.put_pack(self._path, pack_object(name), self.storage_class)
        crashpoint("pack-sealed")  # in the store, no index names it yet (its trailer does)
        index = PackIndex(
            name,
            self._size,
            [Entry(e.key, name, e.offset, e.length, e.checksum) for e in self._entries],
            self.storage_class,
            now_iso(),
        )
        self.backend.put_small(index_object(name), index.encode())
        crashpoint("pack-indexed")
        self.sealed.append(name)
        self._reset()
        self.on_sealed(index)
        return index

    def _reset(self) -> None:
        self._fh, self._path, self._hash = None, None, None
        self._size = 0
        self._entries = []
        self.pending = {}


class PackIncoming:
    """One key's bytes on their way in: held (memory, then a staged file), appended to the open pack only
    by :meth:`commit`, which the caller calls after it verified them."""

    def __init__(self, store: Any, key: str) -> None:  # a PackStore (store.py imports this module)
        self.store = store
        self.key = key
        self.done = False
        self._buf = bytearray()
        self._spill: Optional[Any] = None
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        if self._spill is not None:
            self._spill.write(data)
            return
        self._buf += data
        if len(self._buf) > SPILL:
            self._spill = tempfile.TemporaryFile(dir=self.store.backend.staging())
            self._spill.write(self._buf)
            self._buf = bytearray()

    def _chunks(self) -> Any:
        if self._spill is None:
            yield self._buf
            return
        self._spill.seek(0)
        while True:
            data = self._spill.read(1 << 20)
            if not data:
                return
            yield data

    def commit(self) -> bool:
        try:
            if self.store.has(self.key):
                return False
            size = key_size(self.key)
            if size is not None and size != self.written:
                raise StoreWriteError(f"{self.key}: {self.written} bytes, the key says {size}")
            c = key_checksum(self.key)
            checksum = f"{c.algorithm}:{c.digest}" if c else ""
            return self.store.writer().append(self.key, self._chunks(), self.written, checksum)
        except OSError as exc:
            raise StoreWriteError(f"writing to {self.store.url}: {exc}") from None
        finally:
            self.discard()

    def discard(self) -> None:
        self._buf = bytearray()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self.done = True

    def __enter__(self) -> PackIncoming:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.discard()

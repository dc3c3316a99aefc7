"""The open pack: keys' bytes appended in a staged file, sealed when it reaches the pack size.

Sealing is the one way bytes become part of the store, in this order: the trailer written, the file
synced, the pack put in place under its SHA-256 (durable: :meth:`Backend.put_pack`), and only then its
index file written.  A kill before the pack is in place leaves a staged file (removed by the next writer
on this host once its process is dead); a kill between the pack and its index leaves a pack its trailer
describes (adopted by the next writer: :meth:`PackStore.clean_stale`); an index never names bytes that
are not durable.  Thread-safe: keep's transfers append from several threads, one key at a time.

A write that fails (its disk full after keep's free-space check passed: ENOSPC, EDQUOT, EFBIG; a refused
upload) leaves the open pack of unknown bytes: it is discarded (its staged file removed), the keys appended
to it are in no pack (:attr:`PackWriter.lost`), and the writer is done: every later append or seal raises
the same one line (:class:`PackDiscarded`), so that no branch and no check records a key of the discarded
pack as kept (a caller records keys only after a seal that returned).  What was sealed before stays.
"""

from __future__ import annotations

import errno
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
from neuromirror.util.text import one_line

#: a key's bytes held in memory up to this, then staged on disk, while they are verified
SPILL = 16 << 20
#: a write refused for want of room: a disk full, a quota, a file size limit (``ulimit -f``)
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class PackDiscarded(StoreWriteError):
    """The open pack could not be written whole and was discarded, its keys with it; the writer writes no more.
    ``errno`` is the failed write's (ENOSPC: no space left); the message is one line naming the store."""

    def __str__(self) -> str:
        return str(self.strerror)


class PackWriter:
    def __init__(
        self,
        backend: Backend,
        pack_size: int,
        storage_class: str,
        on_sealed: Callable[[PackIndex], None],
        url: str = "",
    ) -> None:
        self.backend = backend
        self.url = url or backend.where
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
        self.lost: set[str] = set()  # keys appended, then discarded with their pack: in no pack
        self.broken: Optional[PackDiscarded] = None  # why this writer writes no more

    def append(self, key: str, chunks: Iterable[bytes | bytearray | memoryview], length: int, checksum: str) -> bool:
        """Append one key's (verified) ``length`` bytes; False when the open pack has the key already.

        The pack size is a ceiling: a key that would take the open pack past it goes into the next pack
        (a key larger than the pack size alone is a pack of its own)."""
        with self.lock:
            if self.broken is not None:
                raise self.broken
            if key in self.pending:
                return False
            try:
                self._append(key, chunks, length, checksum)
            except OSError as exc:
                raise self._broke(exc) from None
            return True

    def _append(self, key: str, chunks: Iterable[bytes | bytearray | memoryview], length: int, checksum: str) -> None:
        if self._entries and self._size + length > self.pack_size:
            self._seal()
        fh = self._open()
        offset = self._size
        for chunk in chunks:
            fh.write(chunk)
            self._hash.update(chunk)
            self._size += len(chunk)
        crashpoint("pack-write")  # the key's bytes in the staged pack only
        if self._size - offset != length:
            raise OSError(f"{key}: {self._size - offset} bytes appended, {length} announced")
        entry = Entry(key, "", offset, self._size - offset, checksum)
        self._entries.append(entry)
        self.pending[key] = entry

    def seal(self) -> Optional[PackIndex]:
        """Seal the open pack, if it holds anything: its bytes durable in the store, then its index."""
        with self.lock:
            if self.broken is not None:
                raise self.broken
            try:
                return self._seal() if self._entries else None
            except OSError as exc:
                raise self._broke(exc) from None

    def _broke(self, exc: OSError) -> PackDiscarded:
        """The open pack discarded after a failed write, its keys noted lost, the writer done: the one line."""
        lost = list(self.pending)
        staged = self._path.parent if self._path is not None else None
        self.discard()
        self.lost.update(lost)
        keys = f", {len(lost)} key(s) in it not kept" if lost else ""
        if exc.errno in NO_ROOM:
            from neuromirror.util.disk import filesystem

            place = filesystem(staged) if staged is not None else self.backend.where
            why = f"{exc.strerror or 'no space left'} on {place}"
        else:
            why = f"writing a pack failed: {one_line(exc, 300, joined=True)}"
        self.broken = PackDiscarded(exc.errno or errno.EIO, f"{why}; {self.url}: its open pack discarded{keys}")
        return self.broken

    def discard(self) -> None:
        with self.lock:
            if self._fh is not None:
                try:
                    self._fh.close()
                except OSError:  # its buffer not written (the disk full): the file goes all the same
                    pass
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
        except StoreWriteError:
            raise
        except OSError as exc:  # its errno kept: a full disk is told as such (store.transfer)
            said = f"writing to {self.store.url}: {exc.strerror or exc}"
            raise (StoreWriteError(exc.errno, said) if exc.errno else StoreWriteError(said)) from None
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

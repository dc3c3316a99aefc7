"""Where each key of a packed store lies, read from its index files (the store's own, nothing else).

Loaded on first use and read again when asked for a key it does not know (another writer may have
sealed a pack since) or when a pack it names is gone (a repack moved the key): only index files that
are new or changed since are read, a few at a time.  Memory: ~32 bytes a key (:mod:`.places`); the keys'
names and checksums stay in the index files, read again where a pack's keys are wanted by name
(:meth:`KeyMap.entries`: verify and repack read that pack whole anyway).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Collection, Iterator, NamedTuple, Optional

from neuromirror.store.packs.backend import Backend, Listed
from neuromirror.store.packs.layout import INDEX, Entry, PackFormatError, PackIndex, index_object, pack_name
from neuromirror.store.packs.places import Places

#: pack, offset, length
Where = tuple[str, int, int]
#: index files read at once (each a pack's keys: ~3 MB of them for 256 MiB of 10 kB chunks)
READ_AT_ONCE = 8


class _Pack(NamedTuple):
    stamp: str
    size: int
    live: int
    storage_class: str
    id: int  # its rows' id in the places (a new one each time its index file is read again)


class KeyMap:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._places = Places()
        self._packs: dict[str, _Pack] = {}
        self._names: dict[int, str] = {}  # pack id -> pack, for the packs held
        self._next_id = 0
        self._loaded = False
        self._lock = threading.RLock()
        self.broken: dict[str, str] = {}  # index files that do not read: pack -> why

    def where(self, key: str, *, fresh: bool = False) -> Optional[Where]:
        with self._lock:
            if not self._loaded or fresh:
                self.refresh()
            got = self._where(key)
            if got is None and not fresh:
                self.refresh()
                got = self._where(key)
            return got

    def _where(self, key: str) -> Optional[Where]:
        row = self._places.get(key)
        return None if row is None else (self._names[row[0]], row[1], row[2])

    def known(self, key: str) -> bool:
        with self._lock:
            if not self._loaded:
                self.refresh()
            return self._places.get(key) is not None

    def add(self, index: PackIndex, stamp: str = "") -> None:
        """A pack this process sealed: known at once, without a listing."""
        with self._lock:
            self._put(index, stamp)

    def refresh(self, listing: Optional[Collection[Listed]] = None) -> None:
        """Read the index files that are new or changed since the last look; forget those gone.  ``listing``:
        the index folder as the caller just listed it (:meth:`PackStore.catch_up`), not listed again."""
        with self._lock:
            items = self.backend.listing(INDEX) if listing is None else listing
            listed = {p: item for item in items if (p := pack_name(item.name))}
            for pack in [p for p in self._packs if p not in listed]:
                self._drop(pack)
            todo = [item for p, item in listed.items() if p not in self._packs or self._packs[p].stamp != item.stamp]
            with ThreadPoolExecutor(max_workers=READ_AT_ONCE) as pool:
                for at in range(0, len(todo), READ_AT_ONCE):  # a few decoded at a time, not the store's every key
                    some = todo[at : at + READ_AT_ONCE]
                    for item, got in zip(some, pool.map(self._read, some)):
                        pack = pack_name(item.name) or ""
                        if isinstance(got, PackIndex):
                            self._put(got, item.stamp)  # drops the pack's old rows first
                            self.broken.pop(pack, None)
                        else:
                            self.broken[pack] = got
            self._loaded = True

    def _read(self, item: Listed) -> PackIndex | str:
        try:
            return PackIndex.decode(self.backend.get(item.name), pack_name(item.name))
        except FileNotFoundError:
            return "its index file went away while read"
        except (OSError, PackFormatError) as exc:
            return str(exc)

    def _put(self, index: PackIndex, stamp: str) -> None:
        self._drop(index.pack)
        pid, self._next_id = self._next_id, self._next_id + 1
        self._names[pid] = index.pack
        self._places.add(pid, ((e.key, e.offset, e.length) for e in index.entries))
        self._packs[index.pack] = _Pack(stamp, index.size, index.live_bytes, index.storage_class, pid)

    def _drop(self, pack: str) -> None:
        """Forget a pack; a key another pack also holds (a repack killed before it removed the old pack)
        is found there."""
        old = self._packs.pop(pack, None)
        if old is not None:
            self._places.drop(old.id)
            del self._names[old.id]

    # -- views --------------------------------------------------------------------
    def packs(self) -> dict[str, tuple[int, int, str]]:
        """pack -> (size, live bytes, storage class), for every pack an index file names."""
        with self._lock:
            if not self._loaded:
                self.refresh()
            return {p: (v.size, v.live, v.storage_class) for p, v in self._packs.items()}

    def pack_info(self, pack: str) -> tuple[int, int, str]:
        """(size, live bytes, storage class) of one pack, in O(1): a read's look at its pack's class."""
        with self._lock:
            v = self._packs.get(pack)
            return (v.size, v.live, v.storage_class) if v is not None else (0, 0, "STANDARD")

    def holding(self, keys: Collection[str]) -> set[str]:
        """The packs whose index files name any of ``keys`` (every copy, not only the one that answers)."""
        with self._lock:
            if not self._loaded:
                self.refresh()
            return {self._names[pid] for pid in self._places.pack_ids(keys) if pid in self._names}

    def entries(self, pack: str) -> Iterator[Entry]:
        """The keys ``pack`` serves (a key two packs hold is served by one), from its index file, read now."""
        with self._lock:
            held = self._packs.get(pack)
        if held is None:
            return iter(())
        try:
            index = PackIndex.decode(self.backend.get(index_object(pack)), pack)
        except (OSError, PackFormatError):
            return iter(())
        with self._lock:
            rows = self._places.get_many(e.key for e in index.entries)
        return iter(
            [
                Entry(e.key, pack, e.offset, e.length, e.checksum)
                for e, row in zip(index.entries, rows)
                if row is not None and row[0] == held.id and row[1] == e.offset
            ]
        )

    def all_keys(self) -> set[str]:
        """Every key an index file names (the index files read again)."""
        with self._lock:
            if not self._loaded:
                self.refresh()
            packs = list(self._packs)
        out: set[str] = set()
        for pack in packs:
            out.update(e.key for e in self.entries(pack))
        return out

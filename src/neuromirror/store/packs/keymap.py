"""Where each key of a packed store lies, read from its index files (the store's own, nothing else).

Loaded on first use and read again when asked for a key it does not know (another writer may have
sealed a pack since) or when a pack it names is gone (a repack moved the key): only index files that
are new or changed since are read.  Memory: one tuple per key; the entries' checksums stay in the
files (the key names its own).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

from neuromirror.store.packs.backend import Backend, Listed
from neuromirror.store.packs.layout import INDEX, Entry, PackFormatError, PackIndex, pack_name

#: pack, offset, length
Where = tuple[str, int, int]


class KeyMap:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._keys: dict[str, Where] = {}
        self._packs: dict[
            str, tuple[str, int, int, str, tuple[str, ...]]
        ] = {}  # pack -> stamp, size, live, class, keys
        self._loaded = False
        self._lock = threading.RLock()
        self.broken: dict[str, str] = {}  # index files that do not read: pack -> why

    def where(self, key: str, *, fresh: bool = False) -> Optional[Where]:
        with self._lock:
            if not self._loaded or fresh:
                self.refresh()
            got = self._keys.get(key)
            if got is None and not fresh:
                self.refresh()
                got = self._keys.get(key)
            return got

    def known(self, key: str) -> bool:
        with self._lock:
            if not self._loaded:
                self.refresh()
            return key in self._keys

    def add(self, index: PackIndex, stamp: str = "") -> None:
        """A pack this process sealed: known at once, without a listing."""
        with self._lock:
            self._put(index, stamp)

    def refresh(self) -> None:
        """Read the index files that are new or changed since the last look; forget those gone."""
        with self._lock:
            listed = {p: item for item in self.backend.listing(INDEX) if (p := pack_name(item.name))}
            for pack in [p for p in self._packs if p not in listed]:
                self._drop(pack)
            todo = [item for p, item in listed.items() if self._packs.get(p, ("",))[0] != item.stamp]
            with ThreadPoolExecutor(max_workers=8) as pool:
                for item, got in zip(todo, pool.map(self._read, todo)):
                    pack = pack_name(item.name) or ""
                    if isinstance(got, PackIndex):
                        self._drop(pack)
                        self._put(got, item.stamp)
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
        keys = []
        for e in index.entries:
            self._keys[e.key] = (index.pack, e.offset, e.length)
            keys.append(e.key)
        self._packs[index.pack] = (stamp, index.size, index.live_bytes, index.storage_class, tuple(keys))

    def _drop(self, pack: str) -> None:
        """Forget a pack; a key it held that another pack also holds (a repack killed before it removed
        the old pack) is found there."""
        old = self._packs.pop(pack, None)
        if old is None:
            return
        orphans = set()
        for key in old[4]:
            if self._keys.get(key, ("",))[0] == pack:
                del self._keys[key]
                orphans.add(key)
        if not orphans:
            return
        for other in self._packs:
            for e in self._entries_listed(other, orphans):
                self._keys[e.key] = (other, e.offset, e.length)
                orphans.discard(e.key)
            if not orphans:
                return

    def _entries_listed(self, pack: str, wanted: set[str]) -> list[Entry]:
        """``wanted`` keys that ``pack``'s index lists (read again: the map keeps one place per key)."""
        if not any(k in wanted for k in self._packs[pack][4]):
            return []
        try:
            index = PackIndex.decode(self.backend.get(f"{INDEX}{pack}.json"), pack)
        except (OSError, PackFormatError):
            return []
        return [e for e in index.entries if e.key in wanted]

    # -- views --------------------------------------------------------------------
    def packs(self) -> dict[str, tuple[int, int, str]]:
        """pack -> (size, live bytes, storage class), for every pack an index file names."""
        with self._lock:
            if not self._loaded:
                self.refresh()
            return {p: (v[1], v[2], v[3]) for p, v in self._packs.items()}

    def pack_info(self, pack: str) -> tuple[int, int, str]:
        """(size, live bytes, storage class) of one pack, in O(1): a read's look at its pack's class."""
        with self._lock:
            v = self._packs.get(pack)
            return (v[1], v[2], v[3]) if v is not None else (0, 0, "STANDARD")

    def keys_of(self, pack: str) -> tuple[str, ...]:
        with self._lock:
            return self._packs.get(pack, ("", 0, 0, "", ()))[4]

    def entries(self, pack: str) -> Iterator[Entry]:
        with self._lock:
            keys = self.keys_of(pack)
            for key in keys:
                w = self._keys.get(key)
                if w is not None and w[0] == pack:
                    yield Entry(key, pack, w[1], w[2])

    def count(self) -> int:
        with self._lock:
            if not self._loaded:
                self.refresh()
            return len(self._keys)

    def all_keys(self) -> set[str]:
        """Every key an index file names."""
        with self._lock:
            if not self._loaded:
                self.refresh()
            return set(self._keys)

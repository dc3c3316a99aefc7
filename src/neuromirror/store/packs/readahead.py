"""Reading a far packed store's keys in the order they were packed, a span of a pack at a time.

A clone's ``datalad get`` asks ``git-annex-remote-neuromirror-pack`` for keys one by one, and mostly in
the order a keep packed them: a Zarr's chunks and a dataset's files are kept in tree order, the order
git-annex walks them.  From ``pack+s3://`` each key alone would be one request, its round trip paid a
thousand times for a thousand 10 kB chunks.  So, as a kernel's readahead does for a file read front to
back, once a key follows the last one in its pack the next read takes a span of the pack from that key
on, doubling while the keys keep following, up to :data:`MAX_SPAN`; the keys inside it are served from
memory.  A key out of that order costs what it cost before, one ranged read of its own bytes, and shrinks
the span again, so a reader asking for a few scattered keys reads no byte more.  git-annex checks every
key's bytes against the key, as it does any remote's.
"""

from __future__ import annotations

import io
from typing import IO, Any, Optional

#: the first span, once a key follows the last one read from its pack
FIRST_SPAN = 256 << 10
#: the largest span held in memory
MAX_SPAN = 8 << 20
#: a key starting this far past the last one's end still counts as following it (a key skipped, held already)
GAP = 64 << 10


class ReadAhead:
    """Keys of one packed store, read through spans of their packs when asked for in packed order."""

    def __init__(self, store: Any, max_span: int = MAX_SPAN) -> None:
        self.store = store
        self.max_span = max_span
        self.span = 0
        self._held: Optional[tuple[str, int, bytes]] = None  # pack, offset, bytes read from there
        self._last: Optional[tuple[str, int]] = None  # pack, end of the last key served

    def open_key(self, key: str) -> IO[bytes]:
        """The key's bytes (FileNotFoundError: the store has no such key; ``Frozen``: its pack is cold)."""
        got = self.store.where(key)
        if got is None:
            return self._alone(key, None)
        pack, offset, length = got
        held = self._from_held(pack, offset, length)
        if held is not None:
            self._last = (pack, offset + length)
            return io.BytesIO(held)
        if not self._follows(pack, offset):
            self.span = 0
            return self._alone(key, (pack, offset + length))
        self.span = min(self.max_span, max(FIRST_SPAN, 2 * self.span, 4 * length))
        end = min(self.store.keys.pack_info(pack)[0], offset + self.span)
        if end < offset + length:  # the map's size is older than the key: read it alone
            return self._alone(key, (pack, offset + length))
        try:
            with self.store.open_pack(pack, offset, end - offset) as fh:
                data = fh.read()
        except FileNotFoundError:  # repacked away since the map was read: the key's own read looks again
            self._held = None
            return self._alone(key, (pack, offset + length))
        if len(data) < length:
            raise OSError(f"{self.store.url}: pack {pack} cut short at {offset + len(data)}")
        self._held = (pack, offset, data)
        self._last = (pack, offset + length)
        return io.BytesIO(memoryview(data)[:length])

    def _alone(self, key: str, last: Optional[tuple[str, int]]) -> IO[bytes]:
        fh = self.store.open_key(key)
        self._last = last
        return fh

    def _from_held(self, pack: str, offset: int, length: int) -> Optional[memoryview]:
        if self._held is None or self._held[0] != pack:
            return None
        at = offset - self._held[1]
        data = self._held[2]
        return memoryview(data)[at : at + length] if 0 <= at and at + length <= len(data) else None

    def _follows(self, pack: str, offset: int) -> bool:
        return self._last is not None and self._last[0] == pack and self._last[1] <= offset <= self._last[1] + GAP

"""Reading ahead over a link: blocks kept in a bounded LRU, read-ahead that grows along a sequential stream.

An open file of a pin is read by range requests; over a link each request costs a round trip,
whatever its size.  fsspec's ``readahead`` cache keeps one window: h5py's reads jump between the
superblock and metadata at the end of an NWB file, and each jump threw the window away, so a pynwb
read asked for the same 32 KiB blocks again and again (3.3 s against remfile's 0.9 s on the same
URL).  :class:`ReadAheadCache` instead:

* keeps every block it fetched (``blocksize`` each, 32 KiB by default) in an LRU capped at
  ``cache_bytes``: a jump back costs nothing while the block is held;
* fetches what a read lacks and no more: a random small read (h5py's metadata) moves a block or two;
* follows up to :data:`STREAMS` sequential streams (a read that starts where one stopped, or inside
  what it fetched ahead, continues it; h5py's chunk index reads between a dataset's chunks are a
  stream of their own).  A stream that progresses reads ahead in the background (a small thread
  pool) once less than half of its last read-ahead is left, each time twice as far (at least twice
  the reader's own read), up to ``max_block`` bytes: remfile's geometric growth, but fetched before
  the reader asks, not when it misses;
* fetches the disjoint pieces one read lacks, and the parts of a fetch larger than ``2 * part``
  bytes, concurrently.

Every byte comes through the one ``fetcher(start, end)`` it was given (for ``neuromirror://``,
:func:`.loss.read_range`: the archive, else the lab's store).  A background fetch that fails is
dropped quietly (:func:`.loss.dropped`: no cycle through frames) and the reader fetches those
blocks itself, so the failure, and its fallback, happen in the reader's thread as they would
without reading ahead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

from fsspec.caching import BaseCache, caches, register_cache

from neuromirror.read.loss import dropped

log = logging.getLogger("neuromirror.read.readahead")

#: the largest read-ahead of one stream, and of one background fetch
MAX_BLOCK = 8 << 20
#: bytes of blocks one open file keeps (least recently used dropped first)
CACHE_BYTES = 64 << 20
#: a fetch larger than twice this is fetched in parts of about this size, concurrently
PART = 4 << 20
#: a read-ahead up to this size right after what a read fetches anyway is fetched with it, in one request
MERGE = 1 << 20
#: sequential streams followed at once per file (the least recently continued forgotten)
STREAMS = 8
#: threads fetching ahead and the parts of large reads, shared by every open file of the process
THREADS = 4

_pool: Optional[ThreadPoolExecutor] = None
_pool_pid = 0
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The process's fetching threads (a forked child makes its own)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="neuromirror-readahead")
            _pool_pid = os.getpid()
        return _pool


#: a block held: (the offset in the file of its first byte held, its bytes from there to the block's end)
_Held = tuple[int, bytes]


@dataclass
class _Stream:
    head: int  # the last block its reads reached
    frontier: int  # the first block after what it read or fetched ahead
    run: int  # blocks its last read-ahead fetched


def _runs(blocks: list[int]) -> list[tuple[int, int]]:
    """Sorted block numbers as (first, count) runs of consecutive blocks."""
    out: list[tuple[int, int]] = []
    for b in blocks:
        if out and out[-1][0] + out[-1][1] == b:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((b, 1))
    return out


class ReadAheadCache(BaseCache):
    """An fsspec cache (``cache_type="readahead-growing"`` for any fsspec file; ``neuromirror://``'s
    ``"readahead"``): blocks in a bounded LRU, read ahead along sequential streams, fetched concurrently."""

    name: ClassVar[str] = "readahead-growing"

    def __init__(
        self,
        blocksize: int,
        fetcher: Callable[[int, int], bytes],
        size: int,
        max_block: int = MAX_BLOCK,
        cache_bytes: int = CACHE_BYTES,
        part: int = PART,
        prefetch: bool = True,
    ) -> None:
        super().__init__(blocksize, fetcher, size)
        self.max_run = max(1, max_block // blocksize)
        self.cache_bytes = cache_bytes
        self.part = max(1, part // blocksize)
        self.prefetch = prefetch
        self.nblocks = -(-size // blocksize)
        self.fetches = 0  # requests made (each one call of ``fetcher``)
        self._blocks: OrderedDict[int, _Held] = OrderedDict()
        self._held = 0
        self._pending: dict[
            int, tuple[Future, int]
        ] = {}  # block -> (the background fetch bringing it, its first block)
        self._streams: list[_Stream] = []  # the most recently continued last
        self._lock = threading.Lock()
        self._closed = False

    # -- reading -------------------------------------------------------------------------
    def _fetch(self, start: Optional[int], stop: Optional[int]) -> bytes:
        start = start or 0
        stop = self.size if stop is None else min(stop, self.size)
        if start >= stop:
            return b""
        bs = self.blocksize
        first, last = start // bs, (stop - 1) // bs
        got: dict[int, _Held] = {}
        waits: dict[int, tuple[Future, int]] = {}
        with self._lock:
            missing = self._plan(first, last, start, got, waits)
        if missing:
            self.miss_count += 1
        else:
            self.hit_count += 1
        # a read of several blocks starts where it starts: the bytes before it are another chunk's
        self._get(missing, got, start if first < last and missing[:1] == [first] else missing[0] * bs if missing else 0)
        self._await(waits, got)
        pieces = [
            d[max(start, at) - at : min(stop, (at // bs + 1) * bs) - at]
            for at, d in [got[b] for b in range(first, last + 1)]
        ]
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _plan(
        self, first: int, last: int, start: int, got: dict[int, _Held], waits: dict[int, tuple[Future, int]]
    ) -> list[int]:
        """Under the lock: the blocks held (into ``got``), those a background fetch brings (into ``waits``),
        the read-ahead started; the blocks this read must fetch itself (with the read-ahead right after
        them when it is small: one request for both)."""
        bs = self.blocksize
        ahead = self._follow(first, last) if self.prefetch else []
        for b in range(first, last + 1):
            held = self._blocks.get(b)
            if held is not None and held[0] <= max(start, b * bs):
                self._blocks.move_to_end(b)
                got[b] = held
            elif b in self._pending:
                waits[b] = self._pending[b]
        missing = [b for b in range(first, last + 1) if b not in got and b not in waits]
        if missing[-1:] == [last] and ahead[:1] and ahead[0][0] == last + 1 and ahead[0][1] * bs <= MERGE:
            a, n = ahead.pop(0)  # the read-ahead right after what this read fetches: one request for both
            missing += range(a, a + n)
        for a, n in ahead:
            self._background(a, n)
        return missing

    def _await(self, waits: dict[int, tuple[Future, int]], got: dict[int, _Held]) -> None:
        """The blocks a background fetch brings, into ``got``; one that failed there is fetched here, where
        a failure is the reader's."""
        bs = self.blocksize
        late = []
        for b, (fut, a) in waits.items():
            data = fut.result()
            if data is None:  # it failed in the background: fetched here, where a failure is the reader's
                late.append(b)
            else:
                got[b] = (b * bs, data[(b - a) * bs : (b - a + 1) * bs])
        self._get(late, got, late[0] * bs if late else 0)

    def _follow(self, first: int, last: int) -> list[tuple[int, int]]:
        """The read of blocks ``first..last``: which stream it continues, and what that stream fetches ahead
        now (runs of blocks neither held nor coming).  Under the lock."""
        stream = next((s for s in reversed(self._streams) if s.head <= first <= max(s.head + 1, s.frontier)), None)
        if stream is None:  # a read elsewhere: a stream of its own, which reads ahead once it continues
            self._streams.append(_Stream(head=last, frontier=last + 1, run=1))
            del self._streams[:-STREAMS]
            return []
        self._streams.remove(stream)
        self._streams.append(stream)
        if last <= stream.head:  # the same blocks again
            return []
        stream.head = last
        stream.frontier = max(stream.frontier, last + 1)
        if stream.frontier - 1 - last >= (stream.run + 1) // 2:  # at least half its read-ahead still ahead
            return []
        stream.run = min(self.max_run, max(2 * stream.run, 2 * (last - first + 1)))
        end = min(stream.frontier + stream.run, self.nblocks)
        wanted = [b for b in range(stream.frontier, end) if b not in self._blocks and b not in self._pending]
        stream.frontier = max(stream.frontier, end)
        return [p for r in _runs(wanted) for p in self._parts(*r)]

    def _parts(self, first: int, n: int) -> list[tuple[int, int]]:
        """A run of ``n`` blocks as the requests that fetch it: one, or parts of about ``part`` blocks."""
        if n <= 2 * self.part:
            return [(first, n)]
        k = -(-n // self.part)
        cuts = [first + n * i // k for i in range(k + 1)]
        return [(a, b - a) for a, b in zip(cuts, cuts[1:])]

    def _get(self, blocks: list[int], got: dict[int, _Held], since: int) -> None:
        """Fetch ``blocks`` (the first from byte ``since`` of it) into ``got``: the first part in this thread, the
        others concurrently beside it."""
        if not blocks:
            return
        parts = [
            (a, n, since if a == blocks[0] else a * self.blocksize) for r in _runs(blocks) for a, n in self._parts(*r)
        ]
        others = [(p, pool().submit(self._quiet, *p)) for p in parts[1:]]
        done = [(parts[0], self._load(*parts[0]))]
        for p, fut in others:
            data = fut.result()
            done.append((p, self._load(*p) if data is None else data))  # failed beside: again, here
        for (a, _, lo), data in done:
            got.update(self._split(a, lo, data))

    # -- fetching ------------------------------------------------------------------------
    def _load(self, first: int, n: int, since: int) -> bytes:
        """Bytes ``since`` to the end of block ``first+n-1`` from the fetcher (its failure is the caller's), kept."""
        data = self.fetcher(since, min(self.size, (first + n) * self.blocksize))
        self._keep(first, since, data)
        return data

    def _quiet(self, first: int, n: int, since: int) -> Optional[bytes]:
        """:meth:`_load` off the reader's thread: None when it failed (the reader then fetches it itself)."""
        if self._closed:
            return None
        try:
            return self._load(first, n, since)
        except Exception as exc:
            log.debug("read-ahead of blocks %d+%d failed: %s", first, n, dropped(exc))
            return None

    def _background(self, first: int, n: int) -> None:
        """Start fetching ``n`` blocks from ``first`` for a later read (under the lock)."""
        fut: Future = Future()
        for b in range(first, first + n):
            self._pending[b] = (fut, first)

        def run() -> None:
            data = self._quiet(first, n, first * self.blocksize)
            with self._lock:
                for b in range(first, first + n):
                    if self._pending.get(b, (None,))[0] is fut:
                        del self._pending[b]
            fut.set_result(data)

        pool().submit(run)

    def _split(self, first: int, since: int, data: bytes) -> dict[int, _Held]:
        """Bytes fetched from ``since`` (in block ``first``) as held blocks, the first maybe partial."""
        bs = self.blocksize
        head = (first + 1) * bs - since  # the first block's bytes fetched
        out = {first: (since, data[:head])}
        for off in range(head, len(data), bs):
            b = first + 1 + (off - head) // bs
            out[b] = (b * bs, data[off : off + bs])
        return out

    def _keep(self, first: int, since: int, data: bytes) -> None:
        with self._lock:
            self.fetches += 1
            self.total_requested_bytes += len(data)
            if self._closed:
                return
            for b, held in self._split(first, since, data).items():
                old = self._blocks.pop(b, None)
                if old is not None and old[0] < held[0]:  # a whole block is not replaced by its tail
                    held = old
                self._held += len(held[1]) - (len(old[1]) if old is not None else 0)
                self._blocks[b] = held
            while self._held > self.cache_bytes and len(self._blocks) > 1:
                self._held -= len(self._blocks.popitem(last=False)[1][1])

    def close(self) -> None:
        """Fetch nothing more ahead; drop what is held."""
        self._closed = True
        with self._lock:
            self._blocks.clear()
            self._held = 0


if ReadAheadCache.name not in caches:
    register_cache(ReadAheadCache)

"""A key per chunk: known from an earlier sync, a VURL key, or read and hashed now.

Reading cutouts is what a BOSS sync costs, so it happens only when needed: an
image chunk whose URL and channel metadata are unchanged keeps its key (cached
per chunk, forever), annotation chunks are read every time (they are edited
upstream).  Two passes over spools, so that 10^6 chunks never sit in memory:
:func:`decide` says per chunk what it needs, :func:`resolve` reads and hashes
the chunks to read, several at once, and hands them on in plan order.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

from neuromirror.annex.keys import sha256e_key, url_key
from neuromirror.records import SHA256, VERIFY_ON_GET, ContentSink, ProgressCallback, SourceState
from neuromirror.sources.boss.context import Experiment, ExperimentReader
from neuromirror.sources.boss.plan import ChannelPlan, chunks_of
from neuromirror.util.memory.spool import Spool
from neuromirror.util.progress import BYTES_SUFFIX

log = logging.getLogger("neuromirror.boss")

CACHE_NAMESPACE = "boss-chunk-sha256"
#: the stage of the chunks' reading, counted in bytes (drawn as a bar of bytes: MiB/s)
READING = f"reading cutouts{BYTES_SUFFIX}"


@dataclass
class _ChunkRec:
    """A chunk entry as spooled between the passes."""

    path: str
    key: str
    size: int
    url: str
    kind: str
    sha: Optional[str]
    remote_id: str
    annotation: bool


class CacheWriter:
    """Batches the per-chunk cache rows (one transaction per batch, not per chunk)."""

    def __init__(self, state: SourceState, batch: int = 2000):
        self.state = state
        self.batch = batch
        self.items: list[tuple[str, str]] = []

    def put(self, key: str, value: str) -> None:
        self.items.append((key, value))
        if len(self.items) >= self.batch:
            self.flush()

    def flush(self) -> None:
        items, self.items = self.items, []
        if not items:
            return
        index = getattr(self.state, "index", None)
        if index is not None and hasattr(index, "cache_put_many"):
            index.cache_put_many(CACHE_NAMESPACE, items)
        else:
            for k, v in items:
                self.state.cache_put(CACHE_NAMESPACE, k, v)


def decide(src: Experiment, plans: list[ChannelPlan], state: SourceState, cache: CacheWriter) -> Spool:
    """Pass 1: per chunk, a known key, a VURL key, or "read" (in plan order)."""
    s = src.settings
    spool: Spool[tuple] = Spool()
    for p in plans:
        prev_z = state.previous(f"{p.root}/.zattrs")
        same_meta = bool(prev_z and prev_z.checksum == hashlib.sha256(p.zattrs).hexdigest())
        for path, chunk in chunks_of(src, p):
            url = chunk.url
            action: tuple[str, Optional[str], Optional[str]] = ("read", None, None)
            if not p.annotation and not s.reread:
                cached = state.cache_get(CACHE_NAMESPACE, f"{p.data_digest}:{url}")
                prev = state.previous(path) if same_meta else None
                if cached:
                    action = ("known", SHA256, cached)
                elif prev and prev.urls == (url,) and prev.checksum_kind == SHA256 and prev.checksum:
                    action = ("known", SHA256, prev.checksum)
                    cache.put(f"{p.data_digest}:{url}", prev.checksum)
                elif not s.hash:
                    action = ("vurl", VERIFY_ON_GET, None)
            spool.add((path, chunk, p.annotation, p.data_digest, action))
    return spool


def resolve(
    src: ExperimentReader,
    decided: Spool[tuple],
    cache: CacheWriter,
    progress: Optional[ProgressCallback],
    sink: Optional[ContentSink] = None,
) -> Spool[_ChunkRec]:
    """Pass 2: read and hash the "read" chunks, concurrently and in order; spool the entries.

    With a ``sink`` (the sync has a store), every chunk read is handed to it as well: the chunks
    whose key was known are not read, so not kept by this sync (``--reread`` reads them all).
    """
    out: Spool[_ChunkRec] = Spool()
    try:
        total, n_read = _to_read(decided)
        if progress and total:
            progress(READING, 0, total)
        tell = _teller(progress, total)
        jobs = max(1, src.settings.jobs)
        with ThreadPoolExecutor(jobs, thread_name_prefix="boss-read") as pool:
            _read_in_order(src, decided, out, cache, pool, jobs, tell, sink)
        log.info("%s: %d chunks read and hashed (%d bytes), %d entries", src.id, n_read, total, out.count)
    except BaseException:
        out.close()
        raise
    finally:
        decided.close()
    return out


def _teller(progress: Optional[ProgressCallback], total: int) -> Optional[Callable[[int], None]]:
    """What says how many of the ``total`` bytes were read; None when nobody listens or nothing is read."""
    if not progress or not total:
        return None
    said = progress

    def tell(done: int) -> None:
        said(READING, done, total)

    return tell


def _to_read(decided: Spool[tuple]) -> tuple[int, int]:
    """(bytes, chunks) the "read" chunks come to: the progress's total."""
    total = n_read = 0
    for _, chunk, _, _, (action, _, _) in decided:
        if action == "read":
            total += chunk.nbytes
            n_read += 1
    return total, n_read


def _read_in_order(
    src: ExperimentReader,
    decided: Spool[tuple],
    out: Spool[_ChunkRec],
    cache: CacheWriter,
    pool: ThreadPoolExecutor,
    jobs: int,
    tell: Optional[Callable[[int], None]],
    sink: Optional[ContentSink],
) -> None:
    """Read the "read" chunks in ``pool``, at most ``2 * jobs`` ahead of the oldest one still awaited,
    and spool every chunk's entry in plan order; on any failure the reads not begun are cancelled."""
    done = 0
    window: deque[tuple[tuple, Optional[Future]]] = deque()
    try:
        for rec in decided:
            fut = pool.submit(src.hash_chunk, rec[1], sink, rec[0]) if rec[4][0] == "read" else None
            window.append((rec, fut))
            while len(window) > 2 * jobs or (window and window[0][1] is None):
                done += _emit(out, cache, *window.popleft())
                if tell:
                    tell(done)
        while window:
            done += _emit(out, cache, *window.popleft())
            if tell:
                tell(done)
    except BaseException:
        for _, fut in window:
            if fut is not None:
                fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def _emit(out: Spool, cache: CacheWriter, rec: tuple, fut: Optional[Future]) -> int:
    """Spool a chunk's entry, its key known at last; the bytes read for it (for the progress)."""
    path, chunk, annotation, data_digest, (action, kind, sha) = rec
    read = 0
    if action == "read":
        assert fut is not None
        sha = fut.result()
        kind = SHA256
        read = chunk.nbytes
        if not annotation:  # a fact for good: these bytes under this channel metadata
            cache.put(f"{data_digest}:{chunk.url}", sha)
    if kind == SHA256:
        key = sha256e_key(sha, chunk.nbytes, path)
    else:
        key = url_key(chunk.url, chunk.nbytes)
    out.add(
        _ChunkRec(
            path,
            key,
            chunk.nbytes,
            chunk.url,
            kind,
            sha,
            chunk.remote_id,
            annotation,
        )
    )
    return read

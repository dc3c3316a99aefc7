"""Blobs are pinned while the version is still being listed.

Why: a version's listing is complete and checked (every asset once, as many as the version says)
before its first entry is made (:meth:`DandiSource._list_assets`), and each page of entries waited
for its own HEADs.  On loopback the pins then cost CPU only; an archive 50 ms away made a cold
10^5-blob mirror wait for the listing, then for 100 pages of HEADs, each ending with fewer than
the pool's requests in flight.  A blob's S3 version never changes (its uuid names its bytes), so
its pin can be asked as soon as a page of the listing names it, whatever becomes of that listing:
the HEADs run under the listing, and the pages' entries find their answers waiting.

Memory stays bounded: at most :data:`AHEAD` pins are held between asking and being taken; beyond,
the page's own pins are asked when its entries are made, as before.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from typing import Any, Callable, Optional

#: pins asked ahead and not yet taken, at most (a Future each: ~1 kB)
AHEAD = 20_000
#: assets gathered before their pins are looked up in the cache (one query) and asked
BATCH = 500

PinJob = tuple[str, Optional[str], int]  # the blob's S3 URL, its dandi-etag, its size


class PinAhead:
    """Pins asked from the listing's pages (:meth:`offer`), taken by the entries (:meth:`take`)."""

    def __init__(
        self,
        pool: Executor,
        pin: Callable[[str, Optional[str], int], tuple[Optional[str], Optional[str]]],
        job_of: Callable[[dict], Optional[PinJob]],
        cached: Callable[[set[str]], dict],
        refused: Callable[[Any], Optional[str]] = lambda _path: None,
    ) -> None:
        self._pool = pool
        self._pin = pin
        self._job_of = job_of  # None: the asset needs no pin (a Zarr, no S3 URL, no metadata yet)
        self._cached = cached  # blob -> pin already known to the index
        # why a path is refused (its page leaves the asset out): nothing is asked for it, so that whether its HEAD
        # had started when the listing ended does not change what the sync asked of the archive
        self._refused = refused
        self._batch: dict[str, tuple[PinJob, Any]] = {}  # blob -> (its pin's job, the asset's path)
        self._asked: dict[str, Future] = {}

    def offer(self, asset: Any) -> None:
        """An asset of a listing page: its pin is asked soon, if it needs one."""
        if len(self._asked) >= AHEAD or not isinstance(asset, dict):
            return
        blob = asset.get("blob")
        if not blob or blob in self._asked or asset.get("zarr"):
            return
        job = self._job_of(asset)
        if job is not None:
            self._batch[blob] = (job, asset.get("path"))
            if len(self._batch) >= BATCH:
                self.flush()

    def flush(self) -> None:
        """Ask the gathered assets' pins (those the index does not know yet, of paths not refused)."""
        batch, self._batch = self._batch, {}
        if not batch:
            return
        known = self._cached(set(batch))
        for blob, (job, path) in batch.items():
            if known.get(blob) is None and blob not in self._asked and not self._refused(path):
                self._asked[blob] = self._pool.submit(self._pin, *job)

    def take(self, blob: str) -> Optional[Future]:
        """The pin asked ahead for ``blob`` (None: not asked; the caller asks it now)."""
        return self._asked.pop(blob, None)

    def cancel(self) -> None:
        """The snapshot ends (or fails): pins not yet taken are not waited for."""
        for f in self._asked.values():
            f.cancel()
        self._asked.clear()
        self._batch.clear()

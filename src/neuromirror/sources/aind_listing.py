"""An AIND asset's listing: its objects, the counts and digest that tell a sync whether anything changed,
and — for the first sync of an asset — its pages handed over while the listing goes on.

The first sync has no earlier state to compare the listing with, so nothing needs
the whole listing before the first entry is registered: the pages flow from a
listing thread into the sync, which pins, diffs and writes while S3 (or the
stand-in) answers the next page.  Later syncs list everything first: an unchanged
asset must cost its listing and nothing more.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, Optional

from neuromirror.util.spool import Spool


@dataclass
class Obj:
    key: str  # full S3 key
    version_id: Optional[str]  # None when S3 gave none ("null")
    etag: str  # without quotes
    size: int
    modified: datetime
    storage_class: Optional[str] = None


class Listing(Spool):
    """An asset's listing, spooled to disk (unless ``keep`` is false); counts and digest computed on the way."""

    def __init__(self, keep: bool = True) -> None:
        super().__init__()
        self.keep = keep
        self.bytes = 0
        self.unpinned = 0
        self.newest: Optional[datetime] = None
        self.digest: Any = hashlib.sha256()
        self.sidecars: list[Obj] = []
        self.versioned_listing = False

    def add(self, o: Obj) -> None:  # type: ignore[override]
        if self.keep:
            super().add(o)
        else:
            self.count += 1
        self.bytes += o.size
        if o.version_id is None:
            self.unpinned += 1
        self.seen(o.modified)
        self.digest.update(f"{o.key}\0{o.version_id or ''}\0{o.etag}\0{o.size}\n".encode("utf-8", "surrogateescape"))

    def seen(self, modified: Optional[datetime]) -> None:
        if modified is not None and (self.newest is None or modified > self.newest):
            self.newest = modified


def version_id_of(v: Any) -> Optional[str]:
    return v if isinstance(v, str) and v and v != "null" else None


def etag_of(v: Any) -> str:
    return str(v or "").strip('"')


class _Stopped(BaseException):
    """The consumer went away: the listing thread ends quietly."""


#: a listing run: it calls the sink with each page's objects
ListingRun = Callable[[Callable[[list[Obj]], None]], None]


class PageStream:
    """A listing run in its own thread; iterate for its pages, as lists of objects, in order.

    At most ``depth`` pages wait in memory.  An error of the listing is raised by
    the iteration, where the pages stop; :meth:`close` ends the thread whatever
    the consumer did.
    """

    def __init__(self, run: ListingRun, depth: int = 2, name: str = "listing") -> None:
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(run,), daemon=True, name=name)
        self._thread.start()

    def _produce(self, run: ListingRun) -> None:
        try:
            try:
                run(self._put)
            except _Stopped:
                return
            except BaseException as exc:  # handed to the consumer, raised there
                self._put(exc)
                return
            self._put(None)
        except _Stopped:
            return

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def __iter__(self) -> Iterator[list[Obj]]:
        while True:
            item = self._q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

"""What the view answers for a file served by the archive: its redirect, the store's copy, 410 or 502.

The view redirects to the archive's pinned URL only while that URL is believed to serve: a client
that follows a redirect to a 404 reads a Zarr chunk's fill value.  So before a redirect:

* a loss any reader already saw (:class:`~.loss.Losses`: this process's, or the index's table
  ``lost_urls`` that every ``neuromirror://`` reader and view of the mirror writes) turns the file
  to the store's copy, or to 410 naming the key, within one request;
* a file inside a Zarr (or N5) is asked of the archive (one ``HEAD``) before every redirect: its
  client (zarr-python over fsspec HTTP) takes a 404 for "no chunk here" and reads the fill value,
  so the view alone, told by no other reader, never redirects it to a URL that stopped serving.
  The cost is one archive round trip in the view per chunk (docs/performance.md);
* any other file (a 404 there is the client's loud error, not other bytes) is asked when the URL's
  last answer is older than ``alive_for`` seconds (``NEUROMIRROR_VIEW_RECHECK``, default 60; 0:
  before every redirect);
* at once, whatever is remembered, when a ``neuromirror://`` reader tells the view its read through
  the redirect failed (:data:`~.fsspec_remote.FAILED_HEADER`);
* a 404/410 found so is remembered for every reader (:meth:`~.loss.Losses.record`); another failure
  (no answer, a 5xx, a 403) is not a loss: the store's copy when there is one, else 502.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from neuromirror.read.check import LOST, url_status
from neuromirror.read.loss import GONE, Losses
from neuromirror.read.urls import PinnedFile

#: seconds an archive URL found serving is believed to serve (``NEUROMIRROR_VIEW_RECHECK``)
ALIVE_FOR = 60.0
RECHECK_ENV = "NEUROMIRROR_VIEW_RECHECK"
#: a directory named so holds chunks whose client reads a 404 as the fill value
CHUNKED_SUFFIXES = (".zarr", ".ngff", ".n5")


def missing_reads_as_empty(f: PinnedFile, where: str = "") -> bool:
    """Is ``f`` inside a Zarr (or N5), whose client takes a 404 for a chunk never written (the fill value)?

    ``where``: the path it was asked by (``/zarrs/.../{checksum}.zarr/0/0`` names its Zarr, ``f.path`` not)."""
    dirs = (where or "").lower().split("/")[:-1] + f.path.lower().split("/")[:-1]
    dirs += [f.repo.name.lower()] if f.repo is not None else []
    return any(d.endswith(CHUNKED_SUFFIXES) for d in dirs)


def recheck_seconds() -> float:
    """``NEUROMIRROR_VIEW_RECHECK`` (seconds), else :data:`ALIVE_FOR`."""
    raw = os.environ.get(RECHECK_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else ALIVE_FOR
    except ValueError:
        return ALIVE_FOR


class Liveness:
    """Does an archive URL still serve?  One ``HEAD`` per URL, remembered (a dead answer briefly)."""

    def __init__(self, alive_for: Optional[float] = None, dead_for: float = 60.0, size: int = 65536) -> None:
        self.alive_for = recheck_seconds() if alive_for is None else alive_for
        self.dead_for, self.size = dead_for, size
        self._known: dict[str, tuple[Optional[str], float]] = {}
        self._lock = threading.Lock()
        self._session: Any = None

    def dead(self, url: str, fresh: bool = False) -> Optional[str]:
        """None if ``url`` answers 200, else what it answered (``fresh``: ask, whatever is remembered)."""
        now = time.monotonic()
        with self._lock:
            got = None if fresh else self._known.get(url)
            if got is not None and got[1] > now:
                return got[0]
            if self._session is None:
                from neuromirror.network import identity

                self._session = identity.session()  # the view's URL checks name the mirror
        status = url_status(self._session, url, timeout=15)
        with self._lock:
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[url] = (status, now + (self.alive_for if status is None else self.dead_for))
        return status


@dataclass(frozen=True)
class Answer:
    """How to answer for a file: serve ``file`` (its ``url``: redirect, or the store's copy), or an error."""

    file: PinnedFile
    status: Optional[str] = None  # "410 Gone" / "502 Bad Gateway"; None: serve ``file``
    body: str = ""


class Serving:
    """The view's memory of which archive URLs serve (:class:`Liveness`) and which are lost (:class:`Losses`)."""

    def __init__(self, index_path: Optional[Path], lock: Optional[Callable[[str], Any]] = None) -> None:
        self.live = Liveness()
        self.losses = Losses(index_path, lock)

    def answer(self, f: PinnedFile, source: Optional[str], fresh: bool = False, where: str = "") -> Answer:
        """What to serve for ``f`` now (``fresh``: a reader's read through the redirect failed; ``where``:
        the path it was asked by)."""
        if f.served_by != "archive" or f.url is None:
            return Answer(f)
        now = self.losses.apply(f)
        if now is not f:
            return _gone(now) if now.served_by == "none" else Answer(now)
        dead = self.live.dead(f.url, fresh or missing_reads_as_empty(f, where))
        if dead is None:
            return Answer(f)
        if dead in GONE:
            self.losses.record(f, dead, source)
        if f.copy is not None:
            return Answer(dataclasses.replace(f, served_by="store"))
        if dead.startswith("HTTP 4"):
            return _gone(f, LOST.format(status=dead))
        why = f"{f.path}: key {f.key}: the archive did not answer ({dead}); try again later\n"
        return Answer(f, "502 Bad Gateway", why)


def _gone(f: PinnedFile, why: Optional[str] = None) -> Answer:
    return Answer(f, "410 Gone", f"{f.path}: key {f.key or '-'}: {why or f.why or 'no URL serves it'}\n")

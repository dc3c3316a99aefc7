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

A conditional ``GET`` of such a chunk (``If-Match``: Icechunk's read of a virtual chunk, guarded by the
chunk's ETag; ``export --icechunk`` writes the view's URLs) is answered with the archive's own answer, fetched
by the view (:class:`Relayed`), instead of the ``HEAD`` and a redirect: the view asks the archive once either
way, and the client is spared its own round trip there (two round trips per chunk become one).  Its
``Range`` and conditions go with it; the archive's 404/410 is a loss as above.  A chunk larger than
:data:`RELAY_MAX` is redirected as before (its transfer, not a round trip, is then the cost).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from neuromirror.read.check import LOST, url_status
from neuromirror.read.loss import GONE, Losses
from neuromirror.read.urls import PinnedFile

#: seconds an archive URL found serving is believed to serve (``NEUROMIRROR_VIEW_RECHECK``)
ALIVE_FOR = 60.0
RECHECK_ENV = "NEUROMIRROR_VIEW_RECHECK"
#: a directory named so holds chunks whose client reads a 404 as the fill value
CHUNKED_SUFFIXES = (".zarr", ".ngff", ".n5")
#: the largest chunk a conditional read gets relayed by the view (bytes); a larger one is redirected
RELAY_MAX = 16 << 20
#: the request headers a relayed read passes on, and the answer's headers it passes back
FORWARDED = ("Range", "If-Match", "If-None-Match", "If-Unmodified-Since", "If-Modified-Since")
RELAYED_HEADERS = ("Content-Length", "Content-Range", "Content-Type", "Accept-Ranges", "ETag", "Last-Modified")
#: the archive's answers a relayed read passes back as they are (the others: a loss, a failure, as a HEAD's)
RELAYED_STATUS = (200, 206, 304, 412, 416)


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

    def session(self) -> Any:
        """The view's named session to the archive (kept connections: the view's threads share it)."""
        with self._lock:
            if self._session is None:
                from neuromirror.network import identity

                self._session = identity.session(maxsize=32)  # the view's URL checks name the mirror
            return self._session

    def dead(self, url: str, fresh: bool = False) -> Optional[str]:
        """None if ``url`` answers 200, else what it answered (``fresh``: ask, whatever is remembered)."""
        now = time.monotonic()
        with self._lock:
            got = None if fresh else self._known.get(url)
            if got is not None and got[1] > now:
                return got[0]
        status = url_status(self.session(), url, timeout=15)
        with self._lock:
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[url] = (status, now + (self.alive_for if status is None else self.dead_for))
        return status


def conditional(environ: dict) -> Optional[dict[str, str]]:
    """A conditional ``GET``'s headers (``If-Match``: the bytes named by their ETag) to pass on; None: another."""
    got = {h: environ.get("HTTP_" + h.upper().replace("-", "_"), "") for h in FORWARDED}
    ok = environ["REQUEST_METHOD"] == "GET" and got["If-Match"]
    return {h: v for h, v in got.items() if v} if ok else None


@dataclass(frozen=True)
class Relayed:
    """The archive's answer to a conditional read, passed back as it came: status line, headers, body."""

    status: str
    headers: list[tuple[str, str]]
    body: Iterator[bytes]


def relay(session: Any, url: str, headers: dict[str, str]) -> tuple[Optional[Relayed], Optional[str]]:
    """``GET url`` with the client's ``headers``: (its answer to pass back, None), or (None, what it answered)."""
    try:
        r = session.get(url, headers=headers, stream=True, timeout=30)
    except Exception as exc:  # a refused connection, a timeout: the URL does not serve
        return None, type(exc).__name__
    if r.status_code not in RELAYED_STATUS:
        r.close()
        return None, f"HTTP {r.status_code}"
    kept = [(k, r.headers[k]) for k in RELAYED_HEADERS if k in r.headers]
    return Relayed(f"{r.status_code} {HTTPStatus(r.status_code).phrase}", kept, _body(r)), None


def _body(r: Any) -> Iterator[bytes]:
    """The answer's bytes as they came (never decoded: its Content-Length stays true), the connection given
    back at the end."""
    try:
        yield from r.raw.stream(1 << 16, decode_content=False)
    finally:
        r.close()


@dataclass(frozen=True)
class Answer:
    """How to answer for a file: serve ``file`` (its ``url``: redirect, or the store's copy), the archive's
    answer ``relayed``, or an error."""

    file: PinnedFile
    status: Optional[str] = None  # "410 Gone" / "502 Bad Gateway"; None: serve ``file``
    body: str = ""
    relayed: Optional[Relayed] = None


class Serving:
    """The view's memory of which archive URLs serve (:class:`Liveness`) and which are lost (:class:`Losses`)."""

    def __init__(self, index_path: Optional[Path], lock: Optional[Callable[[str], Any]] = None) -> None:
        self.live = Liveness()
        self.losses = Losses(index_path, lock)

    def answer(
        self, f: PinnedFile, source: Optional[str], fresh: bool = False, where: str = "", conditional: Any = None
    ) -> Answer:
        """What to serve for ``f`` now (``fresh``: a reader's read through the redirect failed; ``where``:
        the path it was asked by; ``conditional``: a conditional GET's headers to pass on, see the module's doc)."""
        if f.served_by != "archive" or f.url is None:
            return Answer(f)
        now = self.losses.apply(f)
        if now is not f:
            return _gone(now) if now.served_by == "none" else Answer(now)
        chunk = missing_reads_as_empty(f, where)
        if conditional and chunk and (f.size or 0) <= RELAY_MAX:
            relayed, dead = relay(self.live.session(), f.url, conditional)
            if relayed is not None:
                return Answer(f, relayed=relayed)
        else:
            dead = self.live.dead(f.url, fresh or chunk)
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

"""A ``requests`` adapter whose every request goes through its endpoint's pace (:mod:`.pacing`).

Why a module of its own: ``requests`` is imported only when a client is made, and the class must be
found by name in another process (a Dask task carries its source's dandi client, session included).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Optional

from requests import exceptions as rx
from requests.adapters import HTTPAdapter

from neuromirror.network import pacing

#: per thread, the last request that met a retried answer or none: (method, url, when it ended)
_last = threading.local()
#: per thread, the last request sent: (method, url)
_sent = threading.local()


class CutShort(rx.ConnectionError, rx.ChunkedEncodingError):
    """An answer whose body ended before the length it announced: no answer, as a reset is.

    A ``ConnectionError`` so that a client retrying those (the dandi client's tenacity does; it does
    not retry a ``ChunkedEncodingError``) asks again, and still a ``ChunkedEncodingError`` for callers
    that catch that."""


class PacedAdapter(HTTPAdapter):
    """``send`` waits for a slot of ``endpoint``'s pace, gives requests a timeout when the client set none
    (a stalled answer must not hang a sync), and tells the pace each answer and its Retry-After.

    The body of an answer not streamed is read here, in the request's slot: one cut short is then
    no answer (counted as an error, the same request sent again as a retry) and raised as
    :class:`CutShort`, which a client retries like a reset."""

    __attrs__ = [*HTTPAdapter.__attrs__, "endpoint", "ceiling"]

    def __init__(self, endpoint: str = "", ceiling: int = 16, **kwargs: Any) -> None:
        self.endpoint = endpoint
        self.ceiling = ceiling
        super().__init__(pool_connections=4, pool_maxsize=ceiling, **kwargs)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = pacing.timeout()
        pace = pacing.pace_for(self.endpoint, self.ceiling)
        _count_retry(pace, request)
        _sent.request = (request.method, request.url)
        epoch = pace.acquire()
        try:
            r = super().send(request, *args, **kwargs)
            if not kwargs.get("stream"):
                _read_whole(r)
        except BaseException:
            pace.release(epoch, None)
            _last.request = (request.method, request.url, time.monotonic())
            raise
        code = r.status_code
        pace.release(
            epoch, code, pacing.retry_after_seconds(r.headers.get("Retry-After")) if code in pacing.RETRIED else None
        )
        _last.request = (request.method, request.url, time.monotonic()) if code in pacing.RETRIED else None
        return r


def _read_whole(r: Any) -> None:
    try:
        r.content  # noqa: B018 - read now (requests keeps it), so that a cut body fails here
    except rx.ChunkedEncodingError as exc:
        read = re.search(r"IncompleteRead\(([^)]*)\)", str(exc))
        why = f"{r.url}: the answer was cut short ({read.group(1) if read else 'connection broken'})"
        raise CutShort(why, request=r.request, response=r) from None


def unreadable() -> None:
    """The answer this thread was just given could not be read as promised (not the JSON it said it was):
    the same request sent again by this thread is counted as a retry, as after a reset."""
    last: Optional[tuple[str, str]] = getattr(_sent, "request", None)
    if last is not None:
        _last.request = (*last, time.monotonic())


def _count_retry(pace: pacing.Pace, request: Any) -> None:
    """The client retries on its own (the dandi client: tenacity, sleeping a Retry-After and its backoff):
    the same request again from the same thread after a retried answer or no answer is a retry, and the time
    since that answer was spent held back.  Counted so that a sync's report says what the archive saw."""
    last: Optional[tuple[str, str, float]] = getattr(_last, "request", None)
    _last.request = None
    if last is not None and last[0] == request.method and last[1] == request.url:
        pace.held(time.monotonic() - last[2], retry=True)


def pace_session(session: Any, url: str, ceiling: int = 16) -> None:
    """Send every request of ``session`` through ``url``'s endpoint pace: for clients that retry on their
    own (the dandi client retries 429/5xx with tenacity), the endpoint's Retry-After holds every thread
    back, throttled answers lower the in-flight limit of all, and the answers are counted (:mod:`.report`)."""
    session.mount(pacing.origin(url) + "/", PacedAdapter(pacing.origin(url), ceiling))


class NamedAdapter(HTTPAdapter):
    """``send`` with the mirror's User-Agent (:mod:`.identity`) over whatever the client put on the request:
    for clients that set their own on each request (intern's ``intern-py-VERSION``)."""

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        from neuromirror.network.identity import user_agent

        request.headers["User-Agent"] = user_agent()
        return super().send(request, *args, **kwargs)


def name_every_request(session: Any) -> None:
    """Every request of ``session`` under the mirror's name, whatever its client set on the request."""
    session.mount("http://", NamedAdapter())
    session.mount("https://", NamedAdapter())

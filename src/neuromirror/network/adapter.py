"""A ``requests`` adapter whose every request goes through its endpoint's pace (:mod:`.pacing`).

Why a module of its own: ``requests`` is imported only when a client is made, and the class must be
found by name in another process (a Dask task carries its source's dandi client, session included).
"""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter

from neuromirror.network import pacing


class PacedAdapter(HTTPAdapter):
    """``send`` waits for a slot of ``endpoint``'s pace, gives requests a timeout when the client set none
    (a stalled answer must not hang a sync), and tells the pace each answer and its Retry-After."""

    __attrs__ = [*HTTPAdapter.__attrs__, "endpoint", "ceiling"]

    def __init__(self, endpoint: str = "", ceiling: int = 16, **kwargs: Any) -> None:
        self.endpoint = endpoint
        self.ceiling = ceiling
        super().__init__(pool_connections=4, pool_maxsize=ceiling, **kwargs)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = pacing.timeout()
        pace = pacing.pace_for(self.endpoint, self.ceiling)
        epoch = pace.acquire()
        try:
            r = super().send(request, *args, **kwargs)
        except BaseException:
            pace.release(epoch, None)
            raise
        code = r.status_code
        pace.release(
            epoch, code, pacing.retry_after_seconds(r.headers.get("Retry-After")) if code in pacing.RETRIED else None
        )
        return r


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

"""The DANDI API as the source reads it: the ``dandi`` client, made and checked, and calls retried.

The client retries HTTP errors on its own; a body cut short (unparsable JSON, fewer bytes
than announced) it does not, and a wrong ``--dandi-api`` must read as exactly that, not as a
missing dandiset.  :class:`DandiAPI` is one dandiset at one API: what the source is built on,
and all a worker mirroring one of its Zarr assets needs (:mod:`neuromirror.engine.zarr.job`).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Optional

import requests

from neuromirror.errors import Unavailable
from neuromirror.network import identity, pacing
from neuromirror.sources.dandi.options import DEFAULT_API
from neuromirror.util.text import one_line

LISTING_ATTEMPTS = 5


class DandiError(Unavailable, RuntimeError):
    """The DANDI archive could not be read; message names the archive and the cause."""


def _quiet_client_env() -> None:
    # dandi's version check reaches out to the internet; a mirror must not need it
    os.environ.setdefault("DANDI_NO_ET", "1")
    os.environ.setdefault("DANDI_CACHE", "ignore")


#: the dandi client's own REQUEST_RETRIES, read before NEUROMIRROR_HTTP_RETRIES first changed it
_CLIENT_RETRIES: Optional[int] = None


def make_client(api_url: str, token: Optional[str]) -> Any:
    """The dandi client for ``api_url``, its first requests retried like every later one.

    Creating the client asks the server for its info (``/server-info``, once per
    URL and process, not retried by the client): a body cut short there must not
    fail the sync.  Then ``<api>/info/`` must answer like a DANDI API, so that a
    wrong API path is reported as exactly that, not as a missing dandiset.
    """
    _quiet_client_env()
    from dandi import dandiapi

    global _CLIENT_RETRIES
    if _CLIENT_RETRIES is None:
        _CLIENT_RETRIES = dandiapi.REQUEST_RETRIES  # the client's own default, before any setting of ours
    retries = os.environ.get("NEUROMIRROR_HTTP_RETRIES")
    # the client retries a failing request 12 times with backoff (minutes); operators may bound it (a
    # module setting of the client's: set at each client made, so that one setting does not outlive its env)
    dandiapi.REQUEST_RETRIES = max(1, int(retries)) if retries else _CLIENT_RETRIES

    api_url = api_url.rstrip("/")
    check_api(api_url)  # the server's info, asked by us (named, paced), not by the client's bare requests.get
    try:
        client = _client_class()(dandi_instance=_instance(api_url))
        from neuromirror.network.adapter import pace_session
        from neuromirror.network.identity import name_session

        name_session(client.session)  # every request names the mirror and its contact (network.identity)
        pace_session(client.session, api_url)  # the client retries; the endpoint's pace holds all back
        if token:
            client.authenticate(token)  # a request of the client's (named, paced, retried), checking the key
    except Exception as exc:  # the client raises RuntimeError/ConnectionError with long texts
        raise DandiError(f"DANDI API at {api_url} is unreachable: {gist(exc)}") from None
    return client


_CLIENT: Any = None


def _client_class() -> Any:
    """The dandi client, its requests' answers that are not the JSON they say retried as a reset is.

    The client retries 5xx, 429 and answers never given (a :class:`~neuromirror.network.adapter.CutShort`
    body is one); an answer whose body is whole but not JSON (a proxy's page, a length that lied) it
    raises at once, and a paged listing's first page (``json_resp=False``: ``paginate`` decodes it after
    the request) it does not look at: both are retried here.  Made on first use: ``dandi`` is imported only when a DANDI source is read."""
    global _CLIENT
    if _CLIENT is None:
        from dandi.dandiapi import DandiAPIClient

        class PacedDandiClient(DandiAPIClient):
            def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
                def send() -> Any:
                    r = super(PacedDandiClient, self).request(method, path, *args, **kwargs)
                    if not kwargs.get("json_resp", True) and _json_page(method, r):
                        r.json()  # a paged listing decodes its first page after: not JSON is retried here
                    return r

                return _undecodable_retried(send)

        # found by name where a Dask task's pickle is read (the module's __getattr__)
        PacedDandiClient.__module__, PacedDandiClient.__qualname__ = __name__, "PacedDandiClient"
        _CLIENT = PacedDandiClient
    return _CLIENT


def __getattr__(name: str) -> Any:
    if name == "PacedDandiClient":
        return _client_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _json_page(method: str, r: Any) -> bool:
    """Is ``r`` a GET's answer that says it is JSON (a listing's page the caller decodes itself)?"""
    return method.upper() == "GET" and "json" in str(r.headers.get("Content-Type", "")).lower()


def _undecodable_retried(send: Callable[[], Any]) -> Any:
    """``send()`` again (after :func:`~neuromirror.network.pacing.backoff`) while its answer is not JSON."""
    from dandi import dandiapi

    from neuromirror.network.adapter import unreadable

    for attempt in itertools.count(1):
        try:
            return send()
        except requests.exceptions.JSONDecodeError:
            if attempt >= dandiapi.REQUEST_RETRIES:
                raise
            unreadable()  # the next send is a retry, counted in the run's network account
            time.sleep(pacing.backoff(attempt))
    raise AssertionError("unreachable")


def _instance(api_url: str) -> Any:
    """The dandi client's instance for ``api_url``: a known one by its API, else one named for its host.

    Given to the client, which then asks the server nothing before our first call (its own lookup
    GETs the server's info with a bare ``requests.get``: no name, no pace); :func:`check_api` asked it."""
    from urllib.parse import urlsplit

    from dandi.consts import DandiInstance, known_instances

    for inst in known_instances.values():
        if inst.api.rstrip("/") == api_url:
            return inst
    return DandiInstance(name=urlsplit(api_url).netloc or api_url, gui=None, api=api_url)


#: API URLs found to answer like a DANDI API in this process (the client caches its server info alike)
_CHECKED_APIS: set[str] = set()


def check_api(api_url: str) -> None:
    """Raise DandiError unless ``<api_url>/info/`` answers like a DANDI API (retrying cut-short answers)."""
    if api_url in _CHECKED_APIS:
        return
    why = "no answer"
    for attempt in range(LISTING_ATTEMPTS):
        try:
            r = _get(f"{api_url}/info/", 30)
            if r.status_code in (429, 500, 502, 503, 504):
                why = f"HTTP {r.status_code}"
            elif r.status_code != 200:
                why = f"GET {api_url}/info/ answered HTTP {r.status_code}"
                break
            else:
                info = r.json()
                if isinstance(info, dict) and isinstance(info.get("services"), dict) and "version" in info:
                    _CHECKED_APIS.add(api_url)
                    return
                why = f"GET {api_url}/info/ is not a DANDI server's info"
                break
        except (ValueError, requests.RequestException) as exc:  # a body cut short, a reset
            why = gist(exc)
            if why == "connection refused":  # nothing listens there: retrying only delays the one-line error
                raise DandiError(f"DANDI API at {api_url} is unreachable: {why}") from None
        time.sleep(min(2**attempt * 0.2, 3))
    raise DandiError(f"{api_url} is not a DANDI API ({why}); give the API's base URL, e.g. {DEFAULT_API}")


def _get(url: str, timeout: float) -> requests.Response:
    """One GET of the API, named (:mod:`neuromirror.network.identity`) and through the endpoint's pace."""
    from neuromirror.network.adapter import pace_session

    with identity.session() as session:
        pace_session(session, url)
        return session.get(url, timeout=timeout)


def gist(exc: BaseException) -> str:
    text = one_line(exc, 300)
    if "Max retries exceeded" in text or "Connection refused" in text:
        return "connection refused"
    return text


def download_verified(url: str, timeout: float = 60.0) -> bytes:
    """Fetch a small file; the caller's GitEntry checks the sha256.

    Through the endpoint's controller (:func:`neuromirror.network.pacing.call`): a file the archive
    never serves after the retries raises :class:`~neuromirror.network.pacing.GaveUp` (the asset is held,
    :mod:`.held`); an answer that is not the file (403, 404) is the archive's: :class:`DandiError`.
    """
    r = pacing.call(
        url,
        lambda: identity.get(url, timeout=timeout),
        lambda r: r.status_code,
        lambda r: r.headers.get("Retry-After"),
        transient=(requests.RequestException,),
    )
    if not r.ok:
        raise DandiError(f"could not download {url}: HTTP {r.status_code}")
    return r.content


class DandiAPI:
    """One dandiset at one DANDI API: the client, made on first use, and its calls retried."""

    def __init__(self, identifier: str, *, api_url: str = DEFAULT_API, token: Optional[str] = None, client: Any = None):
        self.identifier = identifier
        self.api_url = api_url.rstrip("/")
        self.token = token
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The dandi client, made on first use (by whichever thread asks first: the Zarr list is
        read in a thread of its own while the sync asks the rest)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = make_client(self.api_url, self.token)
        return self._client

    def __getstate__(self) -> dict:
        """What a task sent to a Dask worker carries: not the lock (the worker makes its client anew)."""
        state = dict(self.__dict__)
        del state["_client_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._client_lock = threading.Lock()

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        """One API call, its failure said in one line naming the archive and the dandiset.

        The client retries what is worth it (5xx, 429, no answer, a body cut short or not JSON:
        :func:`_client_class`); what is left after its retries is the archive's answer."""
        try:
            return fn()
        except DandiError:
            raise
        except Exception as exc:
            raise DandiError(f"DANDI API at {self.api_url}: {what} {self.identifier}: {gist(exc)}") from None

    def get_json(self, path: str, params: Optional[dict] = None) -> Any:
        """``GET path`` (under the API, or an absolute URL) through the dandi client (its retries)."""
        return self.client.get(path, params=params)

    def asset_metadata(self, asset_id: str) -> Any:
        return self.get_json(f"/assets/{asset_id}/")

    def _paginate(self, path: str, *, page_size: int, params: dict) -> Iterator[Any]:
        """The items of a paged list, as ``client.paginate`` yields them, holding a few pages at most.

        The client's ``paginate`` submits every page 2..n at once and keeps each page
        until the listing ends: all 10^5 assets with their metadata (~5 KB each as
        Python objects) in memory together.  Here at most ``2 * page_workers`` pages
        are in flight and a page is dropped once yielded.  Same requests, same order,
        same fallback (follow ``next``) when the archive does not page by number.
        """
        from collections import deque

        from dandi.utils import is_page2_url

        client = self.client
        params = {**params, "page_size": page_size}
        resp = client.get(path, params=params, json_resp=False)
        r = resp.json()
        yield from r["results"]
        if r["next"] is None:
            return
        page1 = resp.history[0].url if resp.history else resp.url
        if not is_page2_url(page1, r["next"]):
            if os.environ.get("DANDI_PAGINATION_DISABLE_FALLBACK"):  # as the client's paginate
                raise RuntimeError(
                    f"API server changed pagination strategy: {page1} URL is now followed by {r['next']}"
                )
            while r.get("next"):
                r = client.get(r["next"])
                yield from r["results"]
            return
        pages = (r["count"] + page_size - 1) // page_size
        del r, resp

        def get_page(pageno: int) -> list:
            results = client.get(path, params={**params, "page": pageno})["results"]
            assert isinstance(results, list)
            return results

        workers = max(1, getattr(client, "page_workers", 5))
        todo = iter(range(2, pages + 1))
        with ThreadPoolExecutor(workers) as pool:
            window: deque = deque(pool.submit(get_page, n) for n in itertools.islice(todo, 2 * workers))
            try:
                while window:
                    results = window.popleft().result()
                    window.extend(pool.submit(get_page, n) for n in itertools.islice(todo, 1))
                    yield from results
                    del results
            finally:
                for f in window:
                    f.cancel()

"""urllib3 connection pools that go through the proxy the environment names, as ``requests`` would.

Where a request's own CPU matters (keep's transfers, the S3 listing's pages: one page per small
Zarr), neuromirror talks to urllib3 directly instead of through ``requests``, which spent ~1 ms of
CPU a request merging environment settings, hooks and cookies.  What ``requests`` did for us then
is done here: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` are read at each request (a mirror
behind an institution's proxy keeps working; urllib's answer, which walks the whole environment, is kept
per host and those variables' values), one pool manager per proxy.  Every request carries the mirror's
name (:func:`.identity.headers`) unless the caller sets its own headers.
"""

from __future__ import annotations

import threading
from typing import Any

from neuromirror.network.proxies import proxy_env

_UNSEEN = object()


class Pools:
    """A direct pool manager and one per proxy, made on first use; thread-safe."""

    def __init__(self, maxsize: int, **pool_kw: Any) -> None:
        import urllib3

        from neuromirror.network.identity import headers

        self._named = "headers" not in pool_kw  # ours: the mirror's name, kept current at each request
        pool_kw.setdefault("headers", headers())
        self._maxsize = maxsize
        self._kw = pool_kw
        self._direct = urllib3.PoolManager(maxsize=maxsize, **pool_kw)
        self._proxied: dict[str, Any] = {}
        self._route: dict[tuple, Any] = {}  # (scheme, host, the proxy variables' values) -> its proxy or None
        self._lock = threading.Lock()

    def manager(self, url: str) -> Any:
        """The pool manager for ``url``: through the environment's proxy for its scheme, unless its
        host is one ``NO_PROXY`` names."""
        import urllib.request
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname, *proxy_env(parts.scheme))
        proxy = self._route.get(key, _UNSEEN)
        if proxy is _UNSEEN:  # urllib's answer, which walks the whole environment twice (~80 us): once per key
            proxy = urllib.request.getproxies().get(parts.scheme)
            if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
                proxy = None
            if len(self._route) >= 256:
                self._route.clear()
            self._route[key] = proxy
        if not proxy:
            return self._current(self._direct)
        with self._lock:
            if proxy not in self._proxied:
                import urllib3

                self._proxied[proxy] = urllib3.ProxyManager(proxy, maxsize=self._maxsize, **self._kw)
            return self._current(self._proxied[proxy])

    def _current(self, manager: Any) -> Any:
        """``manager`` with the mirror's name as it is now: a contact set after the pools were made (a
        definition's ``contact:`` read after import) is on the next request."""
        if self._named:
            from neuromirror.network.identity import user_agent

            manager.headers["User-Agent"] = user_agent()
        return manager

    def clear(self) -> None:
        """Close every pooled connection."""
        self._direct.clear()
        with self._lock:
            for m in self._proxied.values():
                m.clear()

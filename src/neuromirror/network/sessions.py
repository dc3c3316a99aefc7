"""A ``requests`` session that reads the environment's proxy settings once per host, not per request.

Why: with ``trust_env`` (the default, so that a mirror behind an institution's proxy keeps working),
``requests`` asks ``urllib`` for the proxies and the proxy bypass at every request, and ``urllib``
walks the whole environment twice to find them (~200 lookups in ``os.environ``, ~90 us of CPU a
request): ~1.5 s of the sync process's ~9.5 s of CPU in a cold DANDI mirror of 10^4 blobs, whose
pinning is one HEAD a blob on one session.  Here :meth:`EnvOnceSession.merge_environment_settings`
keeps what ``requests`` made of the environment for a host, a request's own settings and the
session's (proxies, stream, verify, cert): the same answer, read at the host's first request of the
session and the values of the variables the answer depends on (the proxies' and ``NO_PROXY``,
:func:`.proxies.proxy_env`; the CA bundle's): a change to any is seen at the next request, as
:class:`.pools.Pools` sees it.  :func:`.identity.session` makes these.
"""

from __future__ import annotations

import os
from typing import Any, Optional
from urllib.parse import urlsplit

import requests

from neuromirror.network.proxies import proxy_env

#: hosts x settings kept per session; past it the kept answers are dropped and read again
KEPT = 256
#: where ``requests`` reads a default ``verify`` from
_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class EnvOnceSession(requests.Session):
    """A ``requests.Session`` whose environment settings are read once per host and settings."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        key = _key(self, url, proxies, stream, verify, cert)
        if key is None:  # a setting that cannot be a key (a dict given as cert...): asked as requests does
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        # the session's state as pickled (requests' __attrs__) holds no attribute of ours: made where missing
        kept: dict[tuple, Any] = self.__dict__.setdefault("_env_kept", {})
        got = kept.get(key)
        if got is None:
            if len(kept) >= KEPT:
                kept.clear()
            got = kept[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        # the proxies a copy (of requests' own type): requests and an adapter may add to the dict given
        merged: Any = got["proxies"]
        return {**got, "proxies": merged.copy()}


def _key(session: requests.Session, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Optional[tuple]:
    """What the merged settings depend on besides the environment, hashable; None where it cannot be."""
    try:
        parts = urlsplit(url if isinstance(url, str) else str(url))
        key = (
            session.trust_env,
            parts.scheme,
            parts.netloc,
            frozenset((proxies or {}).items()),
            stream,
            verify,
            cert,
            frozenset((session.proxies or {}).items()),
            session.stream,
            session.verify,
            session.cert,
            *proxy_env(parts.scheme),
            *map(os.environ.get, _CA_ENV),
        )
        hash(key)
    except (TypeError, ValueError):
        return None
    return key

"""The name on every request to an archive: ``User-Agent: neuromirror/VERSION (+CONTACT)``.

Why: an archive's operator who sees a mirror in the logs must be able to tell which one it is and
whom to ask before they block it (the DANDI API went down under one client's requests,
dandi-archive#2085).  CONTACT is the mirror definition's ``contact:`` (an e-mail address or a web
page), else ``NEUROMIRROR_CONTACT``; without either, the name alone.  Never a token: the string is
built from the version and the contact only.

Built here once per process (:func:`user_agent`); every HTTP client of the house is made here, or takes
its name from here: ``requests`` sessions (:mod:`.sessions`) and one-off requests (:func:`session`, :func:`get`,
:func:`request`: the dandi client's, the sources', ``verify --content``'s, ``urls --check``'s, the view's URL
checks, the marking of lost URLs, reads of an S3 store's public URL), fsspec's HTTP file system
(:func:`http_filesystem`), urllib (:func:`urlopen`), urllib3 pools (:mod:`.pools`), boto3's
``Config(user_agent=...)`` (:func:`botocore_config`), intern's sessions, and git-annex's own downloads
(``annex.http-headers``, :func:`git_env`).  tests/test_user_agent.py finds any client made elsewhere.  :func:`set_contact` (a definition's ``contact:``) also puts
the contact in the environment, so that the processes a sync starts (workers, git-annex and its special
remotes) say the same.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

#: the environment variable naming the contact (the definition's ``contact:`` wins and is put here)
CONTACT_ENV = "NEUROMIRROR_CONTACT"
_user_agent: Optional[tuple[Optional[str], str]] = None  # (the contact it was built for, the string)


def _version() -> str:
    """The package's own version (not importlib.metadata's: ~45 ms of CPU at each sync's start)."""
    from neuromirror import __version__

    return __version__


def contact() -> Optional[str]:
    """The contact requests name: ``NEUROMIRROR_CONTACT`` (which :func:`set_contact` sets), or None."""
    value = os.environ.get(CONTACT_ENV, "").strip()
    return _clean(value) or None


def _clean(value: str) -> str:
    """One line of printable text (a header value): control characters and parentheses dropped."""
    return re.sub(r"[\x00-\x1f\x7f()]", "", value).strip()[:200]


def set_contact(value: Optional[str]) -> None:
    """A definition's ``contact:``: from now on in this process and the processes it starts (None: keep
    the environment's)."""
    if value and _clean(value):
        os.environ[CONTACT_ENV] = _clean(value)


def user_agent() -> str:
    """``neuromirror/VERSION (+CONTACT)``, or ``neuromirror/VERSION`` without a contact (built once per
    contact: a process that is given one later, a test that changes it, says the new one)."""
    global _user_agent
    who = contact()
    if _user_agent is None or _user_agent[0] != who:
        _user_agent = (who, f"neuromirror/{_version()}" + (f" (+{who})" if who else ""))
    return _user_agent[1]


def headers() -> dict[str, str]:
    """The headers every archive request carries."""
    return {"User-Agent": user_agent()}


def name_session(session: Any) -> Any:
    """A ``requests`` session whose requests carry :func:`user_agent` (returned, for chaining)."""
    session.headers["User-Agent"] = user_agent()
    return session


def session(maxsize: int = 10, hosts: int = 10) -> Any:
    """A named ``requests`` session; ``maxsize``: connections kept per host (the threads that share it),
    ``hosts``: hosts whose pools are kept.  It reads the environment's proxy settings once per host
    (:mod:`.sessions`: not ~200 lookups in ``os.environ`` a request, a cold sync's HEADs one a blob)."""
    import requests

    from neuromirror.network.sessions import EnvOnceSession

    out = name_session(EnvOnceSession())
    if maxsize != 10 or hosts != 10:
        adapter = requests.adapters.HTTPAdapter(pool_connections=hosts, pool_maxsize=maxsize)
        out.mount("http://", adapter)
        out.mount("https://", adapter)
    return out


def request(method: str, url: str, **kwargs: Any) -> Any:
    """One named request (``requests.request``); the caller's own headers are added to the name."""
    import requests

    return requests.request(method, url, **{**kwargs, "headers": {**headers(), **(kwargs.get("headers") or {})}})


def get(url: str, **kwargs: Any) -> Any:
    """One named ``GET`` (``requests.get``)."""
    return request("GET", url, **kwargs)


def http_filesystem(**client_kwargs: Any) -> Any:
    """fsspec's HTTP file system whose aiohttp session names the mirror (``client_kwargs``: aiohttp's)."""
    import fsspec

    named = {**client_kwargs, "headers": {**headers(), **(client_kwargs.get("headers") or {})}}
    return fsspec.filesystem("http", client_kwargs=named)


def urlopen(url: str, timeout: float) -> Any:
    """``urllib.request.urlopen`` of ``url``, named."""
    import urllib.request

    return urllib.request.urlopen(urllib.request.Request(url, headers=headers()), timeout=timeout)


def botocore_config(**kwargs: Any) -> Any:
    """A botocore ``Config`` whose requests carry :func:`user_agent` as their whole User-Agent."""
    from botocore.config import Config

    return Config(user_agent=user_agent(), **kwargs)


def git_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with ``annex.http-headers`` set for git and git-annex (``GIT_CONFIG_COUNT``): git-annex's
    own downloads of archive URLs carry :func:`user_agent` (the header replaces git-annex's own)."""
    out = dict(env)
    n = int(out.get("GIT_CONFIG_COUNT") or 0)
    out[f"GIT_CONFIG_KEY_{n}"] = "annex.http-headers"
    out[f"GIT_CONFIG_VALUE_{n}"] = f"User-Agent: {user_agent()}"
    out["GIT_CONFIG_COUNT"] = str(n + 1)
    return out

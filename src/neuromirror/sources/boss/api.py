"""Talking to a BOSS: the user's token, the server's URL, ``intern``'s client, and failures told in one line.

Both sides of the mirror meet the BOSS here: the source, which reads metadata and
cutouts while it syncs, and the special remote (:mod:`neuromirror.remotes.boss`),
which reads cutouts when a clone gets a chunk.  The token is the one secret the
tool handles, so everything that could show it (an error, a log line) passes
through :func:`scrub`, and it is sent only to hosts the user configured
(:func:`trusted_hosts`).
"""

from __future__ import annotations

import configparser
import os
import re
import time
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from neuromirror.errors import Unavailable
from neuromirror.network import pacing
from neuromirror.util.text import one_line

DEFAULT_URL = "https://api.bossdb.io"
TIMEOUT = 120.0
NO_TOKEN = "no BOSS token: set INTERN_TOKEN or ~/.intern/intern.cfg ([Default] token = ...)"
#: a BOSS resource name (collection, experiment, channel)
NAME_RE = re.compile(r"^[\w-]+$")


class BossError(Unavailable, RuntimeError):
    """The BOSS could not be read; the message names the server and the cause (never the token)."""


class BossAuthError(BossError):
    """No token, or the BOSS rejected it."""


# --------------------------------------------------------------------------- token and URLs


def intern_config_path() -> Path:
    return Path(os.path.expanduser("~/.intern/intern.cfg"))


def _intern_config() -> Optional[configparser.ConfigParser]:
    path = intern_config_path()
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return None
    return parser


def find_token(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The user's BOSS token: ``INTERN_TOKEN``, else ``token`` in ``~/.intern/intern.cfg``.

    The file is read as intern reads it (INI; the ``Volume Service`` section
    wins over ``Project Service`` and ``Default``, since chunks are cutouts).
    Unlike intern, ``INTERN_TOKEN`` alone is enough and wins over the file, so
    a token can be given for one command.
    """
    env = os.environ if environ is None else environ
    token = (env.get("INTERN_TOKEN") or "").strip()
    if token:
        return token
    cfg = _intern_config()
    if cfg is not None:
        for section in ("Volume Service", "Project Service", "Default"):
            if cfg.has_option(section, "token"):
                value = cfg.get(section, "token").strip()
                if value:
                    return value
    return None


def require_token() -> str:
    token = find_token()
    if not token:
        raise BossAuthError(NO_TOKEN)
    return token


def scrub(text: str, token: Optional[str]) -> str:
    """``text`` with the token replaced, so that no error or log line can leak it."""
    if token and len(token) >= 4 and token in text:
        text = text.replace(token, "<token>")
    return text


def split_boss_url(url: str) -> tuple[str, str]:
    """``https://api.bossdb.io`` -> (``https``, ``api.bossdb.io``); user info is refused."""
    parts = urlsplit(url.strip() if "://" in url else "https://" + url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BossError(f"not a BOSS API URL: {url!r} (expected e.g. https://api.bossdb.io)")
    if parts.username or parts.password:
        raise BossError(
            "the BOSS URL must not carry credentials: give the token in INTERN_TOKEN or ~/.intern/intern.cfg"
        )
    if parts.path.strip("/") not in ("", "v1"):
        raise BossError(f"not a BOSS API URL: {url!r} (give the server only, e.g. https://api.bossdb.io)")
    return parts.scheme, parts.netloc


def boss_url_of(protocol: str, host: str) -> str:
    return f"{protocol}://{host}"


def trusted_hosts(environ: Optional[Mapping[str, str]] = None) -> set[str]:
    """BOSS hosts the user configured, to which the special remote may send the token.

    A dataset names its chunks' host in their URLs, and datasets can come from
    anywhere: the token goes only to the default BOSS, the host of
    ``NEUROMIRROR_BOSS_URL``, ``INTERN_HOST`` or the ``host`` of ``~/.intern/intern.cfg``.
    """
    env = os.environ if environ is None else environ
    hosts = {split_boss_url(DEFAULT_URL)[1]}
    for value in (env.get("NEUROMIRROR_BOSS_URL"), env.get("INTERN_HOST")):
        if value:
            try:
                hosts.add(split_boss_url(value)[1])
            except BossError:
                pass
    cfg = _intern_config()
    if cfg is not None:
        for section in cfg.sections() + ["DEFAULT"]:
            if cfg.has_option(section, "host"):
                try:
                    hosts.add(split_boss_url(cfg.get(section, "host"))[1])
                except BossError:
                    pass
    return {h.lower() for h in hosts}


# --------------------------------------------------------------------------- intern's client, errors


def make_remote(protocol: str, host: str, token: str, *, timeout: float = TIMEOUT) -> Any:
    """An ``intern`` BossRemote for ``host``, with a request timeout on every service."""
    from intern.remote.boss import BossRemote

    from neuromirror.network.adapter import name_every_request

    try:  # intern turns the dict into INI text: a stray '%' in a token would fail, quoting the token
        rmt = BossRemote({"protocol": protocol, "host": host, "token": token})
    except Exception as exc:
        # the exception's text may quote part of the token: name its type only
        raise BossAuthError(
            f"cannot configure intern for {protocol}://{host} with this token "
            f"({type(exc).__name__}); check INTERN_TOKEN or ~/.intern/intern.cfg"
        ) from None
    for svc in (rmt.project_service, rmt.metadata_service, rmt.volume_service):
        opts = dict(svc.session_send_opts or {})
        opts["timeout"] = timeout
        svc.session_send_opts = opts
        name_every_request(svc.session)  # intern names each request its own: ours over it (network.identity)
    return rmt


def _status(exc: BaseException) -> Optional[int]:
    resp = getattr(exc, "response", None)
    code = getattr(resp, "status_code", None)
    if isinstance(code, int):
        return code
    m = re.search(r"\((\d{3})\)", str(exc))
    return int(m.group(1)) if m else None


def _detail(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    try:
        body = resp.json() if resp is not None else None
    except Exception:
        body = None
    if isinstance(body, dict):
        for k in ("detail", "message"):
            if isinstance(body.get(k), str):
                return body[k]
    return one_line(exc, 300)


def _transient(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return True
    code = _status(exc)
    return code in (429, 500, 502, 503, 504)


def explain(exc: BaseException, server: str, what: str, token: Optional[str]) -> BossError:
    """A one-line BossError for an intern/requests failure; the token is scrubbed."""
    import requests

    if isinstance(exc, BossError):
        return type(exc)(scrub(str(exc), token))
    code = _status(exc)
    if code == 401:
        err: BossError = BossAuthError(
            f"BOSS rejected the token (401 {_detail(exc)} from {server}): check INTERN_TOKEN or ~/.intern/intern.cfg"
        )
    elif code == 403:
        err = BossAuthError(f"BOSS at {server}: no permission to read {what} (403 {_detail(exc)})")
    elif code == 404:
        err = BossError(f"BOSS at {server}: {what} not found (404 {_detail(exc)})")
    elif isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        err = BossError(f"BOSS at {server} is unreachable ({type(exc).__name__}) while reading {what}")
    elif code is not None:
        err = BossError(f"BOSS at {server}: reading {what} failed ({code} {_detail(exc)})")
    else:
        err = BossError(f"BOSS at {server}: reading {what} failed: {_detail(exc)}")
    return type(err)(scrub(str(err), token))


#: BOSS requests in flight at most (cutouts of 512x512x16 cuboids: few, large answers)
BOSS_IN_FLIGHT = 8


def with_retries(fn: Any, *, server: str, what: str, token: Optional[str], attempts: int = 5) -> Any:
    """``fn()`` (an intern call) through the BOSS endpoint's pace (:mod:`neuromirror.network.pacing`):
    a 429/503 lowers the requests in flight of every thread and its ``Retry-After`` holds them all;
    transient failures are retried with backoff, then raised as one line (:func:`explain`)."""
    pace = pacing.pace_for(server, BOSS_IN_FLIGHT)
    for attempt in range(attempts):
        if attempt:
            pause = min(8.0, 0.5 * 2 ** (attempt - 1))
            time.sleep(pause)
            pace.held(pause, retry=True)
        epoch = pace.acquire()
        try:
            result = fn()
        except Exception as exc:  # intern raises requests' HTTPError; transport errors too
            code = _status(exc)
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            pace.release(epoch, code, pacing.retry_after_seconds(headers.get("Retry-After")))
            if attempt + 1 < attempts and _transient(exc):
                continue
            if _transient(exc):
                pace.stats.gave_up += 1
            raise explain(exc, server, what, token) from None
        pace.release(epoch, 200)
        return result
    raise AssertionError("unreachable")  # pragma: no cover

"""GitHub's REST API as ``publish --to github:ORG`` uses it: repositories got, created and edited, releases listed
and made, and GitHub's rate limits waited out.

Why a few calls over ``requests`` and not PyGithub: the publisher needs exactly six endpoints, one session with
the project's User-Agent, and control of every wait (GitHub answers a primary limit with 403 and
``x-ratelimit-remaining: 0`` plus ``x-ratelimit-reset``, a secondary one with 403 or 429 and ``Retry-After``;
docs.github.com "Rate limits for the REST API").  A wait is bounded (``max_wait`` seconds per call, a few tries):
a limit that outlasts it is a one-line error, never a silent hang.  The token goes in the ``Authorization`` header
only; no message, log line or exception here names it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import quote

import requests

from neuromirror.errors import NeuromirrorError
from neuromirror.network.identity import session

DEFAULT_API = "https://api.github.com"
#: tries of one call through rate limits, and the longest it waits in all
TRIES = 6
MAX_WAIT = 300.0


class GitHubError(NeuromirrorError, RuntimeError):
    """GitHub refused a call; the message says which call and GitHub's own words (never the token)."""


@dataclass
class Repo:
    """What the publisher reads of a repository."""

    owner: str
    name: str
    private: bool
    description: str
    homepage: str
    clone_url: str
    ssh_url: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Repo:
        return cls(
            d["owner"]["login"],
            d["name"],
            bool(d.get("private")),
            d.get("description") or "",
            d.get("homepage") or "",
            d["clone_url"],
            d.get("ssh_url") or d["clone_url"],
        )


class GitHub:
    """One API base and token; ``sleep`` is how a rate limit is waited out (a test's clock may count instead)."""

    def __init__(
        self,
        token: str,
        api: str = DEFAULT_API,
        *,
        max_wait: float = MAX_WAIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api.rstrip("/")
        self.max_wait = max_wait
        self.sleep = sleep
        self.waited = 0.0  # seconds spent waiting out rate limits
        self.calls = 0
        self._counting = threading.Lock()  # sources are published from a few threads at once
        self._session = session()  # named (User-Agent) as every client of the house is
        self._session.headers.update(
            {
                "Authorization": f"token {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            }
        )

    def close(self) -> None:
        self._session.close()

    # -- the calls -------------------------------------------------------------------------------------
    def repo(self, owner: str, name: str) -> Optional[Repo]:
        """The repository, None when there is none (or the token may not see it)."""
        r = self._call("GET", f"/repos/{owner}/{name}", ok=(200, 404))
        return Repo.from_json(r.json()) if r.status_code == 200 else None

    def create(self, org: str, name: str, *, description: str, homepage: str, private: bool) -> Repo:
        """A new repository in ``org``; one that exists already (a run cut off after its create) is read instead."""
        body = {"name": name, "description": description, "homepage": homepage, "private": private}
        r = self._call("POST", f"/orgs/{org}/repos", json=body, ok=(201, 422))
        if r.status_code == 201:
            return Repo.from_json(r.json())
        found = self.repo(org, name)
        if found is None:
            raise GitHubError(f"creating {org}/{name}: {_said(r)}")
        return found

    def edit(self, owner: str, name: str, changes: dict[str, Any]) -> Repo:
        r = self._call("PATCH", f"/repos/{owner}/{name}", json=changes, ok=(200,))
        return Repo.from_json(r.json())

    def release_tags(self, owner: str, name: str) -> set[str]:
        """Tags of the repository's releases (every page)."""
        tags: set[str] = set()
        page = 1
        while True:
            r = self._call("GET", f"/repos/{owner}/{name}/releases?per_page=100&page={page}", ok=(200,))
            got = r.json()
            tags.update(rel["tag_name"] for rel in got)
            if len(got) < 100:
                return tags
            page += 1

    def release(self, owner: str, name: str, tag: str, *, title: str, body: str) -> None:
        """A release of ``tag``; one there already (a rerun after a cut-off run) is left as it is."""
        payload = {"tag_name": tag, "name": title, "body": body}
        r = self._call("POST", f"/repos/{owner}/{name}/releases", json=payload, ok=(201, 422))
        if r.status_code == 422 and "already_exists" not in r.text:
            raise GitHubError(f"release {tag} of {owner}/{name}: {_said(r)}")

    # -- the wire --------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, json: Any = None, ok: tuple[int, ...]) -> requests.Response:
        url = self.api + quote(path, safe="/?&=")
        spent = 0.0
        for _ in range(TRIES):
            with self._counting:
                self.calls += 1
            try:
                r = self._session.request(method, url, json=json, timeout=60)
            except requests.RequestException as exc:
                raise GitHubError(f"{method} {path}: {type(exc).__name__}") from None
            wait = _limited(r)
            if wait is None:
                if r.status_code not in ok:
                    raise GitHubError(f"{method} {path}: HTTP {r.status_code}: {_said(r)}")
                return r
            if spent + wait > self.max_wait:
                break
            self.sleep(wait)
            spent += wait
            with self._counting:
                self.waited += wait
        raise GitHubError(
            f"{method} {path}: GitHub's rate limit outlasted {self.max_wait:g} s of waiting; publish again later"
        )


def _limited(r: requests.Response) -> Optional[float]:
    """Seconds GitHub asks to wait (a rate limit), None when the answer is no rate limit."""
    if r.status_code not in (403, 429):
        return None
    retry = r.headers.get("Retry-After")
    if retry:
        try:
            return max(0.0, float(retry))
        except ValueError:
            return 60.0
    if r.headers.get("x-ratelimit-remaining") == "0":
        reset = r.headers.get("x-ratelimit-reset")
        return max(1.0, float(reset) - time.time()) if reset and reset.isdigit() else 60.0
    if r.status_code == 429 or "rate limit" in _said(r).lower():
        return 60.0  # GitHub: "wait at least one minute" when it names no time
    return None


def _said(r: requests.Response) -> str:
    try:
        msg = r.json().get("message")
    except ValueError:
        msg = None
    return str(msg or r.reason or r.status_code).splitlines()[0][:200]

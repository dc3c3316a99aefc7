"""The GitHub stand-in as a server: the REST calls ``publish --to github:ORG`` makes, and the repositories over git's
smart HTTP, on one loopback port.

Why: publishing to GitHub is creating repositories through its REST API, pushing into them, and editing their
description, homepage, visibility and releases; tests must count each call (exactly one create per repository,
none on a rerun with nothing new), plant GitHub's rate-limit answers (403 with ``x-ratelimit-remaining: 0``, 403 or
429 with ``Retry-After``) and clone what was pushed, all without the internet.  The shapes follow GitHub's REST API
(docs.github.com/rest: ``repos``, ``releases``) closely enough that PyGithub (``Github(base_url=api_url)``) reads
them too.  Every repository is a bare repository on disk at ``ROOT/OWNER/REPO.git``, served by ``git
http-backend`` at ``http://HOST:PORT/OWNER/REPO.git`` (its ``clone_url``); a push needs the token (HTTP basic
auth, any user name, the token as the password, as GitHub takes it), a private repository's clone too.

Introspection for tests: ``calls`` counts ``METHOD /route/{template}`` of every API request answered (also
``GET /_calls``), :meth:`writes` the ones that change something; :meth:`plant` queues rate-limit answers;
``refuse_pushes = N`` fails the next N pushes (a run cut off after its create, before its push),
``hold_pushes`` (an Event) holds each push until set (a test kills the publisher meanwhile).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlsplit

from neuromirror.standins.github.rest import NAME as _NAME
from neuromirror.standins.github.rest import RestRoutes
from neuromirror.standins.github.smart_http import backend, read_body
from neuromirror.standins.threaded import ThreadServed

__all__ = ["GitHubStandIn"]

_GIT = re.compile(rf"^/{_NAME}/{_NAME}\.git(/.*)$")


@dataclass
class _Planted:
    status: int  # 403 or 429
    retry_after: Optional[float]  # seconds (Retry-After); None: x-ratelimit-reset instead
    message: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: GitHubStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _dispatch(self) -> None:
        self.server.standin._handle(self)

    do_GET = do_POST = do_PATCH = do_DELETE = _dispatch


class GitHubStandIn(RestRoutes, ThreadServed):
    """GitHub on ``host:port``: organisations made on first use, repositories as bare repositories under ``root``.

    ``token``: the one token it takes; ``api_url`` is what ``--github-api`` and PyGithub's ``base_url`` name."""

    _server: Optional[_Server]

    def __init__(self, root: Path, *, token: str = "ghp_standin_token", host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root)
        self.token = token
        self.host, self.port = host, port
        self.repos: dict[tuple[str, str], dict[str, Any]] = {}
        self.releases: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.calls: Counter[str] = Counter()
        self.throttled = 0  # planted answers given
        self.refuse_pushes = 0  # the next pushes answered 503 (a run cut off between create and push)
        #: set: pushes wait for it (``pushes_held`` counts them), then are refused: a test kills the pusher meanwhile
        self.hold_pushes: Optional[threading.Event] = None
        self.pushes_held = 0
        self._planted: list[_Planted] = []
        self._lock = threading.RLock()
        self._ids = 1000
        self._routes: list[tuple[str, re.Pattern[str], str, Callable[..., tuple[int, Any]]]] = [
            ("GET", re.compile(rf"^/orgs/{_NAME}$"), "/orgs/{org}", self._org),
            ("POST", re.compile(rf"^/orgs/{_NAME}/repos$"), "/orgs/{org}/repos", self._create),
            ("GET", re.compile(rf"^/repos/{_NAME}/{_NAME}$"), "/repos/{owner}/{repo}", self._get),
            ("PATCH", re.compile(rf"^/repos/{_NAME}/{_NAME}$"), "/repos/{owner}/{repo}", self._edit),
            ("GET", re.compile(rf"^/repos/{_NAME}/{_NAME}/releases$"), "/repos/{owner}/{repo}/releases", self._rels),
            ("POST", re.compile(rf"^/repos/{_NAME}/{_NAME}/releases$"), "/repos/{owner}/{repo}/releases", self._rel),
            (
                "GET",
                re.compile(rf"^/repos/{_NAME}/{_NAME}/releases/tags/(.+)$"),
                "/repos/{owner}/{repo}/releases/tags/{tag}",
                self._rel_by_tag,
            ),
        ]

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    api_url = url  # GitHub Enterprise's API is at /api/v3; this one answers at its root, as api.github.com does

    def _bind(self) -> _Server:
        self.root.mkdir(parents=True, exist_ok=True)
        server = _Server((self.host, self.port), _Handler)
        server.standin = self
        self.port = server.server_address[1]
        return server

    # -- what tests plant and read -----------------------------------------------------------------------
    def plant(self, status: int = 429, *, retry_after: Optional[float] = 1.0, times: int = 1) -> None:
        """The next ``times`` API requests answered with a rate limit: 429 (secondary limit) or 403; with
        ``retry_after`` None a 403 says ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` one second on."""
        message = "API rate limit exceeded" if retry_after is None else "You have exceeded a secondary rate limit."
        with self._lock:
            self._planted += [_Planted(status, retry_after, message)] * times

    def writes(self) -> int:
        """API calls that change something (POST, PATCH, DELETE)."""
        return sum(n for k, n in self.calls.items() if not k.startswith("GET "))

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- the wire --------------------------------------------------------------------------------------
    def _authed(self, h: BaseHTTPRequestHandler) -> bool:
        """The token, as ``Authorization: token T`` / ``Bearer T`` (the API) or basic auth's password (git)."""
        scheme, _, value = (h.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            value = base64.b64decode(value.encode()).decode(errors="replace").partition(":")[2]
        return bool(value) and value.strip() == self.token

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        body = read_body(h.rfile, h.headers)
        git = _GIT.match(parts.path)
        if git:
            return self._git(h, git.group(1), git.group(2), git.group(3), parts.query, body)
        if parts.path == "/_calls":
            return _send_json(h, 200, dict(self.calls))
        with self._lock:
            if self._planted:
                return self._throttle(h, self._planted.pop(0))
            status, answer = self._route(h.command, parts.path, body, self._authed(h), parts.query)
        _send_json(h, status, answer)

    def _route(self, method: str, path: str, raw: bytes, authed: bool, query: str) -> tuple[int, Any]:
        """The route's answer; a GET's "body" is its query (``per_page``, ``page``)."""
        try:
            body = json.loads(raw) if raw else dict(parse_qsl(query))
        except ValueError:
            return 400, {"message": "Problems parsing JSON"}
        for m, pattern, template, fn in self._routes:
            found = pattern.match(path)
            if m == method and found:
                self.calls[f"{method} {template}"] += 1
                if not authed and method != "GET":
                    return 401, {"message": "Bad credentials"}
                return fn(*found.groups(), body, authed)
        self.calls[f"{method} (unknown)"] += 1
        return 404, {"message": "Not Found"}

    def _throttle(self, h: BaseHTTPRequestHandler, p: _Planted) -> None:
        self.throttled += 1
        headers = [("x-ratelimit-limit", "5000")]
        if p.retry_after is not None:
            headers.append(("Retry-After", f"{p.retry_after:g}"))
        else:
            headers += [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", str(int(time.time()) + 1))]
        _send_json(h, p.status, {"message": p.message}, headers)

    def _git(self, h: BaseHTTPRequestHandler, owner: str, repo: str, rest: str, query: str, body: bytes) -> None:
        key = (owner, repo)
        authed = self._authed(h)
        pushing = rest.endswith("git-receive-pack") or "service=git-receive-pack" in query
        if pushing and "service=" in query and (self.refuse_pushes > 0 or self.hold_pushes is not None):
            return self._refuse_push(h)
        if key not in self.repos:
            return _send(h, 404, b"Not Found\n", [])
        if (pushing or self.repos[key]["private"]) and not authed:
            return _send(h, 401, b"Authentication failed\n", [("WWW-Authenticate", 'Basic realm="GitHub"')])
        status, headers, payload = backend(
            self.root,
            h.command,
            f"/{owner}/{repo}.git{rest}",
            query,
            h.headers.get("Content-Type"),
            h.headers.get("Content-Encoding"),
            body,
            "x-access-token" if authed else None,
        )
        if pushing and rest.endswith("git-receive-pack"):
            self._first_branch_is_default(key)
        _send(h, status, payload, headers)

    def _refuse_push(self, h: BaseHTTPRequestHandler) -> None:
        hold = self.hold_pushes
        with self._lock:
            self.refuse_pushes = max(0, self.refuse_pushes - 1)
            self.pushes_held += hold is not None
        if hold is not None:
            hold.wait(60)
        _send(h, 503, b"Service Unavailable\n", [])

    def _first_branch_is_default(self, key: tuple[str, str]) -> None:
        """GitHub's default branch is the first one pushed to an empty repository (git-annex's never)."""
        bare = self.bare(*key)
        branch = self._default_branch(key)
        if branch and (bare / "refs" / "heads" / branch).exists():
            return
        heads = [b for b in _heads(bare) if b != "git-annex"]
        if heads and branch not in heads:
            subprocess.run(["git", "-C", str(bare), "symbolic-ref", "HEAD", f"refs/heads/{heads[0]}"], check=True)


def _heads(bare: Path) -> list[str]:
    """The repository's branches in git's order, from its ref files (a push leaves its refs loose; packed ones
    in ``packed-refs``): read in this process, as GitHub's bookkeeping is not a git child of the pusher's host."""
    top = bare / "refs" / "heads"
    found = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}
    try:
        packed = (bare / "packed-refs").read_text()
    except OSError:
        packed = ""
    for line in packed.splitlines():
        ref = line.partition(" ")[2]
        if ref.startswith("refs/heads/"):
            found.add(ref[len("refs/heads/") :])
    return sorted(found)


def _send_json(
    h: BaseHTTPRequestHandler, status: int, data: Any, headers: Optional[list[tuple[str, str]]] = None
) -> None:
    _send(h, status, json.dumps(data).encode(), [("Content-Type", "application/json; charset=utf-8"), *(headers or [])])


def _send(h: BaseHTTPRequestHandler, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
    h.send_response(status)
    for name, value in headers:
        if name.lower() not in ("content-length", "transfer-encoding"):
            h.send_header(name, value)
    h.send_header("Content-Length", str(len(payload)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(payload)

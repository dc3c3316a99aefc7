"""The BOSS stand-in as a server: one object, the archive and its API on a loopback port.

Why a thread and ``http.server``: tests and the demo build an archive in-process,
change it while it runs and count what the client asked (``request_log``), while
the real ``intern`` client fetches cutouts from it in parallel over keep-alive
connections, as it does from the BOSS.

Faults: set ``faults`` to a ``neuromirror.standins.faults.FaultPlan`` to get
5xx/429 answers, stalls, resets or truncated bodies on chosen requests; every
request is recorded in ``request_log`` (with the fault injected, if any).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Mapping, Optional
from urllib.parse import parse_qs, urlsplit

from neuromirror.standins.boss.cutout import Cutouts
from neuromirror.standins.boss.protocol import INVALID_URL, ROUTES, ApiError, LoggedRequest, boss_error
from neuromirror.standins.boss.resources import ResourceAnswers
from neuromirror.standins.boss.sample import populate_sample
from neuromirror.standins.threaded import ThreadServed

if TYPE_CHECKING:  # the faults module is optional at run time (imported lazily)
    from neuromirror.standins.faults import FaultPlan

__all__ = ["BossStandIn"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: BossStandIn
    #: faults.apply_fault's "timeout" waits on this, so stop() is not held up
    stop_event: threading.Event


class _Handler(BaseHTTPRequestHandler):
    """Request handler: one instance (and thread) per connection, serving its
    keep-alive requests one after the other.

    ``route`` (a route name, see ``ROUTES``) and ``params`` (its named groups)
    are set before the fault plan is consulted.
    """

    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session expects
    # Headers and body are separate writes; with Nagle on, each keep-alive
    # response stalls ~40 ms on the client's delayed ACK.
    disable_nagle_algorithm = True
    timeout = 60  # drop idle keep-alive connections eventually
    server_version = "BossStandIn/1"

    route: str = "unknown"
    params: dict[str, str]
    fault: str | None = None
    _status: int = 0
    _auth: str = "anonymous"

    _length: int = 0
    _recorded: bool = False

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "content-length":
            self._length = int(value)
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        # Record before the body goes out, so that a client which has its answer
        # always finds its request in the log (tests count requests).
        self._record()
        super().end_headers()

    def _record(self) -> None:
        if not self._recorded:
            self._recorded = True
            self.server.standin._record(
                LoggedRequest(self.command, self.path, self.route, self._auth, self._status, self._length, self.fault)
            )

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        """Send a complete response with Content-Length (needed for keep-alive)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence stderr; requests are recorded in ``BossStandIn.request_log``."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _refuse_method(self) -> None:
        # Read-only stand-in; drain any body so the connection stays usable.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._dispatch(allowed=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def _dispatch(self, allowed: bool = True) -> None:
        standin: BossStandIn = self.server.standin
        # One handler serves every request of a keep-alive connection: reset.
        self.route, self.params, self.fault = "unknown", {}, None
        self._auth, self._status, self._length, self._recorded = "anonymous", 0, 0, False
        split = urlsplit(self.path)
        for name, pattern in ROUTES:
            m = pattern.match(split.path)
            if m:
                self.route = name
                self.params = {k: v for k, v in m.groupdict().items() if v is not None}
                break
        try:
            if standin._maybe_fault(self):
                return
            headers: dict[str, str] = {}
            try:
                if self.route == "unknown":
                    raise boss_error(404, INVALID_URL, f"Invalid URL {split.path}")
                if not allowed:
                    raise ApiError(405, {"detail": f'Method "{self.command}" not allowed.'})
                self._auth = "invalid"  # kept if _authenticate refuses the header
                self._auth = standin._authenticate(self.headers.get("Authorization"))
                query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
                status, body, content_type = standin._answer(
                    self.route, self.params, query, self._auth == "token", self.headers.get("Accept")
                )
            except ApiError as err:
                status, body, content_type = err.status, json.dumps(err.body).encode(), "application/json"
                headers = err.headers
            except Exception as exc:  # a stand-in bug must not hang the client
                status, content_type = 500, "application/json"
                body = json.dumps({"status": 500, "code": 9002, "message": f"stand-in error: {exc!r}"}).encode()
            if standin._maybe_fault(self, body, content_type):
                return
            self._send(status, body, content_type, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._record()  # for requests a fault answered without headers


class BossStandIn(ResourceAnswers, Cutouts, ThreadServed):
    """An in-process BOSS API server for tests and demos (see the package docstring).

    Populate it with ``add_collection`` / ``add_coord_frame`` / ``add_experiment``
    / ``add_channel`` (or take ``BossStandIn.sample()``), then ``start()`` it or
    use it as a context manager.  Resources can be added or changed while it runs;
    all state is guarded by one lock, and served arrays are never modified in
    place, so concurrent requests (intern fetches cutout blocks in parallel) see
    consistent data.

    The class is assembled from its parts: the data and its Python API
    (:class:`~neuromirror.standins.boss.archive.BossArchive`), the JSON routes
    (:mod:`~neuromirror.standins.boss.resources`) and the cutout route
    (:mod:`~neuromirror.standins.boss.cutout`); this module adds the server.
    """

    _server: Optional[_Server]

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "public-test-token",
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__()
        self._bind_host = host
        self._port = port
        self.token = token
        #: optional neuromirror.standins.faults.FaultPlan, consulted for every
        #: request (may be set or replaced while running)
        self.faults: FaultPlan | None = faults
        self._log: list[LoggedRequest] = []

    # -- lifecycle

    def _bind(self) -> _Server:
        """After ``stop()``, starting again binds the same port, so a client that kept the URL can reconnect
        (useful to simulate an outage)."""
        server = _Server((self._bind_host, self._port), _Handler)
        server.standin = self
        server.stop_event = threading.Event()
        self._port = server.server_address[1]
        return server

    def __repr__(self) -> str:
        where = self.url if self.running else "not running"
        return f"<BossStandIn {where} collections={sorted(self._collections)}>"

    # -- addresses and client configuration

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("BossStandIn has no port yet: call start() first")
        return self._port

    @property
    def protocol(self) -> str:
        return "http"

    @property
    def host(self) -> str:
        """``host:port`` as intern's ``host`` setting wants it (no scheme)."""
        return f"{self._bind_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}"

    def remote_config(self, token: str | None = None) -> dict[str, str]:
        """The dict for ``BossRemote(...)``; ``token`` overrides the valid one."""
        return {"protocol": self.protocol, "host": self.host, "token": self.token if token is None else token}

    def env(self, token: str | None = None) -> dict[str, str]:
        """INTERN_PROTOCOL / INTERN_HOST / INTERN_TOKEN, which ``BossRemote()``
        reads when no config file (``~/.intern/intern.cfg``) exists."""
        cfg = self.remote_config(token)
        return {"INTERN_PROTOCOL": cfg["protocol"], "INTERN_HOST": cfg["host"], "INTERN_TOKEN": cfg["token"]}

    # -- request log

    @property
    def request_log(self) -> list[LoggedRequest]:
        """A copy of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log)

    def clear_request_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _maybe_fault(self, handler: _Handler, body: bytes | None = None, content_type: str = "") -> bool:
        """Let ``self.faults`` (a FaultPlan) break this request; True if it did.

        Called twice per request.  First (``body`` None, right after routing,
        before authentication) it draws the request's fault kind and carries out
        every kind but "truncated", which needs the real response; the second
        call, with the response about to be sent, carries that one out.  BOSS
        lists are not paginated, so page faults are never drawn.
        """
        plan = self.faults
        if plan is None:
            return False
        from neuromirror.standins.faults import apply_fault  # optional module, imported when used

        if body is None:
            handler.fault = plan.pick(handler.command, handler.path, paginated=False)
            if handler.fault == "truncated":
                return False
            return apply_fault(handler, plan, handler.fault)
        if handler.fault != "truncated":
            return False
        return apply_fault(handler, plan, handler.fault, body, content_type=content_type)

    @classmethod
    def sample(
        cls,
        *,
        shape: tuple[int, int, int] = (40, 700, 600),
        num_hierarchy_levels: int = 2,
        **kwargs: Any,
    ) -> BossStandIn:
        """A populated (not yet started) stand-in for tests and the demo.

        Collection ``neuromirror_demo``, coordinate frame
        ``neuromirror_demo_frame`` (``shape`` is (z, y, x), default 40 x 700 x 600:
        3 cuboids in z, 2 in y and x, with partial edge cuboids; 4 x 4 x 40 nm
        voxels), experiment ``exp1`` (anisotropic, 2 levels) with channels
        ``image8`` (uint8 image), ``image16`` (uint16 image) and ``annotation``
        (uint64 annotation, source ``image8``), all with seeded synthetic
        content, and a little metadata.  ``kwargs`` go to the constructor.
        """
        standin = cls(**kwargs)
        populate_sample(standin, shape, num_hierarchy_levels)
        return standin

    # -- internals: answering requests

    def _authenticate(self, header: str | None) -> str:
        """DRF TokenAuthentication semantics: no "Token" header means anonymous."""
        parts = (header or "").split()
        if not parts or parts[0].lower() != "token":
            return "anonymous"
        if len(parts) == 1:
            raise ApiError(
                401, {"detail": "Invalid token header. No credentials provided."}, {"WWW-Authenticate": "Token"}
            )
        if len(parts) > 2:
            raise ApiError(
                401, {"detail": "Invalid token header. Token string should not contain spaces."},
                {"WWW-Authenticate": "Token"},
            )  # fmt: skip
        if parts[1] != self.token:
            raise ApiError(401, {"detail": "Invalid token."}, {"WWW-Authenticate": "Token"})
        return "token"

    def _answer(
        self, route: str, p: Mapping[str, str], query: Mapping[str, str], authed: bool, accept: str | None
    ) -> tuple[int, bytes, str]:
        """(status, body, content type) for a routed GET; ``authed`` tells a
        valid token from an anonymous caller (invalid tokens never get here)."""
        if route == "cutout":
            return self._cutout(p, query, authed, accept)
        with self._lock:
            payload = self._json_answer(route, p, query, authed)
        return 200, json.dumps(payload).encode(), "application/json"

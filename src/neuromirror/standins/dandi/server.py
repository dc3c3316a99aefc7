"""The DANDI stand-in as a server: one object, the archive and its REST API on a loopback port.

Why a thread and ``http.server``: tests, the demo and the benchmarks start an archive
in-process, change it between syncs and inspect what the client asked
(``request_log``), while the real ``dandi`` client talks to it over HTTP with
keep-alive, as it does to the archive.  Every request is routed here, may be broken
by the :class:`~neuromirror.standins.faults.FaultPlan`, and is answered by a route
handler of the mixins under the one lock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

from neuromirror.standins.dandi.asset_routes import AssetRoutes
from neuromirror.standins.dandi.assets import AssetChanges
from neuromirror.standins.dandi.dandiset_routes import DandisetRoutes
from neuromirror.standins.dandi.formats import dumps
from neuromirror.standins.dandi.protocol import AID, DS, VPATH, ZID, ApiError, Req, Resp, Route, not_found
from neuromirror.standins.faults import FaultPlan, apply_fault
from neuromirror.standins.s3 import S3StandIn
from neuromirror.standins.threaded import ThreadServed

__all__ = ["DandiStandIn"]

lgr = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: DandiStandIn
    stop_event: threading.Event


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's Session reuses connections
    # headers and body are separate writes; without TCP_NODELAY every keep-alive
    # response waits ~40 ms for the client's delayed ACK (Nagle)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _dispatch(self) -> None:
        self.server.standin._handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class DandiStandIn(DandisetRoutes, AssetRoutes, AssetChanges, ThreadServed):
    """In-memory DANDI archive with a REST API on ``host:port`` and blobs in ``s3``.

    Mutate it between syncs with the Python API (:meth:`create_dandiset`,
    :meth:`put_asset`, :meth:`publish`, ...); every method is thread-safe and may be
    called before or after :meth:`start`.  ``faults`` (a :class:`FaultPlan`) is
    consulted for every API request; ``request_log`` lists ``(method, path?query)``
    of every request received, ``latency`` adds a fixed delay to each answer.

    The class is assembled from its parts, all over one
    :class:`~neuromirror.standins.dandi.state.ArchiveState`: the Python API
    (:mod:`~neuromirror.standins.dandi.dandisets`, :mod:`~neuromirror.standins.dandi.assets`)
    and the REST routes (:mod:`~neuromirror.standins.dandi.dandiset_routes`,
    :mod:`~neuromirror.standins.dandi.asset_routes`); this module adds the server.
    """

    _server: Optional[_Server]

    def __init__(
        self,
        s3: S3StandIn,
        *,
        bucket: str = "dandiarchive",
        embargo_bucket: Optional[str] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_token: Optional[str] = None,
        other_tokens: Iterable[str] = (),
        faults: Optional[FaultPlan] = None,
        server_version: str = "0.4.0",
    ) -> None:
        super().__init__(
            s3,
            bucket=bucket,
            embargo_bucket=embargo_bucket,
            host=host,
            port=port,
            api_token=api_token,
            other_tokens=other_tokens,
            server_version=server_version,
        )
        self.faults: FaultPlan = faults if faults is not None else FaultPlan()
        self.latency: float = 0.0
        #: True: the info routes (``/server-info``, ``/api/info/``) fault like every other
        #: route — the real archive can cut any answer short, the client's first one too
        self.fault_info = False
        self.request_log: list[tuple[str, str]] = []
        self._routes = self._make_routes()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> DandiStandIn:
        """Start the HTTP server thread (idempotent); starts ``s3`` too when it is not running."""
        if not self.running:
            if not self.s3.running:
                self.s3.start()
            self._ensure_buckets()
        return super().start()

    def _bind(self) -> _Server:
        server = _Server((self.host, self.port), _Handler)
        server.standin = self
        server.stop_event = threading.Event()
        host, self.port = server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET address: (host, port)
        self.host = host
        with self._lock:
            self._epoch += 1  # URLs in cached metadata may have changed
        lgr.debug("DANDI stand-in listening on %s:%s", host, self.port)
        return server

    @property
    def request_count(self) -> int:
        return len(self.request_log)

    def reset_request_log(self) -> None:
        with self._lock:
            self.request_log.clear()

    # -- request handling ------------------------------------------------------
    def _make_routes(self) -> list[Route]:
        def r(
            methods: str,
            pattern: str,
            fn: Callable[..., Resp],
            *,
            paginated: bool = False,
            faultable: bool = True,
        ) -> Route:
            return Route(frozenset(methods.split("|")), re.compile(pattern + r"/?"), fn, paginated, faultable)

        return [
            r("GET", r"/server-info", self._r_info, faultable=False),
            r("GET", r"/api/info", self._r_info, faultable=False),
            r("GET", r"/api/auth/token", self._r_auth_token),
            r("GET", r"/api/dandisets", self._r_dandisets, paginated=True),
            r("GET", rf"/api/dandisets/{DS}", self._r_dandiset),
            r("GET", rf"/api/dandisets/{DS}/versions", self._r_versions, paginated=True),
            r("GET", VPATH, self._r_version_metadata),
            r("GET", rf"{VPATH}/info", self._r_version_info),
            r("POST", rf"{VPATH}/publish", self._r_publish),
            r("GET", rf"{VPATH}/assets", self._r_assets, paginated=True),
            r("GET", rf"{VPATH}/assets/paths", self._r_paths, paginated=True),
            r("GET", rf"{VPATH}/assets/{AID}", self._r_nested_asset),
            r("GET", rf"{VPATH}/assets/{AID}/info", self._r_nested_asset_info),
            r("GET", rf"{VPATH}/assets/{AID}/download", self._r_nested_download),
            r("GET", rf"/api/assets/{AID}", self._r_asset),
            r("GET", rf"/api/assets/{AID}/info", self._r_asset_info),
            r("GET", rf"/api/assets/{AID}/download", self._r_asset_download),
            r("GET", r"/api/zarr", self._r_zarrs, paginated=True),
            r("GET", rf"/api/zarr/{ZID}", self._r_zarr),
            r("GET", rf"/api/zarr/{ZID}/files", self._r_zarr_files),
        ]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method = h.command
        raw = h.path
        with self._lock:
            self.request_log.append((method, raw))
        length = int(h.headers.get("Content-Length") or 0)
        body_in = h.rfile.read(length) if length > 0 else b""
        split = urlsplit(raw)
        path = unquote(split.path)
        query: dict[str, str] = dict(parse_qsl(split.query, keep_blank_values=True))
        route, kwargs, method_mismatch = self._route("GET" if method == "HEAD" else method, path)
        kind: Optional[str] = None
        if route is not None and (route.faultable or self.fault_info):
            kind = self.faults.pick(method, raw, paginated=route.paginated)
        try:
            user = self._authenticate(h.headers.get("Authorization"))
            req = Req(
                method=method,
                raw_path=raw,
                path=path,
                query=query,
                host=h.headers.get("Host") or f"{self.host}:{self.port}",
                user=user,
                body=body_in,
                fault=kind,
            )
            if route is None:
                if method_mismatch:
                    raise ApiError(405, f'Method "{method}" not allowed.')
                raise not_found()
            with self._lock:
                resp = route.fn(req, **kwargs)
        except ApiError as e:
            resp = e.response()
        except Exception:  # pragma: no cover - a bug in the stand-in
            lgr.error("DANDI stand-in failed on %s %s:\n%s", method, raw, traceback.format_exc())
            resp = Resp(500, dumps({"detail": "stand-in error"}))
        if self.latency > 0:
            time.sleep(self.latency)
        if kind is not None and apply_fault(h, self.faults, kind, resp.body, content_type=resp.content_type):
            return
        _send(h, method, resp)

    def _route(self, method: str, path: str) -> tuple[Optional[Route], dict[str, str], bool]:
        """(the route of ``path`` for ``method``, its URL's fields, whether a route of the path exists
        for other methods only: a 405, not a 404)."""
        method_mismatch = False
        for rt in self._routes:
            m = rt.regex.fullmatch(path)
            if m is None:
                continue
            if method not in rt.methods:
                method_mismatch = True
                continue
            return rt, m.groupdict(), method_mismatch
        return None, {}, method_mismatch


def _send(h: BaseHTTPRequestHandler, method: str, resp: Resp) -> None:
    """The answer on the wire (no body for HEAD); a client gone away closes the connection."""
    try:
        h.send_response(resp.status)
        h.send_header("Content-Type", resp.content_type)
        h.send_header("Content-Length", str(len(resp.body)))
        h.send_header("Vary", "Accept, Authorization")
        for k, v in resp.headers:
            h.send_header(k, v)
        h.end_headers()
        if method != "HEAD" and resp.body:
            h.wfile.write(resp.body)
    except (BrokenPipeError, ConnectionResetError):  # client went away
        h.close_connection = True

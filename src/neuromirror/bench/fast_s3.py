"""An S3 front for the network bench that is not itself the bottleneck: object HEADs answered from moto's
memory, with keep-alive; every other request relayed to moto's server unchanged.

Why: moto spends ~4 ms of CPU per HEAD (its werkzeug server, its response machinery) and closes the
connection after every answer, which caps a cold DANDI mirror's URL pinning at ~250 HEAD/s whatever
the round trip: a run at RTT 50 ms would then look as fast as one at RTT 0 and hide the mirror's own
pipeline (issue 50).  Here an object HEAD (``HEAD /<bucket>/<key>[?versionId=...]``) is a lookup in
moto's backend (the same object, version id, ETag, size and Last-Modified moto would send), counted
per key in the bench's :class:`~neuromirror.bench.moto_patch.Counters` as moto's own HEADs are;
listings, GETs and anything else go to moto as they came (one connection each, as moto wants) and
come back with their status, headers and body.  The client's connection stays open (HTTP/1.1), as
S3's does, except after a HEAD (see :meth:`_Handler._head_from_memory`: the shaping proxy in front
keeps its own connection to the sync alive either way).
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from neuromirror.bench.moto_patch import Counters, moto_bucket_backend

#: headers that belong to one hop, not to the answer
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te", "upgrade"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # the headers and the body are two writes on a kept-alive connection: with Nagle's algorithm the body
    # waited for the client's delayed ACK, ~40 ms a GET (a keep's every copy) on top of the RTT asked for,
    # as the stand-ins' servers say (standins/dandi/server.py)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        if not self._head_from_memory():
            self._relay()

    def do_GET(self) -> None:  # noqa: N802
        self._relay()

    def do_PUT(self) -> None:  # noqa: N802
        self._relay()

    def do_POST(self) -> None:  # noqa: N802
        self._relay()

    def do_DELETE(self) -> None:  # noqa: N802
        self._relay()

    def _head_from_memory(self) -> bool:
        """An object HEAD answered from moto's backend (True), or False when it is anything else."""
        parts = urlsplit(self.path)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        q = parse_qs(parts.query)
        if not key or set(q) - {"versionId"}:
            return False
        try:
            versions = moto_bucket_backend(bucket).buckets[bucket].keys.getlist(key, [])
        except KeyError:
            return False
        vid = q.get("versionId", [None])[0]
        found: Any = None
        if vid is None:
            found = versions[-1] if versions else None
        else:
            found = next((v for v in versions if str(v.version_id) == vid), None)
        if found is None or not hasattr(found, "contentsize"):  # missing, or a delete marker: moto says so
            return False
        with self.server.counters.lock:
            self.server.counters.heads[key] += 1
        headers = {
            "ETag": found.etag,
            "Last-Modified": found.last_modified_RFC1123,
            "Content-Length": str(found.size),
            "Content-Type": getattr(found, "content_type", None) or "binary/octet-stream",
            "Accept-Ranges": "bytes",
            "x-amz-version-id": str(found.version_id or "null"),
        }
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        # the shaping proxy reads a HEAD's answer up to the end of the connection (network_wire._pieces
        # takes framing "none" for "until EOF"): so each HEAD's connection ends with its answer
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        return True

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        host, port = self.server.upstream
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            answer = [(k, v) for k, v in r.getheaders() if k.lower() not in _HOP]
            sent_length = r.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        finally:
            conn.close()
        self.send_response(r.status, r.reason)
        for k, v in answer:
            self.send_header(k, v)
        self.send_header("Content-Length", sent_length or "0")
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], upstream: tuple[str, int], counters: Counters):
        super().__init__(address, _Handler)
        self.upstream = upstream
        self.counters = counters


class FastS3Front:
    """The front on ``127.0.0.1:PORT`` (:attr:`url`) in front of moto's server at ``upstream``."""

    def __init__(self, upstream: str, counters: Counters) -> None:
        u = urlsplit(upstream)
        assert u.hostname is not None
        self.upstream = (u.hostname, u.port or 80)
        self.counters = counters
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> FastS3Front:
        self._server = _Server(("127.0.0.1", 0), self.upstream, self.counters)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fast-s3-front", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

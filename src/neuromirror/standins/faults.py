"""Deterministic fault injection shared by the HTTP stand-ins (DANDI, BOSS, ...).

Why: a mirroring tool has to survive a flaky archive (5xx, throttling, dropped
connections, cut bodies, paginators that repeat or skip a page).  Tests and
benchmarks need to provoke those failures on purpose and reproducibly, so every
stand-in consults one :class:`FaultPlan` before answering a request.

The module knows nothing about DANDI.  A stand-in written on top of
``http.server.BaseHTTPRequestHandler`` uses it in three steps::

    kind = plan.pick(self.command, self.path, paginated=is_a_paginated_route)
    # ... build the response as usual; for kind in PAGE_FAULTS build the page
    # body from page n-1 ("repeat-page") / n+1 ("skip-page") instead of n,
    # see shifted_page() ...
    if kind is not None and apply_fault(self, plan, kind, body):
        return            # the fault answered (or killed) the request
    ...send status, headers, body normally...

``apply_fault`` carries out the transport-level kinds itself:

* ``"500"``, ``"503"``, ``"429"``: a JSON error ``{"detail": ...}`` with that status;
  503 and 429 carry ``Retry-After: plan.retry_after``.
* ``"timeout"``: the handler stalls ``plan.timeout_seconds`` (woken early when the
  server sets ``server.stop_event``), then closes the connection without answering.
* ``"reset"``: the socket is closed with ``SO_LINGER 0`` (a TCP RST), no response.
* ``"truncated"``: status 200 and a ``Content-Length`` for the whole body, but only
  the first half of ``body`` is written before the connection is closed.
* ``"garbled"``: status 200 and the first half of ``body``, its ``Content-Length`` saying
  so: a whole answer that is not the JSON it claims to be (a proxy that cut the body and its
  length, a captive portal's page); ``json.loads`` fails ("Unterminated string ...").

and returns ``False`` for the page kinds (``"repeat-page"``, ``"skip-page"``), which
only the stand-in can honour because it knows how to build another page.

Determinism: whether the k-th request for a given ``(method, path)`` faults, and
with which kind, is a pure function of ``(seed, method, path, k)`` (a SHA-256
draw), so the same plan injects the same faults whatever order concurrent
requests arrive in, and a retried request gets a fresh draw (so ``rate < 1``
never wedges a client forever).  ``fail_next(n, kind)`` queues faults for the
next ``n`` requests regardless of ``rate`` (page kinds wait for the next
paginated request).

Note about the real DANDI client (``dandi.dandiapi``): it retries 429/5xx and
``requests.ConnectionError`` (so "reset" and "timeout") up to 12 times with
exponential backoff (1.25 s, 1.56 s, ...) plus ``Retry-After``; it does not
retry "truncated" (urllib3 raises an incomplete-read ``ChunkedEncodingError``) nor
"garbled" (a JSON decode error), and it cannot notice "repeat-page"/"skip-page".
neuromirror's paced sessions turn the first into a retried ``ConnectionError`` and its
client retries the second (:mod:`neuromirror.sources.dandi.client`).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Deque, Optional

__all__ = [
    "ALL_KINDS",
    "PAGE_FAULTS",
    "TRANSPORT_FAULTS",
    "FaultPlan",
    "apply_fault",
    "shifted_page",
]

#: Faults that the stand-in must honour itself by serving another page.
PAGE_FAULTS: frozenset[str] = frozenset({"repeat-page", "skip-page"})
#: Faults that :func:`apply_fault` carries out on the socket.
TRANSPORT_FAULTS: frozenset[str] = frozenset({"500", "503", "429", "timeout", "reset", "truncated", "garbled"})
ALL_KINDS: tuple[str, ...] = (
    "500",
    "503",
    "429",
    "timeout",
    "reset",
    "truncated",
    "garbled",
    "repeat-page",
    "skip-page",
)


@dataclass
class FaultPlan:
    """Which requests fail and how; thread-safe, shared by a stand-in's handler threads.

    ``rate`` is the fraction of eligible requests that fault (0..1).  ``kinds`` are the
    kinds drawn from (page kinds are only drawn for paginated requests).  ``only_paths``
    is a regex searched in the request path (including the query string); requests
    that do not match never fault by rate (queued ``fail_next`` faults still apply to
    them, because tests use those to hit "the next request", whatever it is).
    ``injected`` records ``(method, path, kind)`` for every fault handed out.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ALL_KINDS
    seed: int = 0
    retry_after: int = 1
    timeout_seconds: float = 5.0
    only_paths: Optional[str] = None
    injected: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(ALL_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        self._lock = threading.Lock()
        self._queue: Deque[tuple[str, Optional[re.Pattern[str]]]] = deque()
        self._seen: dict[tuple[str, str], int] = {}
        self._only_re = re.compile(self.only_paths) if self.only_paths else None

    # -- configuration -------------------------------------------------------
    def fail_next(self, n: int = 1, kind: str = "500", *, path: Optional[str] = None) -> None:
        """Make the next ``n`` requests fail with ``kind``, regardless of ``rate`` (``path``: the next ``n``
        whose path and query this regex finds, say one listing's first page)."""
        if kind not in ALL_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._queue.extend([(kind, re.compile(path) if path else None)] * n)

    def set_rate(self, rate: float, kinds: Optional[tuple[str, ...]] = None) -> None:
        """Change the rate (and optionally the kinds) while a stand-in is running."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        with self._lock:
            self.rate = rate
            if kinds is not None:
                self.kinds = tuple(kinds)

    def set_only_paths(self, regex: Optional[str]) -> None:
        """Restrict rate-based faults to paths matching ``regex`` (None: all paths)."""
        with self._lock:
            self.only_paths = regex
            self._only_re = re.compile(regex) if regex else None

    def reset(self) -> None:
        """Forget queued faults, per-path counters and the ``injected`` log; rate to 0."""
        with self._lock:
            self.rate = 0.0
            self._queue.clear()
            self._seen.clear()
            self.injected.clear()

    @property
    def pending(self) -> int:
        """Number of faults still queued by :meth:`fail_next`."""
        with self._lock:
            return len(self._queue)

    # -- decision ------------------------------------------------------------
    def pick(self, method: str, path: str, *, paginated: bool = False) -> Optional[str]:
        """Return the fault kind for this request, or None to answer it normally."""
        with self._lock:
            kind = self._pop_queued(paginated, path)
            if kind is None and self.rate > 0.0:
                kind = self._draw(method, path, paginated)
            if kind is not None:
                self.injected.append((method, path, kind))
            return kind

    def _pop_queued(self, paginated: bool, path: str) -> Optional[str]:
        for i, (kind, where) in enumerate(self._queue):
            if (paginated or kind not in PAGE_FAULTS) and (where is None or where.search(path)):
                del self._queue[i]
                return kind
        return None

    def _draw(self, method: str, path: str, paginated: bool) -> Optional[str]:
        if self._only_re is not None and not self._only_re.search(path):
            return None
        kinds = [k for k in self.kinds if paginated or k not in PAGE_FAULTS]
        if not kinds:
            return None
        key = (method, path)
        k = self._seen.get(key, 0)
        self._seen[key] = k + 1
        digest = hashlib.sha256(f"{self.seed}\0{method}\0{path}\0{k}".encode()).digest()
        (u,) = struct.unpack(">Q", digest[:8])
        if u / 2.0**64 >= self.rate:
            return None
        (v,) = struct.unpack(">Q", digest[8:16])
        return kinds[v % len(kinds)]


def shifted_page(kind: Optional[str], page: int) -> int:
    """The page whose results a paginated answer to ``page`` should carry under ``kind``.

    "repeat-page" serves page n-1 (a no-op on page 1), "skip-page" serves page n+1.
    """
    if kind == "repeat-page":
        return max(1, page - 1)
    if kind == "skip-page":
        return page + 1
    return page


_STATUS_TEXT = {
    "500": (500, "Internal Server Error (injected fault)"),
    "503": (503, "Service Unavailable (injected fault)"),
    "429": (429, "Request was throttled (injected fault)"),
}


def _hard_close(handler: BaseHTTPRequestHandler, *, rst: bool) -> None:
    handler.close_connection = True
    sock = handler.connection
    try:
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            try:
                handler.wfile.flush()
            except OSError:
                pass
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _half_body(handler: BaseHTTPRequestHandler, body: bytes, content_type: str, *, cut: bool) -> None:
    """Status 200 and the first half of ``body``: announced whole and the connection closed (``cut``), or
    announced as it is (a whole answer that is not the JSON it says it is)."""
    part = body[: len(body) // 2] if len(body) > 1 else b"{"
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(max(len(body), 2) if cut else len(part)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(part)
    if cut:
        _hard_close(handler, rst=False)


def apply_fault(
    handler: BaseHTTPRequestHandler,
    plan: FaultPlan,
    kind: Optional[str],
    body: bytes = b"",
    *,
    content_type: str = "application/json",
) -> bool:
    """Carry out a transport fault on ``handler``; True if the request is finished.

    ``body`` is the response the stand-in was about to send (only "truncated" uses it).
    Returns False for None and for the page kinds, which the caller handles.
    The handler must not write anything after a True return.
    """
    if kind is None or kind in PAGE_FAULTS:
        return False
    if kind in _STATUS_TEXT:
        status, text = _STATUS_TEXT[kind]
        payload = json.dumps({"detail": text}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        if status in (429, 503):
            handler.send_header("Retry-After", str(plan.retry_after))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)
        return True
    if kind == "timeout":
        stop = getattr(handler.server, "stop_event", None)
        if isinstance(stop, threading.Event):
            stop.wait(plan.timeout_seconds)
        else:
            time.sleep(plan.timeout_seconds)
        _hard_close(handler, rst=False)
        return True
    if kind == "reset":
        _hard_close(handler, rst=True)
        return True
    if kind in ("truncated", "garbled"):
        _half_body(handler, body, content_type, cut=kind == "truncated")
        return True
    raise ValueError(f"unknown fault kind {kind!r}")

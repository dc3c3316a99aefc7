"""The fault plan of the shaping proxy (:mod:`neuromirror.standins.network`): which requests fail, and how.

Why a plan of its own next to :mod:`neuromirror.standins.faults`: that one lives inside an
``http.server`` stand-in and draws from one rate for every path; the proxy sits in front of any
stand-in and needs rules per route ("every HEAD of a blob until its sixth try", "a fifth of the
asset pages, for the first 10 s") and the failures a network adds (a connection reset mid-body,
a stalled answer, a refused connection) besides the archives' own answers (S3's ``503 SlowDown``,
the API's ``429``/``502``/``503``/``504``).

Determinism as in ``faults.py``: whether the k-th try of ``(method, path?query)`` faults is a
pure function of ``(seed, method, path?query, k)`` (a SHA-256 draw), so concurrent clients meet
the same faults in any order and a retry gets a fresh draw.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["ANSWER_KINDS", "KINDS", "Fault", "NetFaults", "fault_answer"]

#: kinds the proxy answers itself (the request never goes upstream)
ANSWER_KINDS: frozenset[str] = frozenset({"slowdown", "429", "502", "503", "504"})
#: every kind: the answers, the upstream answer cut ("reset") or stalled ("stall"), the connection RST unread
KINDS: frozenset[str] = ANSWER_KINDS | {"reset", "stall", "refuse"}

_REASONS = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>NETFAULT</RequestId><HostId>neuromirror-network-standin</HostId></Error>"
)


@dataclass
class Fault:
    """One rule: requests whose ``"METHOD /path?query"`` the regex ``match`` finds in fail as ``kind``.

    ``first > 0`` faults each distinct request's first ``first`` tries; otherwise ``rate`` is the
    fraction of tries that fault.  ``until`` (seconds) limits the rule to that long after the plan
    was armed.  A "refuse" rule whose ``match`` is empty (or finds ``"CONNECT host:port"``) refuses
    connections as they are accepted, before any request is read (counted per connection);
    one with a request pattern resets the connection once such a request was read, unanswered.
    """

    kind: str
    match: str = ""
    first: int = 0
    rate: float = 0.0
    retry_after: Optional[float] = None
    stall_seconds: float = 30.0
    until: Optional[float] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (one of {', '.join(sorted(KINDS))})")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("a fault's rate must be within 0..1")
        self._re = re.compile(self.match)


@dataclass
class NetFaults:
    """The rules (first match wins) and the record of every fault handed out; thread-safe."""

    rules: list[Fault]
    seed: int = 0
    injected: list[tuple[float, str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._tries: dict[tuple[str, str], int] = {}
        self._armed = time.monotonic()

    def arm(self) -> None:
        """Restart the ``until`` clocks (the proxy arms its plan when it starts or is given one)."""
        with self._lock:
            self._armed = time.monotonic()

    def active(self, now: Optional[float] = None) -> list[Fault]:
        """The rules whose ``until`` window is still open."""
        now = time.monotonic() if now is None else now
        return [r for r in self.rules if r.until is None or now - self._armed < r.until]

    def pick(self, method: str, target: str) -> Optional[Fault]:
        """The rule that faults this try of ``method target`` (recorded in ``injected``), or None.

        ``method`` "CONNECT" (``target`` the proxy's ``host:port``) is a connection just accepted:
        only "refuse" rules apply to it; to requests, only "refuse" rules with a pattern do.
        """
        text = f"{method} {target}"
        connect = method == "CONNECT"
        now = time.monotonic()
        with self._lock:
            key = (method, target)
            k = self._tries.get(key, 0)
            self._tries[key] = k + 1
            for i, rule in enumerate(self.active(now)):
                if (rule.kind == "refuse") != connect and (connect or not rule.match):
                    continue  # a request rule at a connection, or a connection rule at a request
                if rule._re.search(text) and self._fires(rule, i, method, target, k):
                    self.injected.append((now, method, target, rule.kind))
                    return rule
        return None

    def _fires(self, rule: Fault, i: int, method: str, target: str, k: int) -> bool:
        if rule.first > 0:
            return k < rule.first
        if rule.rate <= 0.0:
            return False
        salt = f"\0{i}" if i else ""
        digest = hashlib.sha256(f"{self.seed}\0{method}\0{target}\0{k}{salt}".encode()).digest()
        (u,) = struct.unpack(">Q", digest[:8])
        return u / 2.0**64 < rule.rate

    def reset(self) -> None:
        """Forget the tries counted and the faults recorded (the rules stay)."""
        with self._lock:
            self._tries.clear()
            self.injected.clear()


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def fault_answer(rule: Fault, head_only: bool, close: bool = False) -> bytes:
    """The whole HTTP/1.1 answer (head and body) of an answer kind; keep-alive unless ``close``."""
    if rule.kind == "slowdown":
        status, reason, ctype, body = 503, "Slow Down", "application/xml", _SLOWDOWN
    else:
        status = int(rule.kind)
        reason, ctype = _REASONS[status], "application/json"
        body = json.dumps({"detail": f"{reason} (injected by the network stand-in)"}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
    if rule.retry_after is not None:
        lines.append(f"Retry-After: {_retry_after(rule.retry_after)}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body

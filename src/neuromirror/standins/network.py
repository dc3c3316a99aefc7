"""A shaping HTTP proxy that puts "a network" between the mirror and the loopback stand-ins.

Why: the real archives are 20-100 ms away (S3 us-east-2, the DANDI API behind its load balancer),
S3 throttles with ``503 SlowDown`` and the API answers ``429``/``5xx`` under load, connections
get reset mid-body; on loopback every request costs microseconds and never fails, so a sync that
is fast and correct here may crawl or break against the archives.  This kernel has no ``netem``,
so the network is a proxy: each request waits half a round trip before it goes upstream and half
before its answer reaches the client (:meth:`ShapingProxy.set_rtt`), bodies are paced per
connection (:meth:`ShapingProxy.set_bandwidth`), and a :class:`NetFaults` plan
(:mod:`neuromirror.standins.network_faults`) fails chosen requests; the bytes on the wire are
:mod:`neuromirror.standins.network_wire`'s.

It speaks HTTP/1.1 and keeps the client's connection alive, as S3 and the API do, whatever the
stand-in behind it does: moto's server closes the connection after every answer, which would
make every request through a client pay a new connection.  Upstream connections are pooled
where the upstream keeps them open.  Nothing in bodies is rewritten and ``Location`` headers
pass unchanged; only hop-by-hop headers (``Connection``, ``Keep-Alive``, ``Expect``) are the
proxy's own.  Each request's delay is its own ``asyncio.sleep``, so 32 requests in flight at
RTT 50 ms take ~50 ms, not 1.6 s.  The loop runs in a daemon thread; the counters
(:attr:`ShapingProxy.log`, ``in_flight``, ``bytes_down``...) are read from any thread, and
:meth:`ShapingProxy.wait_for` lets tests wait for a state instead of sleeping.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import urlsplit

from neuromirror.standins.network_faults import ANSWER_KINDS, Fault, NetFaults, fault_answer
from neuromirror.standins.network_wire import (
    Pacer,
    Request,
    close_quietly,
    read_request,
    relay,
    rst,
    stall_or_cut,
)

__all__ = ["Fault", "NetFaults", "Record", "ShapingProxy", "parse_duration", "parse_rate"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|sec|m|min|h)?\s*$")
_DURATION_UNITS = {
    None: 1.0,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kKmMgGtT])(i?))?(B|bytes?|b|bits?)?\s*(/s|ps)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: "50ms" -> 0.05, "0.2s" -> 0.2, "1" -> 1.0 (a bare number is seconds)."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (say e.g. 50ms, 0.2s, 1)")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_rate(text: str) -> float:
    """Bytes per second in ``text``: "10MB/s", "10M" (bytes), "80Mbit", "80Mbps" (bits), "1MiB/s" (binary)."""
    m = _RATE.match(text)
    if not m:
        raise ValueError(f"not a rate: {text!r} (say e.g. 10MB/s, 10M, 80Mbit, 1MiB/s)")
    number, prefix, binary, unit = float(m.group(1)), m.group(2), m.group(3), m.group(4) or "B"
    scale = 1.0
    if prefix:
        power = "kmgt".index(prefix.lower()) + 1
        scale = (1024.0 if binary else 1000.0) ** power
    bits = unit == "b" or unit.startswith("bit")
    return number * scale / (8.0 if bits else 1.0)


@dataclass
class Record:
    """One request as it arrived (``status`` set once it is answered), or a connection refused as it was
    accepted (method "CONNECT", kind "refuse"; not counted in ``requests``)."""

    t: float
    method: str
    target: str
    status: Optional[int] = None
    kind: Optional[str] = None
    in_flight: int = 0
    user_agent: Optional[str] = None  # the request's User-Agent header (None: none sent)


class ShapingProxy:
    """An HTTP/1.1 proxy on ``host:port`` in front of ``upstream`` ("http://127.0.0.1:PORT")."""

    def __init__(
        self,
        upstream: str,
        *,
        rtt: float = 0.0,
        bandwidth: Optional[float] = None,
        faults: Optional[NetFaults] = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the upstream must be http://HOST:PORT, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.host, self.port = host, port
        self.rtt, self.bandwidth = rtt, bandwidth
        self._faults = faults
        self._cond = threading.Condition()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stop: Optional[asyncio.Event] = None
        self._tasks: set[asyncio.Task] = set()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.in_flight = 0  # requests being answered now
        self.requests = self.max_in_flight = self.bytes_down = self.connections_accepted = 0
        self.log: list[Record] = []

    # -- settings (any thread) ----------------------------------------------
    def set_rtt(self, rtt: float) -> None:
        self.rtt = rtt

    def set_bandwidth(self, bps: Optional[float]) -> None:
        self.bandwidth = bps

    @property
    def faults(self) -> Optional[NetFaults]:
        return self._faults

    @faults.setter
    def faults(self, plan: Optional[NetFaults]) -> None:
        """A new plan takes effect with the next request; a running proxy arms it."""
        if plan is not None and self._loop is not None:
            plan.arm()
        self._faults = plan

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- statistics (any thread) --------------------------------------------
    def reset_stats(self) -> None:
        """Zero the counters and empty the log (``in_flight`` is a state, not a count: it stays)."""
        with self._cond:
            self.requests = 0
            self.log = []
            self.max_in_flight = self.in_flight
            self.bytes_down = 0
            self.connections_accepted = 0

    def wait_for(self, predicate: Callable[[ShapingProxy], bool], timeout: float = 30.0) -> bool:
        """Wait until ``predicate(self)`` holds (checked at every request's start and end, and every 50 ms)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def _begin(self, method: str, target: str, kind: Optional[str], user_agent: Optional[str] = None) -> Record:
        with self._cond:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            record = Record(time.monotonic(), method, target, None, kind, self.in_flight, user_agent)
            self.log.append(record)
            self._cond.notify_all()
        return record

    def _end(self, record: Record, status: Optional[int]) -> None:
        with self._cond:
            record.status = status
            self.in_flight -= 1
            self._cond.notify_all()

    def count_down(self, n: int) -> None:
        """``n`` more body bytes went to a client."""
        with self._cond:
            self.bytes_down += n

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> ShapingProxy:
        """Listen (returns once listening; idempotent) and arm the fault plan."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failed), name="shaping-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failed:
            self._thread.join()
            self._thread = None
            raise failed[0]
        if self._faults is not None:
            self._faults.arm()
        return self

    def stop(self) -> None:
        """Close the listener and every connection (stalled answers end at once), then join the thread."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        self._thread = self._loop = self._stop = None

    def __enter__(self) -> ShapingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failed: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as e:  # noqa: B036 - handed to start()'s caller
            failed.append(e)
            ready.set()
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, self.host, self.port, limit=1 << 20, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        ready.set()
        await self._stop.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()
        for _, writer in self._idle:
            close_quietly(writer)
        self._idle.clear()

    # -- one client connection --------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._cond:
            self.connections_accepted += 1
        try:
            if self._refused():
                await asyncio.sleep(self.rtt)  # the RST comes back a round trip after the connection left
                rst(writer)
                return
            up, down = Pacer(self), Pacer(self)
            while await self._one_request(reader, writer, up, down):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or spoke no HTTP: drop the connection
        except asyncio.CancelledError:
            pass  # stop(): end as a finished task (asyncio's stream callback chokes on a cancelled one)
        finally:
            self._tasks.discard(task)
            close_quietly(writer)

    def _refused(self) -> bool:
        plan = self._faults
        if plan is None or plan.pick("CONNECT", f"{self.host}:{self.port}") is None:
            return False
        with self._cond:
            self.log.append(Record(time.monotonic(), "CONNECT", f"{self.host}:{self.port}", None, "refuse"))
            self._cond.notify_all()
        return True

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Pacer, down: Pacer
    ) -> bool:
        """Read, delay, forward (or fault) and answer one request; whether the connection stays open."""
        req = await read_request(reader, writer)
        if req is None:
            return False
        plan = self._faults
        rule = plan.pick(req.method, req.target) if plan is not None else None
        record = self._begin(req.method, req.target, rule.kind if rule else None, req.user_agent)
        status: Optional[int] = None
        try:
            if rule is not None and rule.kind == "refuse":
                await asyncio.sleep(self.rtt)
                rst(writer)
                return False
            status, keep = await self._answer(req, rule, writer, up, down)
            return keep and req.keep_alive
        finally:
            self._end(record, status)

    async def _answer(
        self, req: Request, rule: Optional[Fault], writer: asyncio.StreamWriter, up: Pacer, down: Pacer
    ) -> tuple[Optional[int], bool]:
        """The status sent and whether the client connection is still usable."""
        await self.half_rtt()
        if rule is not None and rule.kind in ANSWER_KINDS:
            answer = fault_answer(rule, req.method == "HEAD", close=not req.keep_alive)
            await self.half_rtt()
            writer.write(answer)
            await writer.drain()
            return (503 if rule.kind == "slowdown" else int(rule.kind)), True
        await up.pace(len(req.body))
        if rule is not None:
            return await stall_or_cut(self, req, rule, writer, down)
        return await relay(self, req, writer, down)

    async def half_rtt(self) -> None:
        """Wait half a round trip (each way of each request, on its own: requests in flight do not queue)."""
        if self.rtt > 0:
            await asyncio.sleep(self.rtt / 2)

    async def upstream_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """An idle pooled upstream connection (``reused`` True) or a new one."""
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer, True
            close_quietly(writer)
        reader, writer = await asyncio.open_connection(*self.upstream, limit=1 << 20)
        return reader, writer, False

    def give_back(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._idle.append((reader, writer))

    @property
    def stopping(self) -> asyncio.Event:
        """Set when the proxy stops (stalled answers wait on it); only inside the proxy's loop."""
        assert self._stop is not None
        return self._stop

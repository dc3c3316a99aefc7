"""An operator's ceiling per archive endpoint: requests per second and requests in flight, never above.

Why: an archive decides whether a mirror may run against it at all (the DANDI API went down under one
client's requests, dandi-archive#2085); the adaptive pace (:mod:`.pacing`) slows down when the archive
says so, but only an operator knows what the archive allows.  ``network:`` in a mirror definition and
``sync --max-rate N/s --max-in-flight N`` set a :class:`Limit` for every endpoint (``endpoints:`` one
endpoint's own).

Where it holds: every request of a sync passes one endpoint's :class:`~.pacing.Pace` (the DANDI client's
session, the listings, the pins, BOSS; AIND's boto3 client through :func:`hook_boto`), and the pace asks
the endpoint's gate for each request.  The pace's own in-flight limit never grows above the ceiling.

* **One process** (every thread, every source of ``-J``, and the worker processes, which ask the
  sync's own paces, :mod:`.shared`): a :class:`Gate`: at most ``in_flight`` requests at once, and at
  most ``rate`` requests in any window of one second as the archive sees them (each request holds a turn
  from its send until a window after its answer; below 1/s, one request per ``1/rate`` seconds).
* **A Dask cluster** (``sync --dask``, the service's ``executor: {dask: ...}``): a :class:`ClusterGate`
  in each worker process, two ``distributed.Semaphore`` per endpoint named for the sync (one budget for
  every worker): one lease per request in flight, and one lease per request sent, each held until one
  window (1 s) after its answer, so that no more than ``rate`` requests leave in any 1 s window, whichever
  workers send them.  A dead worker's leases are released by the scheduler.  Each request then costs two
  round trips to the scheduler (~1 ms on a LAN): a ceiling is for slowing down, not for speed.

Without any ceiling set (the default) no gate exists: a pace looks at one attribute per request.
"""

from __future__ import annotations

import collections
import heapq
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

log = logging.getLogger("neuromirror.network")

#: the window a rate is counted in (seconds): 5 % over one second, so that the jitter between a request's
#: turn here and its arrival at the archive (a new connection, a busy host) does not put N+1 in a second there
WINDOW = 1.05


@dataclass(frozen=True)
class Limit:
    """At most ``rate`` requests a second and ``in_flight`` at once (None: no bound)."""

    rate: Optional[float] = None
    in_flight: Optional[int] = None

    def __bool__(self) -> bool:
        return self.rate is not None or self.in_flight is not None

    def over(self, other: Limit) -> Limit:
        """This limit's bounds, ``other``'s where this one sets none."""
        return Limit(
            self.rate if self.rate is not None else other.rate,
            self.in_flight if self.in_flight is not None else other.in_flight,
        )

    def describe(self) -> str:
        parts = [f"{self.rate:g}/s"] if self.rate is not None else []
        parts += [f"{self.in_flight} in flight"] if self.in_flight is not None else []
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Ceilings:
    """Every endpoint's limit (``default``), and the endpoints with their own (``scheme://host:port``)."""

    default: Limit = Limit()
    endpoints: tuple[tuple[str, Limit], ...] = ()
    #: the name of the cluster-wide budget (a sync's, made once per process by :func:`export`)
    budget: Optional[str] = None

    def __bool__(self) -> bool:
        return bool(self.default) or any(limit for _, limit in self.endpoints)

    def limit_for(self, endpoint: str) -> Limit:
        for name, limit in self.endpoints:
            if name == endpoint:
                return limit.over(self.default)
        return self.default

    def to_json(self) -> dict:
        def one(limit: Limit) -> dict:
            return {"max_rate": limit.rate, "max_in_flight": limit.in_flight}

        return {**one(self.default), "endpoints": {name: one(limit) for name, limit in self.endpoints}}


_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$")
_PER = {None: 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0}
_PER["hour"] = 3600.0


def parse_rate(value: Any) -> float:
    """Requests per second in ``20/s``, ``300/min``, ``20`` (a bare number: per second); above 0."""
    if isinstance(value, bool):
        raise ValueError(f"not a rate: {value!r} (say e.g. 20/s, 300/min, 5/h)")
    m = _RATE.match(str(value))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"not a rate: {value!r} (say e.g. 20/s, 300/min, 5/h)")
    return float(m.group(1)) / _PER[m.group(2)]


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (what one ceiling stands for), as :func:`.pacing.origin`."""
    from urllib.parse import urlsplit

    u = urlsplit(url if "://" in url else f"https://{url}")
    return f"{u.scheme.lower()}://{(u.netloc or '').lower()}"


class Gate:
    """One endpoint's ceiling in this process; thread-safe.

    A request holds one of the ``rate`` turns from when it is sent until one window after its answer came
    back: the archive sees it arrive somewhere in between, so any window of the archive's clock holds at
    most ``rate`` arrivals, whatever the delay between here and there (a busy host, a new connection).
    Counting send times alone let 22 arrivals into one second of a 20/s cap on a loaded machine."""

    def __init__(self, limit: Limit, endpoint: str = "") -> None:
        self.limit, self.endpoint = limit, endpoint
        self._cond = threading.Condition()
        self.in_flight = 0
        n, self.window = _tokens(limit.rate)
        self._held: collections.deque[float] = collections.deque()  # when each answered request's turn ends
        self._n = n
        self._said = 0.0  # when a wait was last said (one line per SAY_EVERY seconds, whatever the threads)

    def enter(self) -> None:
        """Wait until one more request may be in flight and sent, and count it as both."""
        cap = self.limit.in_flight
        with self._cond:
            while True:
                if cap is not None and self.in_flight >= cap:
                    self._cond.wait(1.0)
                    continue
                now = time.monotonic()
                while self._held and self._held[0] <= now:
                    self._held.popleft()
                if self._n and self.in_flight + len(self._held) >= self._n:
                    wait = self._held[0] - now if self._held else 1.0
                    self._say(wait, now)
                    self._cond.wait(wait)
                    continue
                break
            self.in_flight += 1

    def _say(self, wait: float, now: float) -> None:
        """A line while the ceiling holds a request back for long (``--max-rate 5/h`` waits 12 minutes a request):
        a sync that waits says so, and on what, never in silence."""
        if wait >= SAY_AFTER and now - self._said >= SAY_EVERY:
            self._said = now
            log.warning(
                "%s: waiting %s for the next request: the ceiling max_rate %s holds it",
                self.endpoint or "an endpoint",
                f"{wait:.0f} s" if wait < 120 else f"{wait / 60:.0f} min",
                rate_words(self.limit.rate),
            )

    def leave(self) -> None:
        with self._cond:
            self.in_flight -= 1
            if self._n:
                self._held.append(time.monotonic() + self.window)  # answered: its turn ends a window from now
            self._cond.notify()


#: a wait for the rate ceiling this long is said (a line on stderr), at most once per SAY_EVERY seconds per endpoint
SAY_AFTER, SAY_EVERY = 2.0, 60.0


def rate_words(rate: Optional[float]) -> str:
    """A rate as a person set it: ``20/s``, ``30/min``, ``5/h``."""
    if not rate:
        return "none"
    if rate >= 1:
        return f"{rate:g}/s"
    return f"{rate * 60:g}/min" if rate * 60 >= 1 else f"{rate * 3600:g}/h"


def _tokens(rate: Optional[float]) -> tuple[int, float]:
    """(requests, window seconds) of a rate: ``int(rate)`` a second; below 1/s, one per ``1/rate`` s."""
    if rate is None:
        return 0, WINDOW
    if rate < 1:
        return 1, WINDOW / rate
    return int(rate), WINDOW


class ClusterGate:
    """One endpoint's ceiling over a Dask cluster: ``distributed.Semaphore`` leases named for the budget."""

    def __init__(self, limit: Limit, name: str, worker: Any) -> None:
        from distributed import Semaphore

        self.limit = limit
        kw = {"scheduler_rpc": worker.scheduler, "loop": worker.loop}
        self._slots = Semaphore(limit.in_flight, f"{name}:in-flight", **kw) if limit.in_flight else None
        n, self.window = _tokens(limit.rate)
        self._tokens = Semaphore(n, f"{name}:rate", **kw) if n else None
        self._due: list[float] = []  # when each token taken is given back (a heap)
        self._cond = threading.Condition()
        if self._tokens is not None:
            threading.Thread(target=self._give_back, name="ceiling-tokens", daemon=True).start()

    def enter(self) -> None:
        if self._slots is not None:
            _acquire(self._slots)
        if self._tokens is not None:
            _acquire(self._tokens)  # the last wait before the request leaves

    def leave(self) -> None:
        if self._slots is not None:
            _release(self._slots)
        if self._tokens is not None:  # its turn ends one window after its answer (as :class:`Gate`'s)
            with self._cond:
                heapq.heappush(self._due, time.monotonic() + self.window)
                self._cond.notify()

    def _give_back(self) -> None:
        assert self._tokens is not None
        while True:
            with self._cond:
                while not self._due or self._due[0] > time.monotonic():
                    self._cond.wait(self._due[0] - time.monotonic() if self._due else None)
                heapq.heappop(self._due)
            _release(self._tokens)


def _acquire(semaphore: Any, tries: int = 5) -> None:
    """A lease, asked again when the ask was cancelled under it: ``distributed.utils.sync`` then fails with
    "cannot access local variable 'result'" (a CancelledError is no Exception there), which failed one Dask
    task of the ceiling bench's syncs.  Nothing was leased by a cancelled ask."""
    for _ in range(tries - 1):
        try:
            semaphore.acquire()
            return
        except UnboundLocalError:
            continue
    semaphore.acquire()


def _release(semaphore: Any) -> None:
    """A lease given back; a give-back cancelled under it (the same ``UnboundLocalError`` as :func:`_acquire`'s)
    is not asked again (distributed says not to: the scheduler frees a lease its holder stopped renewing), and
    never kills the thread that gives the rate's tokens back, which left a worker's budget shrinking."""
    try:
        semaphore.release()
    except UnboundLocalError:
        log.debug("a ceiling lease's release was cancelled; the scheduler frees it after its timeout")


@dataclass
class _State:
    ceilings: Ceilings = Ceilings()
    worker: Any = None  # the Dask worker whose scheduler holds the budget (None: this process alone)
    gates: dict[str, Any] = field(default_factory=dict)


_state = _State()
_lock = threading.Lock()
#: this process's budget name, made once (every Dask task of the sync names the same)
_budget = f"neuromirror-ceiling-{uuid.uuid4().hex[:12]}"


def configure(ceilings: Optional[Ceilings], worker: Any = None) -> None:
    """The ceilings from now on (None: none), held in this process or, with ``worker``, over its cluster."""
    global _state
    with _lock:
        _state = _State(ceilings or Ceilings(), worker)


def current() -> Ceilings:
    return _state.ceilings


def export() -> Optional[Ceilings]:
    """This process's ceilings for a Dask task, named for one cluster-wide budget (None: none set)."""
    c = _state.ceilings
    if not c:
        return None
    return Ceilings(c.default, c.endpoints, c.budget or _budget)


def install(ceilings: Optional[Ceilings]) -> bool:
    """On a Dask worker, in a task: the submitting sync's ceilings, shared with every worker; whether they
    changed (a worker runs many tasks of one sync: the gates made for the first serve them all)."""
    if (ceilings or Ceilings()) == _state.ceilings:
        return False
    worker = None
    if ceilings:
        from distributed import get_worker

        worker = get_worker()
    configure(ceilings, worker)
    return True


def gate_for(endpoint: str) -> Optional[Any]:
    """``endpoint``'s gate (made on first use), or None when no ceiling holds for it."""
    state = _state
    if not state.ceilings:
        return None
    gate = state.gates.get(endpoint)
    if gate is not None:
        return gate
    limit = state.ceilings.limit_for(endpoint)
    if not limit:
        return None
    with _lock:
        gate = state.gates.get(endpoint)
        if gate is None:
            if state.worker is not None:
                gate = ClusterGate(limit, f"{state.ceilings.budget}:{endpoint}", state.worker)
            else:
                gate = Gate(limit, endpoint)
            state.gates[endpoint] = gate
    return gate


_held = threading.local()


def hook_boto(client: Any) -> None:
    """A boto3 client's every attempt through its endpoint's gate (AIND's bucket: the client retries and
    paces itself, botocore's ``adaptive`` mode, but the operator's ceiling holds for it too)."""

    def before(request: Any, **_: Any) -> None:
        gate = gate_for(origin(request.url))
        if gate is not None:
            gate.enter()
        _held.gate = gate

    def after(**_: Any) -> None:
        gate, _held.gate = getattr(_held, "gate", None), None
        if gate is not None:
            gate.leave()

    client.meta.events.register("before-send.s3", before)
    client.meta.events.register("needs-retry.s3", after)

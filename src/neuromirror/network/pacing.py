"""One rate and concurrency controller per archive endpoint, shared by every thread of a sync.

Why: the archives are a network away and say when they are pressed.  S3 answers ``503 SlowDown``
above a few thousand requests a second per prefix and asks clients to back off; the DANDI API
answers ``429``/``502``/``503``/``504`` under load, with ``Retry-After``.  A fixed retry budget per
request, with no pause, keeps 32 pinning threads asking at full rate after a SlowDown (what SlowDown
asks a client not to do), and gives up on a request that a pause would have let through.

So every request to an endpoint (``scheme://host:port``) goes through that endpoint's :class:`Pace`:

* **AIMD on the requests in flight**, as TCP's congestion window and botocore's ``adaptive`` retry
  mode do: each clean answer adds ``1/limit`` (about one more request in flight per round trip's
  worth of answers), a throttled answer multiplies the limit by 0.7, once per window (answers to
  requests sent before the last cut do not cut again, and a window lasts at least 1 s or twenty
  round trips: one burst is one signal).  The limit never goes below a quarter of the callers'
  base (S3's pins: 8 in flight; a random 20 % of answers throttled must not starve a sync to one
  request at a time) nor above the ceiling.
* **Retry-After is honoured for the endpoint**, not only for the request that got it: no request to
  that endpoint leaves before the time it names.
* **Retries with exponential backoff and jitter** (:func:`call`), then a loud failure
  (:class:`GaveUp`): a caller that pins never settles for an answer it did not get.

Each pace counts what its endpoint answered (:class:`~.stats.EndpointStats`); :mod:`.report` turns
the counters into what ``sync --json`` and ``status`` say.  Worker processes (:mod:`neuromirror.util.processes`)
ask the sync's own paces (:class:`RemotePace`, :mod:`.shared`).
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Container, Iterator, Optional, TypeVar
from urllib.parse import urlsplit

from neuromirror.errors import Unavailable
from neuromirror.network import ceiling as ceilings
from neuromirror.network.stats import EndpointStats

#: answers that mean "you are asking too fast" (counted as throttled; these and the other RETRIED cut the limit)
THROTTLED = frozenset({429, 503})
#: answers worth asking again (with a pause)
RETRIED = frozenset({429, 500, 502, 503, 504})
#: attempts of one request before it fails loudly (``NEUROMIRROR_HTTP_RETRIES`` overrides)
ATTEMPTS = 10
#: the first pause before a retry, doubled each time up to ``BACKOFF_MAX`` (seconds; jittered)
BACKOFF = float(os.environ.get("NEUROMIRROR_HTTP_BACKOFF", "0.25"))
BACKOFF_MAX = 20.0
#: a throttled window multiplies the in-flight limit by this (CUBIC's and botocore's adaptive mode's beta)
DECREASE = 0.7
#: at most one cut per this many seconds (or twenty round trips, if longer): a steady share of throttled
#: answers then settles the limit where one cut a second balances the growth (+1 per round trip's answers)
COOLDOWN = 1.0
#: a round trip up to this long keeps an endpoint's in-flight ceiling at its callers' base (seconds; see :class:`Pace`)
NEAR = 0.0125
#: a Retry-After longer than this is clipped (an archive's clock gone wrong must not stall a sync for days)
RETRY_AFTER_MAX = 120.0

T = TypeVar("T")


class GaveUp(Unavailable):
    """A request the archive never answered well: retried with backoff, then given up on, loudly."""

    def __init__(self, url: str, attempts: int, last: str, cause: Any = None):
        super().__init__(f"{url}: no answer after {attempts} attempts (last: {last})")
        self.url = url
        self.attempts = attempts
        self.last = last
        #: the last attempt's exception or retried answer, for a caller that words its own error (not pickled)
        self.cause = cause

    def __reduce__(self) -> tuple:
        return (GaveUp, (self.url, self.attempts, self.last))  # from a worker process to the sync, whole


class Pace:
    """The AIMD limit and the Retry-After gate of one endpoint; thread-safe.

    The ceiling the limit grows to is sized from the endpoint's round trip (the fastest answer
    seen, as BBR's min-RTT: queueing at a busy stand-in or archive does not count): ``base`` in
    flight up to :data:`NEAR` seconds away, proportionally more beyond, up to ``most``.  On
    loopback the callers' own pool size holds; 50 ms away, four times as many requests are in
    flight so that the same number of answers arrives per second.
    """

    def __init__(self, endpoint: str, ceiling: int = 32, most: Optional[int] = None) -> None:
        self.endpoint = endpoint
        self._cond = threading.Condition()
        self.base = max(1, ceiling)
        self.most = max(self.base, most or self.base)
        self.min_rtt: Optional[float] = None
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.in_flight = 0
        self.not_before = 0.0  # monotonic time before which nothing is sent (Retry-After)
        self._epoch = 0  # bumped at each cut: answers to older requests do not cut again
        self._last_cut = -COOLDOWN
        #: the limit is never cut below this: a quarter of the base (S3's 32: 8 in flight)
        self.floor = max(1.0, self.base / 4)
        self.stats = EndpointStats(endpoint, limit=self.limit, limit_min=self.limit, ceiling=self.ceiling)
        #: the operator's ceiling for this endpoint (:mod:`.ceiling`; None: none): asked for each request
        self.gate: Optional[Any] = None
        #: the operator's in-flight bound: the limit never grows above it (None: none)
        self.cap: Optional[int] = None

    def restrict(self, cap: Optional[int]) -> None:
        """The operator's in-flight bound (:mod:`.ceiling`): base, ceiling, limit and floor at most ``cap``."""
        with self._cond:
            self.cap = cap
            if cap is None:
                return
            self.base, self.most, self.ceiling = min(self.base, cap), min(self.most, cap), min(self.ceiling, cap)
            self.floor = min(self.floor, float(cap))
            self.limit = min(self.limit, float(cap))
            self.stats.ceiling, self.stats.limit = self.ceiling, self.limit
            self.stats.limit_min = min(self.stats.limit_min, self.limit)

    def _clamp(self, n: int) -> int:
        return n if self.cap is None else min(n, self.cap)

    def widen(self, ceiling: int, most: Optional[int] = None) -> None:
        """A caller with a larger pool: the limit may grow that far (it starts there if never cut)."""
        ceiling, most = self._clamp(ceiling), (self._clamp(most) if most else None)
        with self._cond:
            self.base = max(self.base, ceiling)
            self.floor = max(1.0, self.base / 4)
            self.most = max(self.most, most or ceiling, self.base)
            self._set_ceiling(max(self.ceiling, ceiling))

    def observe(self, seconds: float) -> None:
        """The time one clean answer took: the round trip that sizes the ceiling (see the class)."""
        if self.min_rtt is not None and seconds >= self.min_rtt:
            return
        with self._cond:
            self.min_rtt = seconds if self.min_rtt is None else min(self.min_rtt, seconds)
            wanted = self._clamp(int(min(self.most, max(self.base, self.base * self.min_rtt / NEAR))))
            if wanted > self.ceiling:
                self._set_ceiling(wanted)

    def _set_ceiling(self, ceiling: int) -> None:
        if ceiling <= self.ceiling:
            return
        grow = self.limit >= self.ceiling and self.stats.throttled == 0  # never cut: start at the new top
        self.ceiling = ceiling
        self.stats.ceiling = ceiling
        if grow:
            self.limit = float(ceiling)
            self.stats.limit = self.limit
            self.stats.limit_min = max(self.stats.limit_min, self.limit)
        self._cond.notify_all()

    def acquire(self) -> int:
        """Wait for a slot (in flight below the limit, past any Retry-After); the window it was sent in."""
        start = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                if now < self.not_before:
                    self._cond.wait(self.not_before - now)
                elif self.in_flight >= max(1, int(self.limit)):
                    self._cond.wait(1.0)
                else:
                    break
            self.in_flight += 1
            self.stats.requests += 1
            epoch = self._epoch
        gate = self.gate
        if gate is not None:  # the operator's ceiling: outside the lock, which answers release the slots by
            try:
                gate.enter()
            except BaseException:
                with self._cond:
                    self.in_flight -= 1
                    self._cond.notify()
                raise
        waited = time.monotonic() - start
        if waited > 0.001:
            with self._cond:
                self.stats.waited_s += waited
        return epoch

    def held(self, seconds: float, *, retry: bool) -> None:
        """A request held back ``seconds`` outside :meth:`acquire` (a backoff pause, a client's own sleep before
        its retry): counted in ``waited_s`` (and ``retries`` when it is one), under the lock: reports equal
        what the archive saw (issue 59: the dandi client's own retries went uncounted)."""
        with self._cond:
            self.stats.retries += int(retry)
            self.stats.waited_s += max(0.0, seconds)

    def release(self, epoch: int, status: Optional[int], retry_after: Optional[float] = None) -> None:
        """The answer to a request sent in window ``epoch``: its status (None: no answer at all)."""
        if self.gate is not None:
            self.gate.leave()
        with self._cond:
            self.in_flight -= 1
            if retry_after:
                self.not_before = max(self.not_before, time.monotonic() + min(retry_after, RETRY_AFTER_MAX))
            if status in RETRIED:  # throttled (429, 503 SlowDown) or overloaded (500, 502, 504): fewer in flight
                if status in THROTTLED:
                    self.stats.throttled += 1
                else:
                    self.stats.errors += 1
                now = time.monotonic()
                # the first throttled answer of a window cuts (the rest were in flight), and a window lasts
                # at least COOLDOWN or twenty round trips: one burst is one signal, not one per answer
                if epoch == self._epoch and now - self._last_cut >= max(COOLDOWN, 20 * (self.min_rtt or 0.0)):
                    self.limit = max(self.floor, self.limit * DECREASE)
                    self._epoch += 1
                    self._last_cut = now
                    self.stats.limit_min = min(self.stats.limit_min, self.limit)
            elif status is None or status >= 500:
                self.stats.errors += 1
            else:
                self.limit = min(float(self.ceiling), self.limit + 1.0 / max(1.0, self.limit))
            self.stats.limit = self.limit
            self._cond.notify(2)  # one slot freed, at most one more by the growth: not a herd of waiters


class RemotePace(Pace):
    """A worker process's handle on a pace held by the process that started it (:mod:`.shared`).

    Every process of a sync then meets one limit and one Retry-After per endpoint.  The holder counts
    the requests and answers; retries and give-ups are counted here and reach the sync's report with
    the job's record (:func:`.report.absorb`).  One connection per thread: a thread waits for its own slot.
    """

    def __init__(self, endpoint: str, ceiling: int, most: Optional[int], address: str, key: bytes) -> None:
        super().__init__(endpoint, ceiling, most)
        self._address = address
        self._key = key
        self._local = threading.local()
        self.min_rtt = self._ask("open", endpoint, ceiling, most)  # the holder's round trip: is it far?

    def _ask(self, *message: object) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            from multiprocessing.connection import Client

            conn = self._local.conn = Client(self._address, family="AF_UNIX", authkey=self._key)
        conn.send(message)
        return conn.recv()

    def widen(self, ceiling: int, most: Optional[int] = None) -> None:
        self._ask("open", self.endpoint, ceiling, most)

    def acquire(self) -> int:
        return int(self._ask("acquire", self.endpoint))

    def release(self, epoch: int, status: Optional[int], retry_after: Optional[float] = None) -> None:
        self._ask("release", self.endpoint, epoch, status, retry_after)

    def observe(self, seconds: float) -> None:
        if self.min_rtt is None or seconds < self.min_rtt:
            self.min_rtt = seconds
            self._ask("observe", self.endpoint, seconds)


#: "<pid> <socket> <key hex>": the process holding the paces its worker processes share (:func:`.shared.serve`)
SHARED_ENV = "NEUROMIRROR_PACE_SOCKET"


def _holder() -> Optional[tuple[str, bytes]]:
    """Where this process's paces are held, when another process of the sync holds them."""
    value = os.environ.get(SHARED_ENV, "").split(" ")
    if len(value) != 3 or not value[0].isdigit() or int(value[0]) == os.getpid():
        return None
    return value[1], bytes.fromhex(value[2])


_paces: dict[str, Pace] = {}
_paces_lock = threading.Lock()


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: what one controller stands for."""
    u = urlsplit(url)
    return f"{u.scheme.lower()}://{(u.netloc or '').lower()}"


def pace_for(url: str, ceiling: int = 32, most: Optional[int] = None) -> Pace:
    """The controller of ``url``'s endpoint, made on first use (shared by the process): ``ceiling``
    requests in flight near the endpoint, up to ``most`` when it is far (see :class:`Pace`)."""
    key = origin(url)
    with _paces_lock:
        p = _paces.get(key)
        if p is None:
            holder = _holder()
            if holder:
                p = _paces[key] = RemotePace(key, ceiling, most, *holder)  # the holder's pace is gated
            else:
                p = _paces[key] = Pace(key, ceiling, most)
                if ceilings.current():
                    _gate(p)
    if ceiling > p.base or (most or 0) > p.most:
        p.widen(ceiling, most)
    return p


def _gate(p: Pace) -> None:
    """The operator's ceiling for ``p``'s endpoint (:mod:`.ceiling`), or none."""
    p.gate = ceilings.gate_for(p.endpoint)
    p.restrict(ceilings.current().limit_for(p.endpoint).in_flight)


def set_ceilings(settings: Optional[ceilings.Ceilings], *, cluster: bool = False) -> None:
    """The operator's ceilings from now on, for every pace (None: none).  ``cluster``: on a Dask worker, in
    a task: the budget the settings name is shared with every worker of the sync (:func:`.ceiling.install`)."""
    if cluster:
        if not ceilings.install(settings):
            return
    else:
        ceilings.configure(settings)
    with _paces_lock:
        paces = [p for p in _paces.values() if not isinstance(p, RemotePace)]
    for p in paces:
        _gate(p)


def far(url: Optional[str] = None) -> bool:
    """Whether ``url``'s endpoint (any endpoint, without one) answers from farther than :data:`NEAR`:
    where more requests in flight, or a listing split in ranges, pay for themselves."""
    with _paces_lock:
        if url is None:
            paces = list(_paces.values())
        else:
            known = _paces.get(origin(url))
            paces = [known] if known is not None else []
    return any(p.min_rtt is not None and p.min_rtt > NEAR for p in paces)


def timeout() -> tuple[float, float]:
    """(connect, read) seconds for a client that sets none: ``NEUROMIRROR_HTTP_TIMEOUT`` (read; connect
    at most 10), else 10 and 120 (a page of the DANDI API takes 0.1-0.5 s, a stalled one never ends)."""
    read = float(os.environ.get("NEUROMIRROR_HTTP_TIMEOUT") or 120)
    return min(10.0, read), read


def attempts() -> int:
    """Attempts of one request: ``NEUROMIRROR_HTTP_RETRIES`` (the operator's bound), else :data:`ATTEMPTS`."""
    configured = os.environ.get("NEUROMIRROR_HTTP_RETRIES")
    return max(1, int(configured)) if configured else ATTEMPTS


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """A ``Retry-After`` header's seconds: a number, or an HTTP date (None: absent or unreadable)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int) -> float:
    """The pause before retry ``attempt`` (1, 2, ...): exponential, capped, with jitter (half to all of it)."""
    base = min(BACKOFF_MAX, BACKOFF * 2 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)


def call(
    url: str,
    send: Callable[[], T],
    status: Callable[[T], int],
    retry_after: Callable[[T], Optional[str]],
    *,
    transient: tuple[type[BaseException], ...] = (OSError,),
    retried: Container[int] = RETRIED,
    ceiling: int = 32,
    most: Optional[int] = None,
    tries: Optional[int] = None,
    round_trip: bool = True,
) -> T:
    """``send()`` through ``url``'s controller until an answer that is not worth retrying.

    A ``retried`` status or a ``transient`` exception is asked again after :func:`backoff`
    (and after the endpoint's Retry-After, which every request to it waits for), ``tries`` times
    in all (default :func:`attempts`); then :class:`GaveUp`, whose ``cause`` is the last exception or
    answer.  Any other answer is returned as it is.  ``round_trip``: an answer's time is a round trip
    (a HEAD's), which sizes the endpoint's ceiling; not a listing page's, whose body takes its own time.
    """
    pace = pace_for(url, ceiling, most)
    n = tries or attempts()
    last = "no attempt"
    cause: Any = None
    for attempt in range(n):
        if attempt:
            pause = backoff(attempt)
            time.sleep(pause)
            pace.held(pause, retry=True)
        epoch = pace.acquire()
        sent = time.monotonic()
        try:
            answer = send()
        except transient as exc:
            pace.release(epoch, None)
            last, cause = f"{type(exc).__name__}: {exc}"[:200], exc
            continue
        except BaseException:
            pace.release(epoch, None)
            raise
        code = status(answer)
        pace.release(epoch, code, retry_after_seconds(retry_after(answer)) if code in retried else None)
        if code not in retried:
            if round_trip:
                pace.observe(time.monotonic() - sent)
            return answer
        last, cause = f"HTTP {code}", answer
    pace.stats.gave_up += 1
    raise GaveUp(url, n, last, cause)


def counters() -> dict[str, EndpointStats]:
    """Every endpoint's counters now, as copies (:mod:`.report` reads them)."""
    with _paces_lock:
        return {p.endpoint: dataclasses.replace(p.stats) for p in _paces.values()}


def iter_paces() -> Iterator[Pace]:
    """The controllers made so far (tests and the bench read their limits)."""
    with _paces_lock:
        yield from list(_paces.values())


def forget() -> None:
    """Drop every controller (a new sync starts from full speed; tests start clean)."""
    with _paces_lock:
        _paces.clear()

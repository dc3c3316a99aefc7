"""Threads for requests: as many as the endpoints' paces let in flight, grown when an endpoint is far.

Why: 50 ms from S3, 128 pinning HEADs in flight answer as fast as 32 do on loopback; but a pool of
128 threads on loopback, where the pace keeps 32 in flight, costs CPU for nothing (96 threads woken
and put back to sleep at each answer: ~10 % more CPU in a cold 10^4-blob sync).  So the pool starts
at ``base`` threads and grows, up to ``most``, as the ceiling of the endpoints' paces grows with
their round trip (:class:`neuromirror.network.pacing.Pace`).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Executor, Future
from typing import Any, Callable, Optional

from neuromirror.network import pacing


def _widest() -> int:
    """The largest in-flight ceiling among the endpoints' paces (0: none yet)."""
    return max((p.ceiling for p in pacing.iter_paces()), default=0)


class Workers(Executor):
    """A thread pool of ``base`` threads, grown up to ``most`` as :func:`_widest` (or ``wanted``) asks."""

    def __init__(self, base: int, most: int, name: str = "requests", wanted: Callable[[], int] = _widest) -> None:
        self._base = max(1, base)
        self._most = max(self._base, most)
        self._name = name
        self._wanted = wanted
        self._jobs: queue.SimpleQueue[Optional[tuple[Future, Callable[..., Any], tuple, dict]]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._submitted = 0
        self._done = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        f: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit after shutdown")
            self._submitted += 1
            if self._submitted % 64 == 1 or len(self._threads) < self._base:  # a look at the paces now and then
                self._grow()
        self._jobs.put((f, fn, args, kwargs))
        return f

    def _grow(self) -> None:
        size = min(self._most, max(self._base, self._wanted()))
        while len(self._threads) < size:
            t = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
            t.start()
            self._threads.append(t)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            f, fn, args, kwargs = job
            if not f.set_running_or_notify_cancel():
                continue
            try:
                f.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                f.set_exception(exc)
            self._done += 1  # a counter for a look now and then: a lost update only delays one
            if self._done % 64 == 0 and len(self._threads) < self._most:
                with self._lock:
                    if not self._closed:
                        self._grow()

    @property
    def size(self) -> int:
        """Threads started so far."""
        return len(self._threads)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for t in threads:
                t.join()

"""Where a sync's time goes: a per-run accumulator of named phases.

The benchmark reads these from the sync report (``timings``) to split wall time
into listing, URL pinning, annex registration and commit, and index writing.

Code times a stretch with :func:`phase` (a context manager) or :func:`timed` (its decorator
form), never with inline clock arithmetic: the phase's name is then written once, beside the
work it names, and a stretch that turned out to be no work can be dropped (:meth:`Span.drop`).
A worker's own :class:`Timings` (a Zarr job in a process pool) is folded into the sync's with
:meth:`Timings.merge`.  :class:`Stopwatch` is for a duration reported on its own (a lock's wait,
a task's seconds), outside any phase.
"""

from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Optional, TypeVar, cast

_local = threading.local()

F = TypeVar("F", bound=Callable[..., object])


class Timings(dict):
    """Phase name -> seconds, summed over the stretches timed under that name."""

    def add(self, phase: str, seconds: float) -> None:
        self[phase] = self.get(phase, 0.0) + seconds

    def merge(self, other: Mapping[str, float], prefix: str = "") -> None:
        """Another collector's phases (a worker's), each as ``prefix + name``."""
        for name, seconds in other.items():
            self.add(prefix + name, seconds)


def current() -> Optional[Timings]:
    return getattr(_local, "timings", None)


@contextmanager
def collecting() -> Iterator[Timings]:
    """Collect phases timed by this thread (and by workers it hands ``current()`` to)."""
    previous = current()
    _local.timings = t = Timings()
    try:
        yield t
    finally:
        _local.timings = previous


class Span:
    """One timed stretch of a phase, as :func:`phase` yields it."""

    def __init__(self) -> None:
        self.dropped = False

    def drop(self) -> None:
        """Leave this stretch out of its phase (it turned out to be none of the phase's work)."""
        self.dropped = True


@contextmanager
def phase(name: str, timings: Optional[Timings] = None) -> Iterator[Span]:
    """Add the time of the ``with`` block to ``name`` in ``timings`` (default: this thread's
    collector, if any).  Phases nest: an inner phase's time is also its outer phase's."""
    t = timings if timings is not None else current()
    span = Span()
    clock = Stopwatch()
    try:
        yield span
    finally:
        if t is not None and not span.dropped:
            t.add(name, clock.seconds())


def timed(name: str) -> Callable[[F], F]:
    """Decorator: each call of the function is a stretch of phase ``name`` (this thread's collector)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: object, **kwargs: object) -> object:
            with phase(name):
                return fn(*args, **kwargs)

        return cast(F, inner)  # functools.wraps keeps fn's name; mypy cannot see inner takes fn's signature

    return wrap


class Stopwatch:
    """Seconds since it was made: a duration reported by itself rather than as a phase."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self._start

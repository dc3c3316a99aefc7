"""Where a sync's time goes: a per-run accumulator of named phases.

The benchmark reads these from the sync report (``timings``) to split wall time
into listing, URL pinning, annex registration and commit, and index writing.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

_local = threading.local()


class Timings(dict):
    def add(self, phase: str, seconds: float) -> None:
        self[phase] = self.get(phase, 0.0) + seconds


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


@contextmanager
def phase(name: str, timings: Optional[Timings] = None) -> Iterator[None]:
    t = timings if timings is not None else current()
    start = time.perf_counter()
    try:
        yield
    finally:
        if t is not None:
            t.add(name, time.perf_counter() - start)

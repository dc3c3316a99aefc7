"""Named points where a test can make the process die by SIGKILL.

``NEUROMIRROR_CRASH_AT=name`` (or ``name#k`` for the k-th time the point is
reached) kills the process there, exactly as a power cut or the OOM killer
would: no cleanup, no finally blocks.  The crash-consistency test walks every
point and checks that a rerun converges to an uninterrupted run's result.
Unset, a crash point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable, Optional

_counts: dict[str, int] = {}
_lock = threading.Lock()
#: the process a crash ends besides this one: the sync, in a worker process of its (util.processes)
_root: Optional[int] = None


def end_tree_at(pid: int) -> None:
    """In a worker process: a crash here kills ``pid`` (the sync) first, as a crash of it would."""
    global _root
    _root = pid


def crashpoint(name: str) -> None:
    target = os.environ.get("NEUROMIRROR_CRASH_AT")
    if not target:
        return
    want, _, nth = target.partition("#")
    if want != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        hit = _counts[name]
    if hit == int(nth or 1):
        if _root is not None:
            os.kill(_root, signal.SIGKILL)  # its other workers end with it (util.processes)
        os.kill(os.getpid(), signal.SIGKILL)


def armed(name: str) -> Optional[Callable[[], None]]:
    """``crashpoint(name)`` if the variable names this point, else None: for a loop over 10^6
    entries, which reads the environment once (``if hit: hit()``) instead of once an entry."""
    target = os.environ.get("NEUROMIRROR_CRASH_AT")
    if not target or target.partition("#")[0] != name:
        return None
    return lambda: crashpoint(name)

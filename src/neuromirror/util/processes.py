"""Processes: whether one named in a pid file still runs (service.json, browse.json), and an
executor that runs heavy jobs in worker processes and light ones in threads.

A cold Zarr-heavy dandiset is Python between git children: each Zarr job reads its
listing pages, makes keys and logs, streams two commits.  In threads those jobs share
one interpreter lock, and the lock, not the cores, set the pace: on 2 cores a cold 40 x
5,000-object dandiset kept them ~65 % busy (issue 40).  A job in a process of its own
has its own interpreter, so the jobs use every core.  A process costs an interpreter's
start (~0.3 s of CPU, once per worker) and its memory, so only jobs the caller calls
heavy go there; the many small ones of a dandiset of small Zarrs stay in threads.

Worker processes are started by ``spawn`` (the caller has threads: a ``fork`` of a
threaded process can inherit a held lock), die within a tenth of a second of the process
that started them (nothing of theirs outlives a killed sync, and their git children see
their stdin close, so a fast-import moves no ref), and a crash point reached in one
ends the whole tree, as a crash of the sync would (:mod:`.crashpoints`).  They are
reaped at :meth:`RoutedExecutor.shutdown`, so their CPU time counts in the starting
process's children, where a measurement of the process tree looks.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable, Optional, Union

from neuromirror.util import counts, crashpoints

#: how often a worker looks whether the process that started it is still there
_WATCH_SECONDS = 0.1


def _die_with(parent: int) -> None:
    """A worker's initializer: it ends (SIGKILL) once ``parent`` is gone, and a crash point ends ``parent`` too.

    Not ``PR_SET_PDEATHSIG``: Linux sends that when the *thread* that started the worker ends, and
    a process pool starts workers from whichever thread submits."""
    if os.getppid() != parent:  # the parent died before the worker came up
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_WATCH_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    crashpoints.end_tree_at(parent)
    counts.install()  # its work counted as the sync's own is (NEUROMIRROR_COUNTS; spawned: atexit runs)


class RoutedExecutor(Executor):
    """``submit(fn, job)``: in a worker process when ``heavy(job)``, else in a thread.

    The process pool is started with the first heavy job; with ``processes`` 0 every job runs
    in a thread.  The thread pool (``threads`` workers) runs beside it.
    """

    def __init__(
        self,
        threads: int,
        processes: Union[int, Callable[[], int]],
        heavy: Callable[[Any], bool],
        name: str = "jobs",
        before_processes: Optional[Callable[[], None]] = None,
    ) -> None:
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix=name)
        #: the worker processes (0: none), or how to count them when the first heavy job comes (what is known then)
        self._processes = processes
        self._heavy = heavy
        self._pool: Optional[ProcessPoolExecutor] = None
        #: called once before the first worker process starts (what the workers inherit: their environment)
        self._before_processes = before_processes

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._processes and args and self._heavy(args[0]):
            if self._pool is None:
                if self._before_processes is not None:
                    self._before_processes()
                self._pool = ProcessPoolExecutor(
                    max(1, self._processes if isinstance(self._processes, int) else self._processes()),
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_die_with,
                    initargs=(os.getpid(),),
                )
            return self._pool.submit(fn, *args, **kwargs)
        return self._threads.submit(fn, *args, **kwargs)

    @property
    def processes_started(self) -> bool:
        return self._pool is not None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def default_processes() -> int:
    """Worker processes for heavy jobs: one per core (``NEUROMIRROR_WORKER_PROCESSES`` says
    otherwise; 0: threads only); none on one core, where a process only adds its start."""
    configured = os.environ.get("NEUROMIRROR_WORKER_PROCESSES")
    if configured is not None and configured.strip():
        return max(0, int(configured))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 else 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True

"""Sources synced on a Dask cluster (``sync --dask ADDRESS``, ``executor: {dask: ADDRESS}``).

Imported only when a Dask address is given: the one-host path never imports
``distributed`` (``pip install neuromirror[dask]`` adds it).  What runs where is in
:mod:`neuromirror.engine.executor`; this module is the Dask side of it:

* one task per source, submitted with ``retries`` and a unique key; a task whose
  worker dies is run again by the scheduler on another worker (its
  ``allowed-failures``), and the rerun starts with the dataset's crash recovery;
* inside the task, a Dask ``Lock`` named for the mirror root and the source: a lease
  held through the scheduler and released when its holder dies.  The submitting
  process also holds the source's lock file, but a task can outlive its submitter
  (killed mid-run): the next run's task then waits for the orphan to finish instead
  of writing the same dataset at once, and flock is not trusted across hosts;
* :func:`cluster_status` for ``status`` and the service's ``/status.json``.
"""

from __future__ import annotations

import concurrent.futures
import gc
import os
import sys
import threading
import time
from typing import Any, Callable, Optional

from neuromirror.engine.executor import Runner, SourceTask, TaskResult, run_task, worker_name
from neuromirror.errors import Unavailable
from neuromirror.network import ceiling, identity, pacing
from neuromirror.util import timing
from neuromirror.util.text import one_line

#: seconds to reach the scheduler before saying it is unreachable
CONNECT_TIMEOUT = float(os.environ.get("NEUROMIRROR_DASK_TIMEOUT", "5"))
#: extra runs of a task that raised (a worker's death is retried by the scheduler itself)
RETRIES = 1


class SchedulerUnreachable(Unavailable, RuntimeError):
    """The one line the user sees when the scheduler cannot be reached (a RuntimeError as it always was)."""


def connect(address: str) -> Any:
    """A ``distributed.Client`` for ``address``, or SchedulerUnreachable naming it."""
    try:
        from distributed import Client
    except ImportError:
        raise SchedulerUnreachable(f"dask {address}: Dask is not installed (pip install 'neuromirror[dask]')").at(
            "dask"
        ) from None
    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SchedulerUnreachable(f"cannot reach the Dask scheduler at {address}: {one_line(exc)}") from None


def _frames_without_gc(frames: Callable[[], dict]) -> Callable[[], dict]:
    def current_frames() -> dict:
        if not gc.isenabled():
            return frames()
        gc.disable()
        try:
            return frames()
        finally:
            gc.enable()

    current_frames.__wrapped__ = frames  # type: ignore[attr-defined]
    return current_frames


def guard_profiler() -> None:
    """Make ``sys._current_frames`` safe from a garbage collection, in this worker process (once).

    Why: a Dask worker's profiler calls ``sys._current_frames()`` every 10 ms from its event loop.
    Before CPython 3.11.9 / 3.12.3 (gh-106883) that call holds the interpreter's thread-list lock
    while it allocates frame objects; an allocation can start a collection, and a collection that
    frees a ``threading.local`` takes the same lock: the thread deadlocks holding the GIL and the
    whole worker freezes (no heartbeat, no log line).  A sync makes that garbage at every request:
    dandi's client builds a ``tenacity.Retrying`` (which holds a ``threading.local``) per call.
    The wrapper is CPython's own fix: no collection during the call.
    """
    if not _gc_deadlock_in_current_frames() or hasattr(sys._current_frames, "__wrapped__"):
        return
    sys._current_frames = _frames_without_gc(sys._current_frames)


def _gc_deadlock_in_current_frames() -> bool:
    v = sys.version_info[:3]
    return sys.implementation.name == "cpython" and (v < (3, 11, 9) or (3, 12, 0) <= v < (3, 12, 3))


def locked_task(task: SourceTask, ceilings: Any = None, contact: Optional[str] = None) -> TaskResult:
    """The worker's entry point: the source's task under the cluster-wide lease.

    A source that mirrors parts through an executor (a dandiset's Zarr assets:
    ``zarr_executor``) gets one submitting to the cluster, so a 000108-shaped dandiset
    spreads over the workers; the task secedes from the worker's thread pool meanwhile
    (``worker_client``), so that waiting for its Zarrs never holds a slot they need.
    """
    from distributed import Lock, worker_client

    guard_profiler()
    pacing.set_ceilings(ceilings, cluster=True)  # the sync's ceilings, one budget for every worker
    identity.set_contact(contact)  # the sync's contact on the worker's requests too (its environment lacks it)
    with Lock(f"neuromirror:{task.root}:{task.source.id}"):
        if not hasattr(task.source, "zarr_executor"):
            return run_task(task)
        with worker_client() as client:
            parts = ClusterExecutor(client, task.source.id)
            task.source.zarr_executor = parts
            result = run_task(task)
            result.report.tasks.extend(parts.tasks)
            return result


def _timed(ceilings: Any, contact: Optional[str], fn: Callable[..., Any], *args: Any) -> tuple[Any, str, float]:
    guard_profiler()
    pacing.set_ceilings(ceilings, cluster=True)
    identity.set_contact(contact)
    clock = timing.Stopwatch()
    value = fn(*args)
    return value, worker_name(), round(clock.seconds(), 3)


class ClusterExecutor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` over a Dask client, for a source's parts (Zarr jobs).

    Each part is its own Dask task (rerun elsewhere if its worker dies, ``retries`` on
    top); ``tasks`` lists where each ran and how long it took, for the run's report.
    """

    def __init__(self, client: Any, label: str):
        self.client = client
        self.label = label
        self.tasks: list[dict] = []
        self._lock = threading.Lock()
        #: the parts under way: held here until done, so that no Future is released (and so cancelled) early
        self._running: set[Any] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        name = getattr(args[0], "path", None) if args else None
        future: concurrent.futures.Future = concurrent.futures.Future()
        what = f"zarr {name}" if name else fn.__name__
        tries = [0]

        def start() -> None:
            key = f"neuromirror-part-{self.label}-{os.urandom(4).hex()}"
            remote = self.client.submit(
                _timed, ceiling.export(), identity.contact(), fn, *args, key=key, pure=False, retries=RETRIES, **kwargs
            )
            with self._lock:
                self._running.add(remote)
            remote.add_done_callback(done)

        def done(remote: Any) -> None:
            with self._lock:
                self._running.discard(remote)
            got = None
            if remote.status != "cancelled":
                try:
                    got = _result(remote)
                except TaskCancelled:
                    pass
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                    future.set_exception(exc)
                    return
            if got is None:  # by the cluster, not by us: the part is run again (it converges)
                tries[0] += 1
                if tries[0] <= RETRIES:
                    start()
                else:
                    future.set_exception(TaskCancelled(f"{what}: its task was cancelled on the cluster"))
                return
            value, worker, seconds = got
            with self._lock:
                self.tasks.append({"task": what, "worker": worker, "seconds": seconds, "outcome": "ok"})
            future.set_result(value)

        start()
        return future


class TaskCancelled(Unavailable, RuntimeError):
    """A task the cluster cancelled (its client lost, the scheduler restarted) more often than it is rerun."""


def _outcome(future: Any, settled: threading.Event, timeout: float) -> tuple[bool, Any]:
    """``(done, result)`` of a distributed Future within ``timeout`` s; TaskCancelled once it is cancelled.

    ``settled`` is set by the Future's done-callback: the wait is for that, never ``result(timeout=)``.
    A timed-out ``result()`` cancels the client's gather in flight, which the client shares between every
    thread waiting for a result, so one source's poll ending at the wrong moment broke another source's
    result (UnboundLocalError out of distributed's ``sync()``: a CI run of the ceiling-dask bench)."""
    if future.status == "cancelled":
        raise TaskCancelled(f"{future.key}: cancelled on the cluster")
    if not settled.wait(timeout):
        return False, None
    return True, _result(future)


#: times a finished Future's result is gathered again when a gather it shared was cancelled under it
GATHERS = 3


def _result(future: Any) -> Any:
    """The result of a done Future; TaskCancelled when the cluster cancelled it.

    ``result()`` of a cancelled Future raises ``UnboundLocalError`` from distributed's ``sync()`` (its
    CancelledError is no Exception), and so does a finished one's whose gather, shared with another
    caller of the same client, that caller's timeout cancelled: that one is simply gathered again."""
    for attempt in range(GATHERS):
        try:
            return future.result()
        except UnboundLocalError:
            if future.status == "finished" and attempt + 1 < GATHERS:
                continue
            if _cancelled(future):
                raise TaskCancelled(f"{future.key}: cancelled on the cluster") from None
            raise
    raise AssertionError("unreachable")


def _cancelled(future: Any) -> bool:
    """Whether a Future whose ``result()`` raised ``UnboundLocalError`` was cancelled (its status may
    settle a moment after the raise)."""
    settled = time.monotonic() + 5.0
    while future.status != "cancelled" and time.monotonic() < settled:
        time.sleep(0.05)
    return bool(future.status == "cancelled")


class DaskRunner(Runner):
    """A :class:`~neuromirror.engine.executor.Runner` submitting to a Dask cluster."""

    def __init__(self, address: str, client: Optional[Any] = None):
        self.address = address
        self.client = client if client is not None else connect(address)
        super().__init__(self._submit)

    def _submit(self, task: SourceTask, heartbeat: Callable[[], None]) -> TaskResult:
        for attempt in range(RETRIES + 1):
            key = f"neuromirror-sync-{task.source.id}-{os.urandom(4).hex()}"
            future = self.client.submit(
                locked_task, task, ceiling.export(), identity.contact(), key=key, pure=False, retries=RETRIES
            )
            settled = threading.Event()
            future.add_done_callback(lambda _f, settled=settled: settled.set())
            try:
                while True:
                    heartbeat()  # raises when the submitter stops (Ctrl-C, the service stopping)
                    done, result = _outcome(future, settled, 1.0)
                    if done:
                        return result
            except TaskCancelled:
                if attempt == RETRIES:
                    raise
                continue  # cancelled by the cluster: the task again (it starts with the dataset's recovery)
            finally:
                if not future.done():  # a task already running ends on its worker, under its lease
                    future.cancel()
                future.release()
        raise AssertionError("unreachable")

    def status(self) -> dict:
        return cluster_status(self.client, self.address)

    def close(self) -> None:
        self.client.close()


def cluster_status(client: Any, address: str) -> dict:
    """Workers (address, threads, tasks running) and the neuromirror tasks under way."""
    try:
        info = client.scheduler_info()
        processing = client.processing()
    except Exception as exc:  # noqa: BLE001 - status must not fail on a lost scheduler
        return {
            "executor": "dask",
            "address": address,
            "error": one_line(exc),
        }
    workers = []
    running: list[dict] = []
    for addr, w in sorted(info.get("workers", {}).items()):
        keys = [str(k) for k in processing.get(addr, ())]
        workers.append(
            {"address": addr, "name": str(w.get("name", addr)), "threads": w.get("nthreads"), "tasks": len(keys)}
        )
        running += [{"task": k, "worker": addr} for k in keys if k.startswith("neuromirror-")]
    return {"executor": "dask", "address": address, "workers": workers, "running": running}


# -- for the service (kept here so that the service only calls this and the runner's status()) --
def runner_for(dask_address: Optional[str]) -> Optional[Runner]:
    """The runner of a mirror definition's ``executor: {dask: ADDRESS}``; None: this host.

    Raises ``UserError`` with one line naming the address when the scheduler is unreachable.
    """
    if not dask_address:
        return None
    from neuromirror.errors import UserError

    try:
        return DaskRunner(dask_address)
    except SchedulerUnreachable as exc:
        mistake = UserError(str(exc))  # a mistake to mend, about the argument the error names (``dask``)
        mistake.argument, mistake.option = exc.argument, exc.option
        raise mistake from None

"""``keep --dask ADDRESS``: the copies of a keep made by Dask workers, the planning and recording here.

Why: a backup of an archive's size does not fit one host's network and CPU.  The submitting process plans
as on one host (versions, their files in batches, the keys the store lacks, :mod:`.versions`) and records
as on one host (the git-annex branches have one writer, the index too); only the copies move: each batch
of keys (:func:`keys_per_task`) the store lacks is one Dask task, :func:`keep_batch`, that streams the keys
from their URLs into the store from the worker (the store is opened there by its URL, as the root is shared
by sync's tasks), verifies each against its key, seals its pack (durable, then indexed) and returns a
typed :class:`BatchResult`; the submitter records what it returns.

Every key lands once: a key is in one batch of a run (the window joins a key met again to its copy under
way); each worker writes its own packs (named by their bytes, each index file written after its pack is
durable); no worker merges packs (the submitter merges once every task is done, :func:`merging_after`).  A
task's first attempt reads nothing of the other workers' (its keys are in no other task): it claims its name
in the store (:meth:`~neuromirror.store.base.Store.begin_task`).  A worker killed mid-task loses nothing: the
scheduler runs the task again elsewhere, and the rerun, finding the claim, first adopts any pack the dead
worker sealed without its index, reads the store's index files again, and copies only the keys still missing
(those found there are read back and hashed: verified, never copied twice).
The operator's ceiling holds across the workers: each task installs the keep's ceilings as a cluster-wide
budget (:mod:`neuromirror.network.ceiling`) that every GET of a key asks.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence, TypeVar

from neuromirror.records import VersionFile
from neuromirror.store.base import Store
from neuromirror.store.transfer import Outcome, Transfer, read_back

#: keys a task copies: small objects at 25 ms a request and 4 threads make a task ~15 s of work, so that the
#: store's catching up and the pack's seal at each task's start and end (~20 ms of CPU) weigh ~20 us a key
KEYS_PER_TASK = 1000


class _HasTasks(Protocol):
    tasks: Any


_R = TypeVar("_R", bound=_HasTasks)  # the keep's result, handed back as it came with the cluster's tasks


def keys_per_task() -> int:
    """Keys (or objects, or copies) a task takes: ``NEUROMIRROR_KEEP_BATCH``, else :data:`KEYS_PER_TASK`."""
    return max(1, int(os.environ.get("NEUROMIRROR_KEEP_BATCH") or KEYS_PER_TASK))


#: tasks in flight per worker thread of the cluster (the next ones queued on the scheduler)
QUEUED = 2

#: a key to copy: (key, size, urls)
Item = tuple[str, Optional[int], tuple[str, ...]]


@dataclass(frozen=True)
class KeepBatch:
    """One task's work: the keys to copy into the store ``store`` (its URL), from their URLs, else ``others``."""

    store: str
    items: tuple[Item, ...]
    others: tuple[str, ...] = ()
    jobs: int = 8
    label: str = ""
    task: str = ""  # the task's name, its claim in the store (:meth:`Store.begin_task`; "": taken as a rerun)


@dataclass
class BatchResult:
    """What a task did: each key's outcome, where it ran, the packs it sealed."""

    outcomes: list[Outcome]
    worker: str = ""
    seconds: float = 0.0
    reread: int = 0  # keys a killed attempt had put in the store: read back, not copied again
    adopted: int = 0  # packs a killed writer sealed without their index, adopted first
    packs: list[str] = field(default_factory=list)


#: the stores this worker process opened, by URL: their key maps read once, then only the new index files
_opened: dict[str, Store] = {}
_opened_lock = threading.Lock()


def _store(url: str) -> Store:
    from neuromirror.store.location import open_store

    with _opened_lock:
        if url not in _opened:
            _opened[url] = open_store(url)
        return _opened[url]


def dask_setup(worker: Any = None) -> None:
    """``dask worker --preload neuromirror.keep.cluster``: a keep's worker made ready at its start, once.

    Why: each worker's first task paid the copy path's imports and S3's service model (botocore's JSON read for
    the store's client), ~0.3 s of CPU a worker, inside the keep; a cluster's workers serve many keeps (the
    service's cycles), so that belongs to the worker's start-up (docs/scale-out.md)."""
    import urllib3  # noqa: F401 - the copies' HTTP client

    from neuromirror.engine import dask_executor, executor  # noqa: F401 - keep_batch's own imports
    from neuromirror.network import identity, pacing  # noqa: F401
    from neuromirror.store import location  # noqa: F401 - the stores' kinds, opened by URL
    from neuromirror.store.packs import store  # noqa: F401
    from neuromirror.store.s3_client import load_models

    load_models()


def keep_batch(batch: KeepBatch, ceilings: Any = None, contact: Optional[str] = None) -> BatchResult:
    """The worker's entry point: ``batch``'s keys into the store, each verified; idempotent (a rerun copies
    only what the store still lacks)."""
    from neuromirror.engine.dask_executor import guard_profiler
    from neuromirror.engine.executor import worker_name
    from neuromirror.network import identity, pacing
    from neuromirror.util import timing

    guard_profiler()
    pacing.set_ceilings(ceilings, cluster=True)  # the keep's ceilings: one budget for every worker
    identity.set_contact(contact)
    clock = timing.Stopwatch()
    store = _store(batch.store)
    out = BatchResult([], worker_name())
    out.adopted = store.begin_task(batch.task)
    others = [_store(u) for u in batch.others]
    transfer = Transfer(store, jobs=batch.jobs, others=others)
    try:
        out.outcomes = each_on_threads(batch.jobs, batch.items, lambda item: _one(store, transfer, item, out))
    finally:
        transfer.close()
    writer = getattr(store, "writer", None)
    if writer is not None:  # sealed only: merging is the submitter's, once every task is done
        sealed = writer().seal()
        out.packs = [sealed.pack] if sealed is not None else []
    else:
        store.sync()
    _end_task(store, batch.task)  # only once its keys are durable: a rerun after a death before that finds the claim
    out.seconds = round(clock.seconds(), 3)
    return out


def _end_task(store: Store, task: str) -> None:
    """``task``'s claim removed; one that cannot be is logged: the work is done (or given up on), and a claim left
    behind is an empty object, not a reason to redo it."""
    try:
        store.end_task(task)
    except OSError as exc:
        logging.getLogger("neuromirror.keep").warning("%s: its claim stays in the store: %s", task, exc)


def each_on_threads(jobs: int, items: Sequence[Item], fn: Callable[[Item], Outcome]) -> list[Outcome]:
    """``fn`` of each item on ``jobs`` threads, in order; each thread takes the next item itself.  Why not
    ``ThreadPoolExecutor.map``: it makes a future per item, ~7 us of CPU a key, a tenth of a task's own."""
    out: list[Optional[Outcome]] = [None] * len(items)
    turns = iter(range(len(items)))
    lock = threading.Lock()
    failed: list[BaseException] = []

    def run() -> None:
        while not failed:
            with lock:
                i = next(turns, None)
            if i is None:
                return
            try:
                out[i] = fn(items[i])
            except BaseException as exc:  # noqa: B036 - raised in the caller, as pool.map would
                failed.append(exc)

    threads = [threading.Thread(target=run, name=f"keep-task-{n}") for n in range(max(1, min(jobs, len(items))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
    return [o for o in out if o is not None]


def _one(store: Store, transfer: Transfer, item: Item, out: BatchResult) -> Outcome:
    key, size, urls = item
    if store.has(key):  # an earlier attempt of this task put it there, then died: its bytes read back
        verdict, why = read_back(store, key, size)
        if verdict == "good":
            out.reread += 1
            return Outcome(key, True, placed=True, origin="the store (a killed attempt's copy, read back)")
        store.forget_key(key)
    return transfer(key, size, urls)


class ClusterWindow:
    """:class:`~.inflight.Window`'s part on a cluster: keys gathered into batches, each batch a Dask task;
    at most :data:`QUEUED` tasks per worker thread in flight; the outcomes as the tasks end."""

    def __init__(self, cluster: KeepCluster, transfer: Transfer, from_stores: Sequence[Any], label: str) -> None:
        self.cluster, self.transfer, self.from_stores, self.label = cluster, transfer, from_stores, label
        self.by_key: dict[str, list[VersionFile]] = {}
        self.pending: list[tuple[str, list[VersionFile]]] = []
        self.jobs: dict[Any, list[tuple[str, list[VersionFile]]]] = {}
        self.size = keys_per_task()
        self.ended: queue.Queue[Any] = queue.Queue()  # the tasks as they end (no default client to wait with)

    def join(self, unseen: dict[str, list[VersionFile]]) -> dict[str, list[VersionFile]]:
        for key in [k for k in unseen if k in self.by_key]:
            self.by_key[key].extend(unseen.pop(key))
        return unseen

    def submit(self, key: str, files: list[VersionFile]) -> Iterator[tuple[Outcome, list[VersionFile]]]:
        self.by_key[key] = files
        self.pending.append((key, files))
        if len(self.pending) >= self.size:
            yield from self._send()

    def drain(self) -> Iterator[tuple[Outcome, list[VersionFile]]]:
        if self.pending:
            yield from self._send()
        while self.jobs:
            yield from self._finished()

    def stop(self) -> None:
        for fut in self.jobs:
            if fut.status == "error":  # failed for good, not yet seen: no attempt of it is left to need its claim
                self._unclaim(fut)
            elif fut.status != "finished":
                fut.cancel()

    def salvage(self, present: Any) -> None:
        """After an interruption: the keys of the tasks that ended well, to be recorded."""
        for fut, items in self.jobs.items():
            if fut.status == "finished":
                _record_ok(fut.result(), dict(items), present)

    def _send(self) -> Iterator[tuple[Outcome, list[VersionFile]]]:
        while len(self.jobs) >= self.cluster.limit():
            yield from self._finished()
        items, self.pending = self.pending, []
        batch = KeepBatch(
            self.transfer.store.url,
            tuple((k, fs[0].size, self._urls(fs)) for k, fs in items),
            tuple(s.url for s in self.transfer.others),
            self.cluster.jobs,
            self.label,
        )
        fut = self.cluster.submit(batch)
        self.jobs[fut] = items
        fut.add_done_callback(self.ended.put)

    def _urls(self, files: list[VersionFile]) -> tuple[str, ...]:
        """Every URL of the key's files; none with --from (only those stores are read)."""
        return () if self.from_stores else tuple(dict.fromkeys(u for f in files for u in f.urls))

    def _finished(self) -> Iterator[tuple[Outcome, list[VersionFile]]]:
        done = [self.ended.get()]  # a task ended (its done-callback); then the others ended meanwhile
        while not self.ended.empty():
            done.append(self.ended.get_nowait())
        for fut in done:
            items = dict(self.jobs.pop(fut))
            try:
                result: BatchResult = fut.result()
            except BaseException:  # noqa: B036 - failed for good (the scheduler gave up on it): the keep ends
                self._unclaim(fut)
                raise
            fut.release()
            self.cluster.tasks.append(_task_row(self.label, result))
            for outcome in result.outcomes:
                self.by_key.pop(outcome.key, None)
                yield outcome, items[outcome.key]

    def _unclaim(self, fut: Any) -> None:
        """A task the scheduler gave up on: its claim in the store removed, as the task would have at its end
        (the next keep adopts what its attempts made durable, at its start: ``clean_stale``)."""
        _end_task(self.transfer.store, fut.key)


def _record_ok(result: BatchResult, items: dict[str, list[VersionFile]], present: Any) -> None:
    for outcome in result.outcomes:
        if outcome.ok:
            for f in items[outcome.key]:
                present.add(f)


def _task_row(label: str, result: BatchResult) -> dict[str, Any]:
    return {
        "task": f"keep {label} ({len(result.outcomes)} keys)",
        "worker": result.worker,
        "seconds": result.seconds,
        "reread": result.reread,
        "outcome": "ok" if all(o.ok for o in result.outcomes) else "failed",
    }


class KeepCluster:
    """A keep's Dask client, the tasks it ran (``keep --json``'s ``tasks``) and the stores to copy from."""

    def __init__(self, address: str, jobs: int) -> None:
        from neuromirror.engine.dask_executor import SchedulerUnreachable, connect
        from neuromirror.errors import UserError

        self.address = address
        try:
            self.client = connect(address)
        except SchedulerUnreachable as exc:  # a mistake to mend, as sync --dask says it: exit 2, nothing done
            mistake = UserError(str(exc))
            mistake.argument, mistake.option = exc.argument, exc.option
            raise mistake from None
        self.jobs = jobs
        self.tasks: list[dict[str, Any]] = []

    def limit(self) -> int:
        threads = sum(w.get("nthreads", 1) for w in self.client.scheduler_info().get("workers", {}).values())
        return max(1, threads) * QUEUED

    def submit(self, batch: KeepBatch) -> Any:
        from neuromirror.engine.dask_executor import RETRIES
        from neuromirror.network import ceiling, identity

        key = f"neuromirror-keep-{os.urandom(6).hex()}"
        batch = replace(batch, task=key)  # its claim in the store: how a rerun knows itself (Store.begin_task)
        return self.client.submit(
            keep_batch, batch, ceiling.export(), identity.contact(), key=key, pure=False, retries=RETRIES
        )

    def submit_fn(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args, contact)`` as one task (rerun elsewhere if its worker dies): verify's and restore's reads."""
        from neuromirror.engine.dask_executor import RETRIES
        from neuromirror.network import identity

        key = f"neuromirror-{what}-{os.urandom(6).hex()}"
        return self.client.submit(fn, *args, identity.contact(), key=key, pure=False, retries=RETRIES)

    def close(self) -> None:
        self.client.close()


@contextmanager
def on_cluster(address: Optional[str], jobs: int) -> Iterator[Optional[KeepCluster]]:
    """A cluster's client for a verb's tasks, closed after (None: no address, this host)."""
    if not address:
        yield None
        return
    cluster = KeepCluster(address, jobs)
    try:
        yield cluster
    finally:
        cluster.close()


def opened(url: str) -> Store:
    """On a worker: the store ``url`` names, opened once per process (its key map then read anew per task)."""
    store = _store(url)
    refresh = getattr(getattr(store, "keys", None), "refresh", None)
    if refresh is not None:
        refresh()
    return store


def each_ended(futures: Sequence[Any]) -> Iterator[Any]:
    """The tasks' results as they end (a done-callback each: the client is no default to wait with)."""
    ended: queue.Queue[Any] = queue.Queue()
    for fut in futures:
        fut.add_done_callback(ended.put)
    for _ in futures:
        fut = ended.get()
        yield fut.result()
        fut.release()


def merging_after(stores: Sequence[Store]) -> Any:
    """No packs merged in this process while the workers write; once every task is done, the packs they
    sealed are read and the small ones merged (:func:`neuromirror.store.packs.repack.merges_held`)."""
    from neuromirror.store.packs.repack import merges_held

    return merges_held(stores)


def keep_on(address: Optional[str], jobs: int, stores: Sequence[Store], options: Any, run: Callable[[], _R]) -> _R:
    """``run()`` (the keep) with its copies on the Dask scheduler at ``address`` (None: on this host); the
    tasks the cluster ran go into its result's ``tasks``.  An unreachable scheduler: one line, nothing kept."""
    if not address:
        return run()
    cluster = KeepCluster(address, jobs)
    options.cluster = cluster
    try:
        with merging_after(stores):
            result = run()
        result.tasks = cluster.tasks
        return result
    finally:
        cluster.close()

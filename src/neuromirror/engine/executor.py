"""Where a source's sync runs: in this process (the default) or as a task elsewhere.

On one host :func:`neuromirror.engine.sync.sync_source` does everything in the thread that
holds the source's lock.  On a cluster (:mod:`neuromirror.engine.dask_executor`) the work is
split in two, because the SQLite index must have exactly one writer (SQLite on a
network file system is not safe for writers on several hosts):

* the **task** (:func:`run_task`, on a worker that mounts the same mirror root) lists
  the archive, diffs, commits and tags in the source's dataset, under the same crash
  recovery as one host.  It opens the index read-only, for the previous state and the
  caches, and keeps every write it would make (versions, caches, pending items, the root
  superdataset's record) in a journal; a version's file list goes to a spool file under
  ``ROOT/.neuromirror/spool/``.
* the **submitter** (:class:`Runner`, in the process that holds the source's lock)
  applies the journal to the index and the root.  When the task needs something only
  the submitter may do (create the dataset, which also commits in the root; rebuild the
  index rows after an interrupted run), the task stops before writing and asks for it;
  the submitter does it and submits the task again.

The task runs :func:`neuromirror.engine.sync.sync_dataset`, the code of one host, with a
:class:`JournalRecorder` instead of the direct one, so both produce the same commits,
tags and index rows.  A task that dies half-way is simply run again: the dataset's last
commit is the truth (``Datasets.recover``), and a commit the index lacks is reindexed.

:func:`sync_batch` syncs several sources at once (``neuromirror sync``): a thread each, here or
waiting for its task on a cluster; Ctrl-C stops them all at their next safe point.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

from neuromirror.archives import keeps_at_sync
from neuromirror.dataset.mirror import Datasets
from neuromirror.engine.recorder import Recorder
from neuromirror.engine.state import Head, IndexState
from neuromirror.engine.sync import SyncError, sync_dataset
from neuromirror.records import Pending, ProgressCallback, SyncReport, VersionFile
from neuromirror.sources.base import Source
from neuromirror.util import timing
from neuromirror.util.memory.spool import Spool, read_spool
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: rounds of "the task needs the submitter to do X first" before giving up
MAX_ROUNDS = 4


class NeedsSubmitter(Exception):
    """The task stops before writing: the submitter must do ``what`` first."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


@dataclass
class SourceTask:
    """Everything a worker needs to sync one source (picklable)."""

    root: str
    index_path: str
    source: Source
    engine: str


@dataclass
class TaskResult:
    """What a worker hands back: the run's report and the writes it left to the submitter."""

    report: SyncReport
    #: ("record", fields, spool path, count) | ("modified", version id or None, journal no., stamp)
    #: | ("pending", [Pending]) | ("cache", namespace, [(key, value)]) | ("register", message)
    ops: list[tuple] = field(default_factory=list)
    needs: Optional[str] = None
    error: Optional[str] = None
    worker: str = ""
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)


class JournalState(IndexState):
    """The index's memory read-only, with this run's own writes laid over it."""

    def __init__(self, index: Index, source: str, head: Optional[str], recorder: JournalRecorder):
        super().__init__(index, source, head)
        self.recorder = recorder
        self._cache: dict[tuple[str, str], str] = {}
        #: the version this run recorded last (spool path, count), when HEAD is one
        self.journal_files: Optional[tuple[Path, int]] = None

    def last_remote_modified(self, label: str) -> Optional[str]:
        for op in reversed(self.recorder.ops):
            if op[0] == "record" and op[1]["label"] == label:
                return op[1]["remote_modified"]
        return super().last_remote_modified(label)

    def _load(self) -> dict[str, VersionFile]:
        if self._prev is None and self.journal_files is not None:
            self._prev = {f.path: f for f in (VersionFile(*t) for t in read_spool(*self.journal_files))}
        return super()._load()

    def head_files(self) -> Optional[dict[str, VersionFile]]:
        return None  # the journal's versions are written by the submitting process: never as changes over HEAD

    def previous(self, path: str) -> Optional[VersionFile]:
        if self.journal_files is not None:
            return self._load().get(path)
        return super().previous(path)

    def previous_many(self, paths: Iterable[str]) -> dict[str, VersionFile]:
        if self.journal_files is not None:
            self._load()
        return super().previous_many(paths)

    def previous_files(self) -> Iterator[VersionFile]:
        if self.journal_files is not None:
            self._load()
        return super().previous_files()

    def cache_get(self, namespace: str, key: str) -> Optional[str]:
        found = self._cache.get((namespace, key))
        return found if found is not None else super().cache_get(namespace, key)

    def cache_get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        found = super().cache_get_many(namespace, [k for k in keys if (namespace, k) not in self._cache])
        found.update({k: v for k in keys if (v := self._cache.get((namespace, k))) is not None})
        return found

    def cache_put(self, namespace: str, key: str, value: str) -> None:
        self.cache_put_many(namespace, [(key, value)])

    def cache_put_many(self, namespace: str, items: Iterable[tuple[str, str]]) -> None:
        items = list(items)
        self._cache.update(((namespace, k), v) for k, v in items)
        self.recorder.ops.append(("cache", namespace, items))


class JournalRecorder(Recorder):
    """Keeps the index and root writes of a task for the submitter (see the module doc)."""

    def __init__(self, mirror: Datasets, sid: str, relpath: str):
        super().__init__(mirror, sid, relpath)
        self.ops: list[tuple] = []
        self.spool_dir = mirror.state_dir / "spool"

    def state(self, head: Optional[str]) -> IndexState:
        return JournalState(self.mirror.index, self.sid, head, self)

    def ensure_dataset(self, description: str) -> Path:
        path = self.mirror.dataset_path(self.relpath)
        if not self.mirror.is_complete(path):  # creating it commits in the root: the submitter's job
            raise NeedsSubmitter("dataset")
        return path

    def reindex(self, ds: Path) -> None:
        raise NeedsSubmitter("reindex")

    def files_spool(self) -> Spool:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        return Spool(self.spool_dir / f"{self.relpath.replace('/', '_')}-{uuid.uuid4().hex}.spool")

    def draft_modified(self, state: IndexState, remote_modified: Optional[str]) -> None:
        hv = state.head_version
        self.ops.append(("modified", hv.id if hv else None, hv.journal if hv else None, remote_modified))

    def stage(self, files: Spool, over: object = None) -> None:
        assert over is None  # JournalState.head_files: a worker's snapshot is never made over HEAD
        return None  # the submitter writes the index, from the journal

    def record_version(self, state: IndexState, files: Spool, staged: object = None, **fields: Any) -> None:
        files.flush()
        path = Path(files.fh.name)
        self.ops.append(("record", fields, str(path), files.count))
        assert isinstance(state, JournalState)
        state.journal_files = (path, files.count)
        state.now_at(Head(None, str(fields["commit"]), journal=len(self.ops) - 1))

    def set_pending(self, pending: list[Pending]) -> None:
        self.ops.append(("pending", list(pending)))

    def register(self, message: str) -> None:
        self.ops.append(("register", message))

    def discard(self) -> None:
        for op in self.ops:
            if op[0] == "record":
                Path(op[2]).unlink(missing_ok=True)


def worker_name() -> str:
    """The Dask worker's address when run by one, else host:pid."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_task(task: SourceTask) -> TaskResult:
    """A source's dataset work, on a worker: never writes the index or the root superdataset."""
    clock = timing.Stopwatch()
    source = task.source
    report = SyncReport(source=source.id, dataset=source.relpath)
    result = TaskResult(report=report, worker=worker_name())
    mirror = Datasets(task.root, task.index_path, readonly_index=True)
    recorder = JournalRecorder(mirror, source.id, source.relpath)
    try:
        with timing.collecting() as timings:
            sync_dataset(mirror, source, report, recorder, engine=task.engine, progress=None)
        result.timings = dict(timings)
    except NeedsSubmitter as need:
        recorder.discard()
        recorder.ops = []
        result.needs = need.what
    except Exception as exc:  # the versions committed before the failure are still recorded
        result.error = one_line(exc)
        report.outcome = "failed"
        ds = mirror.dataset_path(source.relpath)
        if (ds / ".git").exists():
            mirror.recover(ds)
    finally:
        mirror.close()
    result.ops = recorder.ops
    result.seconds = round(clock.seconds(), 3)
    return result


class Runner:
    """The submitter's side: send a source's task through ``submit`` and record what it did.

    ``submit(task, heartbeat) -> TaskResult`` blocks until the task is done, calling
    ``heartbeat()`` every second or so meanwhile: it reports "waiting on the cluster" as
    progress, and the progress callback raises to stop waiting (Ctrl-C, a stopping
    service), so a submitter never waits for a cluster it was told to leave.  This
    process holds the source's lock meanwhile and writes the index.
    """

    def __init__(self, submit: Callable[[SourceTask, Callable[[], None]], TaskResult]):
        self.submit = submit

    def close(self) -> None:
        """Let go of what the runner holds (a cluster client); nothing for a plain runner."""

    def __call__(
        self,
        mirror: Datasets,
        source: Source,
        report: SyncReport,
        *,
        engine: str,
        progress: Optional[ProgressCallback] = None,
    ) -> None:
        source = getattr(source, "_source", source)  # the service's StoppableSource: the stop is ours
        recorder = Recorder(mirror, source.id, source.relpath)
        task = SourceTask(str(mirror.root), str(mirror.index_path), source, engine)

        def heartbeat() -> None:
            if progress is not None:
                progress("waiting for its task on the cluster", 0, None)

        for _ in range(MAX_ROUNDS):
            result = self.submit(task, heartbeat)
            report.tasks.append(
                {
                    "task": "sync",
                    "worker": result.worker,
                    "seconds": result.seconds,
                    "outcome": result.needs and f"needs {result.needs}" or result.report.outcome,
                }
            )
            if progress is not None:
                progress(f"task on {result.worker} ({result.seconds:.1f} s)", 1, 1)
            if result.needs == "dataset":
                mirror.ensure_dataset(source.relpath, source.describe())
                continue
            if result.needs == "reindex":
                recorder.reindex(mirror.dataset_path(source.relpath))
                report.warnings.append(f"index of {source.id} was behind its dataset: rebuilt from the dataset")
                continue
            apply(mirror, recorder, result.ops)
            _remove_orphans(mirror, source.relpath)
            spent = timing.current()
            if spent is not None:  # the worker's phases, as if timed here
                spent.merge(result.timings)
            _merge(report, result.report)
            if result.error:
                raise SyncError(result.error)
            return
        raise SyncError(f"{source.id}: the task asked for {result.needs} {MAX_ROUNDS} times")


def _remove_orphans(mirror: Datasets, relpath: str) -> None:
    """Spool files of this source's tasks whose submitter died: nobody will record them.

    Safe while this process holds the source's lock and its own task is done: an orphaned
    task (still running when its submitter died) finished before ours got the Dask lease.
    """
    for path in (mirror.state_dir / "spool").glob(f"{relpath.replace('/', '_')}-*.spool"):
        path.unlink(missing_ok=True)


def _merge(report: SyncReport, other: SyncReport) -> None:
    warnings = report.warnings + other.warnings
    tasks = report.tasks
    for f in dataclasses.fields(SyncReport):
        if f.name not in ("source", "dataset", "timings"):
            setattr(report, f.name, getattr(other, f.name))
    report.warnings = warnings
    report.tasks = tasks + other.tasks  # the source's task, then its parts (Zarr jobs)


def apply(mirror: Datasets, recorder: Recorder, ops: list[tuple]) -> None:
    """Write a task's journal, in its order: the index's only writer is this process."""
    index = mirror.index
    recorded: dict[int, int] = {}  # journal number -> version id
    try:
        for n, op in enumerate(ops):
            kind = op[0]
            if kind == "record":
                fields, path, count = op[1], Path(op[2]), op[3]
                with timing.phase("index"):
                    recorded[n] = index.record_version(
                        recorder.sid, entries=(VersionFile(*t) for t in read_spool(path, count)), **fields
                    )
            elif kind == "modified":
                vid = op[1] if op[1] is not None else recorded.get(op[2])
                if vid is not None:
                    index.set_remote_modified(vid, op[3])
            elif kind == "pending":
                recorder.set_pending(op[1])
            elif kind == "cache":
                index.cache_put_many(op[1], op[2])
            elif kind == "register":
                recorder.register(op[1])
    finally:
        for op in ops:
            if op[0] == "record":
                Path(op[2]).unlink(missing_ok=True)


# -- several sources at once (``neuromirror sync``) -----------------------------

#: sources waiting for their Dask task at once (each holds its lock and an index connection)
DASK_SUBMITTERS = 64


@dataclass
class SyncBatch:
    """Sources synced at once into ``root``: each with its engine, in ``jobs`` threads (with a runner: as many
    threads as the cluster may run, each only waiting for its source's task)."""

    root: Path
    index_path: Optional[Any]
    sources: list[Source]
    engines: dict[str, str]  # source id -> writer engine
    default_engine: str
    jobs: int
    #: a progress bar per source; False: none; else a factory: source id -> its progress callback (and done())
    progress: Any = True
    lock_wait: bool | float = True  # 0: fail at once when another process syncs a source
    reraise: bool = False  # let an error out instead of reporting it as the source's failure
    runner: Optional[Runner] = None  # closed when the batch is done
    store: Any = None  # where BOSS sources keep the chunks they read
    network_since: Any = None  # network counters before the sources were found (one source: its report counts them)


def sync_batch(batch: SyncBatch) -> list[dict]:
    """Each source's report (``SyncReport.to_json()``, or ``{source, dataset, outcome: "failed", error}``), in the
    sources' order.  Ctrl-C stops every running sync at its next progress report (each puts its dataset back)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()  # Ctrl-C reaches the main thread only: the workers stop at their next progress report
    _create_index(batch.root, batch.index_path)  # once, before parallel workers open it
    n = len(batch.sources)
    jobs = batch.jobs if batch.runner is None else max(batch.jobs, min(n, DASK_SUBMITTERS))
    try:
        if n == 1 or jobs <= 1:
            return [_sync_one(batch, s, stop) for s in batch.sources]
        pool = ThreadPoolExecutor(jobs)
        try:
            return list(pool.map(lambda s: _sync_one(batch, s, stop), batch.sources))
        except KeyboardInterrupt:
            stop.set()  # each running sync records itself as interrupted and puts its dataset back
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if batch.runner is not None:
            batch.runner.close()


def _sync_one(batch: SyncBatch, source: Source, stop: Any) -> dict:
    from neuromirror.engine.sync import sync_source
    from neuromirror.errors import LockBusy
    from neuromirror.util.progress import Progress

    mirror = Datasets(batch.root, batch.index_path)
    made = batch.progress if not isinstance(batch.progress, bool) else None
    progress = made(source.id) if made is not None else Progress(source.id, enabled=batch.progress)

    def report_progress(stage: str, done: int, total: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        progress(stage, done, total)

    try:
        report = sync_source(
            mirror,
            source,
            engine=batch.engines.get(source.id, batch.default_engine),
            progress=report_progress,
            lock_wait=batch.lock_wait,
            runner=batch.runner,
            store=batch.store if keeps_at_sync(source.archive) else None,  # only BOSS sources keep at sync time
            network_since=batch.network_since if len(batch.sources) == 1 else None,
        )
        return report.to_json()
    except LockBusy as exc:
        return {"source": source.id, "dataset": source.relpath, "outcome": "failed", "error": str(exc)}
    except Exception as exc:
        if batch.reraise:
            raise
        return {"source": source.id, "dataset": source.relpath, "outcome": "failed", "error": one_line(exc)}
    finally:
        progress.done()  # the bar gone before the summary or the error is printed
        mirror.close()


def _create_index(root: Any, index: Optional[Path]) -> None:
    mirror = Datasets(root, index)
    try:
        mirror.index  # noqa: B018  (creates the file and its schema)
    finally:
        mirror.close()

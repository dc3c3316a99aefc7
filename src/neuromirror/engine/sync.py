"""The sync engine: source snapshots -> commits, tags and index rows.

Generic over sources and writer engines.  Per snapshot it diffs the streamed
entries against the state of HEAD (only changes reach git), makes one commit,
tags it when the snapshot is a fixed version, and then records the version in
the index — in that order, so the index never names a commit that does not
exist.  Entries are spooled to temporary files rather than held in memory, so
an asset of 10^6 files costs memory for its paths, not its records.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional

from neuromirror.annex.writer import AnnexWriter, make_writer
from neuromirror.dataset.mirror import Datasets
from neuromirror.engine.diff import commit_message, current_state, diff_over_head, diff_snapshot
from neuromirror.engine.failure import after_failure, drop_temp_packs, held_back
from neuromirror.engine.recorder import Recorder
from neuromirror.engine.sink import StoreSink
from neuromirror.engine.zarr.backfill import ManifestWanted
from neuromirror.errors import NeuromirrorError
from neuromirror.index.version_rows import Over
from neuromirror.network import report as netreport
from neuromirror.records import (
    Entry,
    Pending,
    ProgressCallback,
    Snapshot,
    SyncReport,
    VersionKind,
)
from neuromirror.sources.base import Source
from neuromirror.util import disk, gitutil, timing
from neuromirror.util.crashpoints import crashpoint

if TYPE_CHECKING:
    from neuromirror.engine.diff import _Diff
    from neuromirror.engine.state import IndexState
    from neuromirror.index.version_rows import StagedVersion
    from neuromirror.store.base import Store

log = logging.getLogger("neuromirror.engine.sync")


class SyncError(NeuromirrorError, RuntimeError):
    """A sync failed; the message is the one line the user sees."""


#: the phases a sync's time is split into, side by side (their sum is ``total`` less ``unnamed``); others
#: in ``timings`` are parts of one of these (pinning, annex-branch, zarr-*: workers' seconds, summed)
TOP_PHASES = (
    "recover",
    "listing+diff",
    "previous-state",
    "prepare",
    "head-check",
    "registration+commit",
    "index",
    "store",
    "pending",
    "root-register",
)

#: a version's path -> identity state is kept for the sync's next snapshot below this many paths
KEEP_STATE_BELOW = 100_000


def sync_source(
    mirror: Datasets,
    source: Source,
    *,
    engine: str = "fast-import",
    progress: Optional[ProgressCallback] = None,
    trigger: str = "cli",
    lock_wait: bool | float = True,
    runner: Optional[Callable[..., object]] = None,
    store: Optional[Store] = None,
    on_locked: Optional[Callable[[], None]] = None,
    min_free: object = None,
    network_since: Optional[dict] = None,
) -> SyncReport:
    """Bring one source's dataset and index rows up to date with its archive.

    ``on_locked`` is called once the source's lock is held: only then is a sync under way
    (the service shows a source as running from there, never while it is found busy).

    ``runner`` (a :class:`neuromirror.engine.executor.Runner`, e.g. a Dask cluster) runs the
    dataset work elsewhere and returns its index writes; this process still holds the
    source's lock and is the index's only writer.  Without it, all runs here.

    ``store`` (``--store``): content a source reads anyway (BOSS chunks) is kept there, and
    recorded as present in the dataset's git-annex branch after each version's commit.

    ``min_free`` (a definition's option; else ``NEUROMIRROR_MIN_FREE``, else 1 GiB): with less
    free space on the root's file system the sync does not start (:mod:`neuromirror.util.disk`).
    """
    sid: str = source.id
    disk.check_free(mirror.root, f"the sync of {sid}", option=min_free)
    relpath: str = source.relpath
    report = SyncReport(source=sid, dataset=relpath)
    index = mirror.index
    waited = timing.Stopwatch()
    with mirror.lock(sid, wait=lock_wait):
        lock_wait_s = waited.seconds()
        if on_locked is not None:
            on_locked()
        mirror.ensure_root()
        index.ensure_source(sid, source.archive, source.remote_id, relpath)
        run_id = index.start_run(sid, trigger)
        clock = timing.Stopwatch()
        # the archive's answers since the caller began (naming the source asked the archive already), else from here
        net_before = network_since if network_since is not None else netreport.snapshot()
        try:
            with timing.collecting() as timings:
                if runner is None:
                    sync_dataset(
                        mirror,
                        source,
                        report,
                        Recorder(mirror, sid, relpath),
                        engine=engine,
                        progress=progress,
                        store=store,
                    )
                else:
                    runner(mirror, source, report, engine=engine, progress=progress)
            total = clock.seconds()
            _account(report, timings, total, lock_wait_s)
            report.network = netreport.since(net_before, total)
            held_back(report)
        except BaseException as exc:  # recorded, then re-raised for the caller to report
            report.network = netreport.since(net_before, clock.seconds())
            after_failure(mirror, source, report, exc, run_id, here=runner is None, trigger=trigger)
            raise
        index.end_run(run_id, report.to_json())
    return report


def _account(report: SyncReport, timings: dict[str, float], total: float, lock_wait_s: float) -> None:
    """The run's seconds by phase into ``report.timings``: those named, what no top phase names
    (run rows, the source's own set-up...: a few % at most, or a phase is missing), the lock's wait."""
    report.timings = {k: round(v, 4) for k, v in timings.items()}
    report.timings["unnamed"] = round(max(0.0, total - sum(timings.get(k, 0.0) for k in TOP_PHASES)), 4)
    report.timings["lock-wait"] = round(lock_wait_s, 4)  # before ``total`` starts
    report.timings["total"] = round(total, 4)


def sync_dataset(
    mirror: Datasets,
    source: Source,
    report: SyncReport,
    recorder: Recorder,
    *,
    engine: str,
    progress: Optional[ProgressCallback],
    store: Optional[Store] = None,
) -> None:
    """The sync of one source under its lock: listing, diff, commits and tags; the index and
    the root superdataset are written through ``recorder``.

    The steps, in order (each a method of :class:`DatasetSync`): recover the dataset and load
    the last state; ask the archive for a first snapshot (nothing new: register and stop);
    prepare the dataset and its writer; commit each snapshot; finish (pending, root gitlink).
    """
    run = DatasetSync(mirror, source, report, recorder, store)
    run.recover()
    snapshots = iter(source.snapshots(run.state, progress))
    # ask the archive before creating anything: a mistyped source leaves no empty dataset behind
    with timing.phase("listing+diff"):  # a whole listing for S3, two GETs for DANDI
        first = next(snapshots, None)
    if first is None:
        run.nothing_new()
    else:
        run.prepare(engine)
        for snap in _listed(first, snapshots):
            run.commit_snapshot(snap)
        run.finish()
    mirror.mark_clean(run.ds)  # the next sync's recover may skip its git status


def _listed(first: Snapshot, snapshots: Iterator[Snapshot]) -> Iterator[Snapshot]:
    """The snapshots of a sync, ``first`` (already listed) then the rest, each one's listing timed
    as ``listing+diff``.  The listing's end (the ``next`` that yields nothing) is not counted:
    the phase is the listing of snapshots that reach the diff."""
    yield first
    while True:
        with timing.phase("listing+diff") as span:
            snap = next(snapshots, None)
            if snap is None:
                span.drop()
        if snap is None:
            return
        yield snap


class DatasetSync:
    """One source's dataset sync, step by step: the state the steps share (the dataset's path and
    HEAD, the index state, the previous snapshot's path -> identity map, the writer, the store's sink).

    Each step times itself under the phase names of :data:`TOP_PHASES` (a contract: ``--json``,
    the run's report and ``scripts/bench`` read them).
    """

    def __init__(
        self, mirror: Datasets, source: Source, report: SyncReport, recorder: Recorder, store: Optional[Store]
    ) -> None:
        self.mirror = mirror
        self.source = source
        self.sid: str = source.id
        self.relpath: str = source.relpath
        self.report = report
        self.recorder = recorder
        self.ds = mirror.dataset_path(self.relpath)
        self.head: Optional[str] = None
        self.start_head: Optional[str] = None
        self.state: IndexState  # loaded by :meth:`recover`
        self.sink = StoreSink(store) if store is not None else None
        self.current: Optional[dict[str, bytes]] = None
        self.pending: Optional[list[Pending]] = None
        self.writer: Optional[AnnexWriter] = None

    def recover(self) -> None:
        """An existing dataset is made whole before anything is read from it (a crashed run's
        leftovers recovered, temporary packs dropped, mutable URLs taken back once) and the index
        caught up with it when it is behind; then the last state is loaded for the diff."""
        with timing.phase("recover"):
            self.state = self.recorder.state(None)
            if (self.ds / ".git").exists():
                self._recover_dataset()
        state = self.state
        state.content_sink = self.sink
        state.manifest_root = self.mirror.manifest_root
        state.zarr_manifest_wanted = ManifestWanted(state, str(self.mirror.manifest_root))
        self.start_head = self.head

    def _recover_dataset(self) -> None:
        ds = self.ds = self.recorder.ensure_dataset(self.source.describe())
        for action in self.mirror.recover(ds):
            self.report.warnings.append(f"recovered {self.relpath}: {action}")
        drop_temp_packs(ds)
        _repair_once(ds, self.report)
        head = self.head = gitutil.head_from_files(ds)
        if head and self.state.index.version_by_commit(self.sid, head) is None and _has_versions(ds):
            self.recorder.reindex(ds)
            self.report.warnings.append(f"index of {self.sid} was behind its dataset: rebuilt from the dataset")
        self.state = self.recorder.state(head)

    def nothing_new(self) -> None:
        """The archive has no snapshot for this sync: nothing is created, but what an earlier run
        left unrecorded is recorded (bytes read again, or a store named for the first time; the
        root's gitlink of an interrupted run that committed without updating the root)."""
        self.report.outcome = "unchanged"
        if self.sink is not None and self.head:
            self.sink.record(self.ds)
        if self.head:
            with timing.phase("root-register"):
                self.recorder.register(f"[neuromirror] {self.sid}: registered")

    @timing.timed("prepare")
    def prepare(self, engine: str) -> None:
        """Only once the archive answered with a snapshot: the dataset made (or found), its
        remotes set up by the source, and the writer that commits the snapshots."""
        ds = self.ds = self.recorder.ensure_dataset(self.source.describe())
        _repair_once(ds, self.report)  # a new dataset: only marked
        if self.start_head is None:
            self.start_head = gitutil.rev_parse(ds, "HEAD")
        self.head = self.start_head
        url_remotes = self.source.prepare_dataset(ds)
        self.writer = make_writer(engine, ds, url_remotes=url_remotes)

    def commit_snapshot(self, snap: Snapshot) -> None:
        """One snapshot: diffed against the previous state; a commit (and its tag) only when
        something changed or the tag is missing, then the index rows and the store's keys."""
        d = self._diff(snap)
        self.report.warnings.extend(getattr(snap, "warnings", ()))
        if snap.kind != VersionKind.PUBLISHED:
            self.pending = list(snap.pending)
            self.report.pending = list(snap.pending)
        try:
            if not self._needs_commit(snap, d):
                return
            commit, staged = self._commit(snap, d)
            self._record(snap, d, commit, staged)
        finally:
            d.changes.close()
            d.files.close()

    def _diff(self, snap: Snapshot) -> _Diff:
        """The snapshot's entries against the previous state: only changes reach git.  Counted in
        ``listing+diff`` with the listing (the source streams its entries into the diff)."""
        with timing.phase("listing+diff"):
            entries = iter(snap.entries)
            first = next(entries, None)  # by then a source says whether its entries are changes (over_head)
            entries = itertools.chain([] if first is None else [first], entries)
            if snap.over_head is not None:
                return self._diff_over_head(snap, entries)
            if self.current is None:
                with timing.phase("previous-state"):
                    self.current = current_state(self.ds, self.head, self.state)
            snap.entries = entries
            d = diff_snapshot(self.current, snap, self.report, self.recorder.files_spool())
            if len(self.current) >= KEEP_STATE_BELOW:
                # not held through the commit (10^6 paths: ~200 MB beside git's checkout); a later
                # snapshot of the same sync, if any, reads the state again from the index
                self.current = None
        return d

    def _diff_over_head(self, snap: Snapshot, entries: Iterable[Entry]) -> _Diff:
        """A snapshot of changes over HEAD's state (its source read only those): diffed and, in the index,
        written in O(changes); the rest of HEAD's rows carried forward (``d.over``)."""
        head, vid = self.state.head_files(), self.state.head_version
        if head is None or vid is None or vid.id is None:  # the source asks the same state: never so
            raise RuntimeError(f"{self.sid}: a snapshot of changes over a HEAD the index does not hold")
        d = diff_over_head(head, entries, snap, self.report, self.recorder.files_spool())
        d.over = Over(vid.id, snap.over_head or frozenset())
        self.current = None  # HEAD's paths as of the next version: read again by a later snapshot, if any
        return d

    @timing.timed("head-check")
    def _needs_commit(self, snap: Snapshot, d: _Diff) -> bool:
        """Whether the snapshot makes a commit or a tag (HEAD and the tag read).  An unchanged
        draft still has its new stamp recorded (the archive's time is what the next sync compares)."""
        self.head = gitutil.rev_parse(self.ds, "HEAD")
        tag_needed = bool(snap.tag) and gitutil.ref_sha(self.ds, f"refs/tags/{snap.tag}") is None
        if d.n == 0 and not tag_needed:
            if snap.kind == VersionKind.DRAFT and self.head and self.state.head_version:
                self.recorder.draft_modified(self.state, snap.remote_modified)
            return False
        return True

    def _commit(self, snap: Snapshot, d: _Diff) -> tuple[str, Optional[StagedVersion]]:
        """The version's commit and tag, with its index rows staged on a thread meanwhile (aborted
        if the commit fails).  A commit an interrupted run made without its tag is reused."""
        assert self.writer is not None
        crashpoint("before-commit")
        with timing.phase("index"):  # the rows staged on a thread while the commit is made
            staged = self.recorder.stage(d.files, d.over)
        try:
            with timing.phase("registration+commit"):
                if d.n == 0 and self.head and _is_commit_of(self.ds, self.head, self.sid, snap):
                    commit = self.head  # an interrupted run made this version's commit but not its tag
                else:
                    commit = self.writer.commit(
                        d.changes, message=commit_message(self.sid, snap, d), date=snap.date
                    ).commit
                crashpoint("after-commit")
                if snap.tag:
                    self.writer.tag(snap.tag, commit, snap.tag_message or snap.message, snap.date)
                    crashpoint("after-tag")
        except BaseException:
            if staged is not None:
                staged.abort()
            raise
        return commit, staged

    def _record(self, snap: Snapshot, d: _Diff, commit: str, staged: Optional[StagedVersion]) -> None:
        """After the commit (never before: the index never names a commit that does not exist):
        the version's index rows, the store's keys in the git-annex branch, the report."""
        with timing.phase("index"):
            self.recorder.record_version(
                self.state,
                d.files,
                staged=staged,
                label=snap.label,
                kind=snap.kind,
                commit=commit,
                tag=snap.tag,
                remote_modified=snap.remote_modified,
                date=snap.date.isoformat(),
                doi=snap.doi,
                citation=snap.citation,
                meta=snap.meta,
            )
        crashpoint("after-index")
        if self.sink is not None:
            with timing.phase("store"):
                self.sink.record(self.ds)
        report = self.report
        report.added += d.added
        report.removed += d.removed
        report.changed += d.changed
        report.versions.append(
            {
                "label": snap.label,
                "kind": snap.kind,
                "commit": commit,
                "tag": snap.tag,
                "added": d.added,
                "removed": d.removed,
                "changed": d.changed,
            }
        )

    def finish(self) -> None:
        """After the last snapshot: the draft's pending files, what a snapshot without a new
        commit read and stored, and the root superdataset's gitlink (a commit of the parent) when
        HEAD moved; then the outcome and a warning per pending file."""
        report = self.report
        if self.pending is not None:
            with timing.phase("pending"):
                self.recorder.set_pending(self.pending)
        if self.sink is not None:  # what a snapshot without a new commit read and stored
            with timing.phase("store"):
                self.sink.record(self.ds)
        with timing.phase("root-register"):  # the root superdataset's gitlink: a commit of the parent
            new_head = gitutil.rev_parse(self.ds, "HEAD")
            crashpoint("before-register")
            if new_head != self.start_head or not report.versions:
                labels = ", ".join(v["label"] for v in report.versions)
                self.recorder.register(f"[neuromirror] {self.sid}: {labels or 'registered'}")
        report.outcome = "ok" if report.versions else "unchanged"
        for p in report.pending:
            report.warnings.append(f"{p.path}: {p.reason}")


def _repair_once(ds: Path, report: SyncReport) -> None:
    """A dataset made by an earlier version: take back its mutable URLs, once (see :mod:`.repair`)."""
    from neuromirror.engine import repair

    if repair.url_rule_applied(ds):
        return
    rep = repair.repair_tree(ds)
    if rep.urls_removed:
        report.warnings.append(
            f"repaired {rep.datasets} dataset(s): removed {rep.urls_removed} URL(s) that can "
            "serve other bytes from beside pinned ones (older commits retrieve again)"
        )
    report.warnings.extend(rep.errors)


def _is_commit_of(ds: Path, commit: str, source: str, snap: Snapshot) -> bool:
    from neuromirror.index.trailers import parse_trailers

    tr = parse_trailers(gitutil.out(ds, "log", "-1", "--format=%B", commit))
    return tr.get("source") == source and tr.get("label") == snap.label and tr.get("kind") == snap.kind


def _has_versions(ds: Path) -> bool:
    """Whether any commit in the dataset was made by a sync."""
    out = gitutil.out(ds, "log", "-1", "--format=%H", "--grep=^Neuromirror-Source: ", check=False)
    return bool(out)

"""The sync engine: source snapshots -> commits, tags and index rows.

Generic over sources and writer engines.  Per snapshot it diffs the streamed
entries against the state of HEAD (only changes reach git), makes one commit,
tags it when the snapshot is a fixed version, and then records the version in
the index — in that order, so the index never names a commit that does not
exist.  Entries are spooled to temporary files rather than held in memory, so
an asset of 10^6 files costs memory for its paths, not its records.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from neuromirror.annex.writer import make_writer
from neuromirror.dataset.mirror import Mirror
from neuromirror.engine.diff import commit_message, current_state, diff_snapshot
from neuromirror.engine.recorder import Recorder
from neuromirror.engine.zarr.backfill import ManifestWanted
from neuromirror.records import (
    Pending,
    ProgressCallback,
    Snapshot,
    SyncReport,
)
from neuromirror.sources.base import Source
from neuromirror.util import disk, gitutil, timing
from neuromirror.util.crashpoints import crashpoint
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.store.base import Store

log = logging.getLogger("neuromirror.engine.sync")


class SyncError(RuntimeError):
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
    mirror: Mirror,
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
    t_lock = time.perf_counter()
    with mirror.lock(sid, wait=lock_wait):
        lock_wait_s = time.perf_counter() - t_lock
        if on_locked is not None:
            on_locked()
        mirror.ensure_root()
        index.ensure_source(sid, source.archive, source.remote_id, relpath)
        run_id = index.start_run(sid, trigger)
        t0 = time.perf_counter()
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
            total = time.perf_counter() - t0
            report.timings = {k: round(v, 4) for k, v in timings.items()}
            # what no phase names (run rows, the source's own set-up...): a few % at most, or a phase is missing
            report.timings["unnamed"] = round(max(0.0, total - sum(timings.get(k, 0.0) for k in TOP_PHASES)), 4)
            report.timings["lock-wait"] = round(lock_wait_s, 4)  # before ``total`` starts
            report.timings["total"] = round(total, 4)
        except BaseException as exc:  # recorded, then re-raised for the caller to report
            # Ctrl-C (or a stopping service) is not the archive's or the mirror's failure
            report.outcome = "failed" if isinstance(exc, Exception) else "interrupted"
            report.error = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else one_line(exc)
            ds = mirror.dataset_path(relpath)
            try:
                if (ds / ".git").exists():
                    if runner is None:  # a task recovers on its worker (which may still be writing)
                        drop_temp_packs(ds)  # first: a full disk needs that space to recover
                        mirror.recover(ds)
                    # versions committed before the failure are whole: the root records them, never left modified
                    mirror.register_quietly(relpath, f"[neuromirror] {sid}: registered (run {report.outcome})")
            finally:
                index.end_run(run_id, report.to_json())
                if (
                    trigger == "cli"
                    and isinstance(exc, Exception)
                    and archive_lacks(exc)
                    and not (ds / ".git").exists()
                    and not index.versions(sid)
                ):
                    # a mistyped or withdrawn id never mirrored here: leave no source, run or dataset behind
                    # (the service keeps it: a configured source that does not exist is a failing one
                    # its operator must see)
                    index.remove_source(sid)
            raise
        index.end_run(run_id, report.to_json())
    return report


def sync_dataset(
    mirror: Mirror,
    source: Source,
    report: SyncReport,
    recorder: Recorder,
    *,
    engine: str,
    progress: Optional[ProgressCallback],
    store: Optional[Store] = None,
) -> None:
    """The sync of one source under its lock: listing, diff, commits and tags; the index and
    the root superdataset are written through ``recorder``."""
    sid: str = source.id
    relpath: str = source.relpath
    ds = mirror.dataset_path(relpath)
    head: Optional[str] = None
    t_recover = time.perf_counter()
    state = recorder.state(None)
    if (ds / ".git").exists():
        ds = recorder.ensure_dataset(source.describe())
        for action in mirror.recover(ds):
            report.warnings.append(f"recovered {relpath}: {action}")
        drop_temp_packs(ds)
        _repair_once(ds, report)
        head = gitutil.rev_parse(ds, "HEAD")
        if head and state.index.version_by_commit(sid, head) is None and _has_versions(ds):
            recorder.reindex(ds)
            report.warnings.append(f"index of {sid} was behind its dataset: rebuilt from the dataset")
        state = recorder.state(head)
    spent = timing.current()
    if spent is not None:  # the dataset checked and recovered, the index caught up with it, the state loaded
        spent.add("recover", time.perf_counter() - t_recover)
    sink = StoreSink(store) if store is not None else None
    state.content_sink = sink
    state.manifest_root = mirror.manifest_root
    state.zarr_manifest_wanted = ManifestWanted(state, str(mirror.manifest_root))
    current: Optional[dict[str, bytes]] = None
    start_head = head
    pending: Optional[list[Pending]] = None
    snapshots = iter(source.snapshots(state, progress))
    # ask the archive before creating anything: a mistyped source leaves no empty dataset behind
    t_list = time.perf_counter()
    first = next(snapshots, None)
    if first is None:
        spent = timing.current()
        if spent is not None:  # asking the archive: a whole listing for S3, two GETs for DANDI
            spent.add("listing+diff", time.perf_counter() - t_list)
        report.outcome = "unchanged"
        if sink is not None and head:  # bytes read again (BOSS annotations), or a store named for the first time
            sink.record(ds)
        if head:  # an interrupted run may have committed without updating the root
            with timing.phase("root-register"):
                recorder.register(f"[neuromirror] {sid}: registered")
        return
    t_prepare = time.perf_counter()
    with timing.phase("prepare"):
        ds = recorder.ensure_dataset(source.describe())
        _repair_once(ds, report)  # a new dataset: only marked
        head = start_head = gitutil.rev_parse(ds, "HEAD") if start_head is None else start_head
        url_remotes = source.prepare_dataset(ds)
        writer = make_writer(engine, ds, url_remotes=url_remotes)
    t_list += time.perf_counter() - t_prepare  # the first snapshot's listing goes on in the loop: not this
    while True:
        if first is not None:
            snap: Optional[Snapshot] = first
            first = None
        else:
            t_list = time.perf_counter()
            snap = next(snapshots, None)
        if snap is None:
            break
        if current is None:
            with timing.phase("previous-state"):
                current = current_state(ds, head, state)
        d = diff_snapshot(current, snap, report, recorder.files_spool())
        if len(current) >= KEEP_STATE_BELOW:
            # not held through the commit (10^6 paths: ~200 MB beside git's checkout); a later
            # snapshot of the same sync, if any, reads the state again from the index
            current = None
        # listing = producing the entries, less the pinning the source timed inside it
        spent = timing.current()
        if spent is not None:
            spent.add("listing+diff", time.perf_counter() - t_list)
        report.warnings.extend(getattr(snap, "warnings", ()))
        pending = list(snap.pending) if snap.kind != "published" else pending
        report.pending = list(snap.pending) if snap.kind != "published" else report.pending
        try:
            with timing.phase("head-check"):  # HEAD and the tag read; an unchanged draft's new stamp recorded
                head = gitutil.rev_parse(ds, "HEAD")
                tag_needed = bool(snap.tag) and gitutil.ref_sha(ds, f"refs/tags/{snap.tag}") is None
                if d.n == 0 and not tag_needed:
                    if snap.kind == "draft" and head and state.head_version:
                        recorder.draft_modified(state, snap.remote_modified)
            if d.n == 0 and not tag_needed:
                continue
            crashpoint("before-commit")
            with timing.phase("index"):  # the rows staged on a thread while the commit is made
                staged = recorder.stage(d.files)
            try:
                with timing.phase("registration+commit"):
                    if d.n == 0 and head and _is_commit_of(ds, head, sid, snap):
                        commit = head  # an interrupted run made this version's commit but not its tag
                    else:
                        commit = writer.commit(d.changes, message=commit_message(sid, snap, d), date=snap.date).commit
                    crashpoint("after-commit")
                    if snap.tag:
                        writer.tag(snap.tag, commit, snap.tag_message or snap.message, snap.date)
                        crashpoint("after-tag")
            except BaseException:
                if staged is not None:
                    staged.abort()
                raise
            with timing.phase("index"):
                recorder.record_version(
                    state,
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
            if sink is not None:
                with timing.phase("store"):
                    sink.record(ds)
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
        finally:
            d.changes.close()
            d.files.close()
    if pending is not None:
        with timing.phase("pending"):
            recorder.set_pending(pending)
    if sink is not None:  # what a snapshot without a new commit read and stored
        with timing.phase("store"):
            sink.record(ds)
    with timing.phase("root-register"):  # the root superdataset's gitlink: a commit of the parent
        new_head = gitutil.rev_parse(ds, "HEAD")
        crashpoint("before-register")
        if new_head != start_head or not report.versions:
            recorder.register(f"[neuromirror] {sid}: {', '.join(v['label'] for v in report.versions) or 'registered'}")
    report.outcome = "ok" if report.versions else "unchanged"
    for p in report.pending:
        report.warnings.append(f"{p.path}: {p.reason}")


class StoreSink:
    """A sync's :class:`~neuromirror.records.ContentSink`: bytes a source read go into the store.

    Each ``put`` is one atomic write (``receive`` -> ``write`` -> ``commit``) of bytes whose
    SHA256 the source computed from them and put in the key; :meth:`record` then marks the keys
    present in the dataset's git-annex branch (after the version's commit, under the source's lock).
    """

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._keys: list[str] = []
        self._seen: set[str] = set()
        self._ready = False

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            if not self._ready:  # a new store's identity is made once, not by every reader thread at once
                _ = self.store.identity
                self._ready = True
        try:
            if not self.store.has(key):
                with self.store.receive(key) as incoming:
                    incoming.write(data)
                    incoming.commit()
        except BaseException:
            with self._lock:
                self._seen.discard(key)
            raise
        with self._lock:
            self._keys.append(key)

    def record(self, ds: Path) -> int:
        """Record the keys stored so far as present in the store, in ``ds``'s git-annex branch."""
        from neuromirror.store.record import record_present

        with self._lock:
            keys, self._keys = self._keys, []
        if not keys:
            return 0
        return record_present(ds, self.store, keys)


def drop_temp_packs(ds: Path) -> int:
    """Remove the half-written packs a failed writer left (``tmp_pack_*``: fast-import on a full
    disk, or killed).  Only under the source's lock, where no other writer of ``ds`` runs: git
    itself would keep them for two weeks, and a disk that just filled needs the space now."""
    pack_dir = ds / ".git" / "objects" / "pack"
    n = 0
    for tmp in pack_dir.glob("tmp_*") if pack_dir.is_dir() else []:
        try:
            tmp.unlink()
            n += 1
        except OSError:
            pass
    return n


def _repair_once(ds: Path, report: SyncReport) -> None:
    """A dataset made by an earlier version: take back its mutable URLs, once (see :mod:`.repair`)."""
    from neuromirror.engine import repair

    if repair.is_marked(ds):
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


#: what sources say when the archive has no such thing (their messages; dandi's NotFoundError is found by type)
_LACKS = re.compile(r"No such Dandiset|: no asset '|not found \(404")


def archive_lacks(exc: BaseException) -> bool:
    """Whether a failure is the archive saying the source does not exist (HTTP 404, dandi's NotFoundError...)."""
    seen: set[int] = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ == "NotFoundError" or getattr(getattr(e, "response", None), "status_code", None) == 404:
            return True
        e = e.__cause__ or e.__context__
    return bool(_LACKS.search(str(exc)))

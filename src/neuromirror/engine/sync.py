"""The sync engine: source snapshots -> commits, tags and index rows.

Generic over sources and writer engines.  Per snapshot it diffs the streamed
entries against the state of HEAD (only changes reach git), makes one commit,
tags it when the snapshot is a fixed version, and then records the version in
the index — in that order, so the index never names a commit that does not
exist.  Entries are spooled to temporary files rather than held in memory, so
an asset of 10^6 files costs memory for its paths, not its records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from neuromirror.annex.writer import Delete, Put, make_writer
from neuromirror.dataset.mirror import Mirror
from neuromirror.engine.urlrule import Tally
from neuromirror.index.db import Index
from neuromirror.index.trailers import format_trailers
from neuromirror.index.version_rows import StagedVersion
from neuromirror.records import (
    AnnexEntry,
    Entry,
    Pending,
    PreviousFile,
    ProgressCallback,
    Refusal,
    Snapshot,
    SyncReport,
)
from neuromirror.sources.base import Source
from neuromirror.util import gitutil, timing
from neuromirror.util.crashpoints import crashpoint
from neuromirror.util.paths import check_path
from neuromirror.util.spool import Spool

log = logging.getLogger("neuromirror.engine.sync")


class SyncError(RuntimeError):
    """A sync failed; the message is the one line the user sees."""


#: IndexState.previous answers this many paths by point queries before loading the whole state
POINT_LOOKUPS = 2000
#: a version's path -> identity state is kept for the sync's next snapshot below this many paths
KEEP_STATE_BELOW = 100_000


class IndexState:
    """The source's memory, as the index holds it for the dataset's HEAD."""

    def __init__(self, index: Index, source: str, head: Optional[str]):
        self.index = index
        self.source = source
        self.head_version = index.version_by_commit(source, head) if head else None
        self._prev: Optional[dict[str, PreviousFile]] = None
        self._lookups = 0
        self._labels = {v["label"] for v in index.versions(source)}

    def now_at(self, version: dict) -> None:
        """The sync recorded ``version``: it is the state from now on (what was loaded is the one before)."""
        self.head_version = version
        self._prev = None

    def labels(self) -> set[str]:
        return set(self._labels)

    def last_remote_modified(self, label: str) -> Optional[str]:
        v = self.index.latest_version(self.source, label)
        return v["remote_modified"] if v else None

    def _load(self) -> dict[str, PreviousFile]:
        if self._prev is None:
            self._prev = {}
            if self.head_version:
                for f in self.index.version_files(self.head_version["id"]):
                    self._prev[f.path] = f
        return self._prev

    def previous(self, path: str) -> Optional[PreviousFile]:
        # a few lookups (a dandiset's text files) are point queries; many load the whole state
        # once (10^5 files: ~1 s and ~40 MB, which a handful of lookups should not cost)
        if self._prev is None and self._lookups < POINT_LOOKUPS and self.head_version:
            self._lookups += 1
            return self.index.version_file(self.head_version["id"], self.source, path)
        return self._load().get(path)

    def previous_many(self, paths: Iterable[str]) -> dict[str, PreviousFile]:
        """The files at ``paths`` in the last synced state (those it has), one query per
        ``index.MANY_PATHS`` paths.

        For a source that looks up every path of a large listing a page at a time (a
        DANDI resync): it holds a page of files, where :meth:`previous` would load the
        whole state (10^5 files with their URLs: ~100 MB).
        """
        wanted = list(paths)
        if self._prev is not None:
            return {p: f for p in wanted if (f := self._prev.get(p)) is not None}
        if not self.head_version or not wanted:
            return {}
        return self.index.version_files_at(self.head_version["id"], self.source, wanted)

    def previous_files(self) -> Iterator[PreviousFile]:
        if self._prev is not None:
            yield from self._prev.values()
        elif self.head_version:
            yield from self.index.version_files(self.head_version["id"])

    def cache_get(self, namespace: str, key: str) -> Optional[str]:
        return self.index.cache_get(namespace, key)

    def cache_put(self, namespace: str, key: str, value: str) -> None:
        self.index.cache_put(namespace, key, value)

    def cache_get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        """The cached values of many keys in a few queries (a page of blobs, say)."""
        return self.index.cache_get_many(namespace, keys)

    def cache_put_many(self, namespace: str, items: Iterable[tuple[str, str]]) -> None:
        """Many values in one transaction: one commit per page instead of one per blob."""
        self.index.cache_put_many(namespace, items)


def _digest(identity: str) -> bytes:
    return hashlib.blake2b(identity.encode("utf-8", "surrogateescape"), digest_size=12).digest()


@dataclass
class _Diff:
    changes: Spool
    files: Spool
    added: int = 0
    removed: int = 0
    changed: int = 0

    @property
    def n(self) -> int:
        return self.added + self.removed + self.changed


def _as_record(e: Entry) -> tuple:
    """A file of the version, as a plain tuple: pickling slotted dataclasses costs 4x more."""
    return (e.path, e.key, e.size, e.checksum_kind, e.checksum, tuple(e.urls), e.remote_id)


def _records(spool: Spool) -> Iterator[PreviousFile]:
    return (PreviousFile(*t) for t in spool)


def diff_snapshot(
    current: dict[str, bytes], snap: Snapshot, report: SyncReport, files: Optional[Spool] = None
) -> _Diff:
    """Stream ``snap.entries`` against ``current`` (path -> identity digest), updating it.

    Every annexed entry passes the URL rule here (:mod:`.urlrule`), whatever its
    source: what is diffed, recorded and registered is what the rule admits.
    ``files`` receives the version's file records (a named spool when a Dask worker
    hands them to the submitting process); an anonymous one by default.
    """
    d = _Diff(Spool(), files if files is not None else Spool())
    tally = Tally()
    seen: set[str] = set()
    lowered: dict[str, str] = {}
    dirs: set[str] = set()
    # the parent directory of the last file taken: its ancestors were checked then, and a
    # listing in path order takes a folder's files one after another
    last_dir: Optional[str] = None
    for e in snap.entries:
        reason = check_path(e.path)
        if reason is None and e.path in seen:
            reason = "two items with the same path"
        if reason is None and e.path in dirs:
            reason = "a file and a directory of the same name"
        parents: list[str] = []
        parent_dir = ""
        if reason is None:
            cut = e.path.rfind("/")
            parent_dir = e.path[:cut] if cut > 0 else ""
            if parent_dir != last_dir:
                parts = e.path.split("/")
                parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
                if any(p in seen for p in parents):
                    reason = "a file and a directory of the same name"
        if reason is None:
            other = lowered.get(e.path.lower())
            if other is not None:
                reason = f"path differs only by case from {other!r}"
        if reason is not None:
            snap.refused.append(Refusal(e.path if isinstance(e.path, str) else repr(e.path), reason))
            continue
        seen.add(e.path)
        lowered[e.path.lower()] = e.path
        dirs.update(parents)
        last_dir = parent_dir
        if type(e) is AnnexEntry:
            e = tally.admit(e)
        d.files.add(_as_record(e))
        ident = _digest(e.identity)
        old = current.get(e.path)
        if old == ident:
            continue
        if old is None:
            d.added += 1
        else:
            d.changed += 1
        current[e.path] = ident
        d.changes.add(Put(e))
    gone = [p for p in current if p not in seen]
    for p in gone:
        del current[p]
        d.changes.add(Delete(p))
        d.removed += 1
    report.refused.extend(snap.refused)
    unpinned = tally.warning(snap.label)
    if unpinned:
        snap.warnings.append(unpinned)
    return d


def _current_state(ds: Path, head: Optional[str], state: IndexState) -> dict[str, bytes]:
    """path -> identity of HEAD: from the index, or from the dataset when the index lacks HEAD
    (an interrupted run committed a version it did not finish recording)."""
    if state.head_version is not None or not head:
        return {f.path: _digest(f.identity) for f in state.previous_files()}
    from neuromirror.index.reindex import tree_files

    with gitutil.CatFile(ds) as cat:
        return {f.path: _digest(f.identity) for f in tree_files(ds, head, cat, {})}


def _commit_message(source: str, snap: Snapshot, d: _Diff) -> str:
    head = f"[neuromirror] {snap.message}: {d.added} added, {d.removed} removed, {d.changed} changed"
    trailers = {
        "Neuromirror-Source": source,
        "Neuromirror-Label": snap.label,
        "Neuromirror-Kind": snap.kind,
        "Neuromirror-Remote-Modified": snap.remote_modified,
        "Neuromirror-DOI": snap.doi,
        "Neuromirror-Meta": json.dumps(snap.meta, sort_keys=True, separators=(",", ":")) if snap.meta else None,
    }
    return head + "\n\n" + format_trailers(trailers)


class Recorder:
    """Where a sync's writes outside its own dataset go: the index and the root superdataset.

    This one writes them at once, in the syncing process (one host).  On a Dask worker
    :class:`neuromirror.engine.executor.JournalRecorder` keeps them for the submitting process,
    the index's only writer; the sync itself (:func:`sync_dataset`) is the same code.
    """

    def __init__(self, mirror: Mirror, sid: str, relpath: str):
        self.mirror = mirror
        self.sid = sid
        self.relpath = relpath

    def state(self, head: Optional[str]) -> IndexState:
        return IndexState(self.mirror.index, self.sid, head)

    def ensure_dataset(self, description: str) -> Path:
        return self.mirror.ensure_dataset(self.relpath, description)

    def reindex(self, ds: Path) -> None:
        """The index lacks the dataset's HEAD (an interrupted run): rebuild the source's rows."""
        from neuromirror.index.reindex import reindex_dataset

        reindex_dataset(self.mirror.index, self.sid, ds, self.relpath)

    def files_spool(self) -> Spool:
        return Spool()

    def draft_modified(self, state: IndexState, remote_modified: Optional[str]) -> None:
        """The draft unchanged but touched upstream: note its new stamp on the recorded head version."""
        head = state.head_version
        if head is None:  # called only once a version is recorded
            return
        self.mirror.index.db.conn.execute(
            "UPDATE versions SET remote_modified=? WHERE id=?", [remote_modified, head["id"]]
        )

    def stage(self, files: Spool) -> Optional[StagedVersion]:
        """Start writing the version's files into the index while its commit is made
        (:mod:`.version_rows`); :meth:`record_version` links them once the commit exists."""
        return self.mirror.index.stage_version(self.sid, _records(files))

    def record_version(
        self, state: IndexState, files: Spool, staged: Optional[StagedVersion] = None, **fields: Any
    ) -> None:
        index = self.mirror.index
        if staged is not None:
            vid = staged.finish(**fields)
        else:
            vid = index.record_version(self.sid, entries=_records(files), **fields)
        state.now_at(index.version_by_commit(self.sid, str(fields["commit"])) or {"id": vid})

    def set_pending(self, pending: list[Pending]) -> None:
        self.mirror.index.set_pending(self.sid, pending)

    def register(self, message: str) -> None:
        self.mirror.register(self.relpath, message)


def sync_source(
    mirror: Mirror,
    source: Source,
    *,
    engine: str = "fast-import",
    progress: Optional[ProgressCallback] = None,
    trigger: str = "cli",
    lock_wait: bool | float = True,
    runner: Optional[Callable[..., object]] = None,
) -> SyncReport:
    """Bring one source's dataset and index rows up to date with its archive.

    ``runner`` (a :class:`neuromirror.engine.executor.Runner`, e.g. a Dask cluster) runs the
    dataset work elsewhere and returns its index writes; this process still holds the
    source's lock and is the index's only writer.  Without it, all runs here.
    """
    sid: str = source.id
    relpath: str = source.relpath
    report = SyncReport(source=sid, dataset=relpath)
    index = mirror.index
    with mirror.lock(sid, wait=lock_wait):
        mirror.ensure_root()
        index.ensure_source(sid, source.archive, source.remote_id, relpath)
        run_id = index.start_run(sid, trigger)
        t0 = time.perf_counter()
        try:
            with timing.collecting() as timings:
                if runner is None:
                    sync_dataset(
                        mirror, source, report, Recorder(mirror, sid, relpath), engine=engine, progress=progress
                    )
                else:
                    runner(mirror, source, report, engine=engine, progress=progress)
            report.timings = {k: round(v, 4) for k, v in timings.items()}
            report.timings["total"] = round(time.perf_counter() - t0, 4)
        except BaseException as exc:  # recorded, then re-raised for the caller to report
            # Ctrl-C (or a stopping service) is not the archive's or the mirror's failure
            report.outcome = "failed" if isinstance(exc, Exception) else "interrupted"
            report.error = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else one_line(exc)
            ds = mirror.dataset_path(relpath)
            try:
                if (ds / ".git").exists():
                    if runner is None:  # a task recovers on its worker (which may still be writing)
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
) -> None:
    """The sync of one source under its lock: listing, diff, commits and tags; the index and
    the root superdataset are written through ``recorder``."""
    sid: str = source.id
    relpath: str = source.relpath
    ds = mirror.dataset_path(relpath)
    head: Optional[str] = None
    state = recorder.state(None)
    if (ds / ".git").exists():
        ds = recorder.ensure_dataset(source.describe())
        for action in mirror.recover(ds):
            report.warnings.append(f"recovered {relpath}: {action}")
        _repair_once(ds, report)
        head = gitutil.rev_parse(ds, "HEAD")
        if head and state.index.version_by_commit(sid, head) is None and _has_versions(ds):
            recorder.reindex(ds)
            report.warnings.append(f"index of {sid} was behind its dataset: rebuilt from the dataset")
        state = recorder.state(head)
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
        if head:  # an interrupted run may have committed without updating the root
            recorder.register(f"[neuromirror] {sid}: registered")
        return
    ds = recorder.ensure_dataset(source.describe())
    _repair_once(ds, report)  # a new dataset: only marked
    head = start_head = gitutil.rev_parse(ds, "HEAD") if start_head is None else start_head
    url_remotes = source.prepare_dataset(ds)
    writer = make_writer(engine, ds, url_remotes=url_remotes)
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
                current = _current_state(ds, head, state)
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
            head = gitutil.rev_parse(ds, "HEAD")
            tag_needed = bool(snap.tag) and gitutil.ref_sha(ds, f"refs/tags/{snap.tag}") is None
            if d.n == 0 and not tag_needed:
                if snap.kind == "draft" and head and state.head_version:
                    recorder.draft_modified(state, snap.remote_modified)
                continue
            crashpoint("before-commit")
            staged = recorder.stage(d.files)
            try:
                with timing.phase("registration+commit"):
                    if d.n == 0 and head and _is_commit_of(ds, head, sid, snap):
                        commit = head  # an interrupted run made this version's commit but not its tag
                    else:
                        commit = writer.commit(d.changes, message=_commit_message(sid, snap, d), date=snap.date).commit
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
        recorder.set_pending(pending)
    new_head = gitutil.rev_parse(ds, "HEAD")
    crashpoint("before-register")
    if new_head != start_head or not report.versions:
        recorder.register(f"[neuromirror] {sid}: {', '.join(v['label'] for v in report.versions) or 'registered'}")
    report.outcome = "ok" if report.versions else "unchanged"
    for p in report.pending:
        report.warnings.append(f"{p.path}: {p.reason}")


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


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    return first if len(first) < 400 else first[:397] + "..."

"""A restore run: the named versions' files -> archive objects -> each looked at, fetched, checked, written.

Per object (``-J`` threads): the target is asked first (HEAD, or the file), so that what already
holds the right bytes costs no store read and a rerun after a finished or killed run writes nothing;
an absent object's bytes come from the first store with a good copy (:mod:`.copies`) — a file the
mirror keeps in git, from the dataset's git (:mod:`.gitfiles`) — checked against the git-annex key,
then written whole (:mod:`.targets`).  An object holding other bytes is left
alone and named (exit 1), or with ``force`` overwritten where the old bytes stay (a versioned bucket).

After a write into the very bucket and key a file's recorded S3 URL names (the archive's own
bucket), the object's new versionId is registered as another URL of the same git-annex key on the
git-annex branch (under the source's lock): clones and ``get`` find the restored bytes by it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence, cast
from urllib.parse import quote

from neuromirror.annex.logs import branch_logs, web_urls
from neuromirror.dataset.files import VersionFiles, each_version_file
from neuromirror.index.rows import Version
from neuromirror.index.version_rows import add_entry_urls
from neuromirror.keep.inflight import batches
from neuromirror.records import FileNote
from neuromirror.restore.copies import BadCopy, Copies, NoGoodCopy
from neuromirror.restore.gitfiles import GitRows, from_git, git_objects
from neuromirror.restore.objects import ArchiveObject, Unplaced, locator_for, place
from neuromirror.restore.report import RestoreReport, write_entry
from neuromirror.restore.retire import replaced, retire
from neuromirror.restore.targets import DIFFERS, SAME, DirTarget, Refused, S3Target
from neuromirror.util.crashpoints import crashpoint
from neuromirror.util.progress import ByteCalls
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.records import ProgressCallback

#: objects looked at per batch: their store checks, container listings and recorded URLs (bounded memory)
BATCH = 5000


@dataclass
class RestoreOptions:
    dry_run: bool = False
    force: bool = False
    jobs: int = 4
    stores: Optional[list[str]] = None  # only these stores (UUIDs or URLs); None: every known store
    every: bool = False  # a drill: every store's copy of each object read and hashed, not just the first good
    #: a dry run: called with each object it would write (:func:`~neuromirror.restore.report.write_entry`),
    #: as it is decided, so that a caller streams them (``--json``) and nothing holds the list
    each: Optional[Callable[[dict], None]] = None
    #: told ``("objects TARGET", done, of)`` and ``("restore TARGET", bytes, of)`` as objects are settled (not in
    #: a dry run): :class:`Told`
    progress: Optional[ProgressCallback] = None
    #: ``restore --dask``: the objects fetched and written by the cluster's workers (:mod:`neuromirror.keep.cluster`)
    cluster: Any = None
    index: str = ""  # the index file the workers read the stores' checks from (read-only)


@dataclass
class _Done:
    obj: ArchiveObject
    state: str  # written | same | would_write | differs | overwritten | failed
    why: str = ""
    version_id: Optional[str] = None
    bad: list[BadCopy] = field(default_factory=list)
    origin: str = ""  # would_write: the URL of the store its bytes would be read from ("" for a file in git)
    overwrite: bool = False  # would_write: over an object holding other bytes (--force)


def plan(mirror: Datasets, targets: Sequence[Version], report: RestoreReport) -> list[ArchiveObject]:
    """The objects the versions' files are (one per archive key), their skips noted in ``report``."""
    return list(plan_iter(mirror, targets, report))


def plan_iter(mirror: Datasets, targets: Sequence[Version], report: RestoreReport) -> Iterator[ArchiveObject]:
    """:func:`plan`, one object at a time: one version's listing held at once, never all of them.

    The versions are read last named first, so that the later named wins an archive key two of them
    disagree on without holding their objects: what is remembered per key is two hashes (archive key,
    git-annex key), ~100 bytes, not the object (~600 bytes: 10^6 keys would be 600 MB)."""
    seen: dict[int, int] = {}
    locators = {t.source: locator_for(t.source) for t in targets}
    at = len(report.versions)
    for t in reversed(targets):
        label = f"{t.source}@{t.label}"
        entry: dict[str, Any] = {"source": t.source, "version": t.label, "commit": t.commit, "files": 0}
        report.versions.insert(at, entry)
        listing, in_git = VersionFiles(), GitRows(mirror.index)
        ds = mirror.dataset_path(t.relpath)
        for f in each_version_file(in_git, ds, t.id, listing):
            entry["files"] += 1
            got = place(f, t.source, label, locators[t.source])
            if _admit(got, seen, report):
                yield cast(ArchiveObject, got)
        # the files it keeps in git that the archive serves: their bytes come from git
        for got in git_objects(ds, t.commit, in_git.files, t.source, label, locators[t.source]):
            entry["files"] += 1
            if _admit(got, seen, report):
                yield cast(ArchiveObject, got)
        report.skipped += [FileNote(path, "", None, why, archive_key="") for path, why in listing.problems]


def _admit(got: ArchiveObject | Unplaced, seen: dict[int, int], report: RestoreReport) -> bool:
    """Whether ``got`` is an object to restore: placed, and the first named of its archive key (a later
    version named holding other content there is noted as displaced)."""
    if isinstance(got, Unplaced):
        report.skipped.append(FileNote(got.path, got.key, None, got.why, archive_key=""))
        return False
    name, content = hash(got.archive_key), hash(got.key)
    if name not in seen:
        seen[name] = content
        return True
    if seen[name] != content:
        why = f"{got.label}'s state; a later version named holds another"
        report.displaced.append(FileNote(got.path, got.key, got.size, why, archive_key=got.archive_key))
    return False


class Told:
    """A restore's progress: ``("objects TARGET", objects settled, objects)`` and ``("restore TARGET", bytes,
    bytes)`` (:class:`~neuromirror.util.progress.ByteCalls`), an object done once written or found holding the
    right bytes (its size counted), or failed or left alone (none); the totals grow batch by batch, None
    until the last batch is read."""

    def __init__(self, progress: Optional[ProgressCallback], target: str) -> None:
        self.progress, self.target = progress, target
        self.calls: Optional[ByteCalls] = None

    def add(self, batch: list[ArchiveObject], last: bool) -> None:
        if self.progress is None:
            return
        sizes = [o.size for o in batch]
        if self.calls is None:
            self.calls = ByteCalls(self.progress, self.target, sizes, word="restore", unit="objects", more=not last)
        else:
            self.calls.add(sizes, last=last)

    def settled(self, d: _Done) -> None:
        if self.calls is not None:
            right = d.state in (SAME, "written", "overwritten")
            self.calls.finish(d.obj.archive_key, (d.obj.size or 0) if right else 0)

    def close(self) -> None:
        if self.calls is not None:
            self.calls.close()


def restore_objects(
    mirror: Datasets,
    objs: Iterable[ArchiveObject],
    target: S3Target | DirTarget,
    options: RestoreOptions,
    report: RestoreReport,
    copies: Optional[Copies] = None,
) -> None:
    """Look at, fetch, check and write ``objs``; the outcome of each in ``report``.

    In batches of :data:`BATCH` objects (their store checks read, their containers listed, their
    URLs recorded per batch), so that memory stays flat however many keys: ``objs`` may be a stream."""
    start = time.monotonic()
    copies = copies or Copies(mirror.index, options.stores)
    if isinstance(target, DirTarget) and not options.dry_run:
        target.clean()
    told = Told(None if options.dry_run else options.progress, target.url)
    with ThreadPoolExecutor(max_workers=max(1, options.jobs), thread_name_prefix="restore") as pool:
        for batch, last in batches(objs, BATCH):
            told.add(batch, last)
            _restore_batch(mirror, batch, target, options, report, copies, pool, told)
    told.close()
    if isinstance(target, DirTarget) and not options.dry_run:
        target.clean()
    report.seconds += time.monotonic() - start
    report.thaw_packs, report.thaw_bytes = len(copies.to_thaw), sum(copies.to_thaw.values())
    thawing = None if options.dry_run else copies.thawing()
    if thawing is not None:
        raise thawing  # exit 75: what was readable is written, a rerun once thawed writes the rest


def _restore_batch(
    mirror: Datasets,
    batch: list[ArchiveObject],
    target: S3Target | DirTarget,
    options: RestoreOptions,
    report: RestoreReport,
    copies: Copies,
    pool: ThreadPoolExecutor,
    told: Told,
) -> None:
    """One batch: its store checks read and its containers listed once, each object restored on the pool
    (``told`` as each is settled), the archive URLs it gave recorded; then its checks forgotten (memory stays
    flat)."""
    keys = [o.key for o in batch]
    copies.prime(keys)
    report.objects += len(batch)
    report.bytes += sum(o.size or 0 for o in batch)
    if isinstance(target, S3Target):
        target.prefetch(batch)
    new_urls: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (source, repo) -> (key, url)
    if options.dry_run and isinstance(target, S3Target):
        batch = _dry_listed(batch, target, copies, report, new_urls, options)
    for d in _done(batch, target, copies, options, pool):
        _count(d, target, report, new_urls, options.each)
        told.settled(d)
    recorded, retired = _register(mirror, new_urls, target)
    report.recorded_urls += recorded
    report.retired_urls += retired
    copies.drop(keys)


def _done(
    batch: list[ArchiveObject], target: S3Target | DirTarget, copies: Copies, options: RestoreOptions, pool: Any
) -> Iterable[_Done]:
    """Each object restored: on this host's pool, or (``restore --dask``, not a dry run) by the cluster's workers
    in batches, each worker reading the stores and writing the target itself; what they did comes back here."""
    if options.cluster is None or options.dry_run:
        return pool.map(lambda o: _one(o, target, copies, options), batch)
    from neuromirror.keep.cluster import each_ended, keys_per_task

    step = keys_per_task()
    parts = [RestoreBatch(target.url, tuple(batch[i : i + step]), options) for i in range(0, len(batch), step)]
    futures = [options.cluster.submit_fn("restore", restore_batch, part) for part in parts]
    return _ended(each_ended(futures), options.cluster.tasks)


def _ended(results: Iterable[tuple[list[_Done], dict[str, Any]]], tasks: list[dict[str, Any]]) -> Iterator[_Done]:
    for done, row in results:
        tasks.append(row)
        yield from done


class RestoreBatch:
    """One task's objects, the target's URL, and what the worker needs of the options (not the cluster)."""

    def __init__(self, target: str, objs: tuple[ArchiveObject, ...], options: RestoreOptions) -> None:
        self.target, self.objs = target, objs
        self.options = RestoreOptions(force=options.force, jobs=options.jobs, stores=options.stores)
        self.index = options.index


def restore_batch(batch: RestoreBatch, contact: Optional[str] = None) -> tuple[list[_Done], dict[str, Any]]:
    """The worker's entry point: its objects looked at, fetched from the stores, checked and written; idempotent
    (an object written by an attempt that died is found the same, and left)."""
    from neuromirror.engine.dask_executor import guard_profiler
    from neuromirror.engine.executor import worker_name
    from neuromirror.index.db import Index
    from neuromirror.network import identity
    from neuromirror.restore.targets import open_target
    from neuromirror.util import timing

    guard_profiler()
    identity.set_contact(contact)
    clock = timing.Stopwatch()
    target = open_target(batch.target)
    copies = Copies(Index(batch.index, readonly=True), batch.options.stores)
    copies.prime([o.key for o in batch.objs])
    if isinstance(target, S3Target):
        target.prefetch(list(batch.objs))
    with ThreadPoolExecutor(max_workers=max(1, batch.options.jobs), thread_name_prefix="restore-task") as pool:
        done = list(pool.map(lambda o: _one(o, target, copies, batch.options), batch.objs))
    row = {"task": f"restore {len(done)} objects into {batch.target}", "worker": worker_name()}
    return done, {**row, "seconds": round(clock.seconds(), 3)}


def _dry_listed(
    batch: list[ArchiveObject],
    target: S3Target,
    copies: Copies,
    report: RestoreReport,
    new_urls: dict[tuple[str, str], list[tuple[str, str]]],
    options: RestoreOptions,
) -> list[ArchiveObject]:
    """A dry run's objects a listing shows absent cost no request: counted here, not by a thread (a thread's
    hand-over costs more than the look); the others, left for the pool (a HEAD each), are returned."""
    rest = []
    for o in batch:
        if target.listed_absent(o):
            _count(_would_write(o, copies), target, report, new_urls, options.each)
        else:
            rest.append(o)
    return rest


def _count(
    d: _Done,
    target: S3Target | DirTarget,
    report: RestoreReport,
    new_urls: dict[tuple[str, str], list[tuple[str, str]]],
    each: Optional[Callable[[dict], None]] = None,
) -> None:
    o = d.obj
    report.bad_copies += d.bad
    size = o.size or 0
    if d.state == SAME:
        report.same += 1
        _archive_url(o, d, target, new_urls)
    elif d.state == "would_write":
        report.would_write += 1
        report.would_write_bytes += size
        if each is not None:
            each(write_entry(o, target.url, d.origin, d.overwrite))
    elif d.state in ("written", "overwritten"):
        report.written += 1
        report.written_bytes += size
        if d.state == "overwritten":
            report.overwritten += 1
        _archive_url(o, d, target, new_urls)
    elif d.state == DIFFERS:
        report.differs.append(FileNote(o.path, o.key, o.size, d.why, archive_key=o.archive_key))
    else:
        report.failed.append(FileNote(o.path, o.key, o.size, d.why, archive_key=o.archive_key))


def _one(o: ArchiveObject, target: S3Target | DirTarget, copies: Copies, options: RestoreOptions) -> _Done:
    try:
        state, vid = target.look(o)
    except Refused as exc:
        return _Done(o, "failed", f"refused: {exc}")
    except Exception as exc:  # the target unreadable: this object fails, the run goes on
        return _Done(o, "failed", "looking at the target: " + _line(exc))
    if state == SAME:
        return _Done(o, SAME, version_id=vid)
    overwrite = False
    if state == DIFFERS:
        if not options.force:
            return _Done(o, DIFFERS, "holds other bytes: left alone (a forced restore overwrites it)")
        why_not = target.can_overwrite()
        if why_not is not None:
            return _Done(o, DIFFERS, f"holds other bytes, not overwritten: {why_not}")
        overwrite = True
    if options.dry_run:
        return _would_write(o, copies, overwrite)
    bad: list[BadCopy] = []
    try:
        data = from_git(o) if o.git else copies.fetch(o.key, o.size, bad, every=options.every)
    except NoGoodCopy as exc:
        return _Done(o, "failed", str(exc), bad=bad)
    try:
        vid = target.put(o, data, overwrite)
    except Refused as exc:
        return _Done(o, "failed", f"refused: {exc}", bad=bad)
    except Exception as exc:
        return _Done(o, "failed", "writing: " + _line(exc), bad=bad)
    finally:
        data.close()
    crashpoint("restore-put")
    return _Done(o, "overwritten" if overwrite else "written", version_id=vid, bad=bad)


def _would_write(o: ArchiveObject, copies: Copies, overwrite: bool = False) -> _Done:
    """A dry run's object that is absent (or would be overwritten): written if some store holds it."""
    if o.git:  # a file kept in git: the dataset holds its bytes
        return _Done(o, "would_write", overwrite=overwrite)
    store = copies.holder(o.key)
    if store is not None:
        copies.note_thaw(o.key, store)
        return _Done(o, "would_write", origin=store, overwrite=overwrite)
    return _Done(o, "failed", "no store holds a copy")


def _archive_url(
    o: ArchiveObject, d: _Done, target: S3Target | DirTarget, new_urls: dict[tuple[str, str], list[tuple[str, str]]]
) -> None:
    """An object now right in the very bucket and key its recorded URL names: its versioned URL, to record."""
    if d.version_id and isinstance(target, S3Target) and o.url and target.locate(o) == (o.bucket, o.archive_key):
        url = f"{o.url}?versionId={quote(d.version_id, safe='')}"
        new_urls.setdefault((o.source, o.repo), []).append((o.key, url))


def _line(exc: BaseException) -> str:
    return one_line(exc, 300, joined=True)


def _register(
    mirror: Datasets, new_urls: dict[tuple[str, str], list[tuple[str, str]]], target: S3Target | DirTarget
) -> tuple[int, int]:
    """The restored objects' versioned URLs not on the branch yet, registered for their keys
    (git-annex's ``registerurl``, through the branch's one writer: :mod:`neuromirror.annex.branch_writer`):
    a rerun, or a run after a killed one, records what is missing only;
    then the URLs of the versions they replaced that the bucket no longer holds retired (:mod:`.retire`).
    (URLs registered, URLs retired)."""
    from neuromirror.annex.branch_writer import register_urls

    n = gone = 0
    for (source, repo), pairs in sorted(new_urls.items()):
        with mirror.lock(source):
            logs = branch_logs(Path(repo), [k for k, _ in pairs], ".log.web")
            todo = [(k, u) for k, u in pairs if u not in web_urls(logs.get(k))]
            if todo:
                register_urls(Path(repo), todo)
            # the index's file states of those keys too (``urls``, ``keep`` read it; ``reindex`` rebuilds it
            # from the branch): every pair, so that a run killed between the two writes is made whole
            add_entry_urls(mirror.index.db.conn, source, pairs)
            if isinstance(target, S3Target):
                gone += retire(mirror, source, Path(repo), replaced(source, pairs, logs, target))
        n += len(todo)
    return n, gone

"""``keep``: the content of pinned versions copied into the lab's store, and recorded where clones look.

Per version, in the order named: its files are read from the index (:mod:`.files`), the
filters applied, the keys the store lacks streamed from their registered URLs straight into
the store by ``-J`` threads, each verified against its key before it is put in place
(:mod:`.transfer`); then, under the source's lock, every key of the version the store holds
is recorded on the git-annex branch of its dataset (or Zarr subdataset) together with the
store's remote record (:mod:`neuromirror.store.record`), so that a clone finds the store by
itself — after the archive's URLs, which stay first.

Rerunning converges: what the store has (the key's final path exists: only verified bytes get
there) is "already there" and not copied again, and the recording step writes only what the
branch does not say yet; with everything kept it is a no-op.  A copy found there without a check
recorded in the index (a killed keep placed it and died before recording it) is read back and
hashed first, so that it counts as a verified copy only once its bytes were seen right; a key whose
copy has a check recorded is taken as held without a look at the store (as ``status --copies``
counts it), so that a rerun with everything kept does no per-key file-system work.  ``--budget`` counts what the store
holds when the run starts (once), reserves each file's size before its copy starts, and stops
cleanly at the first file that would not fit: what was copied is recorded, the rest reported.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from neuromirror.dataset.files import VersionFiles, annex_key, each_version_file, selected, skip_reason
from neuromirror.index.rows import Version
from neuromirror.index.store_checks import checks_of, note_kept, record_checked, record_store
from neuromirror.keep.inflight import BATCH, Told, batches, window_for
from neuromirror.keep.keyset import Held, KeySet
from neuromirror.keep.marks import Marks, terms_of
from neuromirror.keep.report import FileNote, KeepRun, VersionReport
from neuromirror.records import VersionFile
from neuromirror.store.base import Store
from neuromirror.store.holders import Locations
from neuromirror.store.lindi import keep_reference, made_after, may_have_reference
from neuromirror.store.record import CHUNK, record_present
from neuromirror.store.transfer import Outcome, Transfer, read_back
from neuromirror.util import disk
from neuromirror.util.memory.heap import trim_heap
from neuromirror.util.progress import ByteCount

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.records import ProgressCallback

log = logging.getLogger("neuromirror.keep")

#: copies under way at most, per ``-J`` thread
WINDOW = 8
#: keys of a version held (names) before those are recorded, a version of more recorded as it goes
FLUSH = 5 * CHUNK


@dataclass
class KeepOptions:
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_file_size: Optional[int] = None
    budget: Optional[int] = None
    jobs: int = 4
    all_versions: bool = False
    #: told ``("files SPEC@VERSION -> STORE", files, of)`` and ``("keep SPEC@VERSION -> STORE", bytes, of)``
    #: as each version's copies go in (:class:`~neuromirror.util.progress.ByteCalls`)
    progress: Optional[ProgressCallback] = None
    #: the free space keeping needs to start, on the root and a directory store (util.disk; None: env or 1 GiB)
    min_free: Optional[object] = None
    #: ``keep --from STORE``: copy only from these stores, never asking the archive (moving a store's content)
    from_stores: Sequence[Store] = ()
    #: ``keep --prune``: the versions of the named sources a store was given and this run leaves out are
    #: dropped from it, with the keys only they needed (:mod:`.prune`)
    prune: bool = False
    #: ``keep --dask``: the copies made by the cluster's workers (:class:`.cluster.KeepCluster`)
    cluster: Optional[object] = None


class _Budget:
    def __init__(self, limit: int, used: int):
        self.limit = limit
        self.used = used
        self.stopped = False

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; after the first refusal every later file is refused (a clean stop)."""
        if self.stopped or self.used + size > self.limit:
            self.stopped = True
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used -= size


@dataclass
class _RunState:
    """What this run knows of the store, per source: its versions share most keys, other sources few
    (a key met again in another source is looked up again, in the index): memory follows the largest
    source, not the archive."""

    source: str = ""
    kept_now: KeySet = field(default_factory=KeySet)  # keys this run put in the store
    present: KeySet = field(default_factory=KeySet)  # keys seen in the store
    not_fitting: KeySet = field(default_factory=KeySet)  # keys the budget left out
    confirmed: KeySet = field(default_factory=KeySet)  # keys found unchecked in the store and read back right
    unchecked: KeySet = field(default_factory=KeySet)  # keys another process put there meanwhile: no check here
    locations: Locations = field(default_factory=Locations)  # what the branches already record
    references: set[str] = field(default_factory=set)  # keys whose LINDI reference the store was given or had


def keep(
    mirror: Datasets, store: Store, targets: Sequence[Version], options: KeepOptions, *, others: Sequence[Store] = ()
) -> KeepRun:
    """Keep every target version's content in ``store``; the report says what happened to each file.

    ``others``: the lab's other stores, read for a key no URL serves any more (:mod:`.stores`)."""
    for where in [mirror.root, getattr(store, "path", None)]:  # a directory store's disk, too
        if where is not None:
            disk.check_free(where, f"keeping into {store}", option=options.min_free)
    ident = store.identity  # made now: every dataset records the same UUID
    record_store(mirror.index, ident.uuid, store.url, store.kind, ident.name)
    run = KeepRun(str(store), store.kind, ident.uuid, ident.name, budget=options.budget)
    run.stale_removed = store.clean_stale()
    budget = None
    if options.budget is not None:
        run.store_bytes_before = store.used_bytes()
        budget = _Budget(options.budget, run.store_bytes_before)
    state = _RunState()
    marks = Marks(mirror)
    terms = terms_of(options.include, options.exclude, options.max_file_size)
    transfer = Transfer(store, jobs=options.jobs, others=others)
    try:
        with ThreadPoolExecutor(max_workers=max(1, options.jobs), thread_name_prefix="keep") as pool:
            for target in targets:
                mark = marks.find(target, ident.uuid, terms)
                if mark is not None and made_after(mirror.root, mark.get("marked")):
                    mark = None  # a reference made since: the version is looked at again, to keep it beside its key
                if mark is not None:  # every key recorded here and checked, and nothing since says otherwise
                    run.versions.append(_from_mark(target, mark))
                    run.marked += 1
                    continue
                if state.source != target.source:  # what a source's versions share, held for that source only
                    state.source = target.source
                    state.kept_now, state.present, state.confirmed = KeySet(), KeySet(), KeySet()
                    state.unchecked = KeySet()
                rep = _keep_version(mirror, store, target, options, budget, state, transfer, pool, run, marks)
                run.versions.append(rep)
                if rep.branches is not None:  # whole: its mark, for the next run
                    counts = {"files": rep.files, "bytes": rep.bytes, "excluded": rep.excluded, "in_git": rep.in_git}
                    marks.put(target, ident.uuid, terms, rep.branches, counts)
    finally:
        transfer.close()
    note_kept(mirror.index, ident.uuid, [(t.id, t.source) for t in targets])  # what keep --prune may drop later
    run.budget_stopped = bool(budget and budget.stopped)
    return run


def _from_mark(target: Version, mark: dict) -> VersionReport:
    """A version's report from its mark: every selected file already in the store, nothing recorded anew."""
    row, counts = target, mark["counts"]
    rep = VersionReport(target.source, row.label, row.kind, row.commit, target.relpath, from_mark=True)
    rep.files, rep.bytes = int(counts["files"]), int(counts["bytes"])
    rep.already, rep.already_bytes = rep.files, rep.bytes
    rep.excluded, rep.in_git = int(counts["excluded"]), int(counts["in_git"])
    return rep


def _keep_version(
    mirror: Datasets,
    store: Store,
    target: Version,
    options: KeepOptions,
    budget: Optional[_Budget],
    state: _RunState,
    transfer: Transfer,
    pool: ThreadPoolExecutor,
    run: KeepRun,
    marks: Marks,
) -> VersionReport:
    """One version kept: its files sorted (filtered, held already, to look for), the store asked for the
    rest, the keys it lacks copied within the budget, then every key it holds recorded."""
    row = target
    rep = VersionReport(target.source, row.label, row.kind, row.commit, target.relpath)
    listing = VersionFiles()  # its counts and problems, filled as the files are read
    files = each_version_file(mirror.index, mirror.dataset_path(target.relpath), row.id, listing)
    present = Held()  # keys of this version the store holds, until recorded
    bar = Told(options.progress, f"{rep.label} -> {store}")
    transfer.on_bytes = bar.update
    window = window_for(options.cluster, pool, transfer, options.from_stores, WINDOW * max(1, options.jobs), rep.label)
    try:
        try:
            for batch, last in batches(files, BATCH):
                unseen = window.join(_sort_files(rep, batch, options, state, present))
                todo = _look_up(mirror, store, unseen, rep, state, present, pool, run)
                scheduled = _fitting(todo, budget, rep, state, run)
                bar.add([fs[0].size for _, fs in scheduled], last=last)
                for key, fs in scheduled:
                    for outcome, done in window.submit(key, fs):
                        _settle(outcome, done, rep, state, present, budget, run, bar)
                if present.count >= FLUSH:
                    run.references += _references(mirror.root, store, present, state)
                    _record(mirror, store, target.source, present, rep, state, marks, heads=False)
                trim_heap()  # a batch's buffers freed: their pages back to the system (heap.bound_heap)
            for outcome, done in window.drain():
                _settle(outcome, done, rep, state, present, budget, run, bar)
        except BaseException:  # Ctrl-C: stop the copies, record what got in, then stop
            transfer.stop.set()
            window.stop()
            window.salvage(present)
            _record(mirror, store, target.source, present, rep, state, marks)
            raise
    finally:
        bar.close()
    rep.in_git = listing.in_git
    rep.failed += [FileNote(path, None, None, why) for path, why in listing.problems]
    run.references += _references(mirror.root, store, present, state)
    heads = _record(mirror, store, target.source, present, rep, state, marks)
    rep.skipped.sort(key=lambda n: n.path)
    rep.failed.sort(key=lambda n: n.path)
    if _whole(rep, state, present):
        rep.branches = heads  # every selected key recorded here and checked, at these branch commits
    return rep


def _whole(rep: VersionReport, state: _RunState, present: Held) -> bool:
    """Is the version whole in the store: nothing failed or skipped, every key held checked? Only then
    does it earn a mark the next run may trust."""
    if rep.failed or rep.skipped or present.unchecked:
        return False
    return not any(k in state.unchecked for k in present.each())


def _sort_files(
    rep: VersionReport,
    annexed: list[VersionFile],
    options: KeepOptions,
    state: _RunState,
    present: Held,
) -> dict[str, list[VersionFile]]:
    """The version's annexed files through the filters into ``rep``; a key this run kept or found held
    already counts as held (into ``present``) with no look at the store. The keys this run meets first
    in this version, each with its files."""
    unseen: dict[str, list[VersionFile]] = {}
    for f in annexed:
        if not selected(f.path, options.include, options.exclude):
            rep.excluded += 1
            continue
        rep.files += 1
        rep.bytes += f.size or 0
        why = skip_reason(f, options.max_file_size)
        if why is not None:
            rep.skipped.append(FileNote(f.path, f.key, f.size, why))
        elif f.key in state.kept_now:
            _count(rep, f, kept=True)
            present.add(f)
        elif f.key in state.present:
            _count(rep, f, kept=False)
            present.add(f)
        else:
            unseen.setdefault(annex_key(f), []).append(f)
    return unseen


def _look_up(
    mirror: Datasets,
    store: Store,
    unseen: dict[str, list[VersionFile]],
    rep: VersionReport,
    state: _RunState,
    present: Held,
    pool: ThreadPoolExecutor,
    run: KeepRun,
) -> dict[str, list[VersionFile]]:
    """Which of ``unseen`` the store holds: a key with a good check of its copy here recorded is taken as
    held (as status --copies counts it; re-reading is verify --stores's job), with no look at the store;
    the others are looked for there, and a copy found is read back (:func:`_confirm`). The keys to copy."""
    todo: dict[str, list[VersionFile]] = {}
    found: dict[str, list[VersionFile]] = {}  # keys in the store without a check recorded
    uuid = store.identity.uuid
    checks = checks_of(mirror.index, list(unseen))
    for key, files in unseen.items():
        if uuid in checks.get(key, ()):
            state.present.add(key)
            _held(rep, files, present)
        elif store.has(key):
            found[key] = files
        else:
            todo[key] = files
    wrong = _confirm(store, found, pool, run, state)
    for key, files in found.items():
        if key in wrong:
            todo[key] = files  # wrong bytes, now removed: copied again below
            continue
        state.present.add(key)
        _held(rep, files, present)
    return todo


def _fitting(
    todo: dict[str, list[VersionFile]], budget: Optional[_Budget], rep: VersionReport, state: _RunState, run: KeepRun
) -> list[tuple[str, list[VersionFile]]]:
    """The keys to copy that fit the budget (each reserved now); the others skipped, and a key several
    versions share counted once as not fitting."""
    over = f"over the budget: the store would hold more than {budget.limit} bytes" if budget else ""
    scheduled = []
    for key, files in todo.items():
        if budget is not None and not budget.take(files[0].size or 0):
            rep.skipped += [FileNote(f.path, f.key, f.size, over) for f in files]
            if key not in state.not_fitting:  # a key several versions share did not fit once
                state.not_fitting.add(key)
                run.not_fitting += 1
                run.not_fitting_bytes += files[0].size or 0
            continue
        scheduled.append((key, files))
    return scheduled


def _held(rep: VersionReport, files: list[VersionFile], present: Held) -> None:
    for f in files:
        _count(rep, f, kept=False)
        present.add(f)


def _confirm(
    store: Store, found: dict[str, list[VersionFile]], pool: ThreadPoolExecutor, run: KeepRun, state: _RunState
) -> set[str]:
    """The copies this run found in the store with no good check recorded — a killed keep put them there
    (verified on the way in) and died before recording them — read back and hashed, so that a rerun after
    a kill counts them as verified copies honestly: the good ones recorded as checked with the version's
    record (:func:`_record`), a wrong one removed from the store (it is copied again). The keys removed."""
    if not found:
        return set()
    keys = list(found)
    wrong: set[str] = set()
    for key, (verdict, _) in zip(keys, pool.map(lambda k: read_back(store, k, found[k][0].size), keys)):
        if verdict == "good":
            state.confirmed.add(key)
        else:  # wrong bytes, or gone since has() said yes: copied again (an unreadable store fails that copy)
            store.forget_key(key)
            wrong.add(key)
    run.reread += len(keys)
    run.reread_wrong += len(wrong)
    return wrong


def _settle(
    outcome: Outcome,
    files: list[VersionFile],
    rep: VersionReport,
    state: _RunState,
    present: Held,
    budget: Optional[_Budget],
    run: KeepRun,
    bar: ByteCount,
) -> None:
    size = files[0].size or 0
    if outcome.ok:
        if outcome.placed:
            state.kept_now.add(outcome.key)
            run.transferred += 1
            run.transferred_bytes += size
        else:
            state.present.add(outcome.key)
            state.unchecked.add(outcome.key)
            if budget is not None:
                budget.give_back(size)
        for f in files:
            _count(rep, f, kept=outcome.placed)
            present.add(f)
        bar.finish(outcome.key, size)
    else:
        if budget is not None:
            budget.give_back(size)
        for f in files:
            rep.failed.append(FileNote(f.path, f.key, f.size, outcome.why))
        bar.finish(outcome.key, 0)


def _count(rep: VersionReport, f: VersionFile, *, kept: bool) -> None:
    if kept:
        rep.kept += 1
        rep.kept_bytes += f.size or 0
    else:
        rep.already += 1
        rep.already_bytes += f.size or 0


def _references(root: Path, store: Store, present: Held, state: _RunState) -> int:
    """The LINDI references the mirror made of the held keys, put into the store beside them (a store's copy
    of a file that lost its archive copy opens by its reference too); how many went in now.  Each key asked
    once a run; its pack sealed with the keys' (the branch's record syncs the store), else here."""
    put = 0
    for key in (k for k in present.each() if may_have_reference(k) and k not in state.references):
        state.references.add(key)
        try:
            put += bool(keep_reference(root, store, key))
        except OSError as exc:  # the key is kept all the same; a later keep (the next version's) tries again
            state.references.discard(key)
            log.warning("%s: the LINDI reference of %s not kept: %s", store, key, exc)
    if put:
        store.sync()
    return put


def _copied_now(keys: list[str], state: _RunState) -> bool:
    """Past one chunk, or a key copied now: no read of the logs first (~10 ms a Zarr dataset, 20,000 a dandiset)."""
    return len(keys) > CHUNK or any(k in state.kept_now for k in keys)


def _record(
    mirror: Datasets,
    store: Store,
    source: str,
    present: Held,
    rep: VersionReport,
    state: _RunState,
    marks: Marks,
    *,
    heads: bool = True,
) -> dict[str, str]:
    """The keys the store holds, recorded on their repositories' git-annex branches under the source's lock
    (those the branches record already left alone); then those this run put there (hashed on the way in) or
    read back (:func:`_confirm`) as checked now, in the index: a check row follows the branch's record.
    ``present`` is emptied.  With ``heads``: the branch heads of every repository the version gave a key,
    read under the lock once every key is recorded (a mark's commits)."""
    if not present.repos:
        return {}
    with mirror.lock(source):
        for repo, keys in present.keys.items():
            # a rerun: recorded already (past one chunk, or a key copied now: record_present writes what is missing)
            if keys and (_copied_now(keys, state) or not state.locations.all_in(repo, store.identity.uuid, keys)):
                rep.recorded += record_present(repo, store, keys)
        got = marks.heads(sorted(present.repos)) if heads else {}
    keys = list(present.each())
    present.unchecked = present.unchecked or any(k in state.unchecked for k in keys)
    present.keys, present.count = {}, 0
    record_checked(mirror.index, store.identity.uuid, [k for k in keys if k in state.kept_now], stored=True)
    record_checked(mirror.index, store.identity.uuid, [k for k in keys if k in state.confirmed])
    return got

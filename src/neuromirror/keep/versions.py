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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from neuromirror.dataset.files import VersionFiles, annex_key, each_version_file, selected, skip_reason
from neuromirror.index.rows import Version
from neuromirror.index.store_checks import checks_of, note_kept, record_checked, record_store
from neuromirror.keep.gap import Gap, GapRun, Pass, in_pass, passes_of
from neuromirror.keep.inflight import BATCH, Budget, Told, batches, window_for
from neuromirror.keep.keyset import Held, KeySet
from neuromirror.keep.marks import Marks, terms_of
from neuromirror.keep.report import FileNote, KeepRun, VersionReport
from neuromirror.keep.runstate import RunState, confirm, count, fitting, held, settle, whole
from neuromirror.readers import kept_beside
from neuromirror.records import VersionFile
from neuromirror.store.base import Store
from neuromirror.store.record import CHUNK, record_present
from neuromirror.store.transfer import Transfer
from neuromirror.util import disk
from neuromirror.util.memory.heap import trim_heap

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
    #: ``keep --covered-by``: what another backup holds left out, the rest kept in passes (:mod:`.gap`)
    gap: Optional[Gap] = None
    #: ``keep --dask``: the copies made by the cluster's workers (:class:`.cluster.KeepCluster`)
    cluster: Optional[object] = None


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
        budget = Budget(options.budget, run.store_bytes_before)
    state = RunState(gap=options.gap)
    marks = Marks(mirror)
    terms = terms_of(options.include, options.exclude, options.max_file_size)
    transfer = Transfer(store, jobs=options.jobs, others=others)
    gap_run = GapRun(options.gap.to_json()) if options.gap is not None else None
    try:
        with ThreadPoolExecutor(max_workers=max(1, options.jobs), thread_name_prefix="keep") as pool:
            keeping = _Keeping(mirror, store, options, budget, state, transfer, pool, run, marks, terms)
            for phase in passes_of(options.gap):
                state.phase, before = phase, (run.transferred, run.transferred_bytes)
                for target in targets:
                    keeping.target(target)
                if gap_run is not None and options.gap is not None and phase is not None:
                    label = options.gap.phases[phase].label
                    gap_run.passes.append(Pass(label, run.transferred - before[0], run.transferred_bytes - before[1]))
    finally:
        transfer.close()
    broken = getattr(store, "broken", None)  # a packed store's pack discarded (its disk full): the run ends on it
    if broken is not None:
        raise broken
    run.gap = gap_run
    note_kept(mirror.index, ident.uuid, [(t.id, t.source) for t in targets])  # what keep --prune may drop later
    run.budget_stopped = bool(budget and budget.stopped)
    return run


@dataclass
class _Keeping:
    """One store's keep run: what each version's pass is given."""

    mirror: Datasets
    store: Store
    options: KeepOptions
    budget: Optional[Budget]
    state: RunState
    transfer: Transfer
    pool: ThreadPoolExecutor
    run: KeepRun
    marks: Marks
    terms: str

    def target(self, target: Version) -> None:
        """One version in one pass: taken whole from its mark (first met), else the files the store lacks kept."""
        state, run, uuid = self.state, self.run, self.store.identity.uuid
        done = state.reports.get(target.id)
        if done is not None and done.from_mark:
            return  # whole in the store: nothing for a later pass
        mark = self.marks.find(target, uuid, self.terms) if done is None and state.first else None
        if mark is not None and any(k.made_after(self.mirror.root, mark.get("marked")) for k in kept_beside()):
            mark = None  # a reader's file made since (a reference): the version is looked at again, to keep it beside its key
        if mark is not None:  # every key recorded here and checked, and nothing since says otherwise
            state.reports[target.id] = _from_mark(target, mark)
            run.versions.append(state.reports[target.id])
            run.marked += 1
            return
        if state.source != target.source:  # what a source's versions share, held for that source only
            state.source = target.source
            state.kept_now, state.present, state.confirmed = KeySet(), KeySet(), KeySet()
            state.unchecked = KeySet()
        k = self
        rep = _keep_version(k.mirror, k.store, target, k.options, k.budget, state, k.transfer, k.pool, run, k.marks)
        if done is None:
            state.reports[target.id] = rep
            run.versions.append(rep)
        if rep.branches is not None:  # whole: its mark, for the next run
            counts = {"files": rep.files, "bytes": rep.bytes, "excluded": rep.excluded, "in_git": rep.in_git}
            self.marks.put(target, uuid, self.terms, rep.branches, counts)


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
    budget: Optional[Budget],
    state: RunState,
    transfer: Transfer,
    pool: ThreadPoolExecutor,
    run: KeepRun,
    marks: Marks,
) -> VersionReport:
    """One version kept: its files sorted (filtered, held already, to look for), the store asked for the
    rest, the keys it lacks copied within the budget, then every key it holds recorded."""
    row = target
    rep = state.reports.get(target.id) or VersionReport(target.source, row.label, row.kind, row.commit, target.relpath)
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
                scheduled = fitting(todo, budget, rep, state, run)
                bar.add([fs[0].size for _, fs in scheduled], last=last)
                for key, fs in scheduled:
                    for outcome, done in window.submit(key, fs):
                        settle(outcome, done, rep, state, present, budget, run, bar)
                if present.count >= FLUSH:
                    run.references += _references(mirror.root, store, present, state)
                    _record(mirror, store, target.source, present, rep, state, marks, heads=False)
                trim_heap()  # a batch's buffers freed: their pages back to the system (heap.bound_heap)
            for outcome, done in window.drain():
                settle(outcome, done, rep, state, present, budget, run, bar)
        except BaseException:  # Ctrl-C: stop the copies, record what got in, then stop
            transfer.stop.set()
            window.stop()
            window.salvage(present)
            _record(mirror, store, target.source, present, rep, state, marks)
            raise
    finally:
        bar.close()
    if state.first:
        rep.in_git = listing.in_git
        rep.failed += [FileNote(path, None, None, why) for path, why in listing.problems]
    run.references += _references(mirror.root, store, present, state)
    heads = _record(mirror, store, target.source, present, rep, state, marks)
    rep.skipped.sort(key=lambda n: n.path)
    rep.failed.sort(key=lambda n: n.path)
    if whole(rep, state, present):
        rep.branches = heads  # every selected key recorded here and checked, at these branch commits
    return rep


def _sort_files(
    rep: VersionReport,
    annexed: list[VersionFile],
    options: KeepOptions,
    state: RunState,
    present: Held,
) -> dict[str, list[VersionFile]]:
    """The version's annexed files through the filters into ``rep``; a key this run kept or found held
    already counts as held (into ``present``) with no look at the store. The keys this run meets first
    in this version, each with its files."""
    unseen: dict[str, list[VersionFile]] = {}
    for f in annexed:
        if not selected(f.path, options.include, options.exclude):
            rep.excluded += state.first
            continue
        now, covered = in_pass(state.gap, state.phase, f)
        if covered and state.first:
            rep.covered += 1
            rep.covered_bytes += f.size or 0
        if not now:
            continue
        rep.files += 1
        rep.bytes += f.size or 0
        why = skip_reason(f, options.max_file_size)
        if why is not None:
            rep.skipped.append(FileNote(f.path, f.key, f.size, why))
        elif f.key in state.kept_now:
            count(rep, f, kept=True)
            present.add(f)
        elif f.key in state.present:
            count(rep, f, kept=False)
            present.add(f)
        else:
            unseen.setdefault(annex_key(f), []).append(f)
    return unseen


def _look_up(
    mirror: Datasets,
    store: Store,
    unseen: dict[str, list[VersionFile]],
    rep: VersionReport,
    state: RunState,
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
            held(rep, files, present)
        elif store.has(key):
            found[key] = files
        else:
            todo[key] = files
    wrong = confirm(store, found, pool, run, state)
    for key, files in found.items():
        if key in wrong:
            todo[key] = files  # wrong bytes, now removed: copied again below
            continue
        state.present.add(key)
        held(rep, files, present)
    return todo


def _references(root: Path, store: Store, present: Held, state: RunState) -> int:
    """What the index-time readers made of the held keys (LINDI references), put into the store beside them
    (a store's copy of a file that lost its archive copy opens by its reference too); how many went in now.
    Each key asked once a run; its pack sealed with the keys' (the branch's record syncs the store), else here."""
    put = 0
    for hook in kept_beside():
        for key in (k for k in present.each() if hook.wants(k) and k not in state.references):
            state.references.add(key)
            try:
                put += bool(hook.put(root, store, key))
            except OSError as exc:  # the key is kept all the same; a later keep (the next version's) tries again
                state.references.discard(key)
                log.warning("%s: the %s of %s not kept: %s", store, hook.what, key, exc)
    if put:
        store.sync()
    return put


def _copied_now(keys: list[str], state: RunState) -> bool:
    """Past one chunk, or a key copied now: no read of the logs first (~10 ms a Zarr dataset, 20,000 a dandiset)."""
    return len(keys) > CHUNK or any(k in state.kept_now for k in keys)


def _record(
    mirror: Datasets,
    store: Store,
    source: str,
    present: Held,
    rep: VersionReport,
    state: RunState,
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

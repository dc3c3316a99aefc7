"""What one keep run knows while it goes, and how each copy's outcome is settled into the version's report.

Split from :mod:`.versions` (the walk over versions and passes): the run's key sets per source, the budget's
reservations, a copy found unchecked in the store read back, a finished copy counted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from neuromirror.keep.gap import Gap
from neuromirror.keep.inflight import Budget
from neuromirror.keep.keyset import Held, KeySet
from neuromirror.keep.report import FileNote, KeepRun, VersionReport
from neuromirror.records import VersionFile
from neuromirror.store.base import Store
from neuromirror.store.holders import Locations
from neuromirror.store.transfer import Outcome, read_back
from neuromirror.util.progress import ByteCount


@dataclass
class RunState:
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
    gap: Optional[Gap] = None  # keep --covered-by's plan: which pass each file is kept in
    phase: Optional[int] = None  # this pass (None: the only one)
    reports: dict[int, VersionReport] = field(default_factory=dict)  # each version's, over the passes

    @property
    def first(self) -> bool:
        """The first pass over a version: its counts (excluded, in git, problems) taken then only."""
        return not self.phase


def whole(rep: VersionReport, state: RunState, present: Held) -> bool:
    """Is the version whole in the store: nothing failed or skipped, every key held checked? Only then
    does it earn a mark the next run may trust."""
    if rep.failed or rep.skipped or present.unchecked or state.gap is not None:
        return False
    return not any(k in state.unchecked for k in present.each())


def fitting(
    todo: dict[str, list[VersionFile]], budget: Optional[Budget], rep: VersionReport, state: RunState, run: KeepRun
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


def held(rep: VersionReport, files: list[VersionFile], present: Held) -> None:
    for f in files:
        count(rep, f, kept=False)
        present.add(f)


def confirm(
    store: Store, found: dict[str, list[VersionFile]], pool: ThreadPoolExecutor, run: KeepRun, state: RunState
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


def settle(
    outcome: Outcome,
    files: list[VersionFile],
    rep: VersionReport,
    state: RunState,
    present: Held,
    budget: Optional[Budget],
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
            count(rep, f, kept=outcome.placed)
            present.add(f)
        bar.finish(outcome.key, size)
    else:
        if budget is not None:
            budget.give_back(size)
        for f in files:
            rep.failed.append(FileNote(f.path, f.key, f.size, outcome.why))
        bar.finish(outcome.key, 0)


def count(rep: VersionReport, f: VersionFile, *, kept: bool) -> None:
    if kept:
        rep.kept += 1
        rep.kept_bytes += f.size or 0
    else:
        rep.already += 1
        rep.already_bytes += f.size or 0

"""``keep`` into several stores (``--to`` repeated, ``stores:`` in a mirror definition) toward ``copies: N``.

Each store is filled in turn, exactly as one store is (same formats, each its own remote on the
git-annex branch, so every clone finds them all); a key no archive URL serves any more is copied
from another store that has it (verified like any download).  A store that cannot be used at all —
its directory unwritable or gone, its bucket removed — does not stop the others: its run records
the error (``KeepRun.error``, shown, exit 1) and the next keep tries it again; nothing about it is
skipped silently.  Afterwards every version's copies are counted (:mod:`.copies`) and, once all its
files have the wanted number, its keep lag is recorded.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from neuromirror.errors import UserError
from neuromirror.index.rows import Version
from neuromirror.index.store_checks import COUNTS, marks_of, restamp_mark, set_wanted, wanted
from neuromirror.keep.copies import VersionCopies, from_mark, mark_counts, note_lag, version_copies
from neuromirror.keep.marks import Marks
from neuromirror.keep.prune import prune
from neuromirror.keep.report import KeepRun
from neuromirror.keep.versions import KeepOptions, keep
from neuromirror.results import Item, Result, Status
from neuromirror.store.base import Store
from neuromirror.store.holders import Locations
from neuromirror.store.packs.writer import PackDiscarded
from neuromirror.store.reach import Lost, survey
from neuromirror.store.registry import Stores
from neuromirror.util import gitutil
from neuromirror.util.disk import DiskFull, check_free, check_room, existing, filesystem, is_full, min_free
from neuromirror.util.memory.heap import bound_heap, trim_heap
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets


@dataclass(repr=False)
class StoresRun(Result):
    """What ``keep`` did in each store and the copies counted after (``Datasets.keep``, ``keep --json``).

    An item per version and store (``error``: files not kept; ``impossible``: the budget stopped it), one per
    store that was down (``error``) and one per version with fewer verified copies than wanted (``error``):
    ``.ok`` is False on any of them, as ``keep`` exits 1.  ``to_json()``'s own ``ok`` stays what it always
    said, every store's run ok."""

    runs: list[KeepRun]
    copies: int
    counts: list[VersionCopies] = field(default_factory=list)
    lags: dict[str, float] = field(default_factory=dict)  # version label -> keep lag (s), recorded by this run
    counts_marked: int = 0  # versions whose copies were taken from their count marks
    lost: list[Lost] = field(default_factory=list)  # stores not reachable here: their copies not counted
    tasks: Optional[list[dict[str, Any]]] = None  # keep --dask: each task the cluster ran (keep.cluster)

    @property
    def stores_ok(self) -> bool:
        """Every store's run ok (the JSON's ``ok``), the copies aside."""
        return all(r.ok for r in self.runs)

    def items(self) -> list[Item]:
        out: list[Item] = []
        for r in self.runs:
            if r.error is not None:
                out.append(Item(Status.ERROR, r.store, f"store down: {r.error}"))
            for v in r.versions:
                status = Status.ERROR if v.failed else Status.OK if v.kept else Status.NOTNEEDED
                out.append(Item(status, f"{v.label} in {r.store}", v.lines()[0]))
            if r.budget_stopped:
                out.append(Item(Status.IMPOSSIBLE, r.store, r.budget_line() or "the budget stopped the run"))
        if self.copies > 1:  # as keep exits 1
            out += [Item(Status.ERROR, c.label, f"fewer than {self.copies} verified copies") for c in self.short]
        return out

    def lines(self) -> list[str]:
        """What ``keep`` prints: each store's versions and summary (its prune), then the copies counted."""
        out: list[str] = []
        for r in self.runs:
            if len(self.runs) > 1:
                out.append(f"== {r.store}")
            out += [line for v in r.versions for line in v.lines()]
            out.append(r.summary())
            if r.pruned is not None:
                out.append(r.pruned.line())
            if r.gap is not None:
                out += r.gap.lines()
        if len(self.runs) > 1 or self.copies > 1:
            out += [c.line() for c in self.counts]
        return out + [x.line() for x in self.lost]

    def __repr__(self) -> str:
        stores = ", ".join(r.store for r in self.runs)
        return f"<StoresRun {len(self.counts)} version(s) into {stores} copies={self.copies} {'ok' if self.ok else 'FAILED'}>"

    @property
    def short(self) -> list[VersionCopies]:
        """Versions with files that have fewer than the wanted copies."""
        return [c for c in self.counts if not c.ok]

    def to_json(self) -> dict[str, Any]:
        """``keep --json``'s report, the API's the same: one store's report as it always was (its versions and
        prune at the top) with the copies counted; several stores' as a list."""
        if len(self.runs) == 1:
            one = self.runs[0].to_json()
            one.update(
                {
                    "copies": self.copies,
                    "counts": [c.to_json() for c in self.counts],
                    "lags": self.lags,
                    "counts_marked": self.counts_marked,
                    "unreachable": [x.to_json() for x in self.lost],
                }
            )
            return one if self.tasks is None else {**one, "tasks": self.tasks}
        many = {
            "stores": [r.to_json() for r in self.runs],
            "copies": self.copies,
            "counts": [c.to_json() for c in self.counts],
            "lags": self.lags,
            "counts_marked": self.counts_marked,
            "unreachable": [x.to_json() for x in self.lost],
            "ok": self.stores_ok,
        }
        return many if self.tasks is None else {**many, "tasks": self.tasks}


def _down(store: Store, exc: BaseException) -> KeepRun:
    text = one_line(exc, 1000, joined=True)
    where = getattr(store, "path", None)
    run = KeepRun(str(store), store.kind, "", "")
    run.full = is_full(exc)  # not a store that is down: a disk filled as the keep went
    if isinstance(exc, PackDiscarded) and run.full:  # a packed store's: the file system named, what was lost
        text = f"{exc.strerror}: free space there and keep again"
    elif where is not None and run.full:
        text = f"{filesystem(where)} is full ({getattr(exc, 'strerror', None) or text}): free space there or keep elsewhere"
    run.error = text[:600]
    return run


def keep_into(
    mirror: Datasets,
    stores: Sequence[Store],
    targets: Sequence[Version],
    options: KeepOptions,
    copies: Optional[int] = None,
) -> StoresRun:
    """Keep ``targets`` in every store of ``stores``; count each version's copies against ``copies``.

    ``copies`` None (no ``--copies``): each source's recorded wanted count (1 if none), left as it is —
    the wanted count changes only when asked.  A key no archive URL serves any more is copied from any
    of the lab's stores that holds a good copy: the others named, then every store keep or verify used
    here (:func:`other_stores`)."""
    # too little free space is the host's refusal, said before any store is filled; not a store that is down
    # each disk named with the store on it (a full target is named, not every store of the run)
    check_free(mirror.root, f"keeping into {', '.join(str(s) for s in stores)}", option=options.min_free)
    for s in stores:
        path = getattr(s, "path", None)
        if path is not None:
            check_free(path, f"keeping into {s}", option=options.min_free)
    path = getattr(stores[0], "path", None) if len(stores) == 1 else None
    if path is not None:
        _room_for(stores[0], path, targets, options)  # one store: its disk too small is the keep's one line
    bound_heap()  # what the -J threads free reused and given back (a 10^6-key keep)
    with gitutil.lean_readers():  # the versions' logs read with git's caches bounded (10^6 keys a version)
        runs = _fill(mirror, stores, targets, options)
        trim_heap()  # the runs' key sets let go before the counts read the branches again
        sources = list(dict.fromkeys(t.source for t in targets))
        if copies is not None:
            for source in sources:
                set_wanted(mirror.index, source, copies)
        want = {source: wanted(mirror.index, source, 1) for source in sources}
        out = StoresRun(runs, copies if copies is not None else max(want.values(), default=1))
        _count(mirror, out, targets, want)
    return out


def _room_for(store: Store, path: Path, targets: Sequence[Version], options: KeepOptions) -> None:
    """A store on a local disk that cannot hold what the keep copies into it is said before anything is copied:
    one line naming the file system and how much more is needed.  What is known beforehand is a lower bound:
    the targets' annexed bytes less all the store holds already (a filtered or budgeted keep is not judged)."""
    if options.include or options.exclude or options.max_file_size or options.budget or options.prune:
        return
    if shutil.disk_usage(existing(path)).free >= sum(t.bytes or 0 for t in targets) + min_free(options.min_free):
        return  # it fits even if every byte were new: no need to read the versions' trees
    keys = {f.key: f.size or 0 for t in targets for f in t.files(urls=False) if f.key}
    need = sum(keys.values()) - store.used_bytes()
    if need > 0:
        check_room(path, need, f"keeping into {store}", option=options.min_free)


def _fill(mirror: Datasets, stores: Sequence[Store], targets: Sequence[Version], options: KeepOptions) -> list[KeepRun]:
    """Each store filled in turn (and pruned, with ``prune``); a store that is down is its run's error."""
    runs: list[KeepRun] = []
    known = other_stores(mirror, stores)
    for i, store in enumerate(stores):
        others = [s for j, s in enumerate(stores) if j != i] + known
        if options.from_stores:  # --from: those stores only, no archive request
            others = [s for s in options.from_stores if s.url != store.url]
        try:
            path = getattr(store, "path", None)
            if len(stores) > 1 and path is not None:
                _room_for(store, path, targets, options)  # that store not started; the others get their copies
            runs.append(keep(mirror, store, targets, options, others=others))
        except DiskFull as exc:
            if len(stores) == 1 or "below min_free" in str(exc):
                raise
            runs.append(_down(store, exc))
            continue
        except (UserError, OSError) as exc:  # the store is down: the others still get their copies
            runs.append(_down(store, exc))
            continue
        if options.prune:
            try:
                runs[-1].pruned = prune(mirror, store, targets)
            except OSError as exc:  # kept, not pruned: the next --prune finds the same versions dropped
                runs[-1].error = f"pruning failed: {one_line(exc, 300, joined=True)}"
    return runs


def _count(mirror: Datasets, out: StoresRun, targets: Sequence[Version], want: dict[str, int]) -> None:
    """Every version's copies counted (from its count mark when nothing since can change it), its keep lag
    noted, and a version whole in every store marked so that the next run need not count it again."""
    locations = Locations()  # a dataset's versions come one after another: its logs read once
    marks = Marks(mirror)
    out.lost = list(survey(mirror.index).values())  # what a store not reachable here holds counts as no copy
    lost = {x.uuid for x in out.lost}
    for target in targets:
        n = want[target.source]
        terms = json.dumps({"copies": n})
        mark = marks.find(target, COUNTS, terms)
        if mark is not None and lost & set(mark["counts"]["stores"]):
            mark = None  # counted with a store since lost: counted again without it
        if mark is not None:  # counted before, and nothing on the branches since can change the count
            out.counts.append(from_mark(target, n, mark["counts"]))
            out.counts_marked += 1
            continue
        counted = version_copies(mirror, target, n, locations, lag=True)
        out.counts.append(counted)
        lag = note_lag(mirror, target, counted)
        if lag is not None:
            out.lags[counted.label] = lag
        if counted.ok and not counted.unverified and counted.branches is not None:
            marks.put(target, COUNTS, terms, counted.branches, mark_counts(counted))
            _restamp(mirror, target, out.runs, counted)


def other_stores(mirror: Datasets, named: Sequence[Store]) -> list[Store]:
    """Every store keep or verify used here (the index's store records) besides ``named``: where a key the
    archive lost can be copied from.  Only read (``open_key``), never written nor given an identity: a
    store gone or changed since just fails that read, and every copy is checked against its key on the
    way in, wherever it came from."""
    have = {s.url for s in named}
    return [s for s in Stores(mirror.index).by_url() if s.url not in have]


def _restamp(mirror: Datasets, target: Version, runs: Sequence[KeepRun], counted: VersionCopies) -> None:
    """The store marks of a version every file of which has a verified copy in the store at the branch
    commits just counted: those commits are theirs too (the other stores' recording moved the branches
    after each store's mark was made; without this the next run would read those changes again)."""
    marks = marks_of(mirror.index, target.id)
    fileset = target.fileset
    assert counted.branches is not None
    for run in runs:
        mark = marks.get(run.uuid) if run.uuid else None
        if mark is None or counted.stores.get(run.uuid) != counted.files:
            continue
        if mark["fileset"] != fileset or mark["version_commit"] != target.commit:
            continue
        old: dict[str, str] = json.loads(mark["branches"] or "{}")
        if all(rel in counted.branches for rel in old):
            new = {rel: counted.branches[rel] for rel in old}
            if new != old:
                restamp_mark(mirror.index, target.id, run.uuid, json.dumps(new, sort_keys=True))

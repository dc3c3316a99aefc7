"""``verify --stores``: the stored bytes re-read and checked against their keys; a bad copy repaired at once.

For the versions named (a SPEC without a version: every state recorded, older drafts included), every
copy the datasets' git-annex branches record in a store — or a slice: ``--fraction F`` (the copies
whose last check is oldest first, never-checked ones before all) or ``--older-than DAYS`` — is read
back through the store's own reader (a file of a directory store, an object of an S3 store) and
hashed. A good copy's check time is recorded per key and store
(:mod:`neuromirror.index.store_checks`). A copy whose bytes are wrong, or that is gone, is at once:

1. removed from the record: git-annex's location log says the store no longer has the key
   (``setpresentkey KEY UUID 0``), the check row goes, and wrong bytes are deleted from the store;
2. re-kept: copied again into that store from the archive's URLs or another store's copy
   (:class:`neuromirror.store.transfer.Transfer`, verified on the way in) and recorded again;
3. reported, with what was done; the command then exits non-zero naming each bad or missing copy.

A store that is not reachable here (its directory gone, its mount point empty, its bucket or credentials
refused) is named by URL and name, its recorded copies counted as unverified, and the run exits non-zero
(unless ``allow_unreachable``); it is never made again by looking, and the first time it was found so is
recorded (:mod:`neuromirror.store.reach`).  A store that opens but cannot read a copy is reported per copy as
unreadable and left as it is: its copies are not proof, but nothing says they are wrong either.  The service runs a
slice of this every cycle (``verify: {fraction | period}``), so that every stored byte is re-read
within the period the lab sets.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Optional, Sequence

from neuromirror.dataset.files import annex_repo
from neuromirror.dataset.versions import select_versions
from neuromirror.errors import UserError
from neuromirror.index import store_checks
from neuromirror.index.rows import Version
from neuromirror.spec import Spec, parse_spec
from neuromirror.store.base import Store
from neuromirror.store.record import record_absent, record_present
from neuromirror.store.registry import Stores
from neuromirror.store.transfer import Transfer
from neuromirror.util.dates import iso_z
from neuromirror.util.progress import ByteCalls
from neuromirror.verify.recorded import Copy, recorded_copies, urls_of
from neuromirror.verify.rereads import read_copies
from neuromirror.verify.stores_report import Finding, StoresCheck, Unreached

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.records import ProgressCallback
    from neuromirror.store.packs.check import Scan


def _targets(mirror: Datasets, specs: Sequence[Spec]) -> list[Version]:
    """The versions whose copies are re-read: a SPEC without a version (and no SPEC: every source a keep gave a
    store or set a wanted number for, :func:`neuromirror.index.store_checks.copies_sources`) names every state recorded, older
    drafts included — a copy kept for an older draft state (``keep SPEC@COMMIT``) is a copy like any other."""
    if not specs:
        specs = [parse_spec(s, allow_version=False) for s in store_checks.copies_sources(mirror.index)]
    return select_versions(mirror.index, specs, all_versions=True)


class _Stores:
    """The stores the branches record, opened once each (:class:`neuromirror.store.registry.Stores`: by
    the URL keep used, else where ``remote.log`` says it is); None for one not reachable here.  With ``only``
    (``--store X``) only X's copies are checked, but every other store recorded is still where a bad
    copy in X is repaired from (opened when a repair needs it)."""

    def __init__(self, mirror: Datasets, only: Optional[Store]):
        self.registry = Stores(mirror.index)
        self.only = only
        self.opened: dict[str, Optional[Store]] = {}
        self.recorded: dict[str, dict[str, str]] = {}  # uuid -> remote.log fields, of every store seen

    def checked(self, uuid: str) -> bool:
        """Whether the copies of store ``uuid`` are re-read this time."""
        return self.only is None or self.only.identity.uuid == uuid

    def get(self, uuid: str, fields: dict[str, str]) -> Optional[Store]:
        self.recorded.setdefault(uuid, fields)
        if uuid not in self.opened:
            self.opened[uuid] = self._open(uuid, fields)
        return self.opened[uuid]

    def others(self, uuid: str) -> list[Store]:
        """Every store recorded but ``uuid``'s that opens here: where a copy is repaired from."""
        found = [self.get(u, fields) for u, fields in list(self.recorded.items()) if u != uuid]
        return [s for s in found if s is not None]

    def why(self, uuid: str) -> str:
        """Why store ``uuid`` did not open here, in a line."""
        from neuromirror.store.location import open_store
        from neuromirror.store.reach import probe

        url = self.registry.url_of(uuid)
        if not url:
            return "no place recorded for it here"
        try:
            return probe(open_store(url), uuid) or "not readable here"
        except UserError as exc:
            return str(exc)

    def _open(self, uuid: str, fields: dict[str, str]) -> Optional[Store]:
        if self.only is not None and self.only.identity.uuid == uuid:
            return self.only
        self.registry.add({uuid: fields})
        return self.registry.open(uuid)


def verify_stores(
    mirror: Datasets,
    specs: Sequence[Spec] = (),
    *,
    fraction: Optional[float] = None,
    older_than: Optional[float] = None,
    only: Optional[Store] = None,
    jobs: int = 4,
    repair: bool = True,
    progress: Optional[ProgressCallback] = None,
    allow_unreachable: bool = False,
    cluster: Any = None,
) -> StoresCheck:
    """Re-read the stored copies of the versions ``specs`` name (a slice: ``fraction`` or ``older_than``
    seconds); record good checks, remove and re-keep bad or missing copies; the findings.  ``progress``:
    told ``("copies stores", copies re-read, copies)`` and ``("verify stores", bytes, bytes)`` as each is;
    a store not reachable fails the run unless ``allow_unreachable``.  ``cluster``: the reads made by its workers
    (:mod:`.rereads`); the records and repairs stay here."""
    out = StoresCheck(allow_unreachable=allow_unreachable)
    opened = _Stores(mirror, only)
    scan = None if cluster is not None else _scan(only, specs, fraction, older_than, jobs)
    try:
        copies = _recorded_copies(mirror, specs, opened, out)
        _unreached(mirror, opened, copies, out)
        chosen = _slice(mirror, list(copies), fraction, older_than)
        if len(chosen) < len(copies):
            chosen = _whole_packs(opened, copies, chosen)
        _count(out, opened, copies)
        told = _told(progress, copies, chosen)
        good = _verdicts(out, opened, copies, chosen, jobs, scan, told, cluster)
        out.tasks = None if cluster is None else cluster.tasks
        if told is not None:
            told.close()
    finally:
        if scan is not None:
            scan.close()
    now = time.time()
    for uuid, keys in good.items():
        store_checks.record_checked(mirror.index, uuid, keys, when=now)
    if repair:
        _repair(mirror, opened, copies, out.findings, jobs)
    store_checks.record_verified(mirror.index, _results(out, specs, fraction, older_than))
    return out


def _results(
    out: StoresCheck, specs: Sequence[Spec], fraction: Optional[float], older_than: Optional[float]
) -> dict[str, dict[str, Any]]:
    """uuid -> this run's result in each store it re-read: what the backup page shows as its last verification."""
    scope = " ".join(str(s) for s in specs) or "every source kept"
    if fraction is not None or older_than is not None:
        scope += f" ({'fraction ' + str(fraction) if fraction is not None else f'older than {older_than:.0f} s'})"
    results = {}
    for uuid, s in out.per_store.items():
        mine = [f for f in out.findings if f.uuid == uuid]
        if not s["checked"] and not mine:
            continue  # a slice that re-read none of this store's copies says nothing of it
        unreadable = sum(f.problem == "unreadable" for f in mine)
        results[uuid] = {
            **s,
            "unreadable": unreadable,
            "repaired": sum(f.repaired for f in mine),
            "at": iso_z(out.started),
            "scope": scope,
            "ok": not mine,
        }
    return results


def _scan(
    only: Optional[Store], specs: Sequence[Spec], fraction: Optional[float], older_than: Optional[float], jobs: int
) -> Optional[Scan]:
    """A packed store's packs read whole from the start, while the branches are walked, when every copy
    of it is re-read (no SPEC, no slice): what the walk then finds recorded is answered from that reading.
    None otherwise: a slice, or some sources' keys, are read pack by pack once they are known."""
    whole = not specs and older_than is None and (fraction is None or fraction >= 1)
    if only is None or not whole or not _packed(only):
        return None
    from neuromirror.store.packs.check import Scan

    return Scan(only, jobs)


def _packed(store: Optional[Store]) -> bool:
    """A packed store (``pack+file://``, ``pack+s3://``): read pack by pack, a share of it as whole packs."""
    return store is not None and store.capabilities.packed


def _count(out: StoresCheck, opened: _Stores, copies: dict[tuple[str, str], Copy]) -> None:
    for uuid, _ in copies:
        s = opened.opened[uuid]
        assert s is not None
        entry = out.per_store.setdefault(uuid, {"url": s.url, "copies": 0, "checked": 0, "bad": 0, "missing": 0})
        entry["copies"] += 1


def _verdicts(
    out: StoresCheck,
    opened: _Stores,
    copies: dict[tuple[str, str], Copy],
    chosen: list[tuple[str, str]],
    jobs: int,
    scan: Optional[Scan],
    told: Optional[ByteCalls],
    cluster: Any = None,
) -> dict[str, list[str]]:
    """Each chosen copy read back: the findings into ``out``, ``told`` each; uuid -> the keys found good."""
    good: dict[str, list[str]] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="verify-stores") as pool:
        sizes = {item: copies[item].file.size for item in chosen}
        for (uuid, key), (verdict, why) in read_copies(opened.opened, sizes, chosen, pool, jobs, scan, cluster):
            if told is not None:
                told.finish(f"{uuid} {key}", copies[(uuid, key)].file.size or 0)
            out.checked += 1
            out.per_store[uuid]["checked"] += 1
            c = copies[(uuid, key)]
            if verdict == "good":
                out.good += 1
                good.setdefault(uuid, []).append(key)
                continue
            store = opened.opened[uuid]
            assert store is not None
            if verdict in ("bad", "missing"):
                out.per_store[uuid][verdict] += 1
            out.findings.append(Finding(store.url, uuid, c.source, c.file.path, key, verdict, why))
    return good


def _told(
    progress: Optional[ProgressCallback], copies: dict[tuple[str, str], Copy], chosen: list[tuple[str, str]]
) -> Optional[ByteCalls]:
    """The copies to re-read as ``copies stores`` and their bytes as ``verify stores`` (none: no call)."""
    if progress is None or not chosen:
        return None
    sizes = [copies[item].file.size for item in chosen]
    return ByteCalls(progress, "stores", sizes, word="verify", unit="copies")


def _recorded_copies(
    mirror: Datasets, specs: Sequence[Spec], opened: _Stores, out: StoresCheck
) -> dict[tuple[str, str], Copy]:
    """(uuid, key) -> one file holding it, for every copy the versions' git-annex branches record in a
    store re-read this time (:mod:`.recorded`); a store that does not open here goes to ``out.unreached``."""
    targets = [(mirror.dataset_path(t.relpath), t.id, t.source) for t in _targets(mirror, specs)]
    return recorded_copies(mirror.index, targets, lambda _repo, stores: _readable(stores, opened, out))


def _readable(stores: dict[str, dict[str, str]], opened: _Stores, out: StoresCheck) -> list[str]:
    """Of the stores a repository records (``stores``), those re-read this time (their copies wanted: those of
    a store not reachable here are counted, as unverified); the others remembered as sources for repairs."""
    readable: list[str] = []
    for uuid, fields in stores.items():
        if not opened.checked(uuid):
            opened.recorded.setdefault(uuid, fields)  # not re-read now: a source for repairs only
            continue
        if opened.get(uuid, fields) is None and uuid not in out.unreached:
            url = opened.registry.url_of(uuid) or ""
            name = (opened.registry.known.get(uuid) or {}).get("name") or fields.get("name") or uuid
            out.unreached[uuid] = Unreached(uuid, url, str(name), opened.why(uuid), time.time())
        readable.append(uuid)
    return readable


def _unreached(mirror: Datasets, opened: _Stores, copies: dict[tuple[str, str], Copy], out: StoresCheck) -> None:
    """The copies of stores not reachable here taken out of ``copies`` and counted as theirs; what was found of
    every store looked at recorded (since when one is not reachable: the first time)."""
    from neuromirror.store.reach import lost_stores

    for item in [i for i in copies if i[0] in out.unreached]:
        out.unreached[item[0]].copies += 1
        del copies[item]
    seen: dict[str, Optional[str]] = {u: None for u, s in opened.opened.items() if s is not None}
    seen.update({u: x.why for u, x in out.unreached.items()})
    store_checks.note_reach(mirror.index, {u: why for u, why in seen.items() if u in opened.registry.known})
    lost = lost_stores(mirror.index, {u: out.unreached[u].why for u in out.unreached})
    for uuid, u in out.unreached.items():
        if uuid in lost and lost[uuid].since < u.since:
            u.since = lost[uuid].since


def _slice(
    mirror: Datasets, items: list[tuple[str, str]], fraction: Optional[float], older_than: Optional[float]
) -> list[tuple[str, str]]:
    """The copies to read this time: all; those last checked before ``older_than`` seconds ago (or never);
    or the ``fraction`` whose last check is oldest (never-checked first)."""
    if older_than is None and (fraction is None or fraction >= 1):
        return items  # all of them: no check time to look up
    checks = store_checks.checks_of(mirror.index, [k for _, k in items])

    def when(item: tuple[str, str]) -> float:
        return checks.get(item[1], {}).get(item[0], -math.inf)

    if older_than is not None:
        cutoff = time.time() - older_than
        return [i for i in items if when(i) < cutoff]
    n = min(len(items), math.ceil(len(items) * (fraction or 0.0)))
    return sorted(items, key=when)[:n]


def _whole_packs(
    opened: _Stores, copies: dict[tuple[str, str], Copy], chosen: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """A slice widened, in each packed store, to every recorded copy in the packs holding a chosen one: a pack
    is re-read whole, every key in it checked, so that a slice is a share of packs (the oldest checked first)."""
    by_store: dict[str, list[str]] = {}
    for uuid, key in chosen:
        if _packed(opened.opened[uuid]):
            by_store.setdefault(uuid, []).append(key)
    if not by_store:
        return chosen
    from neuromirror.store.packs.check import pack_mates

    have = set(chosen)
    extra = [
        (uuid, key)
        for uuid, keys in by_store.items()
        for key in sorted(pack_mates(opened.opened[uuid], keys))
        if (uuid, key) in copies and (uuid, key) not in have
    ]
    return chosen + extra


def _repair(
    mirror: Datasets, opened: _Stores, copies: dict[tuple[str, str], Copy], findings: list[Finding], jobs: int
) -> None:
    """Each bad or missing copy: out of the record at once, its wrong bytes deleted, then re-kept."""
    for f in findings:
        if f.problem == "unreadable":
            continue
        store = opened.opened[f.uuid]
        assert store is not None
        c: Copy = copies[(f.uuid, f.key)]
        with mirror.lock(c.source):
            record_absent(annex_repo(c.file), f.uuid, [f.key])
        store_checks.forget(mirror.index, f.uuid, [f.key])
        # wrong bytes, or a key its store still names that does not read whole (a pack cut short)
        if f.problem == "bad" or (f.problem == "missing" and store.has(f.key)):
            try:
                store.forget_key(f.key)
            except OSError as exc:
                f.repair_error = f"the wrong bytes could not be removed: {exc}"
                continue
        others = opened.others(f.uuid)
        transfer = Transfer(store, jobs=jobs, others=others)
        try:
            outcome = transfer(f.key, c.file.size, urls_of(c.file))
        finally:
            transfer.close()
        if not outcome.ok:
            f.repair_error = outcome.why
            continue
        with mirror.lock(c.source):
            record_present(annex_repo(c.file), store, [f.key])
        store_checks.record_checked(mirror.index, f.uuid, [f.key], stored=True)
        f.repaired, f.repaired_from = True, outcome.origin

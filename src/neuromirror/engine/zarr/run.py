"""The Zarr assets of one DANDI snapshot: planned as the source lists them, mirrored by an executor.

The source hands each page's Zarr assets to a :class:`ZarrRun`, which it gets from the
sync's state (``IndexState.zarr_run``, typed on the source's side as
:class:`~neuromirror.sources.dandi.zarr_assets.ZarrRuns`): the source knows the archive,
this run knows the mirror — the index's cache of Zarr commits, the Zarrs' own datasets
(:mod:`.dataset`) and the parent dataset they live in.  The steps, and why an unchanged
Zarr costs no listing and no git process, are told in
:mod:`neuromirror.sources.dandi.zarr_assets`.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Optional, Union

from neuromirror.engine.zarr.backfill import Backfill
from neuromirror.engine.zarr.dataset import (
    assume_unchanged,
    datalad_id,
    exclude,
    excluded,
    find_commit,
    head_of,
    index_gitlinks,
    removed_gitlinks,
    tag,
    unexclude,
)
from neuromirror.engine.zarr.job import ZarrJob, ZarrRecord, mirror_zarr
from neuromirror.engine.zarr.manifest import manifest_root
from neuromirror.index.nested import ZARR_CACHE
from neuromirror.network import report as netreport
from neuromirror.network.failures import is_unreachable
from neuromirror.records import SUBDATASET, Entry, Pending, Refusal, Snapshot, SourceState, SubdatasetEntry, VersionKind
from neuromirror.sources.dandi import embargo
from neuromirror.sources.dandi.held import hold
from neuromirror.sources.dandi.zarr_assets import ZarrOwner, archive_checksum, note_zarr, stamp_zarrs
from neuromirror.util import gitutil, timing
from neuromirror.util.text import one_line

log = logging.getLogger("neuromirror.dandi")

#: index cache: "<zarr id> <checksum> <access>" -> the Zarr dataset's commit of that state
#: (index.nested reads the Zarr's object count and size from the checksum)
COMMIT_CACHE = ZARR_CACHE


def _key(zarr_id: str, checksum: str, access: str) -> str:
    return f"{zarr_id} {checksum} {access}"


class ZarrRun:
    """The Zarr assets of one snapshot: planned here, mirrored by an executor, gathered here.

    :meth:`add` decides per asset, cheaply and in the caller's thread, whether the
    mirror already holds its state — the archive's checksum (from the asset's
    metadata, or from the draft's Zarr listing the source made) looked
    up in the index's cache of Zarr commits, or in the Zarr dataset's history —
    and otherwise submits a :class:`.job.ZarrJob` to the executor.
    :meth:`entries` waits for the jobs and turns their records into subdataset
    entries for the dandiset's one commit; only here are the index (commit cache)
    and the dandiset's dataset (the index entry of a path that was a file) written.

    **A resync is O(changed Zarrs).**  A Zarr whose cached commit for the archive's
    (zarr id, checksum, access) is the very commit the last synced version recorded
    at its path, and which no run left in flight, is taken as it is from what the
    sync holds in memory: no git process and no file read (a dandiset of 20,000
    Zarrs spent seconds reading their HEADs and ids).  In flight: the Zarrs jobs
    wrote into, listed in the parent's ``.git/info/exclude`` from before the jobs run
    until the parent's commit registers them (:meth:`settle` then takes them out,
    keeping the file, which ``git status`` matches against every directory, short).
    A crash in between leaves them listed: the next run checks those against their
    datasets as before.
    """

    def __init__(self, source: ZarrOwner, snap: Snapshot, state: SourceState, parent: Path, executor: Executor):
        self.source = source
        self.snap = snap
        self.state = state
        self.executor = executor
        self.parent = parent
        self.embargoed = embargo.is_embargoed(source)
        self.access = "embargoed" if self.embargoed else "open"
        self._slots: dict[str, Union[Optional[Entry], Future[ZarrRecord]]] = {}  # asset path -> Entry | None | Future
        self._order: list[str] = []
        self.in_flight = excluded(parent)  # written by a run whose parent commit has not come (yet)
        self._checked: set[str] = set()  # paths whose index entry may still be a file (see entries())
        self._registered: set[str] = set()  # paths with a subdataset entry in this snapshot
        root = manifest_root(state)
        #: held Zarr states mirrored before manifests were written: listed once more for theirs
        self.backfill = Backfill(state, root, executor) if root else None

    def add(self, assets: list[dict]) -> None:
        """Plan the assets' Zarrs; submit the ones the mirror does not hold yet."""
        planned = self._plan(assets)
        cached = _cached_commits(self.state, [_key(z, c, self.access) for _, z, c in planned])
        previous = _previous_commits(self.state, [a["path"] for a, _, _ in planned])
        jobs = []
        for asset, zarr_id, checksum in planned:
            path = asset["path"]
            commit, zid = self._mirrored(
                path, zarr_id, checksum, cached.get(_key(zarr_id, checksum, self.access)), previous
            )
            if commit is not None:
                self._take(asset, zarr_id, checksum, commit, zid)
                continue
            jobs.append((path, self._job(asset, zarr_id, checksum)))
        if jobs:
            # new Zarr datasets stay out of the dandiset's status (and its crash recovery)
            # until the dandiset's commit registers them
            exclude(self.parent, [p for p, _ in jobs])
        for path, job in jobs:
            self._put(path, self.executor.submit(mirror_zarr, job))

    def _plan(self, assets: list[dict]) -> list[tuple[dict, str, str]]:
        """(asset, zarr id, the archive's checksum) of each Zarr asset whose checksum the archive has;
        one still without is pending, at its last state meanwhile."""
        known = self.source.zarr_checksums or {}
        planned: list[tuple[dict, str, str]] = []
        for asset in assets:
            path: str = asset["path"]
            checksum, reason = archive_checksum(self.source, asset, known)
            if checksum is None:
                self.snap.pending.append(Pending(path, reason, asset.get("asset_id")))
                self._put(path, _previous(self.state, self.parent, path))
                continue
            planned.append((asset, str(asset.get("zarr")), checksum))
        return planned

    def _mirrored(
        self, path: str, zarr_id: str, checksum: str, mirrored: Optional[str], previous: dict[str, str]
    ) -> tuple[Optional[str], Optional[str]]:
        """(the Zarr dataset's commit of this state, its datalad id if read) when the mirror holds it:
        as the last sync left it (nothing to read, see the class), else found in its dataset."""
        if mirrored is not None and previous.get(path) == mirrored and path not in self.in_flight:
            return mirrored, None
        zds = self.parent / path
        commit = self._held(zds, mirrored, zarr_id, checksum)
        self._checked.add(path)
        return commit, (datalad_id(zds) if commit is not None else None)

    def _take(self, asset: dict, zarr_id: str, checksum: str, commit: str, zid: Optional[str]) -> None:
        """A Zarr the mirror holds at this state: its subdataset entry, tagged for a published version,
        noted in the draft's stamp, and its manifest listed once more if it was written before them."""
        path = asset["path"]
        zds = self.parent / path
        if self.backfill is not None and not self.embargoed and self.backfill.wanted(zarr_id, checksum):
            self.backfill.submit(self._job(asset, zarr_id, checksum))
        if self.snap.tag:
            tag(zds, self.snap.tag, commit, self.snap.tag_message or self.snap.message, self.snap.date)
        note_zarr(self.snap, path, zarr_id, checksum)
        self._put(path, SubdatasetEntry(path, commit, "./" + path, zid))

    def _job(self, asset: dict, zarr_id: str, checksum: str) -> ZarrJob:
        """What a worker needs to mirror (or list) the Zarr of ``asset`` at ``checksum``."""
        path = asset["path"]
        md = asset.get("metadata")
        if md is None:
            md = asset["metadata"] = self.source.asset_metadata(asset["asset_id"])
        return ZarrJob(
            dandiset=self.source.identifier,
            api_url=self.source.api_url,
            path=path,
            zarr_id=zarr_id,
            asset_id=asset.get("asset_id"),
            dataset=str(self.parent / path),
            checksum=checksum,
            s3_base=self.source.s3_url(md) if isinstance(md, dict) else None,
            embargoed=self.embargoed,
            modified=asset.get("modified"),
            description=f"DANDI:{self.source.identifier} Zarr {path} ({zarr_id}) mirrored from {self.source.api_url}",
            tag=self.snap.tag,
            tag_message=self.snap.tag_message or self.snap.message,
            tag_date=self.snap.date,
            manifests=manifest_root(self.state),
        )

    def _put(self, path: str, value: Union[Optional[Entry], Future[ZarrRecord]]) -> None:
        if path not in self._slots:
            self._order.append(path)
        self._slots[path] = value

    def _held(self, zds: Path, cached: Optional[str], zarr_id: str, checksum: str) -> Optional[str]:
        """The Zarr dataset's commit of this state, if the mirror holds it (the draft: at HEAD)."""
        draft = self.snap.kind != VersionKind.PUBLISHED
        if cached is not None:
            if draft:
                return cached if head_of(zds) == cached else None
            # a new published version (once per version): the commit must exist in this dataset
            # (an index older or newer than the dataset could name another one)
            if (zds / ".git").is_dir() and gitutil.run(
                zds, "cat-file", "-e", f"{cached}^{{commit}}", check=False
            ).returncode == 0:
                return cached
            return find_commit(zds, zarr_id, checksum, self.access, head_only=False)
        return find_commit(zds, zarr_id, checksum, self.access, head_only=draft)

    def entries(self) -> dict[str, Optional[Entry]]:
        """Asset path -> its entry (None: nothing for it in this version), once every job is done."""
        out: dict[str, Optional[Entry]] = {}
        learned: list[tuple[str, str]] = []
        spent = timing.current()
        with timing.phase("zarr-wait"):
            for path in self._order:
                value = self._slots[path]
                out[path] = self._done(path, value, spent, learned) if isinstance(value, Future) else value
            if self.backfill is not None:
                self.backfill.wait(self.source.identifier)
        if learned:
            self._remember(learned)
        subs = {p: e.commit for p, e in out.items() if isinstance(e, SubdatasetEntry)}
        self._registered.update(subs)
        # a path whose index entry may be a file: checked against its dataset, or a job's
        index_gitlinks(self.parent, {p: c for p, c in subs.items() if p in self._checked})
        stamp_zarrs(self.snap)
        self._slots.clear()
        self._order.clear()
        self._checked.clear()
        return out

    def _done(
        self, path: str, value: Future[ZarrRecord], spent: Optional[timing.Timings], learned: list[tuple[str, str]]
    ) -> Optional[Entry]:
        """A job's entry once it is done, its requests and phases taken into the sync's; a Zarr the
        archive never answered for is held at its last state (asked again next sync)."""
        self._checked.add(path)
        try:
            rec = value.result()
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            return self._hold(path, exc)  # the archive never answered: its last state, asked again
        if rec.pid and rec.pid != os.getpid():  # a worker process's requests: the sync reports them too
            netreport.absorb(rec.network)
        if spent is not None:  # the job's own phases (summed over workers)
            spent.merge(rec.timings, prefix="zarr-")
        return self._finish(rec, learned)

    def _remember(self, learned: list[tuple[str, str]]) -> None:
        """The commits the jobs made, by Zarr state, into the index's cache: in one transaction when it can."""
        put_many = getattr(self.state, "cache_put_many", None)
        if put_many is not None:
            put_many(COMMIT_CACHE, learned)
        else:
            for k, v in learned:
                self.state.cache_put(COMMIT_CACHE, k, v)

    def settle(self) -> None:
        """The parent's commit registers this snapshot's Zarrs: the parent's ``git status`` need not
        open their repositories (:func:`.dataset.assume_unchanged`), and after the draft's commit
        they are no longer in flight.

        A published version's jobs stay in flight until the draft's commit of the same sync (the
        draft's run then checks them against their datasets).  A Zarr the commit removed keeps an
        exclude line: its dataset stays on disk for older tags, out of the crash recovery's reach.
        """
        assume_unchanged(self.parent, self._registered)
        if self.snap.kind != VersionKind.PUBLISHED:
            unexclude(self.parent, self._registered)
            exclude(self.parent, removed_gitlinks(self.parent))
        self._registered.clear()

    def _hold(self, path: str, exc: BaseException) -> Optional[Entry]:
        """A Zarr whose listing the archive never answered: held at its last state (:mod:`~neuromirror.sources.
        dandi.held`), the sync fails naming it, the next one lists it again."""
        log.warning("DANDI:%s: Zarr %s: %s", self.source.identifier, path, one_line(exc))
        hold(self.snap, self.state, path, f"not listed: {one_line(exc, 200)}")
        return _previous(self.state, self.parent, path)

    def _finish(self, rec: ZarrRecord, learned: list[tuple[str, str]]) -> Optional[Entry]:
        if rec.commit is None:
            kept = _previous(self.state, self.parent, rec.path)
            tail = f"; kept the last verified state ({kept.commit[:10]})" if kept is not None else ""
            self.snap.refused.append(Refusal(rec.path, f"refused: {rec.refused}{tail}"))
            log.warning("DANDI:%s: Zarr %s: %s", self.source.identifier, rec.path, rec.refused)
            return kept
        learned.append((_key(rec.zarr_id, rec.checksum, self.access), rec.commit))
        note_zarr(self.snap, rec.path, rec.zarr_id, rec.checksum)
        if rec.unpinned:
            self.snap.warnings.append(
                f"Zarr {rec.path}: {rec.unpinned} object(s) have no pinned URL (no S3 "
                "versionId): their bytes may change upstream, which the MD5E key's check "
                "then refuses"
            )
        log.info(
            "DANDI:%s: Zarr %s: %d objects, commit %s", self.source.identifier, rec.path, rec.objects, rec.commit[:10]
        )
        return SubdatasetEntry(rec.path, rec.commit, "./" + rec.path, rec.datalad_id)


def _cached_commits(state: SourceState, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    get_many = getattr(state, "cache_get_many", None)
    if get_many is not None:
        return dict(get_many(COMMIT_CACHE, keys))
    return {k: v for k in keys if (v := state.cache_get(COMMIT_CACHE, k)) is not None}


def _previous_commits(state: SourceState, paths: list[str]) -> dict[str, str]:
    """path -> the Zarr commit the last synced version recorded there (one query per page)."""
    if not paths:
        return {}
    many = getattr(state, "previous_many", None)
    found = many(paths) if many is not None else {p: f for p in paths if (f := state.previous(p)) is not None}
    return {p: f.checksum for p, f in found.items() if f.checksum_kind == SUBDATASET and f.checksum}


def _previous(state: SourceState, parent: Path, path: str) -> Optional[SubdatasetEntry]:
    prev = state.previous(path)
    if prev is None or prev.checksum_kind != SUBDATASET or not prev.checksum:
        return None
    return SubdatasetEntry(path, prev.checksum, "./" + path, datalad_id(parent / path))

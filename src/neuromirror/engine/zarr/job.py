"""Mirroring one DANDI Zarr asset into its own dataset: the unit of work an executor runs.

A dandiset can hold thousands of Zarr assets (000108: ~3,400), each its own
DataLad dataset.  Mirroring one — list it, check the listing against the
archive's checksum, create its dataset if new, commit — touches nothing but that
dataset, so the Zarr run (:class:`.run.ZarrRun`) hands each changed Zarr to a
``concurrent.futures.Executor`` (a thread pool on one host; a Dask or process
pool elsewhere) as a :class:`ZarrJob` and gets a :class:`ZarrRecord` back.  Both
are small, picklable, and carry no secret (an embargoed Zarr's key is read from
``DANDI_API_KEY`` by the worker, as the CLI reads it); :func:`mirror_zarr` stays
a module-level function so that any executor can pickle it by name.  The job never
writes the mirror's SQLite index or the dandiset's dataset: the run does that
afterwards from the records, in one commit of the dandiset.  The archive's side
(listing, checksum, objects as entries) is the source's
(:mod:`neuromirror.sources.dandi.zarr_listing`); the URL rule and the repair of
datasets made before it are the engine's, applied here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from neuromirror.dataset.fast_init import FirstCommit
from neuromirror.dataset.light_dataset import dataset_id
from neuromirror.engine.repair import RepairReport, repair_dataset
from neuromirror.engine.zarr.dataset import (
    NewDataset,
    commit_message,
    direct_max,
    ensure_zarr_dataset,
    had_embargoed_state,
    tag,
)
from neuromirror.engine.zarr.dataset import commit as commit_zarr
from neuromirror.engine.zarr.manifest import NULL_VERSION, ManifestEntry, write_manifest
from neuromirror.network import report as netreport
from neuromirror.records import AnnexEntry, Refusal
from neuromirror.sources import urlrule
from neuromirror.sources.dandi import ARCHIVE as DANDI
from neuromirror.sources.dandi import embargo
from neuromirror.sources.dandi import zarr_listing as zl
from neuromirror.sources.dandi.client import DandiAPI
from neuromirror.sources.dandi.zarr_assets import ZARR_WORKERS
from neuromirror.sources.dandi.zarr_listing import expected_objects
from neuromirror.util import timing
from neuromirror.util.dates import parse_iso

log = logging.getLogger("neuromirror.dandi")


@dataclass(frozen=True)
class ZarrJob:
    """What a worker needs to mirror one Zarr asset (paths as strings: picklable anywhere)."""

    dandiset: str
    api_url: str
    path: str  # the asset's path in the dandiset
    zarr_id: str
    asset_id: Optional[str]
    dataset: str  # the Zarr's dataset: <dandiset dataset>/<path>
    checksum: str  # the archive's dandi-zarr-checksum
    s3_base: Optional[str]  # the Zarr's S3 URL (prefix), None when the archive gives none
    embargoed: bool
    modified: Optional[str]  # the asset's modified time: the commit date when no object has one
    description: str  # git-annex description of a new dataset
    tag: Optional[str] = None  # a published version: tag the Zarr's commit too
    tag_message: Optional[str] = None
    tag_date: Optional[datetime] = None
    manifests: Optional[str] = None  # the mirror's Zarr manifest root: write this state's manifest there


@dataclass(frozen=True)
class ZarrRecord:
    """What became of a :class:`ZarrJob`: a commit of the Zarr's dataset, or a refusal."""

    zarr_id: str
    path: str
    dataset: str
    checksum: str  # the checksum the commit records (re-read from the archive after a mismatch)
    commit: Optional[str]  # None: refused (see ``refused``)
    objects: int = 0
    listing: str = ""  # "s3-versions", "s3-inventory" or "api"
    refused: Optional[str] = None
    datalad_id: Optional[str] = None
    timings: dict = field(default_factory=dict)  # seconds: listing, checksum, create, commit
    #: objects without a pinned URL (an embargoed Zarr's, or one listed through the API)
    unpinned: int = 0
    #: the process that mirrored it, and what its requests met there (:func:`neuromirror.network.report.since`):
    #: a worker process's counts are added to the sync's (:func:`neuromirror.network.report.absorb`)
    pid: int = 0
    network: list = field(default_factory=list)


#: Zarrs whose git work runs at once in this process (their listings need no turn: :func:`mirror_zarr`)
_GIT_TURNS = threading.BoundedSemaphore(ZARR_WORKERS)
#: a Zarr of fewer objects is listed before its turn (its listing is small to hold while it waits)
LIST_FREELY_BELOW = 2000


def mirror_zarr(job: ZarrJob) -> ZarrRecord:
    """List, check and commit one Zarr asset into its own dataset (see the module).

    The steps: the listing checked against the archive's checksum (:func:`_list_checked`), the
    dataset made or found with the commit's metadata (:func:`_plan`), the commit and tag
    (:func:`_commit`), then this state's manifest; each timed into the record's ``timings``.
    """
    # the few DANDI API calls a worker may need (API listing, re-reading a checksum), made lazily
    api = DandiAPI(job.dandiset, api_url=job.api_url, token=embargo.api_key())
    spent = timing.Timings(listing=0.0, checksum=0.0, create=0.0, commit=0.0)
    before = netreport.snapshot()
    small = (expected_objects(job.checksum) or 0) < LIST_FREELY_BELOW
    if small:  # listed while others commit: a round trip is not a core's work
        listed = _list_checked(api, job, spent)
        with _GIT_TURNS:
            rec = _mirror_listed(job, listed, spent)
    else:
        with _GIT_TURNS:  # a large listing is held in memory until committed: listed in its turn
            rec = _mirror_listed(job, _list_checked(api, job, spent), spent)
    return dataclasses.replace(rec, pid=os.getpid(), network=netreport.since(before))


def _mirror_listed(job: ZarrJob, listed: _Listed, spent: timing.Timings) -> ZarrRecord:
    """The listed Zarr checked against the archive's checksum, committed into its dataset."""
    checksum, entries, how = listed.checksum, listed.entries, listed.how
    if listed.computed != checksum:
        return ZarrRecord(
            job.zarr_id,
            job.path,
            job.dataset,
            checksum,
            None,
            len(listed.objs),
            how,
            listed.mismatch(),
            timings=dict(spent),
        )
    zds = Path(job.dataset)
    with timing.phase("create", spent):
        plan = _plan(job, listed)
        made = ensure_zarr_dataset(zds, job.description, plan.first)
        if job.embargoed:
            embargo.ensure_remote(zds)
    was_embargoed = made is None and not job.embargoed and had_embargoed_state(zds)
    with timing.phase("commit", spent):
        commit = _commit(job, zds, entries, plan, made, was_embargoed)
    if job.manifests and how in zl.VERSIONED and not job.embargoed:
        with timing.phase("manifest", spent):
            write_state_manifest(job, listed.objs, entries, checksum, plan.date)
    return ZarrRecord(
        job.zarr_id,
        job.path,
        job.dataset,
        checksum,
        commit,
        len(entries),
        how,
        None,
        dataset_id(zds),
        dict(spent),
        listed.unpinned,
    )


@dataclass
class _Listed:
    """A Zarr's listing: its objects, their annex entries, and the checksum they give (``computed``)
    against the one the archive says (``checksum``, re-read after a first mismatch)."""

    objs: list[zl.ZObject]
    how: str
    entries: list[AnnexEntry]
    refused: list[Refusal]
    computed: str
    checksum: str
    unpinned: int  # entries with no stable URL (the URL rule's verdict, from the listing's entries)

    def mismatch(self) -> str:
        """Why a listing that still disagrees with the archive after a second try is refused."""
        refused = self.refused
        detail = f"; {len(refused)} object(s) refused, e.g. {refused[0].path!r}: {refused[0].reason}" if refused else ""
        return (
            f"Zarr checksum mismatch: the archive says {self.checksum}, the {len(self.objs)} objects listed "
            f"({self.how}, twice) give {self.computed}{detail}"
        )


def _list_checked(api: DandiAPI, job: ZarrJob, spent: timing.Timings) -> _Listed:
    """The Zarr listed and its checksum computed; listed once more, with the archive's checksum
    read again, when they disagree (a Zarr written to while it was listed)."""
    checksum = job.checksum
    for attempt in range(2):
        with timing.phase("listing", spent):
            # the second listing asks the bucket: the inventory's may be older than the Zarr
            objs, how = zl.list_zarr(api, job.zarr_id, job.s3_base, job.embargoed, job.checksum, attempt == 0)
        listed = _entries(api, job, objs, how, checksum, spent)
        if listed.computed == checksum or attempt == 1:
            break
        log.warning(
            "DANDI:%s: Zarr %s: listing gives checksum %s, the archive says %s; listing again",
            job.dandiset,
            job.path,
            listed.computed,
            checksum,
        )
        checksum = zl.fresh_checksum(api, job.asset_id) or checksum
    return listed


def _entries(
    api: DandiAPI, job: ZarrJob, objs: list[zl.ZObject], how: str, checksum: str, spent: timing.Timings
) -> _Listed:
    """The listed objects as annex entries, and the checksum they give."""
    with timing.phase("checksum", spent):
        made = zl.object_entries(api, job.zarr_id, objs, job.s3_base, job.embargoed, urlrule.admissible)
        computed = zl.checksum_of(made.leaves)
        made.leaves.clear()  # done with: freed before a second listing (10^6 tuples for a large Zarr)
    return _Listed(objs, how, made.entries, made.refused, computed, checksum, made.unpinned)


def mirror_listed(job: ZarrJob, objs: list[zl.ZObject], how: str) -> ZarrRecord:
    """One Zarr's dataset written from a listing already in memory (no request): the writing alone, as
    :func:`mirror_zarr` does it after its listing (``scripts/bench``'s floor under a cold Zarr sync)."""
    api = DandiAPI(job.dandiset, api_url=job.api_url, token=embargo.api_key())
    spent = timing.Timings(listing=0.0, checksum=0.0, create=0.0, commit=0.0)
    listed = _entries(api, job, objs, how, job.checksum, spent)
    with _GIT_TURNS:
        rec = _mirror_listed(job, listed, spent)
    return dataclasses.replace(rec, pid=os.getpid())


@dataclass
class _Plan:
    """The commit's metadata, known before the dataset is made (a small new Zarr's first commit
    is written with its dataset: ``first``)."""

    date: datetime
    subject: str
    trailers: dict[str, str]
    remotes: dict[str, str]
    first: Optional[FirstCommit]


def _plan(job: ZarrJob, listed: _Listed) -> _Plan:
    entries = listed.entries
    dates = [o.modified for o in listed.objs if isinstance(o.modified, datetime)]
    date = max(dates) if dates else (parse_iso(job.modified) or datetime.now(timezone.utc))
    subject = f"DANDI:{job.dandiset} {job.path}: Zarr {job.zarr_id}"
    trailers = {
        "Neuromirror-Dandiset": job.dandiset,
        "Neuromirror-Zarr": job.zarr_id,
        "Neuromirror-Zarr-Checksum": listed.checksum,
        "Neuromirror-Zarr-Access": "embargoed" if job.embargoed else "open",
        "Neuromirror-Zarr-Listing": listed.how,
        "Neuromirror-Zarr-Files": str(len(entries)),
    }
    remotes = embargo.url_remotes()
    first = None
    if (
        not job.embargoed
        and len(entries) <= direct_max()
        and not any(u.startswith(tuple(remotes)) for e in entries for u in e.urls)
    ):
        # a new small Zarr: its first commit is written with its dataset, no git child at all
        first = FirstCommit(entries, commit_message(subject, trailers, len(entries)), date)
    return _Plan(date, subject, trailers, remotes, first)


def _commit(
    job: ZarrJob, zds: Path, entries: list[AnnexEntry], plan: _Plan, made: Optional[NewDataset], was_embargoed: bool
) -> str:
    """The Zarr's commit (the one its dataset was made with, if so), its URLs repaired after an
    embargo was lifted, and the version's tag."""
    if made is not None and made.commit != made.created:
        commit = made.commit
    else:
        commit = commit_zarr(
            zds,
            entries,
            subject=plan.subject,
            trailers=plan.trailers,
            date=plan.date,
            url_remotes=plan.remotes,
            fresh=made is not None,
        )
    if was_embargoed:
        # the embargo was lifted: the objects' special-remote URLs (the API route, which follows the
        # current object) now sit beside pinned S3 URLs, and the rule takes them back
        repair_dataset(zds, RepairReport())
    if job.tag:
        tag(zds, job.tag, commit, job.tag_message or job.tag, job.tag_date or datetime.now())
    return commit


def write_state_manifest(
    job: ZarrJob, objs: list[zl.ZObject], entries: list[AnnexEntry], checksum: str, date: datetime
) -> None:
    """This state's manifest in DANDI's format (:mod:`.manifest`): only what the commit holds."""
    held = None if len(entries) == len(objs) else {e.path for e in entries}  # none refused: all
    rows = [
        ManifestEntry(o.rel, o.version_id or NULL_VERSION, o.modified or date, o.size, o.etag)
        for o in objs
        if held is None or o.rel in held
    ]
    base = (job.s3_base or "").split("?", 1)[0]
    assert job.manifests is not None
    write_manifest(
        Path(job.manifests),
        job.zarr_id,
        checksum,
        rows,
        base_url=base.rstrip("/") + "/" if base else None,
        source=f"{DANDI.name}:{job.dandiset}",
    )

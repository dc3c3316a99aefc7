"""Mirroring one DANDI Zarr asset into its own dataset: the unit of work an executor runs.

A dandiset can hold thousands of Zarr assets (000108: ~3,400), each its own
DataLad dataset.  Mirroring one — list it, check the listing against the
archive's checksum, create its dataset if new, commit — touches nothing but that
dataset, so the DANDI source hands each changed Zarr to a
``concurrent.futures.Executor`` (a thread pool on one host; a Dask or process
pool elsewhere) as a :class:`ZarrJob` and gets a :class:`ZarrRecord` back.  Both
are small, picklable, and carry no secret (an embargoed Zarr's key is read from
``DANDI_API_KEY`` by the worker, as the CLI reads it).  The job never writes the
mirror's SQLite index or the dandiset's dataset: the caller does that afterwards
from the records, in one commit of the dandiset (:class:`.dandi_zarr.ZarrRun`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from neuromirror.sources import dandi_auth


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


@dataclass(frozen=True)
class ZarrRecord:
    """What became of a :class:`ZarrJob`: a commit of the Zarr's dataset, or a refusal."""

    zarr_id: str
    path: str
    dataset: str
    checksum: str  # the checksum the commit records (re-read from the archive after a mismatch)
    commit: Optional[str]  # None: refused (see ``refused``)
    objects: int = 0
    listing: str = ""  # "s3-versions" or "api"
    refused: Optional[str] = None
    datalad_id: Optional[str] = None
    timings: dict = field(default_factory=dict)  # seconds: listing, checksum, create, commit
    #: objects without a pinned URL (an embargoed Zarr's, or one listed through the API)
    unpinned: int = 0


class _Api:
    """The few DANDI API calls a worker may need (API listing, re-reading a checksum), made lazily."""

    def __init__(self, job: ZarrJob):
        self.identifier = job.dandiset
        self.api_url = job.api_url
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from neuromirror.sources.dandi import make_client

            self._client = make_client(self.api_url, dandi_auth._key())
        return self._client

    def _asset_metadata(self, asset_id: str) -> Any:
        return self.client.get(f"/assets/{asset_id}/")


def mirror_zarr(job: ZarrJob) -> ZarrRecord:
    """List, check and commit one Zarr asset into its own dataset (see the module)."""
    from neuromirror.dataset.light_dataset import dataset_id
    from neuromirror.sources import dandi_zarr as dz

    api = _Api(job)
    spent: dict[str, float] = {"listing": 0.0, "checksum": 0.0, "create": 0.0, "commit": 0.0}
    checksum = job.checksum
    computed = ""
    objs: list = []
    entries: list = []
    refused: list = []
    how = ""
    for attempt in range(2):
        t = time.perf_counter()
        objs, how = dz.list_zarr(api, job.zarr_id, job.s3_base, job.embargoed)
        t1 = time.perf_counter()
        entries, leaves, refused = dz.object_entries(api, job.zarr_id, objs, job.s3_base, job.embargoed)
        computed = dz.checksum_of(leaves)
        del leaves
        spent["listing"] += t1 - t
        spent["checksum"] += time.perf_counter() - t1
        if computed == checksum:
            break
        if attempt == 0:
            dz.log.warning(
                "DANDI:%s: Zarr %s: listing gives checksum %s, the archive says %s; listing again",
                job.dandiset,
                job.path,
                computed,
                checksum,
            )
            checksum = dz._fresh_checksum(api, job.asset_id) or checksum
    else:
        detail = f"; {len(refused)} object(s) refused, e.g. {refused[0].path!r}: {refused[0].reason}" if refused else ""
        reason = (
            f"Zarr checksum mismatch: the archive says {checksum}, the {len(objs)} objects listed "
            f"({how}, twice) give {computed}{detail}"
        )
        return ZarrRecord(job.zarr_id, job.path, job.dataset, checksum, None, len(objs), how, reason, timings=spent)
    zds = Path(job.dataset)
    t = time.perf_counter()
    dz.ensure_zarr_dataset(zds, job.description)
    if job.embargoed:
        dandi_auth.ensure_remote(zds)
    spent["create"] = time.perf_counter() - t
    from neuromirror.engine import urlrule

    unpinned = sum(1 for e in entries if not any(urlrule.is_stable(u) for u in e.urls))
    was_embargoed = not job.embargoed and dz._had_embargoed_state(zds)
    t = time.perf_counter()
    commit = dz._commit(
        api,
        zds,
        job.path,
        job.zarr_id,
        checksum,
        "embargoed" if job.embargoed else "open",
        how,
        entries,
        objs,
        {"modified": job.modified},
    )
    if was_embargoed:
        # the embargo was lifted: the objects' special-remote URLs (the API route, which follows the
        # current object) now sit beside pinned S3 URLs, and the rule takes them back
        from neuromirror.engine.repair import RepairReport, repair_dataset

        repair_dataset(zds, RepairReport())
    if job.tag:
        dz._tag(zds, job.tag, commit, job.tag_message or job.tag, job.tag_date or datetime.now())
    spent["commit"] = time.perf_counter() - t
    return ZarrRecord(
        job.zarr_id, job.path, job.dataset, checksum, commit, len(entries), how, None, dataset_id(zds), spent, unpinned
    )

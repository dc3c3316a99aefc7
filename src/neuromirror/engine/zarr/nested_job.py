"""Mirroring one nested Zarr (an AIND asset's ``*.zarr/``) into its own dataset: one executor job.

The Zarr's entries were spooled to a named file while the asset's listing streamed
past them (:mod:`.nested`); the job reads them back, creates the Zarr's dataset if it
is new (written directly, :func:`.dataset.ensure_zarr_dataset`) and makes one commit
of the Zarr's whole tree.  Job and record are small and picklable, and
:func:`mirror_nested_zarr` is a module-level function, so that a thread pool or a Dask
cluster (``--dask``: one task per Zarr) runs it alike; the job writes nothing but the
Zarr's dataset (or its staging place, when the Zarr replaces files the parent still
holds: see :mod:`.nested`).

Large Zarrs' commits take turns in a process (:data:`BIG_ZARR`,
:class:`~neuromirror.annex.fastimport.Turns`): a Zarr of 10^6 objects costs git a few
hundred MB while it writes its objects and while it checks them out, and that must not
be multiplied by the number of Zarrs an asset holds.  One Zarr's checkout (annex
symlinks: kernel time) runs beside the next one's fast-import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

from neuromirror.annex.fastimport import Turns
from neuromirror.dataset.fast_init import FirstCommit
from neuromirror.dataset.light_dataset import dataset_id
from neuromirror.engine.zarr.dataset import DIRECT_MAX, commit_message, ensure_zarr_dataset
from neuromirror.engine.zarr.dataset import commit as commit_zarr
from neuromirror.engine.zarr.manifest import read_rows, write_manifest, zarr_uuid
from neuromirror.records import AnnexEntry, Entry
from neuromirror.sources.dandi.zarr_listing import checksum_of
from neuromirror.util import timing
from neuromirror.util.memory.spool import read_spool

#: a Zarr of more objects than this is committed alone (see the module)
BIG_ZARR = 50_000
#: the turns large Zarrs' commits of this process take (one fast-import, one checkout at a time)
_BIG = Turns()

#: the trailers that say which state of which Zarr a commit holds (``NestedZarrRun._held`` reads the digest);
#: their names are from before issue 51 and are read back from the datasets' history, so they stay
ZARR_TRAILER = "Neuromirror-Store"
DIGEST_TRAILER = "Neuromirror-Store-Digest"


@dataclass(frozen=True)
class NestedZarrJob:
    """What a worker needs to mirror one Zarr (paths as strings: picklable anywhere)."""

    path: str  # the Zarr's path in its parent dataset
    dataset: str  # the Zarr's dataset, in its place
    staging: Optional[str]  # build it here instead; moved into place after the parent's commit
    spool: str  # the named spool of the Zarr's entries (paths inside the Zarr)
    count: int  # records in the spool
    digest: str  # of the Zarr's entries: what the commit's trailer records
    description: str  # git-annex description of a new dataset
    subject: str  # the commit message's subject
    date: datetime  # the newest object's modification time
    manifests: Optional[str] = None  # the mirror's Zarr manifest root: write this state's manifest there
    manifest_rows: Optional[str] = None  # the spooled manifest rows (:class:`.manifest.ManifestRows`)
    manifest_base: Optional[str] = None  # the Zarr's S3 prefix
    source: Optional[str] = None  # the source the Zarr belongs to (the manifest's sidecar names it)


@dataclass(frozen=True)
class NestedZarrRecord:
    """What became of a :class:`NestedZarrJob`: the Zarr dataset's commit of that state."""

    path: str
    commit: str
    digest: str
    datalad_id: Optional[str]
    objects: int
    timings: dict = field(default_factory=dict)


def mirror_nested_zarr(job: NestedZarrJob) -> NestedZarrRecord:
    """Create (if new) and commit one Zarr's dataset from its spooled entries (see the module)."""
    try:
        return _mirror(job)
    finally:
        for spool in (job.spool, job.manifest_rows):
            try:
                if spool:
                    os.unlink(spool)
            except OSError:
                pass


def _mirror(job: NestedZarrJob) -> NestedZarrRecord:
    place = Path(job.staging or job.dataset)
    trailers = {ZARR_TRAILER: job.path, DIGEST_TRAILER: job.digest, "Neuromirror-Store-Files": str(job.count)}
    spent = timing.Timings()
    with timing.phase("create", spent):
        first = None
        if job.count <= DIRECT_MAX:
            entries = list(_entries(job))
            if all(type(e) is AnnexEntry for e in entries):
                annexed = [e for e in entries if isinstance(e, AnnexEntry)]
                first = FirstCommit(annexed, commit_message(job.subject, trailers, len(annexed)), job.date)
        made = ensure_zarr_dataset(place, job.description, first)
    with timing.phase("commit", spent):
        if made is not None and made.commit != made.created:
            commit = made.commit
        else:
            subject, fresh = job.subject, made is not None
            commit = commit_zarr(
                place,
                _entries(job),
                subject=subject,
                trailers=trailers,
                date=job.date,
                url_remotes={},
                fresh=fresh,
                count=job.count,
                turns=_BIG if job.count > BIG_ZARR else None,
            )
    if job.manifests and job.manifest_rows and job.manifest_base:
        with timing.phase("manifest", spent):
            write_nested_manifest(job.manifests, job.manifest_rows, job.manifest_base, job.source)
    return NestedZarrRecord(job.path, commit, job.digest, dataset_id(place), job.count, dict(spent))


def _entries(job: NestedZarrJob) -> Iterator[Entry]:
    return iter(read_spool(Path(job.spool), job.count))


def write_nested_manifest(root: str, rows: str, base: str, source: Optional[str]) -> None:
    """The manifest (DANDI's format) of a Zarr's state: named by its dandi-zarr-checksum, under an id
    made from its S3 prefix (an AIND Zarr has no archive id)."""
    entries = read_rows(Path(rows))
    checksum = checksum_of((e.path, e.size, e.etag) for e in entries)
    write_manifest(Path(root), zarr_uuid(base), checksum, entries, base_url=base, source=source)

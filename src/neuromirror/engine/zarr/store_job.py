"""Mirroring one nested store (an AIND asset's ``*.zarr/``) into its own dataset: one executor job.

The store's entries were spooled to a named file while the asset's listing streamed
past them (:mod:`.stores`); the job reads them back, creates the store's dataset if it
is new (written directly, :func:`.dataset.ensure_zarr_dataset`) and makes one commit
of the store's whole tree.  Job and record are small and picklable, and
:func:`mirror_store` is a module-level function, so that a thread pool or a Dask
cluster (``--dask``: one task per store) runs it alike; the job writes nothing but the
store's dataset (or its staging place, when the store replaces files the parent still
holds: see :mod:`.stores`).

Large stores are committed one at a time in a process (:data:`BIG_STORE`): a store of
10^6 objects costs git a few hundred MB while it writes its index and checkout, and
that must not be multiplied by the number of stores an asset holds.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator, Optional

from neuromirror.annex.contract import Change
from neuromirror.annex.pack import BLOB, object_id
from neuromirror.annex.writer import Delete, Put, make_writer
from neuromirror.dataset.fast_init import FirstCommit
from neuromirror.dataset.light_dataset import dataset_id
from neuromirror.engine.zarr.dataset import DIRECT_MAX, commit_message, ensure_zarr_dataset, head_state
from neuromirror.records import AnnexEntry, Entry, GitEntry
from neuromirror.util import gitutil
from neuromirror.util.spool import read_spool

#: a store of more objects than this is committed alone (see the module)
BIG_STORE = 50_000
_BIG = threading.Semaphore(1)

#: the trailers that say which state of which store a commit holds (:func:`store_digest_at`)
STORE_TRAILER = "Neuromirror-Store"
DIGEST_TRAILER = "Neuromirror-Store-Digest"


@dataclass(frozen=True)
class StoreJob:
    """What a worker needs to mirror one store (paths as strings: picklable anywhere)."""

    path: str  # the store's path in its parent dataset
    dataset: str  # the store's dataset, in its place
    staging: Optional[str]  # build it here instead; moved into place after the parent's commit
    spool: str  # the named spool of the store's entries (paths inside the store)
    count: int  # records in the spool
    digest: str  # of the store's entries: what the commit's trailer records
    description: str  # git-annex description of a new dataset
    subject: str  # the commit message's subject
    date: datetime  # the newest object's modification time


@dataclass(frozen=True)
class StoreRecord:
    """What became of a :class:`StoreJob`: the store dataset's commit of that state."""

    path: str
    commit: str
    digest: str
    datalad_id: Optional[str]
    objects: int
    timings: dict = field(default_factory=dict)


def mirror_store(job: StoreJob) -> StoreRecord:
    """Create (if new) and commit one store's dataset from its spooled entries (see the module)."""
    big = job.count > BIG_STORE
    if big:
        _BIG.acquire()
    try:
        return _mirror(job)
    finally:
        if big:
            _BIG.release()
        try:
            os.unlink(job.spool)
        except OSError:
            pass


def _mirror(job: StoreJob) -> StoreRecord:
    place = Path(job.staging or job.dataset)
    trailers = {STORE_TRAILER: job.path, DIGEST_TRAILER: job.digest, "Neuromirror-Store-Files": str(job.count)}
    t = time.perf_counter()
    first = None
    if job.count <= DIRECT_MAX:
        entries = list(_entries(job))
        if all(type(e) is AnnexEntry for e in entries):
            annexed = [e for e in entries if isinstance(e, AnnexEntry)]
            first = FirstCommit(annexed, commit_message(job.subject, trailers, len(annexed)), job.date)
    made = ensure_zarr_dataset(place, job.description, first)
    created = time.perf_counter() - t
    t = time.perf_counter()
    if made is not None and made.commit != made.created:
        commit = made.commit
    else:
        commit = _commit(place, job, trailers, fresh=made is not None)
    spent = {"create": created, "commit": time.perf_counter() - t}
    return StoreRecord(job.path, commit, job.digest, dataset_id(place), job.count, spent)


def _entries(job: StoreJob) -> Iterator[Entry]:
    return iter(read_spool(Path(job.spool), job.count))


def _commit(place: Path, job: StoreJob, trailers: dict[str, str], *, fresh: bool) -> str:
    """One commit of the store's whole tree; a new dataset's files are streamed, never held."""
    writer = make_writer(os.environ.get("NEUROMIRROR_ENGINE", "fast-import"), place)
    if fresh:
        message = commit_message(job.subject, trailers, job.count)
        return writer.commit((Put(e) for e in _entries(job)), message=message, date=job.date).commit
    changes, added, removed, changed = _changes(place, _entries(job))
    message = commit_message(job.subject, trailers, added, removed, changed)
    return writer.commit(iter(changes), message=message, date=job.date).commit


def _changes(place: Path, entries: Iterable[Entry]) -> tuple[list[Change], int, int, int]:
    """What differs from HEAD: annexed files by key and URLs, files in git by their blob."""
    annexed = head_state(place)
    blobs = {path: sha for mode, _, sha, path in gitutil.ls_tree(place, "HEAD") if mode == "100644"}
    changes: list[Change] = []
    added = changed = 0
    seen: set[str] = set()
    for e in entries:
        seen.add(e.path)
        if isinstance(e, AnnexEntry):
            old = annexed.get(e.path)
            if old is not None and old[0] == e.key and set(e.urls) <= old[1]:
                continue
            is_new = old is None and e.path not in blobs
        elif isinstance(e, GitEntry):
            sha = blobs.get(e.path)
            if sha is not None and sha == object_id(BLOB, e.read()).hex():
                continue
            is_new = sha is None and e.path not in annexed
        else:
            raise TypeError(f"a store holds files, not {type(e).__name__} ({e.path})")
        added += is_new
        changed += not is_new
        changes.append(Put(e))
    gone = sorted((set(annexed) | set(blobs)) - seen - {".gitattributes", ".datalad/config", ".gitmodules"})
    gone = [p for p in gone if not p.startswith(".datalad/")]
    changes += [Delete(p) for p in gone]
    return changes, added, len(gone), changed

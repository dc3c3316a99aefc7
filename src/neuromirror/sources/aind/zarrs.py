"""The Zarrs inside an AIND asset (``*.zarr/``, ``*.ome.zarr/``): which objects are theirs.

AIND light-sheet assets hold one OME-Zarr per channel, each of up to millions
of objects.  Each Zarr becomes a subdataset of the asset's dataset (the why is told in
:mod:`neuromirror.engine.zarr.nested`, which writes them); this module is the archive's
side: which prefix of the asset is a Zarr, and the run the sync's state offers for them.
A state that writes no dataset (``verify --archive`` lists the archive again) offers
none: the Zarrs' objects are then entries of the asset, as before Zarrs were datasets.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

from neuromirror.records import Entry, Snapshot, SourceState, SubdatasetEntry
from neuromirror.sources.aind.context import ZarrParent

#: directory names that make a prefix a Zarr (``.ome.zarr`` ends the same way)
ZARR_SUFFIX = ".zarr"
#: ``files``: keep the layout from before Zarrs were datasets (their objects files of the asset); the
#: variable's name is from before issue 51 and stays
LAYOUT_ENV = "NEUROMIRROR_AIND_STORES"
#: Zarrs committed at once by the default executor (large ones take turns: see engine.zarr.nested_job)
ZARR_WORKERS = 2


def zarr_of(rel: str) -> Optional[str]:
    """The Zarr an object's path lies in (its top-most ``*.zarr`` directory), or None."""
    if ZARR_SUFFIX + "/" not in rel:
        return None
    parts = rel.split("/")
    for i, name in enumerate(parts[:-1]):
        if name.endswith(ZARR_SUFFIX) and len(name) > len(ZARR_SUFFIX):
            return "/".join(parts[: i + 1])
    return None


class NestedZarrs(Protocol):
    """What the sync's state offers for an asset's Zarrs (:class:`neuromirror.engine.zarr.nested.NestedZarrRun`)."""

    def add(
        self,
        zarr: str,
        entry: Entry,
        modified: Optional[datetime],
        version_id: Optional[str] = None,
        etag: Optional[str] = None,
    ) -> None: ...

    def entries(self) -> Iterator[SubdatasetEntry]: ...

    def settle(self) -> None: ...


@contextmanager
def zarr_executor(src: ZarrParent) -> Iterator[Executor]:
    """The cluster's executor under ``--dask`` (one task per Zarr), else a small thread pool."""
    given: Optional[Executor] = getattr(src, "zarr_executor", None)
    if given is not None:
        yield given
        return
    pool = ThreadPoolExecutor(ZARR_WORKERS, thread_name_prefix="zarr")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def open_zarrs(src: ZarrParent, snap: Snapshot, state: SourceState, executor: Executor) -> Optional[NestedZarrs]:
    """The run of ``snap``'s Zarrs, or None when the state writes no dataset (then they stay files)."""
    make: Any = getattr(state, "nested_zarr_run", None)
    parent: Optional[Path] = getattr(src, "dataset_path", None)
    if make is None or os.environ.get(LAYOUT_ENV) == "files":
        return None
    if parent is None and not getattr(state, "reads_only", False):
        return None  # no dataset to write into; a state that only compares (verify --archive) needs none
    run: NestedZarrs = make(src.id, snap, parent, executor, src.describe())
    snap.__dict__.setdefault("_nm_zarr_runs", []).append(run)
    return run


def settle(snap: Snapshot) -> None:
    """The asset's commit of ``snap`` is made: its Zarrs' runs finish (see ``NestedZarrRun.settle``)."""
    for run in snap.__dict__.pop("_nm_zarr_runs", []):
        run.settle()

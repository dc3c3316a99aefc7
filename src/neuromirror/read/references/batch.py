"""The references of the new HDF5 keys of some pins, made with bounded concurrency: the sync's hook.

After a sync recorded new versions of a source with ``references: nwb`` (or ``sync --references``), every
``.nwb``/``.h5`` file of those versions whose key has no reference yet gets one (:func:`.make.make_reference`),
and its fields go into the index (:mod:`.fields`).  A key is made once, whatever the number of versions and
paths naming it.  A reference that cannot be made (no pinned URL, an unreadable file, the archive down) is
reported, never a failed sync (``open_hdf5(make=True)``, or a sync recording the key in a new version, makes it
later).  ``jobs`` bounds the files read at once: in
threads for a few files, in as many worker processes for a batch of many (h5py holds one lock per process, so
threads read one file's metadata at a time; a worker process starts in about a second).
The package registers :func:`make_references` as its index-time reader's ``after_sync`` hook (:mod:`neuromirror.readers`).
"""

from __future__ import annotations

import logging
import sqlite3
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from neuromirror.read.fsspec_fs import NeuromirrorFileSystem
from neuromirror.read.loss import mirror_index
from neuromirror.read.references.fields import nwb_fields, record_fields
from neuromirror.read.references.location import has_reference
from neuromirror.read.references.make import MadeReference, is_hdf5_path, make_reference
from neuromirror.util.text import one_line

log = logging.getLogger("neuromirror.read.references")
JOBS = 4
#: what h5py says of a file that is no HDF5 file
NOT_HDF5 = "file signature not found"


@dataclass
class ReferencesReport:
    """What one batch made, what it found made already, the .nwb files that are no HDF5, and what failed (path
    and one line why)."""

    made: list[MadeReference] = field(default_factory=list)
    existing: int = 0
    not_hdf5: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "made": [m.to_json() for m in self.made],
            "existing": self.existing,
            "not_hdf5": self.not_hdf5,
            "failed": [{"path": p, "error": e} for p, e in self.failed],
        }


def pin_prefix(source: str, version: str) -> str:
    """``dandi:000027`` at ``COMMIT`` as ``neuromirror://``'s ``dandi/000027@COMMIT``."""
    archive, _, name = source.partition(":")
    return f"{archive}/{name}@{version}"


def wanted(fs: NeuromirrorFileSystem, pins: Iterable[tuple[str, str]]) -> tuple[list[str], int]:
    """The pin paths of HDF5 files whose key has no reference (one path per key), and how many keys had one.
    Read from each pin's own tree (keys from its symlinks, no URL resolved): a Zarr subdataset's objects, which
    are no HDF5 files, are never listed."""
    from neuromirror.annex.tree import version_batches

    todo: dict[str, str] = {}
    existing: set[str] = set()
    for source, version in pins:
        pin, _ = fs._split(pin_prefix(source, version) + "/x")
        for _, _, files in version_batches(pin.dataset, pin.commit):
            for f in files:
                if not f.key or not is_hdf5_path(f.path) or f.key in todo or f.key in existing:
                    continue
                if has_reference(fs.mirror_root, f.key):
                    existing.add(f.key)
                else:
                    todo[f.key] = f"{pin_prefix(source, version)}/{f.path}"
    return list(todo.values()), len(existing)


def _one(fs: NeuromirrorFileSystem, path: str) -> tuple[MadeReference, dict[str, list[str]]]:
    from neuromirror.read.references.chunks import open_reference

    rfs, made = make_reference(fs, path)
    h5 = open_reference(rfs, fs._range(path), None)
    try:
        return made, nwb_fields(h5)
    finally:
        h5.close()


#: a batch of more files than this many per job is made in processes (h5py holds one lock per process: threads
#: read one file at a time); a smaller one in this process, where no interpreter has to start
PER_PROCESS = 4
#: a spawned worker's filesystem (its stores, its listings), made at its first file: a worker process lives as
#: long as its batch's pool (``with pool`` in :func:`make_references`), so this lives as long as the batch; the
#: parent never fills it
_fs_here: dict[tuple[str, Optional[str]], NeuromirrorFileSystem] = {}


def _one_here(root: str, index: Optional[str], path: str) -> tuple[MadeReference, dict[str, list[str]]]:
    """:func:`_one` in a worker process (its filesystem made once per process)."""
    fs = _fs_here.get((root, index))
    if fs is None:
        fs = _fs_here[root, index] = NeuromirrorFileSystem(root=root, index=index)
    return _one(fs, path)


def make_references(
    root: Path, index: Optional[Path], pins: Iterable[tuple[str, str]], jobs: int = JOBS,
    processes: Optional[bool] = None,
) -> ReferencesReport:  # fmt: skip
    """Make the missing references of the HDF5 files of ``pins`` (``(source, label or commit)``), ``jobs`` at once:
    in as many processes when the batch is large (``processes``: None decides by :data:`PER_PROCESS`)."""
    where = None if index is None else str(index)
    fs = NeuromirrorFileSystem(root=str(root), index=where)
    report = ReferencesReport()
    paths, report.existing = wanted(fs, pins)
    if not paths:
        return report
    jobs = max(1, min(jobs, len(paths)))
    if processes if processes is not None else (jobs > 1 and len(paths) > PER_PROCESS * jobs):
        import multiprocessing

        pool: Any = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
        submit = lambda p: pool.submit(_one_here, str(root), where, p)  # noqa: E731
    else:
        pool = ThreadPoolExecutor(jobs)
        submit = lambda p: pool.submit(_one, fs, p)  # noqa: E731
    with pool:
        results = _collect(report, [(p, submit(p)) for p in paths])
    conn = sqlite3.connect(str(mirror_index(root, where)), timeout=60)
    try:
        from neuromirror.index.schema import ensure_named

        ensure_named(conn)
        for made, got in results:
            record_fields(conn, made.key, got)
            report.made.append(made)
    finally:
        conn.close()
    return report


def _collect(report: ReferencesReport, futures: list[tuple[str, Any]]) -> list[tuple[MadeReference, dict]]:
    """What each file's future gave, in order; a failure reported (``not_hdf5``, ``failed``), never raised."""
    results = []
    for path, fut in futures:
        try:
            results.append(fut.result())
        except Exception as exc:  # noqa: BLE001 - one file's failure is reported, never the sync's
            if NOT_HDF5 in str(exc):  # named .nwb, not HDF5 (a placeholder, an NWB Zarr file): nothing to make
                report.not_hdf5.append(path)
            else:
                report.failed.append((path, f"{type(exc).__name__}: {one_line(exc)}"))
    return results

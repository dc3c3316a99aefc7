"""A pinned HDF5 file's LINDI reference, made by reading the file's metadata through ``neuromirror://``.

lindi's own ``from_hdf5_file(url)`` reads through a reader that grows its sequential reads: measured here,
105 % of an 8.7 MB NWB file's bytes to make its reference.  h5py's walk of the metadata is many small reads
scattered over the file; read in 32 KiB blocks (:class:`~neuromirror.read.fsspec_fs.PinnedReader` with
``cache_type="blockcache"``, no read-ahead) the same reference cost 3 %.  A file of at most :data:`WHOLE` is
read whole in one request instead (its blocks, one after another, were several round trips).  Every chunk reference names the
key's pinned archive URL (the ``versionId`` URL the sync registered), never a mutable one, so the reference
is as immutable as the pin; a file no pinned archive URL serves gets none.  Each dataset's every chunk is
referenced (lindi's "external array link" for datasets of over 1,000 chunks would send a reader to the
archive's URL behind the mirror's back), and a contiguous dataset in pieces of :data:`SPLIT`.
"""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from neuromirror.errors import UserError
from neuromirror.read.fsspec_fs import NeuromirrorFileSystem, PinnedReader
from neuromirror.read.references.lindi_env import lindi
from neuromirror.read.references.location import write_reference
from neuromirror.store.lindi import HDF5_SUFFIXES

#: the blocks the metadata is read in while making a reference
MAKE_BLOCK = 32 * 1024
#: a file up to this size is read whole, in one request: its metadata walk in blocks took 6 round trips for a
#: 185 kB NWB file (1,000 of them at RTT 50 ms with 4 jobs: 212 s, latency-bound at 0.5 core of CPU)
WHOLE = 1 << 20
#: a contiguous dataset is referenced in pieces of this size: a slice reads its own piece, not lindi's default 20 MB
#: (a 100-row slice of a 64 MB ElectricalSeries: one 256 KiB range read)
SPLIT = 256 * 1024


class NoPinnedURL(UserError):
    """The file has no pinned archive URL for a reference's chunks to name."""


@dataclass(frozen=True)
class MadeReference:
    """One reference made: of which key and pin path, where it is, what making it read."""

    key: str
    path: str  # ARCHIVE/NAME@VERSION/PATH it was made from
    url: str  # the pinned URL every chunk names
    reference: Path
    size: int
    requests: int
    bytes_read: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {**out, "reference": str(self.reference), "seconds": round(self.seconds, 3)}


class _Counted:
    """A byte-range reader that counts its requests and bytes (what making a reference cost)."""

    def __init__(self, fetch: Any) -> None:
        self._fetch = fetch
        self.requests = self.bytes = 0
        self._lock = threading.Lock()

    def __call__(self, start: Optional[int], end: Optional[int]) -> bytes:
        data = self._fetch(start, end)
        with self._lock:
            self.requests += 1
            self.bytes += len(data)
        return data


def is_hdf5_path(path: str) -> bool:
    return path.lower().endswith(HDF5_SUFFIXES)


def build(fs: NeuromirrorFileSystem, path: str) -> tuple[dict[str, Any], MadeReference]:
    """The reference of the file ``path`` (``ARCHIVE/NAME@VERSION/PATH``) names, not stored yet, and its cost."""
    mod = lindi()
    f, _ = fs._file(path)
    if f.served_by != "archive" or not f.url or not f.key:
        raise NoPinnedURL(f"{path}: no pinned archive URL for its chunks to name ({f.served_by})")
    fetch = _Counted(fs._range(path))
    started = time.monotonic()
    size = int(f.size or 0)
    if 0 < size <= WHOLE:
        reader: Any = io.BytesIO(fetch(0, size))
    else:
        reader = PinnedReader(fs, path, fetch, size, block_size=MAKE_BLOCK, cache_type="blockcache")
    opts = mod.LindiH5ZarrStoreOpts(num_dataset_chunks_threshold=None, contiguous_dataset_max_chunk_size=SPLIT)
    store = mod.LindiH5ZarrStore(_file=reader, _url=f.url, _opts=opts, _entities_to_close=[])
    try:
        rfs = store.to_reference_file_system()
    finally:
        store.close()
        reader.close()
    made = MadeReference(
        f.key, path, f.url, Path(), int(f.size or 0), fetch.requests, fetch.bytes, time.monotonic() - started
    )
    return rfs, made


def make_reference(fs: NeuromirrorFileSystem, path: str) -> tuple[dict[str, Any], MadeReference]:
    """Make and store the reference of ``path``'s key (kept by key under the mirror root)."""
    rfs, made = build(fs, path)
    where = write_reference(fs.mirror_root, made.key, rfs)
    return rfs, MadeReference(**{**made.__dict__, "reference": where})

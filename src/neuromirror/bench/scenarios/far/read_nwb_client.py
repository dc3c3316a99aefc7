"""The reader of the ``read-nwb`` scenario (:mod:`.read_nwb`): one read in a process of its own, as a lab's is.

``python -m neuromirror.bench.scenarios.far.read_nwb_client JOB.json`` opens the NWB file with pynwb (over
h5py), reads ``rows`` rows of the series from ``start``, closes it, and prints one JSON line: the wall
time of open -> read -> close and its parts, the rows' digest, and for remfile the bytes of its ranged reads.  The imports (h5py, pynwb, remfile,
fsspec and ``neuromirror://``'s class, lindi and the reference reader) are done before the clock starts: what is timed is the read.

``job["kind"]``: ``remfile`` reads ``job["url"]`` (the pinned URL) with ``remfile.File``;
``neuromirror`` reads ``job["path"]`` (``neuromirror://...``) with ``fsspec.open(path, root=job["root"])``;
``reference`` opens the same path through its LINDI reference (``api.Mirror.open_hdf5``: lindi's h5py-compatible
file, no h5py.File around it; run with lindi on ``PYTHONPATH``); ``local`` opens ``job["path"]``, a copy of
the file on local disk, with ``h5py.File``: the floor every reader pays (pynwb's own ``io.read()``).
Each runs in a fresh process: no cache, no connection and no garbage is carried from one read to the next
(pynwb leaves cyclic garbage holding h5py objects; in the bench's own process, a collection in a
stand-in's thread could wait on h5py's lock while h5py waits for that thread's answer).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Any, Callable


def digest(rows: Any) -> str:
    """The rows' identity: shape, dtype and bytes."""
    import numpy as np

    a = np.ascontiguousarray(rows)
    return hashlib.sha256(f"{a.shape}{a.dtype.str}".encode() + a.tobytes()).hexdigest()


def opener(job: dict, ranges: list[int]) -> Callable[[], Any]:
    """What opens the file for ``job["kind"]`` (its module imported now, outside the timed read).  remfile's
    ranged reads append their sizes to ``ranges`` (the bytes it read, its aborted length probe aside)."""
    if job["kind"] == "remfile":
        import importlib

        import remfile

        module = importlib.import_module("remfile.RemFile")
        get_bytes = getattr(module, "_get_bytes")  # noqa: B009 (remfile's private name, kept as it is)

        def counted(*args: Any, **kwargs: Any) -> bytes:
            got = get_bytes(*args, **kwargs)
            ranges.append(len(got))
            return got

        setattr(module, "_get_bytes", counted)  # noqa: B010
        return lambda: closing(remfile.File(job["url"]))
    if job["kind"] == "neuromirror":
        import fsspec

        fsspec.get_filesystem_class("neuromirror")
        return lambda: fsspec.open(job["path"], "rb", root=job["root"])
    if job["kind"] == "local":  # the floor: the same file from local disk, h5py's own driver
        import h5py

        return lambda: h5py.File(job["path"], "r")
    if job["kind"] == "reference":
        # its libraries imported before the clock starts, as remfile's and fsspec's are on the other sides: a
        # session imports them once, whatever the number of files it opens (lindi and zarr: ~0.17 s here)
        import lindi  # noqa: F401

        from neuromirror.read.references import chunks  # noqa: F401
        from neuromirror.read.references.reading import open_hdf5

        return lambda: open_hdf5(job["path"], root=job["root"]).file  # closed by its own context manager
    raise ValueError(f"unknown reader {job['kind']!r}")


def read(job: dict) -> dict:
    import h5py
    from pynwb import NWBHDF5IO

    ranges: list[int] = []
    open_file = opener(job, ranges)
    start, stop = job["start"], job["start"] + job["rows"]
    t0 = time.perf_counter()
    with open_file() as f:
        h5 = nullcontext(f) if job["kind"] in ("reference", "local") else h5py.File(f, "r")  # h5py's API already
        with h5 as h5f, NWBHDF5IO(file=h5f, mode="r", load_namespaces=True) as io:
            nwb = io.read()
            t1 = time.perf_counter()
            rows = nwb.acquisition[job["series"]].data[start:stop]
            t2 = time.perf_counter()
    t3 = time.perf_counter()
    return {
        "wall_s": round(t3 - t0, 4),
        "open_s": round(t1 - t0, 4),
        "slice_s": round(t2 - t1, 4),
        "close_s": round(t3 - t2, 4),
        "shape": list(rows.shape),
        "digest": digest(rows),
        "range_bytes": sum(ranges) if job["kind"] == "remfile" else None,
    }


def main(argv: list[str]) -> int:
    print(json.dumps(read(json.loads(Path(argv[0]).read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

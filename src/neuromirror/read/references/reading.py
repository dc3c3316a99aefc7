"""Open an HDF5 file of a pin the quickest way the mirror has: through its LINDI reference, else by h5py.

``open_hdf5("dandi/000027@0.230629.1955/sub-01/x.nwb", root=...)`` gives an h5py-compatible file
(``pynwb.NWBHDF5IO(file=f, mode="r")`` reads it unchanged).  With a reference of the file's key under the
mirror root (and lindi importable), opening costs no request: the group tree, attributes and small
datasets are in the reference, and each chunk a slice needs is one range read of the pinned URL through
``neuromirror://``'s own read (:func:`~neuromirror.read.loss.read_range`): a URL the archive stopped serving
is read from a store of the lab's that keeps the key, in the same call.  Without one: ``h5py.File`` over the
``neuromirror://`` file, range requests in blocks as that filesystem reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from neuromirror.read.fsspec_fs import NeuromirrorFileSystem
from neuromirror.read.references.location import read_reference, reference_path

PROTOCOL = "neuromirror://"


@dataclass(frozen=True)
class Opened:
    """How a file was opened: ``file`` (h5py-compatible), ``via`` ``"reference"`` or ``"h5py"``, and its key."""

    file: Any
    via: str
    key: str
    reference: Optional[Path]


def filesystem(root: Union[str, Path, None] = None, index: Union[str, Path, None] = None) -> NeuromirrorFileSystem:
    return NeuromirrorFileSystem(root=None if root is None else str(root), index=None if index is None else str(index))


def pin_path(target: str) -> str:
    """``neuromirror://ARCHIVE/NAME@V/PATH`` or ``ARCHIVE/NAME@V/PATH`` as the latter."""
    return target[len(PROTOCOL) :] if target.startswith(PROTOCOL) else target.lstrip("/")


def open_hdf5(
    target: str,
    *,
    root: Union[str, Path, None] = None,
    index: Union[str, Path, None] = None,
    fs: Optional[NeuromirrorFileSystem] = None,
    reference: bool = True,
) -> Opened:
    """The HDF5 file ``target`` names at its pin, through its reference when there is one and ``reference``."""
    from neuromirror.read.references.lindi_env import available

    fs = fs or filesystem(root, index)
    path = pin_path(target)
    f, _ = fs._file(path)
    if reference and f.key and available():
        rfs = read_reference(fs.mirror_root, f.key)
        if rfs is not None:
            from neuromirror.read.references.chunks import open_reference

            opened = open_reference(rfs, fs._range(path), None)  # a reference names its key's bytes only
            return Opened(opened, "reference", f.key, reference_path(fs.mirror_root, f.key))
    import h5py

    return Opened(h5py.File(fs.open(path, "rb"), "r"), "h5py", f.key, None)

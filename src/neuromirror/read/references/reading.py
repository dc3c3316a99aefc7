"""Open an HDF5 file of a pin the quickest way the mirror has: through its LINDI reference, else by h5py.

``open_hdf5("dandi/000027@0.230629.1955/sub-01/x.nwb", root=...)`` gives an h5py-compatible file
(``pynwb.NWBHDF5IO(file=f, mode="r")`` reads it unchanged).  With a reference of the file's key under the
mirror root (and lindi importable), opening costs no request (none there: the one a store of the lab's keeps
beside the key, :mod:`.kept`): the group tree, attributes and small
datasets are in the reference, and each chunk a slice needs is one range read of the pinned URL through
``neuromirror://``'s own read (:func:`~neuromirror.read.loss.read_range`): a URL the archive stopped serving
is read from a store of the lab's that keeps the key, in the same call.  Of a served mirror (``base_url``),
the view answers the reference (one request; its chunks name the pinned URL, or the view's own URL of a file
only a store still serves).  Without one: ``h5py.File`` over the ``neuromirror://`` file, range requests in
blocks as that filesystem reads; or, asked to (``make``), the reference made then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from neuromirror import archives
from neuromirror.errors import BadInput
from neuromirror.read.fsspec_fs import NeuromirrorFileSystem
from neuromirror.read.references.location import SUFFIX, read_reference, reference_path
from neuromirror.spec import parse_spec

PROTOCOL = "neuromirror://"


@dataclass(frozen=True)
class Opened:
    """How a file was opened: ``file`` (h5py-compatible), ``via`` ``"reference"`` or ``"h5py"``, and its key."""

    file: Any
    via: str
    key: str
    reference: Optional[Path]


def filesystem(
    root: Union[str, Path, None] = None, index: Union[str, Path, None] = None, base_url: Optional[str] = None
) -> NeuromirrorFileSystem:
    return NeuromirrorFileSystem(
        root=None if root is None else str(root), index=None if index is None else str(index), base_url=base_url
    )


#: a SPEC as the CLI takes it, a file's path after it: ``dandi:000027@0.230629.1955/sub-01/x.nwb``
_CLI_FORM = re.compile(r"(?P<spec>[A-Za-z]+:[^@]*)(?:@(?P<version>[^/]*))?(?:/(?P<path>.*))?")


class NotHDF5(BadInput, ValueError):
    """The file of a pin is not an HDF5 file (no HDF5 signature): said in one line, not as h5py's OSError."""


def pin_path(target: str) -> str:
    """``neuromirror://ARCHIVE/NAME@V/PATH``, ``ARCHIVE/NAME@V/PATH`` or the CLI's ``ARCHIVE:NAME@V/PATH``
    as ``ARCHIVE/NAME@V/PATH`` (a SPEC without its version is a ValueError saying so)."""
    if target.startswith(PROTOCOL):
        return target[len(PROTOCOL) :]
    cli = _CLI_FORM.fullmatch(target)
    if cli is None or cli["spec"].split(":", 1)[0].lower() not in archives.names():
        return target.lstrip("/")
    if not cli["version"]:
        raise ValueError(f"{target!r}: name the version of the file, as ARCHIVE:NAME@VERSION/PATH")
    spec = parse_spec(f"{cli['spec']}@{cli['version']}")
    return f"{spec.archive}/{spec.name}@{spec.version}/{cli['path'] or ''}"


def open_hdf5(
    target: str,
    *,
    root: Union[str, Path, None] = None,
    index: Union[str, Path, None] = None,
    base_url: Optional[str] = None,
    fs: Optional[NeuromirrorFileSystem] = None,
    reference: bool = True,
    make: bool = False,
) -> Opened:
    """The HDF5 file ``target`` names at its pin, through its reference when there is one and ``reference``.
    ``base_url``: a served mirror (its view answers the reference, one request); ``make``: a file of a local
    mirror without a reference gets one now (its metadata walked once, in blocks), for every later open."""
    from neuromirror.read.references.lindi_env import available

    fs = fs or filesystem(root, index, base_url)
    path = pin_path(target)
    if reference and available():
        found = _served(fs, path) if fs.served is not None else _local(fs, path, make)
        if found is not None:
            from neuromirror.read.references.chunks import open_reference

            rfs, key, where = found
            return Opened(open_reference(rfs, fs._range(path), None), "reference", key, where)
    import h5py

    key = "" if fs.served is not None else fs._file(path)[0].key
    try:
        return Opened(h5py.File(fs.open(path, "rb"), "r"), "h5py", key, None)
    except OSError as exc:
        if "signature" not in str(exc):
            raise
        raise NotHDF5(f"{path} is not an HDF5 file (it does not start with HDF5's signature)") from None


def kept_for(target: str, *, root: Union[str, Path], index: Union[str, Path, None] = None) -> Optional[Path]:
    """Where the reference of the file ``target`` names (as :func:`open_hdf5` takes it) is kept under the mirror
    ``root``; None: none made.  ValueError: not a pinned file's path; FileNotFoundError/IsADirectoryError: no such file."""
    f, _ = filesystem(root, index)._file(pin_path(target))
    where = reference_path(Path(root), f.key) if f.key else None
    return where if where is not None and where.is_file() else None


def _local(fs: NeuromirrorFileSystem, path: str, make: bool) -> Optional[tuple[dict, str, Optional[Path]]]:
    """(the reference, the key, its file) of ``path`` in a mirror of one's own; None: none (and not ``make``)."""
    f, _ = fs._file(path)
    if not f.key:
        return None
    rfs = read_reference(fs.mirror_root, f.key)
    if rfs is None and f.repo is not None:  # the root lost it, or never had it: a store keeps it with the key
        from neuromirror.read.references.kept import kept_reference

        rfs = kept_reference(fs.mirror_root, f.key, repo=f.repo)
    if rfs is None and make and f.served_by == "archive":
        from neuromirror.read.references.make import make_reference

        rfs, _ = make_reference(fs, path)
    return None if rfs is None else (rfs, f.key, reference_path(fs.mirror_root, f.key))


def _served(fs: NeuromirrorFileSystem, path: str) -> Optional[tuple[dict, str, Optional[Path]]]:
    """(the reference, the key) the view of a served mirror answers for ``path``; None: it has none."""
    import json

    assert fs.served is not None
    head, inner = fs._parts(path)
    row = fs.served.info(head, inner) or {}
    try:
        body = fs._http_fs().cat_file(fs.served.url(head, inner) + SUFFIX)
    except FileNotFoundError:
        return None
    return json.loads(body), str(row.get("key") or ""), None

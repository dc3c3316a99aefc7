"""``urls --references``: the HDF5 files of a pin with the reference of each, where it is and at the view.

A row per ``.nwb``/``.h5`` file of the pin whose key has a reference: the file kept under the root, and with
a view's base URL the view's URLs of it (at the file's path + ``.lindi.json`` and by key) and the Neurosift
link to paste.  The view path names the pin by its label, ``draft`` by its commit (a draft moves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional, Sequence
from urllib.parse import quote

from neuromirror.read.pinned import Pin
from neuromirror.read.references.location import ROUTE, SUFFIX, has_reference, reference_path
from neuromirror.read.references.make import is_hdf5_path
from neuromirror.read.references.served import neurosift_url


def view_path(pin: Pin, path: str) -> str:
    """The view's ``/dav/`` path of ``path`` at ``pin`` (a draft by its commit)."""
    archive, _, name = pin.source.partition(":")
    version = pin.commit if pin.version in ("draft", "") else pin.version
    return f"/dav/{archive}/{name}/{version}/{path}"


def references_of(
    root: Path, pin: Pin, paths: Sequence[str] = (), view: Optional[str] = None
) -> Iterator[dict[str, Any]]:
    """A row per HDF5 file of ``pin`` (under ``paths``) that has a reference."""
    from neuromirror.annex.tree import iter_version

    base = view.rstrip("/") if view else None
    for f in iter_version(pin.dataset, pin.commit, paths=list(paths)):  # not into Zarr subdatasets: no HDF5 there
        if not f.key or not is_hdf5_path(f.path) or not has_reference(root, f.key):
            continue
        url = base + quote(view_path(pin, f.path)) + SUFFIX if base else None
        yield {
            "source": pin.source,
            "version": pin.version,
            "commit": pin.commit,
            "path": f.path,
            "key": f.key,
            "reference": str(reference_path(root, f.key)),
            "url": url,
            "by_key": f"{base}{ROUTE}/{quote(f.key)}{SUFFIX}" if base else None,
            "neurosift": neurosift_url(url) if url else None,
        }

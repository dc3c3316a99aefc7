"""A key's LINDI reference kept beside the key: in the mirror root, and in a store that keeps the key.

A reference (:mod:`neuromirror.read.references`) is made from a pinned NWB/HDF5 file's bytes and names them
by their pinned URL; it lives under the mirror root, one per git-annex key.  A mirror that loses that file
(a disk replaced, a clone, another machine reading the lab's store) would walk the file's HDF5 metadata
again, request by request, through a store whose archive copy may be gone.  So ``keep`` puts the reference
into the store beside the key, under a name of its own (:func:`reference_name`: ``LINDI--KEY.lindi.json``,
a git-annex-shaped key with no size and no checksum, which no dataset records and no clone asks for), in
the store's own layout (a directory store's file, an S3 object, a packed store's entry); a reader that
finds no reference under its root reads that one.  Here and not in ``read``: ``keep`` (beside ``read``)
needs it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from neuromirror.annex.keys import hashdir_lower
from neuromirror.store.base import Store

#: where references live under the mirror root
DIRNAME = ".neuromirror/lindi"
SUFFIX = ".lindi.json"
#: the "backend" of a reference's name in a store (no key of git-annex's own has it)
PREFIX = "LINDI--"
#: HDF5 files by name: what gets a reference (an *E key keeps the extension)
HDF5_SUFFIXES = (".nwb", ".h5", ".hdf5")


def reference_path(root: Path, key: str) -> Path:
    """``{root}/.neuromirror/lindi/{hashdir}/{KEY}.lindi.json``: the reference of ``key`` (made or not)."""
    if not key or "/" in key or key.startswith("."):
        raise ValueError(f"{key!r}: not a git-annex key")
    return Path(root) / DIRNAME / hashdir_lower(key) / f"{key}{SUFFIX}"


#: touched whenever a reference is written under the root: a keep's mark older than it may lack one
MADE_STAMP = ".made"


def note_made(root: Path) -> None:
    """Say that a reference was written under ``root`` now (:func:`made_after` reads it)."""
    stamp = Path(root) / DIRNAME / MADE_STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()


def made_after(root: Path, when: Optional[float]) -> bool:
    """Was a reference written under ``root`` after ``when`` (a keep's mark's time)?  A version kept whole
    before then may have a file whose reference its store lacks: its mark does not hold for that."""
    try:
        return when is None or (Path(root) / DIRNAME / MADE_STAMP).stat().st_mtime >= when
    except FileNotFoundError:
        return False


def reference_name(key: str) -> str:
    """The name a store keeps ``key``'s reference under (taken by its ``receive``, ``has``, ``open_key``)."""
    return f"{PREFIX}{key}{SUFFIX}"


def may_have_reference(key: str) -> bool:
    """Could ``key`` be an HDF5 file's (an extension-keeping key ending in one)?"""
    return key.lower().endswith(HDF5_SUFFIXES)


def keep_reference(root: Path, store: Store, key: str) -> Optional[bool]:
    """``key``'s reference under ``root`` put into ``store`` beside the key: True when it went in now, False
    when the store had it, None when the mirror has none.  A reference is immutable (a key's bytes are), so
    one the store holds is never written again."""
    try:
        data = reference_path(root, key).read_bytes()
    except (FileNotFoundError, ValueError):
        return None
    name = reference_name(key)
    if store.has(name):
        return False
    with store.receive(name) as incoming:
        incoming.write(data)
        return incoming.commit()

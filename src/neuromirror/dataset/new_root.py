"""A new mirror root: checked for room before a sync makes one, removed whole when its disk fills as it is made.

A sync into a root not made yet writes the root dataset, the index and a dataset per source before any
version: on a disk too small for that, it said "database or disk is full" and left ``.neuromirror/`` behind,
which the next run then took for a mirror.  What the disk cannot hold is said before work (one line naming
the file system and how much more is needed); what it stopped half-way is taken away again (what the
directory held before stays).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from neuromirror.util.disk import DiskFull, check_room, filesystem, is_full

#: what a new mirror root takes before any content (the root dataset, the index, a source's dataset: 0.9 MB
#: measured with one small dandiset), checked before a sync makes one
NEW_ROOT = 1 << 20
#: what ``new_root`` says of a root directory that was not there (no file name holds a slash)
_ABSENT = "/"


def new_root(root: Path) -> Optional[set[str]]:
    """For a root not made yet: what its directory holds now (nothing, or it does not exist), after a check that
    a new root fits on its disk; None for a root made before."""
    if (root / ".git").exists():
        return None
    check_room(root, NEW_ROOT, f"a new mirror root at {root}")
    return set(os.listdir(root)) if root.is_dir() else {_ABSENT}


def unmake_if_full(root: Path, made: Optional[set[str]], exc: BaseException) -> None:
    """A new root the disk could not hold removed (what was there before stays), said as the disk being full."""
    if made is None or not is_full(exc):
        return
    if root.is_dir():
        for name in set(os.listdir(root)) - made:
            p = root / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink()
        if _ABSENT in made and not any(root.iterdir()):
            root.rmdir()
    raise DiskFull(f"{filesystem(root)} is full: the new mirror root at {root} was not made (free space there)")

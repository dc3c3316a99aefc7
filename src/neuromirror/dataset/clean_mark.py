"""A dataset the last sync left clean: the next sync's crash check need not ask git (issue 40).

Before anything else a sync makes its dataset whole again (:meth:`.mirror.Mirror.recover`):
whatever an interrupted run left uncommitted is reset to the last commit.  Finding out takes a
``git status`` of the whole work tree — 0.2-0.3 s at 10^5 files, half of a no-change resync.
But only an interrupted run leaves debris, so a sync that ends with the dataset as its last
commit says so in ``.git/neuromirror-clean`` (HEAD and the git index's size and mtime), and
the next sync *takes* the mark — reads and deletes it, before it writes anything — and skips
the check when HEAD and the index are as the mark says.  A run killed at any point after that
leaves no mark, so the run after it checks as before; so does anything that rewrote the index
(a user's ``git add``, ``reset``, ``checkout``) or moved HEAD.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from neuromirror.util import gitutil

MARK = "neuromirror-clean"


def _stamp(ds: Path, head: str) -> Optional[str]:
    try:
        st = os.stat(ds / ".git" / "index")
    except OSError:
        return None
    return f"{head} {st.st_size} {st.st_mtime_ns}\n"


def mark_clean(ds: Path) -> None:
    """Say that ``ds`` is exactly its HEAD (called by a sync that ended so)."""
    head = gitutil.head_from_files(ds)
    stamp = _stamp(ds, head) if head else None
    if stamp is not None:
        (ds / ".git" / MARK).write_text(stamp)


def take(ds: Path) -> bool:
    """Whether the last sync left ``ds`` clean and nothing touched it since; the mark is gone after."""
    path = ds / ".git" / MARK
    try:
        said = path.read_text()
    except OSError:
        return False
    path.unlink()
    head = gitutil.head_from_files(ds)
    return head is not None and said == _stamp(ds, head)

"""Whether the web has a key, on the ``git-annex`` branch: ``web: 0`` once its archive URLs are gone.

git-annex's web remote is tried for a key only while the key's location log says the web has it;
a key whose archive bytes are gone is marked ``web: 0`` (the line ``git annex setpresentkey KEY <web
uuid> 0`` writes) so that a clone goes straight to a store, and marked back when the archive serves it
again.  Written by ``verify --content`` (:mod:`neuromirror.verify.lost_urls`) and by a reader that saw
the loss (:mod:`neuromirror.read.loss`), through the branch's one writer
(:func:`neuromirror.annex.branch_writer.mark_web`).  The URLs stay in the key's ``.log.web``.  The
caller holds the source's lock (no sync writes the branch meanwhile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from neuromirror.annex.branch_writer import mark_web, web_states

__all__ = ["GONE_STATUSES", "set_web", "web_states"]

#: HTTP answers that say the object is gone for good (S3: NoSuchKey / NoSuchVersion; 410 Gone)
GONE_STATUSES = (404, 410)


def set_web(repo: Path, gone: Iterable[str], serving: Iterable[str]) -> tuple[list[str], list[str]]:
    """Mark ``gone`` keys as not on the web and ``serving`` ones (marked before) as on it again.

    Returns (keys marked gone now, keys restored now): a key already in the wanted state is not
    written again, so a rerun is a no-op and the branch does not move.
    """
    return mark_web(repo, gone, serving)

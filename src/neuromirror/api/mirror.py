"""The API's Mirror: every verb (:mod:`.reading`; :mod:`.keeping`, :mod:`.getting` and :mod:`.upkeep` on it;
:mod:`.syncing`) on one object, and :func:`open`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from neuromirror.api.checking import Checking
from neuromirror.api.getting import Getting
from neuromirror.api.inputs import ROOT_ENV, PathLike
from neuromirror.api.keeping import Keeping
from neuromirror.api.repinning import Repinning
from neuromirror.api.serving import Serving
from neuromirror.api.syncing import Syncing
from neuromirror.api.upkeep import Upkeep
from neuromirror.errors import NotMirrored


class Mirror(Syncing, Getting, Upkeep, Checking, Keeping, Repinning, Serving):
    """A mirror: its root of datasets and its index, and every verb the commands stand on.  Use as a context
    manager, or :meth:`close`."""


def open(root: Optional[PathLike] = None, index: Optional[PathLike] = None, *, create: bool = False) -> Mirror:  # noqa: A001
    """The mirror at ``root`` (default ``$NEUROMIRROR_ROOT``, else ``./neuromirror-root``); ``index``: its
    SQLite index when not the root's own.  A mirror with no index yet is :class:`NotMirrored` (a :class:`UserError`), unless
    ``create``: then the first :meth:`~Mirror.sync` makes the root and its index (opening makes nothing)."""
    chosen = Path(root or os.environ.get(ROOT_ENV) or "neuromirror-root").absolute()
    m = Mirror(chosen, index)
    if not create and not m.datasets.index_path.exists():
        raise NotMirrored(f"no mirror at {chosen} (no index {m.datasets.index_path})").at("root")
    return m

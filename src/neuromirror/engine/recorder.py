"""Where a sync's writes to the index and the root go.

On one host the :class:`Recorder` writes them at once; a task on a cluster uses the journaling
recorder of :mod:`neuromirror.engine.executor`, so the submitting process stays the index's only
writer while the sync itself (:func:`neuromirror.engine.sync.sync_dataset`) is the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.dataset.mirror import Datasets
from neuromirror.engine.diff import records_of
from neuromirror.engine.state import Head, IndexState
from neuromirror.index.version_rows import Over, StagedVersion
from neuromirror.records import (
    Pending,
)
from neuromirror.util.memory.spool import Spool

if TYPE_CHECKING:
    pass


class Recorder:
    """Where a sync's writes outside its own dataset go: the index and the root superdataset.

    This one writes them at once, in the syncing process (one host).  On a Dask worker
    :class:`neuromirror.engine.executor.JournalRecorder` keeps them for the submitting process,
    the index's only writer; the sync itself (:func:`sync_dataset`) is the same code.
    """

    def __init__(self, mirror: Datasets, sid: str, relpath: str):
        self.mirror = mirror
        self.sid = sid
        self.relpath = relpath

    def state(self, head: Optional[str]) -> IndexState:
        return IndexState(self.mirror.index, self.sid, head)

    def ensure_dataset(self, description: str) -> Path:
        return self.mirror.ensure_dataset(self.relpath, description)

    def reindex(self, ds: Path) -> None:
        """The index lacks the dataset's HEAD (an interrupted run): rebuild the source's rows."""
        from neuromirror.dataset.reindex import reindex_dataset

        reindex_dataset(self.mirror.index, self.sid, ds, self.relpath)

    def files_spool(self) -> Spool:
        return Spool()

    def draft_modified(self, state: IndexState, remote_modified: Optional[str]) -> None:
        """The draft unchanged but touched upstream: note its new stamp on the recorded head version."""
        head = state.head_version
        if head is None:  # called only once a version is recorded
            return
        if head.id is not None:
            self.mirror.index.set_remote_modified(head.id, remote_modified)

    def stage(self, files: Spool, over: Optional[Over] = None) -> Optional[StagedVersion]:
        """Start writing the version's files into the index while its commit is made
        (:mod:`.version_rows`); :meth:`record_version` links them once the commit exists.  With ``over``,
        ``files`` are laid over a recorded version's rows (a diff over HEAD)."""
        return self.mirror.index.stage_version(self.sid, records_of(files), over)

    def record_version(
        self, state: IndexState, files: Spool, staged: Optional[StagedVersion] = None, **fields: Any
    ) -> None:
        index = self.mirror.index
        if staged is not None:
            vid = staged.finish(**fields)
        else:
            vid = index.record_version(self.sid, entries=records_of(files), **fields)
        row = index.version_by_commit(self.sid, str(fields["commit"]))
        state.now_at(Head.of(row) if row else Head(vid, str(fields["commit"])))

    def set_pending(self, pending: list[Pending]) -> None:
        self.mirror.index.set_pending(self.sid, pending)

    def register(self, message: str) -> None:
        self.mirror.register(self.relpath, message)

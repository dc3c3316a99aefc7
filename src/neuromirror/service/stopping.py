"""A graceful stop as a running sync sees it: the exception that unwinds it, and where it is raised.

The service never kills a sync thread: on SIGTERM it sets ``stopping``, and
the sync itself raises :class:`Interrupted` at its next safe point — between
snapshots, between a snapshot's entries, or when it reports progress — all
before the snapshot's commit is written.  So a stopped sync leaves its dataset
at its last commit, like one that was never started.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

from neuromirror.records import ProgressCallback, Snapshot, SourceState
from neuromirror.service.state import SourceRuntime
from neuromirror.sources.base import Source


class Interrupted(BaseException):
    """Raised inside a sync (from its progress callback) when the service stops.

    A BaseException, like KeyboardInterrupt, so that sources wrapping their
    errors (``except Exception``) let it through unchanged.
    """


class StoppableSource:
    """A source whose snapshots stop at a safe point once ``stopping`` is set.

    Safe points: before each snapshot and between its entries — all before the
    snapshot's commit is written, so an interrupted sync leaves the dataset at
    its last commit (``sync_source`` records the run and recovers the work tree).
    """

    def __init__(self, source: Source, stopping: threading.Event):
        self._source = source
        self._stopping = stopping
        self.id, self.archive, self.remote_id = source.id, source.archive, source.remote_id
        self.relpath, self.reserved = source.relpath, source.reserved

    def __getattr__(self, name: str) -> Any:  # what a source offers beyond the protocol (zarr_executor...)
        return getattr(self._source, name)

    def describe(self) -> str:
        return self._source.describe()

    def prepare_dataset(self, path: Path) -> Mapping[str, str]:
        return self._source.prepare_dataset(path)

    def _check(self) -> None:
        if self._stopping.is_set():
            raise Interrupted("the service is stopping")

    def _entries(self, entries: Iterable[Any]) -> Iterator[Any]:
        for e in entries:
            self._check()
            yield e

    def snapshots(self, state: SourceState, progress: Optional[ProgressCallback] = None) -> Iterator[Snapshot]:
        self._check()
        for snap in self._source.snapshots(state, progress):
            self._check()
            snap.entries = self._entries(snap.entries)
            yield snap


def progress_until_stopped(rt: SourceRuntime, stopping: threading.Event) -> ProgressCallback:
    """The sync's progress callback: shows the stage in ``rt`` (for the status), raises once stopping."""

    def progress(stage: str, done: int, total: Optional[int]) -> None:
        rt.stage, rt.done, rt.total = stage, done, total
        if stopping.is_set():
            raise Interrupted("the service is stopping")

    return progress

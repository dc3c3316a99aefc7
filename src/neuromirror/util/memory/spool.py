"""Records spooled to an anonymous temporary file and read back as a stream.

Listings and change sets of 10^6 items go through here instead of lists, so
memory stays flat whatever the size of an archive.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import IO, Any, Generic, Iterator, Optional, TypeVar

from neuromirror.util import counts

#: records pickled together: one pickle per record costs a third more than one per batch
BATCH = 512

T = TypeVar("T")


class Spool(Generic[T]):
    """Append-only, then iterate (any number of times); ``close`` frees the file.

    Typed by what it holds (``Spool[Obj]``), so a listing that subclasses it keeps its record type.
    """

    def __init__(self, path: Optional[Path] = None) -> None:
        # a named file (on the shared mirror root) carries records from a Dask worker to the
        # process that records them in the index: see neuromirror.engine.executor
        self.fh: IO[bytes] = open(path, "w+b") if path is not None else tempfile.TemporaryFile()
        self.count = 0
        self._batch: list[T] = []

    def add(self, obj: T) -> None:
        self._batch.append(obj)
        self.count += 1
        if len(self._batch) >= BATCH:
            self._write_batch()

    def _write_batch(self) -> None:
        if self._batch:
            self.fh.seek(0, 2)  # after a partial read, appending still goes to the end
            pickle.dump(self._batch, self.fh, protocol=pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def flush(self) -> None:
        """Everything added so far on disk (a named spool read by another process)."""
        self._write_batch()
        self.fh.flush()
        os.fsync(self.fh.fileno())
        counts.add("fsync")

    def __iter__(self) -> Iterator[T]:
        self._write_batch()
        self.fh.seek(0)
        yield from _read(self.fh, self.count)

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> Spool[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_spool(path: Path, count: int) -> Iterator[Any]:
    """The ``count`` records a :class:`Spool` wrote to the named file ``path``."""
    with open(path, "rb") as fh:
        yield from _read(fh, count)


def _read(fh: IO[bytes], count: int) -> Iterator[Any]:
    left = count
    while left > 0:
        batch = pickle.load(fh)
        left -= len(batch)
        yield from batch

"""Records spooled to an anonymous temporary file and read back as a stream.

Listings and change sets of 10^6 items go through here instead of lists, so
memory stays flat whatever the size of an archive.
"""

from __future__ import annotations

import pickle
import tempfile
from typing import IO, Any, Iterator


#: records pickled together: one pickle per record costs a third more than one per batch
BATCH = 512


class Spool:
    """Append-only, then iterate (any number of times); ``close`` frees the file."""

    def __init__(self) -> None:
        self.fh: IO[bytes] = tempfile.TemporaryFile()
        self.count = 0
        self._batch: list[object] = []

    def add(self, obj: object) -> None:
        self._batch.append(obj)
        self.count += 1
        if len(self._batch) >= BATCH:
            self._write_batch()

    def _write_batch(self) -> None:
        if self._batch:
            self.fh.seek(0, 2)  # after a partial read, appending still goes to the end
            pickle.dump(self._batch, self.fh, protocol=pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def __iter__(self) -> Iterator[Any]:
        self._write_batch()
        self.fh.seek(0)
        left = self.count
        while left > 0:
            batch = pickle.load(self.fh)
            left -= len(batch)
            yield from batch

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

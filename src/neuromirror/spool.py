"""Records spooled to an anonymous temporary file and read back as a stream.

Listings and change sets of 10^6 items go through here instead of lists, so
memory stays flat whatever the size of an archive.
"""

from __future__ import annotations

import pickle
import tempfile
from typing import IO, Any, Iterator


class Spool:
    """Append-only, then iterate (any number of times); ``close`` frees the file."""

    def __init__(self) -> None:
        self.fh: IO[bytes] = tempfile.TemporaryFile()
        self.count = 0

    def add(self, obj: object) -> None:
        pickle.dump(obj, self.fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def __iter__(self) -> Iterator[Any]:
        self.fh.seek(0)
        for _ in range(self.count):
            yield pickle.load(self.fh)

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""An inventory date, opened: its manifest, and its rows streamed one data file at a time.

Bounded memory whatever the inventory's size: one data file is on local disk at a time (a bucket's
file is copied to a temporary directory, a local one read in place), its size and MD5 checked against
the manifest *before* any of its rows is given out (a corrupted file is refused whole, never half
read), then decompressed and read record by record.  Only CSV data files are read; an ORC or Parquet
inventory is refused at opening in one line naming its format unless ``pyarrow`` is installed (it
is not a dependency of neuromirror).
"""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Sequence

from neuromirror.inventory.location import Place, locate
from neuromirror.inventory.manifest import InventoryFile, Manifest, parse_manifest
from neuromirror.inventory.rows import (
    InventoryError,
    InventoryRow,
    PinFields,
    pin_records,
    read_records,
    schema_columns,
)

#: what a broken data file raises while it is decompressed and read
_BROKEN = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error)


class Inventory:
    """One inventory date: :attr:`manifest`, :attr:`date` (its folder's name), and :meth:`rows`."""

    def __init__(self, place: Place, manifest_key: str, date: str) -> None:
        self.place = place
        self.date = date
        where = place.url(manifest_key)
        data = place.read(manifest_key)
        if data is None:
            raise InventoryError(f"{where}: no such manifest")
        folder = manifest_key.rpartition("/")[0]
        checksum = place.read(f"{folder}/manifest.checksum" if folder else "manifest.checksum")
        self.manifest: Manifest = parse_manifest(data, where, checksum)
        if self.manifest.file_format != "CSV":
            raise InventoryError(
                f"{where}: fileFormat {self.manifest.file_format} is not read here (CSV only; "
                f"{self.manifest.file_format} would need pyarrow, which is not installed)"
            )
        self.columns = schema_columns(self.manifest.file_schema)

    @property
    def files(self) -> tuple[InventoryFile, ...]:
        return self.manifest.files

    def rows(self, prefixes: Optional[Sequence[str]] = None) -> Iterator[InventoryRow]:
        """Every row of every data file, file by file (only keys under ``prefixes``, when given)."""
        for file in self.files:
            yield from self.file_rows(file, prefixes)

    def file_rows(self, file: InventoryFile, prefixes: Optional[Sequence[str]] = None) -> Iterator[InventoryRow]:
        """The rows of one data file, after its size and MD5 were found to be the manifest's."""
        with self._text(file) as (text, where):
            rows = read_records(_records(text, where), self.columns, where)
            if prefixes:
                under = tuple(prefixes)
                rows = (row for row in rows if row.key.startswith(under))
            yield from rows

    def pin_fields(self, file: InventoryFile, prefixes: Sequence[str]) -> Iterator[PinFields]:
        """What a pin needs of the rows of one data file under ``prefixes`` (:func:`.rows.pin_records`), checked
        as :meth:`file_rows` checks them (the CSV reader's records taken as it gives them: one hop less a row)."""
        with self._text(file) as (text, where):
            try:
                yield from pin_records(csv.reader(text), self.columns, where, prefixes)
            except _BROKEN as exc:
                raise _unreadable(where, exc) from None

    @contextmanager
    def _text(self, file: InventoryFile) -> Iterator[tuple[IO[str], str]]:
        """One data file's text (and its URL, for messages), once its size and MD5 are the manifest's."""
        where = self.place.url(file.key)
        with tempfile.TemporaryDirectory(prefix="neuromirror-inventory-") as tmp:
            path = self.place.fetch(file.key, file.md5, file.size, Path(tmp))
            with open(path, "rb") as raw:
                yield _text(raw), where


def _text(raw: IO[bytes]) -> IO[str]:
    """The file's text: gunzipped when it is gzip (AWS's are: ``.csv.gz``)."""
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", newline="")


def _records(text: IO[str], where: str) -> Iterator[list[str]]:
    try:
        yield from csv.reader(text)
    except _BROKEN as exc:
        raise _unreadable(where, exc) from None


def _unreadable(where: str, exc: BaseException) -> InventoryError:
    return InventoryError(f"{where}: not a readable CSV data file ({type(exc).__name__}: {exc})")


def open_inventory(url: str, date: Optional[str] = None, *, endpoint: Optional[str] = None) -> Inventory:
    """The inventory at ``url`` (an ``s3://`` destination prefix, a ``manifest.json``, or a local directory
    of the same layout), of the newest date or of ``date`` (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH-MMZ``)."""
    place, key, folder = locate(url, date, endpoint)
    return Inventory(place, key, folder)

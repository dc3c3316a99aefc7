"""One row of an S3 Inventory data file, typed: :class:`InventoryRow`, and the reading of CSV records into it.

The columns are the manifest's ``fileSchema`` (``Bucket, Key, VersionId, IsLatest, IsDeleteMarker,
Size, LastModifiedDate, ETag, IsMultipartUploaded`` and whatever else the configuration asked for), in
its order, with no header line.  Keys are URL-encoded as HTML forms encode them (a space is ``+``), so
they are read back with ``unquote_plus``.  A delete marker has an empty Size and ETag.  A schema without
``VersionId`` (an inventory of current versions only) gives rows with no version id; one without
``IsLatest`` rows taken as latest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar
from urllib.parse import unquote_plus

from neuromirror.errors import UserError

T = TypeVar("T")

#: the columns a row is made of (any other column of the schema is read past)
COLUMNS = ("Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag", "IsMultipartUploaded")


class InventoryError(UserError):
    """An inventory that cannot be read as one: the message names the file (and line) and what is wrong."""


@dataclass(frozen=True, slots=True)
class InventoryRow:
    """One object version as the inventory lists it (a delete marker: ``size`` and ``etag`` None)."""

    key: str
    version_id: Optional[str]
    is_latest: bool
    is_delete_marker: bool
    size: Optional[int]
    last_modified: Optional[datetime]
    etag: Optional[str]
    multipart: bool


def schema_columns(file_schema: str) -> list[str]:
    """The column names of a manifest's ``fileSchema`` (``"Bucket, Key, ..."``), in order."""
    names = [name.strip() for name in file_schema.split(",")]
    if "Key" not in names:
        raise InventoryError(f"the inventory's fileSchema has no Key column: {file_schema[:200]!r}")
    return names


def _flag(text: str) -> bool:
    return text == "true"


def _time(text: str) -> Optional[datetime]:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _key(text: str) -> str:
    return unquote_plus(text) if ("%" in text or "+" in text) else text


def row_reader(columns: list[str]) -> Callable[[list[str]], InventoryRow]:
    """A function of one CSV record (its fields, in the schema's order) to its :class:`InventoryRow`.

    Built once per file: the positions of the columns are looked up here, not per row (10^7 rows)."""
    at = {name: i for i, name in enumerate(columns)}
    key_at = at["Key"]
    version_at, latest_at, marker_at = at.get("VersionId"), at.get("IsLatest"), at.get("IsDeleteMarker")
    size_at, time_at, etag_at, multi_at = (
        at.get("Size"),
        at.get("LastModifiedDate"),
        at.get("ETag"),
        at.get("IsMultipartUploaded"),
    )

    def read(f: list[str]) -> InventoryRow:
        etag = f[etag_at].strip('"') if etag_at is not None else ""
        size = f[size_at] if size_at is not None else ""
        version = f[version_at] if version_at is not None else None
        return InventoryRow(
            _key(f[key_at]),
            # an empty VersionId: written while the bucket was unversioned, S3's version "null"
            (version or "null") if version is not None else None,
            _flag(f[latest_at]) if latest_at is not None else True,
            _flag(f[marker_at]) if marker_at is not None else False,
            int(size) if size else None,
            _time(f[time_at]) if time_at is not None else None,
            etag or None,
            _flag(f[multi_at]) if multi_at is not None else "-" in etag,
        )

    return read


def read_records(records: Iterable[list[str]], columns: list[str], where: str) -> Iterator[InventoryRow]:
    """The rows of one data file's CSV records; a record of the wrong width or a field that is not what
    its column holds is refused in one line naming ``where`` and the line."""
    return _checked(records, len(columns), where, row_reader(columns))


def _checked(
    records: Iterable[list[str]], width: int, where: str, read: Callable[[list[str]], Optional[T]]
) -> Iterator[T]:
    """``read`` of each record of ``width`` fields (None: passed by); a record of another width, or a field
    ``read`` finds is not what its column holds (a ValueError), refused in one line naming ``where`` and the line."""
    line = 0
    try:
        for line, fields in enumerate(records, 1):
            if len(fields) != width:
                raise InventoryError(f"{where}: line {line} has {len(fields)} fields, the fileSchema names {width}")
            got = read(fields)
            if got is not None:
                yield got
    except ValueError as exc:
        raise InventoryError(f"{where}: line {line}: {exc}") from None


#: the columns a pin reads and what a record is taken to hold in each one its schema does not name
_PIN_DEFAULTS = {
    "VersionId": "",
    "IsLatest": "true",
    "IsDeleteMarker": "false",
    "Size": "",
    "LastModifiedDate": "",
    "ETag": "",
}


def _pin_columns(columns: list[str]) -> tuple[Any, ...]:
    """The positions of Key and of the :data:`_PIN_DEFAULTS` columns in a record, and the fields to pad it
    with for those its schema does not name (placed past its end): no test per row of which columns exist."""
    at = {name: i for i, name in enumerate(columns)}
    pad: list[str] = []
    for name, default in _PIN_DEFAULTS.items():
        if name not in at:
            at[name] = len(columns) + len(pad)
            pad.append(default)
    return (at["Key"], *(at[name] for name in _PIN_DEFAULTS), pad)


#: what :func:`pin_records` gives of a record: (key, version id, latest, delete marker, size, ETag, modified as
#: the inventory writes it)
PinFields = tuple[str, Optional[str], bool, bool, Optional[int], Optional[str], Optional[str]]


def pin_records(
    records: Iterable[list[str]], columns: list[str], where: str, prefixes: Sequence[str]
) -> Iterator[PinFields]:
    """What a pin needs of each record whose key is under ``prefixes``, checked as :func:`read_records` checks
    it, at a third of its cost (a cold sync's pins load reads 10^6 rows before its first Zarr): no row object,
    no datetime made (the time is checked and given as its text; :func:`neuromirror.util.dates.parse_iso`
    reads it), and a key outside ``prefixes`` passed by before anything else of it is read."""
    return _checked(records, len(columns), where, _pin_reader(columns, tuple(prefixes)))


def _pin_reader(columns: list[str], under: tuple[str, ...]) -> Callable[[list[str]], Optional[PinFields]]:
    """A record's :data:`PinFields`, None for a key outside ``under`` (column positions looked up once, as
    :func:`row_reader` does)."""
    key_at, version_at, latest_at, marker_at, size_at, time_at, etag_at, pad = _pin_columns(columns)
    versioned = "VersionId" in columns
    checked = datetime.fromisoformat

    def read(f: list[str]) -> Optional[PinFields]:
        key = _key(f[key_at])
        if not key.startswith(under):
            return None
        f += pad
        size, when, etag = f[size_at], f[time_at], f[etag_at].strip('"')
        if when:
            checked(when)
        return (
            key,
            (f[version_at] or "null") if versioned else None,
            f[latest_at] == "true",
            f[marker_at] == "true",
            int(size) if size else None,
            etag or None,
            when or None,
        )

    return read

"""An inventory date's ``manifest.json``: what format its data files are in, their columns, and each file's
key, size and MD5.

The shape (AWS's "Inventory manifest"): ``sourceBucket``, ``destinationBucket`` (an ARN),
``version``, ``creationTimestamp`` (milliseconds since the epoch, as a string), ``fileFormat``
(``CSV``, ``ORC`` or ``Parquet``), ``fileSchema`` (CSV: the column names, comma-separated; ORC and
Parquet: a struct type) and ``files``: ``{key, size, MD5checksum}``, each ``key`` the data file's
whole key in the destination bucket.  Beside it ``manifest.checksum`` holds the MD5 of
``manifest.json``; it is checked when present.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

from neuromirror.inventory.rows import InventoryError

FORMATS = ("CSV", "ORC", "Parquet")


@dataclass(frozen=True)
class InventoryFile:
    """One data file of an inventory date: its key in the destination bucket, its size and MD5 (hex)."""

    key: str
    size: int
    md5: str


@dataclass(frozen=True)
class Manifest:
    """One inventory date's manifest (``where``: the manifest's URL or path, for messages)."""

    where: str
    source_bucket: str
    file_format: str
    file_schema: str
    files: tuple[InventoryFile, ...]
    creation_ms: Optional[int] = None

    @property
    def size(self) -> int:
        """The data files' bytes, all together."""
        return sum(f.size for f in self.files)


def _file(entry: Any, where: str) -> InventoryFile:
    try:
        return InventoryFile(str(entry["key"]), int(entry["size"]), str(entry["MD5checksum"]).lower())
    except (KeyError, TypeError, ValueError):
        raise InventoryError(
            f"{where}: a files[] entry without key, size and MD5checksum: {str(entry)[:200]}"
        ) from None


def parse_manifest(data: bytes, where: str, checksum: Optional[bytes] = None) -> Manifest:
    """The manifest in ``data`` (and ``checksum``, the text of ``manifest.checksum``, checked if given)."""
    if checksum is not None:
        want = checksum.decode("ascii", "replace").strip().lower()
        if want and hashlib.md5(data).hexdigest() != want:
            raise InventoryError(
                f"{where}: its MD5 is not the {want} its manifest.checksum says (changed or cut short)"
            )
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InventoryError(f"{where}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise InventoryError(f"{where}: not an S3 Inventory manifest (no files list)")
    fmt = str(doc.get("fileFormat", ""))
    if fmt not in FORMATS:
        raise InventoryError(f"{where}: fileFormat {fmt!r} is none of {', '.join(FORMATS)}")
    created = str(doc.get("creationTimestamp") or "")
    return Manifest(
        where=where,
        source_bucket=str(doc.get("sourceBucket") or ""),
        file_format=fmt,
        file_schema=str(doc.get("fileSchema") or ""),
        files=tuple(_file(entry, where) for entry in doc["files"]),
        creation_ms=int(created) if created.isdigit() else None,
    )

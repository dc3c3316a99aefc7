"""Zarr manifest files in DANDI's format, one per Zarr state the mirror records.

The DANDI archive cannot publish a dandiset version that holds a Zarr (dandi-archive issue
2915); its design for versioned Zarrs (dandi-archive ``doc/design/zarr-manifests.md``, proof of
concept in dandi/zarr-manifests) is a JSON manifest per Zarr state, read by dandidav's
``/zarrs/`` tree.  The mirror already lists each Zarr state with every object's S3 versionId,
so it writes the same files under its root — ``zarr-manifests/{id[:3]}/{id[3:6]}/{id}/
{checksum}.json`` — and dandidav, or any client of the format, can take the mirror as its
manifest root (the view serves them, :mod:`neuromirror.read.view_zarrs`).

The file's format (written and read) is :mod:`neuromirror.util.zarr_manifest`, shared with the
DANDI stand-in, which publishes the archive's own, and ``audit --recheck``, which compares the two.
Beside the manifests of a Zarr sits ``.neuromirror.json``, the Zarr's S3 prefix (an entry's URL is
that prefix, its path and its ``versionId``), which listings of the manifest tree leave out as
dandidav leaves out names with a dot.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Optional, Sequence
from urllib.parse import quote

from neuromirror.util.zarr_manifest import ManifestEntry as ManifestEntry
from neuromirror.util.zarr_manifest import write_document

DIRNAME = "zarr-manifests"
SIDECAR = ".neuromirror.json"
#: S3's name for the version of an object in a bucket without versioning
NULL_VERSION = "null"


def manifest_root(state: object) -> Optional[str]:
    """Where the sync writes Zarr manifests (the mirror's ``zarr-manifests/``), if its state says."""
    root = getattr(state, "manifest_root", None)
    return str(root) if root else None


def zarr_uuid(bucket_url: str) -> str:
    """An id for a Zarr the archive gives none (an AIND Zarr): a UUID of its S3 prefix, stable."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, bucket_url.rstrip("/") + "/"))


#: one thread at a time makes a manifest's directories, each only those missing (``os.makedirs`` looks
#: before it makes; ``Path.mkdir(parents=True)`` tries the deepest first and fails its way up), so the
#: directories a sync makes do not depend on which Zarr job came first (tests/budgets.json counts them)
_DIRS = threading.Lock()


def manifest_path(root: Path, zarr_id: str, checksum: str) -> Path:
    """Where the manifest of ``zarr_id`` at ``checksum`` lives under a manifest root."""
    return root / zarr_id[:3] / zarr_id[3:6] / zarr_id / f"{checksum}.json"


def write_manifest(
    root: Path,
    zarr_id: str,
    checksum: str,
    entries: Sequence[ManifestEntry],
    *,
    base_url: Optional[str] = None,
    source: Optional[str] = None,
    archive_checksum: Optional[str] = None,
) -> Path:
    """Write (atomically) the manifest of one Zarr state; an existing one is left as it is.

    ``checksum`` is the Zarr checksum computed from ``entries``; ``archive_checksum``, when the
    archive states another, is recorded as the proof of concept does (``zarrChecksumMismatch``).
    """
    target = manifest_path(root, zarr_id, checksum)
    with _DIRS:  # Zarr jobs write side by side: one makes a shared parent, the others find it made
        os.makedirs(target.parent, exist_ok=True)
    if base_url:
        _write_sidecar(target.parent, {"url": base_url, "source": source})
    if target.exists():
        return target
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            write_document(out, entries, checksum, archive_checksum)
        os.chmod(tmp, 0o644)  # readable by whatever web server publishes the manifest root
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target


def _write_sidecar(directory: Path, about: dict[str, Optional[str]]) -> None:
    """The Zarr's S3 prefix and source (the view hides a source it must), written before any manifest."""
    side = directory / SIDECAR
    body = json.dumps(about) + "\n"
    if side.exists() and side.read_text(encoding="utf-8") == body:
        return
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(body)
    os.chmod(tmp, 0o644)
    os.replace(tmp, side)


def _sidecar(directory: Path, field: str) -> Optional[str]:
    try:
        got = json.loads((directory / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = got.get(field) if isinstance(got, dict) else None
    return value if isinstance(value, str) else None


def base_url_of(directory: Path) -> Optional[str]:
    """The S3 prefix a Zarr's manifests are relative to (see the module), if recorded."""
    return _sidecar(directory, "url")


def source_of(directory: Path) -> Optional[str]:
    """The source (``dandi:000108``, ``aind:ASSET``) whose Zarr a manifest directory holds, if recorded."""
    return _sidecar(directory, "source")


class ManifestRows:
    """A Zarr's manifest rows, spooled as its listing streams by (one JSON array per line).

    An AIND asset's Zarrs are committed by jobs after the listing has moved on, and a Zarr can
    hold 10^6 objects: its rows wait in a file beside the Zarr's entry spool, not in memory.
    ``base`` is the Zarr's S3 prefix, learnt from the first object's URL.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base: Optional[str] = None
        self._out: Optional[IO[str]] = None

    def add(
        self, inner: str, version_id: Optional[str], modified: datetime, size: int, etag: str, url: Optional[str]
    ) -> None:
        if self._out is None:
            self._out = self.path.open("w", encoding="utf-8")
        if self.base is None and url:
            plain, tail = url.split("?", 1)[0], quote(inner, safe="/~")
            if plain.endswith("/" + tail):
                self.base = plain[: -len(tail)]
        when = modified if modified.tzinfo else modified.replace(tzinfo=timezone.utc)
        self._out.write(json.dumps([inner, version_id or NULL_VERSION, when.timestamp(), size, etag.strip('"')]) + "\n")

    def close(self) -> ManifestRows:
        if self._out is not None:
            self._out.close()
            self._out = None
        return self

    def discard(self) -> None:
        self.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def read_rows(path: Path) -> list[ManifestEntry]:
    """The rows :class:`ManifestRows` spooled."""
    out = []
    with path.open(encoding="utf-8") as rows:
        for line in rows:
            inner, version, when, size, etag = json.loads(line)
            out.append(ManifestEntry(inner, version, datetime.fromtimestamp(when, timezone.utc), size, etag))
    return out

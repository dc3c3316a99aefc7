"""Values as the DANDI Archive writes them: schema version, dates, digests, identifiers, formats.

Why a module of its own: the records, the rendering and the Python API all need the
same small conventions (DRF's datetime format, compact JSON, the dandi-etag, what
dandi-cli puts in ``encodingFormat``), and getting one of them subtly different from
the real archive is exactly what a stand-in must not do.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mimetypes
import os
import random
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, Optional

UTC = timezone.utc
try:  # the schema version the installed dandischema speaks
    from dandischema.consts import ALLOWED_INPUT_SCHEMAS as ALLOWED_SCHEMAS
    from dandischema.consts import DANDI_SCHEMA_VERSION as SCHEMA_VERSION
except Exception:  # pragma: no cover - dandischema is a dependency of dandi
    SCHEMA_VERSION = "0.6.10"
    ALLOWED_SCHEMAS = [SCHEMA_VERSION]

DOI_PREFIX = "10.80507"
EMBARGO_STATUSES = ("OPEN", "EMBARGOED", "UNEMBARGOING")
ASSET_ORDERS = ("created", "-created", "modified", "-modified", "path", "-path")

_ENCODINGS = {
    ".nwb": "application/x-nwb",
    ".zarr": "application/x-zarr",
    ".ngff": "application/x-zarr",
    ".json": "application/json",
    ".jsonld": "application/ld+json",
    ".yaml": "application/x-yaml",
    ".yml": "application/x-yaml",
    ".tsv": "text/tab-separated-values",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".mp4": "video/mp4",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".h5": "application/x-hdf5",
    ".hdf5": "application/x-hdf5",
    ".nii": "application/x-nifti",
}


def encoding_format(path: str) -> str:
    """Guess ``encodingFormat`` from a path's extension (what dandi-cli puts in metadata)."""
    suffixes = PurePosixPath(path).suffixes
    for suf in reversed(suffixes):
        enc = _ENCODINGS.get(suf.lower())
        if enc:
            return enc
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


def now() -> datetime:
    return datetime.now(UTC)


def aware(dt: Optional[datetime]) -> datetime:
    if dt is None:
        return now()
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@functools.lru_cache(maxsize=8192)
def drf_dt(dt: datetime) -> str:
    """Datetime as Django REST framework renders it (ISO 8601, 'Z' for UTC)."""
    s = dt.isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dandi_etag(content: bytes) -> str:
    from dandischema.digests.dandietag import DandiETag

    etag = DandiETag(len(content))
    for part in etag.get_parts():
        etag.update(content[part.offset : part.offset + part.size])
    return etag.as_str()


def etag_part_spans(size: int) -> list[tuple[int, int]]:
    """(offset, size) of each part of a ``size``-byte upload, as the dandi-etag divides it."""
    from dandischema.digests.dandietag import PartGenerator

    return [(p.offset, p.size) for p in PartGenerator.for_file_size(size)]


def zarr_part_spans(size: int, part_size: int) -> list[tuple[int, int]]:
    """(offset, size) of each part of a multipart Zarr's chunk: parts of ``part_size`` (0: DANDI's rule, the
    part URLs the archive hands out for blobs); an empty chunk is one empty part."""
    if not part_size:
        return etag_part_spans(size) or [(0, 0)]
    return [(o, min(part_size, size - o)) for o in range(0, size, part_size)] or [(0, 0)]


def multipart_etag(data: bytes, spans: list[tuple[int, int]]) -> str:
    """S3's ETag of ``data`` uploaded in ``spans``: the MD5 of the parts' MD5s, ``-<parts>``."""
    md5s = b"".join(hashlib.md5(data[o : o + n]).digest() for o, n in spans)
    return f"{hashlib.md5(md5s).hexdigest()}-{len(spans)}"


def etag_parts(size: int) -> int:
    from dandischema.digests.dandietag import PartGenerator

    return len(PartGenerator.for_file_size(size))


def uuid4s(n: int) -> list[str]:
    """``n`` random UUID4 strings, ~5x faster than ``str(uuid.uuid4())`` in a loop."""
    raw = bytearray(os.urandom(16 * n))
    out: list[str] = []
    for i in range(0, 16 * n, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80
        h = raw[i : i + 16].hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


#: Fields the archive computes; stripped from user-supplied asset metadata.
ASSET_COMPUTED_FIELDS = frozenset(
    {"id", "access", "path", "identifier", "contentUrl", "contentSize", "digest", "@context"}
)


def pseudo_bytes(seed: str, size: int) -> bytes:
    rnd = random.Random(seed)
    return rnd.randbytes(size)

"""Pins resting only on a noncurrent S3 version: safe today, gone when the archive's lifecycle expires it.

A file pinned by ``?versionId=`` is safe while that version exists.  Once the archive overwrote the
object (a Zarr chunk rewritten in place, an AIND object replaced) or deleted it, the pinned version
is *noncurrent*, and buckets expire noncurrent versions (DANDI: 30 days after they became
noncurrent, doc/design/s3-trailing-delete.md).  Such a file counts as at risk (``noncurrent``), not
as safely pinned.  Known from the index alone, no network: the source's newest recorded state says
which version of each S3 object is current; an older state's pinned URL is noncurrent when

* the newest state names the same bucket and key with other versionIds only (overwritten), or
* the newest state lacks the key but still holds its container — the same Zarr (``zarr/<id>/``) or
  AIND asset (the key's first component) — (deleted from it).

A DANDI blob (``blobs/…``) is content-addressed and never overwritten; a blob no state names any
more stays current until garbage collection deletes it (``verify --archive`` finds that), so it is
not counted here; neither is a key whose container the newest state dropped as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import parse_qs, urlsplit

from neuromirror.sources import s3urls
from neuromirror.sources.dandi.zarr_listing import is_archive_key


def _versioned(url: str) -> Optional[tuple[str, str, str]]:
    """(bucket, key, versionId) of a versioned S3 object URL, else None."""
    vid = parse_qs(urlsplit(url).query).get("versionId")
    if not vid:
        return None
    loc = s3urls.locate(url, s3urls.endpoints_in_use(), archive_key=lambda k: bool(k))
    if loc is None or not loc.key:
        return None
    return loc.bucket, loc.key, vid[0]


def _container(key: str) -> str:
    parts = key.split("/")
    return "/".join(parts[:2]) if parts[0] == "zarr" else parts[0]


@dataclass
class CurrentObjects:
    """The S3 objects the source's newest state names: (bucket, key) -> versionIds; their containers."""

    versions: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    containers: set[tuple[str, str]] = field(default_factory=set)

    def add(self, urls: Iterable[str]) -> None:
        for u in urls:
            got = _versioned(u)
            if got is not None:
                bucket, key, vid = got
                self.versions.setdefault((bucket, key), set()).add(vid)
                self.containers.add((bucket, _container(key)))

    def only_noncurrent(self, urls: Iterable[str]) -> bool:
        """Whether every versioned URL of a file names a noncurrent version (and it has one at least)."""
        seen = False
        for u in urls:
            got = _versioned(u)
            if got is None:
                continue
            bucket, key, vid = got
            current = self.versions.get((bucket, key))
            if current is None:
                if key.startswith("blobs/") and is_archive_key(key):
                    return False  # a DANDI blob: never overwritten, current until GC
                if (bucket, _container(key)) not in self.containers:
                    return False  # its whole container left the newest state: not known here
            elif vid in current:
                return False
            seen = True
        return seen


def current_objects(index: Any, ds: Path, source: str) -> Optional[CurrentObjects]:
    """The objects the source's newest recorded state names (None: no state recorded)."""
    from neuromirror.keep.files import version_files

    head = index.head_version(source)
    if head is None:
        return None
    out = CurrentObjects()
    for f in version_files(index, ds, head["id"]).annexed:
        out.add(f.urls)
    return out

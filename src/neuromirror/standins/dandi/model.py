"""The archive's records: dandisets, their versions, assets, and the blobs and Zarrs behind them.

Why plain records: the stand-in must change its state the way dandi-archive's models
do (an asset is immutable and replaced, a blob is shared by every asset with its
bytes, a published version freezes its asset map), and answer 10^5 assets a listing
fast.  So each record carries the few caches rendering needs (``rev`` counters say
when a cached JSON fragment is stale); the rules that change records live with the
Python API (:mod:`~neuromirror.standins.dandi.dandisets`,
:mod:`~neuromirror.standins.dandi.assets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional


def blob_key(blob_id: str) -> str:
    return f"blobs/{blob_id[0:3]}/{blob_id[3:6]}/{blob_id}"


@dataclass(eq=False, slots=True)
class BlobRecord:
    """A stored blob (content-addressed by sha256; shared by all assets with that content)."""

    blob_id: str
    sha256: str
    etag: str
    size: int
    bucket: str
    embargoed: bool
    created: datetime
    sha256_ready: bool = True
    uploaded: bool = False
    #: S3 VersionId of the upload (None if the bytes were never uploaded)
    version_id: Optional[str] = None
    #: bumped whenever something rendered from the blob changes (digest, URL, access)
    rev: int = 0

    @property
    def key(self) -> str:
        return blob_key(self.blob_id)

    @property
    def digest(self) -> dict[str, str]:
        d = {"dandi:dandi-etag": self.etag}
        if self.sha256_ready:
            d["dandi:sha2-256"] = self.sha256
        return d


@dataclass(eq=False)
class ZarrFile:
    size: int
    md5: str  # its S3 ETag: the MD5, or a multipart Zarr's chunk's multipart ETag ("<md5>-<parts>")
    last_modified: datetime
    version_id: Optional[str] = None


@dataclass(eq=False)
class ZarrRecord:
    """A zarr archive: files under ``zarr/<zarr_id>/`` and the dandi-zarr-checksum over them."""

    zarr_id: str
    dandiset_id: str
    name: str
    bucket: str
    created: datetime
    modified: datetime
    files: dict[str, ZarrFile] = field(default_factory=dict)
    checksum: str = ""
    corrupted: bool = False
    rev: int = 0
    #: "singlepart" (every Zarr before dandi-archive PR #2869) or "multipart": chunks uploaded in parts, the
    #: checksum tree built from their multipart ETags (doc/design/multipart-zarr-chunks.md)
    upload_type: str = "singlepart"
    #: a multipart Zarr's part size; 0: DANDI's own rule (dandischema's PartGenerator, as for blobs)
    part_size: int = 0
    _sorted: Optional[tuple[int, list[str]]] = None
    #: its item in the Zarr list, keyed by ``rev`` (rendered once per change, as assets' items)
    _item: Optional[tuple[int, bytes]] = None
    _size: Optional[tuple[int, int]] = None

    @property
    def size(self) -> int:
        """Summed once per change (``rev``): a version's size sums its assets' at every request, and
        summing 20,000 Zarrs' files each time made one GET of a dandiset take ~0.3 s."""
        if self._size is None or self._size[0] != self.rev:
            self._size = (self.rev, sum(f.size for f in self.files.values()))
        return self._size[1]

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def reported_checksum(self) -> str:
        """The checksum the API reports (wrong on purpose after corrupt_zarr_checksum)."""
        if not self.corrupted:
            return self.checksum
        first = "0" if self.checksum[:1] != "0" else "1"
        return first + self.checksum[1:]

    def recompute(self) -> None:
        from zarr_checksum.tree import ZarrChecksumTree

        tree = ZarrChecksumTree()
        for rel, f in self.files.items():
            tree.add_leaf(path=Path(rel), size=f.size, digest=f.md5)
        self.checksum = tree.process().digest

    def sorted_keys(self) -> list[str]:
        if self._sorted is None or self._sorted[0] != self.rev:
            self._sorted = (self.rev, sorted(self.files))
        return self._sorted[1]


@dataclass(eq=False, slots=True)
class AssetRecord:
    """An immutable asset (path + blob or zarr + metadata); replaced, never edited."""

    asset_id: str
    dandiset_id: str
    path: str
    created: datetime
    modified: datetime
    metadata: dict[str, Any]
    seq: int
    blob: Optional[BlobRecord] = None
    zarr: Optional[ZarrRecord] = None
    published: bool = False
    published_at: Optional[datetime] = None
    rev: int = 0
    path_lower: str = ""
    _item: Optional[tuple[Any, bytes]] = None
    _meta: Optional[tuple[Any, bytes]] = None
    #: JSON of ``metadata`` (the user part), keyed by ``rev``
    _user_json: Optional[tuple[int, bytes]] = None

    def __post_init__(self) -> None:
        if not self.path_lower:
            self.path_lower = self.path.lower()

    @property
    def size(self) -> int:
        if self.blob is not None:
            return self.blob.size
        assert self.zarr is not None
        return self.zarr.size

    @property
    def backing_rev(self) -> int:
        if self.blob is not None:
            return self.blob.rev
        assert self.zarr is not None
        return self.zarr.rev


@dataclass(eq=False)
class VersionRecord:
    """The draft (mutable) or a published version (frozen asset map and metadata)."""

    pk: int
    dandiset_id: str
    version: str
    name: str
    created: datetime
    modified: datetime
    #: draft: the user part of the metadata; published: the frozen rendered metadata
    metadata: dict[str, Any]
    assets: dict[str, AssetRecord] = field(default_factory=dict)
    status: str = "Valid"
    doi: Optional[str] = None
    rev: int = 0
    _lists: dict[Any, tuple[int, list[AssetRecord]]] = field(default_factory=dict)

    @property
    def asset_count(self) -> int:
        return len(self.assets)

    @property
    def size(self) -> int:
        return sum(a.size for a in self.assets.values())

    def touch(self, when: datetime) -> None:
        self.modified = max(self.modified, when)
        self.rev += 1
        self.status = "Valid"


@dataclass(eq=False)
class DandisetRecord:
    identifier: str
    created: datetime
    modified: datetime
    embargo_status: str
    draft: VersionRecord
    published: list[VersionRecord] = field(default_factory=list)
    embargo_end_date: Optional[str] = None

    def latest(self) -> VersionRecord:
        return self.published[-1] if self.published else self.draft

    def version(self, v: str) -> Optional[VersionRecord]:
        if v == "draft":
            return self.draft
        for ver in self.published:
            if ver.version == v:
                return ver
        return None

"""What the DANDI stand-in holds: its records, the buckets their bytes live in, the URLs it answers on.

Why a base of its own: the Python API, the rendering and the routes are mixins over
this one state (one lock guards it all), so that :class:`~neuromirror.standins.dandi.server.DandiStandIn`
is a single object a test mutates and a client reads, as the real archive is.
Lookups here are the ones every part needs; they take the lock or expect it held.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

from neuromirror.standins.dandi.model import AssetRecord, BlobRecord, DandisetRecord, ZarrRecord, blob_key
from neuromirror.standins.s3 import S3StandIn


class ArchiveState:
    """The in-memory archive: dandisets, assets, blobs and Zarrs, with blobs in ``s3``."""

    def __init__(
        self,
        s3: S3StandIn,
        *,
        bucket: str = "dandiarchive",
        embargo_bucket: Optional[str] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_token: Optional[str] = None,
        other_tokens: Iterable[str] = (),
        server_version: str = "0.4.0",
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.embargo_bucket = embargo_bucket or f"{bucket}-embargo"
        self.host = host
        self.port = port
        #: the owner's API key; None disables access control altogether
        self.api_token = api_token
        #: valid keys of users who own nothing (embargoed data -> 403)
        self.other_tokens = set(other_tokens)
        self.server_version = server_version
        self._lock = threading.RLock()
        self._dandisets: dict[str, DandisetRecord] = {}
        self._deleted_ids: set[str] = set()  # never given again
        self._assets: dict[str, AssetRecord] = {}
        self._blobs: dict[str, BlobRecord] = {}
        self._blobs_by_sha: dict[str, list[BlobRecord]] = {}
        self._zarrs: dict[str, ZarrRecord] = {}
        #: (number of Zarrs, dandiset id or None for all -> its Zarrs in the list's order): only ever added
        self._zarr_order: Optional[tuple[int, dict[Optional[str], list[ZarrRecord]]]] = None
        #: asset_id -> raw bytes served as its metadata (hostile-archive tests)
        self._metadata_overrides: dict[str, bytes] = {}
        self._seq = 0
        self._pk = 0
        self._epoch = 0
        self._buckets_ready = False

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What to pass as ``DandiAPIClient(api_url=...)``."""
        return f"{self.root_url}/api"

    @property
    def webui_url(self) -> str:
        return f"{self.root_url}/ui"

    def _ensure_buckets(self) -> None:
        with self._lock:
            if self._buckets_ready:
                return
            if not self.s3.running:
                self.s3.start()
            self.s3.create_bucket(self.bucket, versioned=True, public=True)
            self.s3.create_bucket(self.embargo_bucket, versioned=True, public=False)
            self._buckets_ready = True

    # -- inspection helpers ----------------------------------------------------
    def dandiset_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._dandisets)

    def dandiset(self, dandiset_id: str) -> DandisetRecord:
        with self._lock:
            return self._get_ds(dandiset_id)

    def asset(self, asset_id: str) -> AssetRecord:
        with self._lock:
            return self._assets[asset_id]

    def asset_at(self, dandiset_id: str, path: str, version: str = "draft") -> AssetRecord:
        with self._lock:
            ver = self._get_ds(dandiset_id).version(version)
            if ver is None:
                raise KeyError(version)
            return ver.assets[path]

    def blob(self, blob_id: str) -> BlobRecord:
        with self._lock:
            return self._blobs[blob_id]

    def blob_key(self, blob_id: str) -> str:
        """S3 key of a blob (``blobs/abc/def/abcdef...``)."""
        return blob_key(blob_id)

    def s3_url(self, asset_id: str) -> str:
        """The asset's S3 URL as it appears in ``contentUrl`` (no versionId)."""
        with self._lock:
            return self._s3_url(self._assets[asset_id])

    def versions(self, dandiset_id: str) -> list[str]:
        with self._lock:
            ds = self._get_ds(dandiset_id)
            return [v.version for v in ds.published] + ["draft"]

    def zarr(self, zarr_id: str) -> ZarrRecord:
        with self._lock:
            return self._zarrs[zarr_id]

    def _get_ds(self, dandiset_id: str) -> DandisetRecord:
        try:
            return self._dandisets[self._norm_id(dandiset_id)]
        except KeyError:
            raise KeyError(f"no dandiset {dandiset_id!r}") from None

    @staticmethod
    def _norm_id(identifier: str | int) -> str:
        s = str(identifier)
        if s.upper().startswith("DANDI:"):
            s = s[6:]
        if not s.isdigit() or len(s) > 6:
            raise ValueError(f"invalid dandiset identifier {identifier!r}")
        return s.zfill(6)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _next_pk(self) -> int:
        self._pk += 1
        return self._pk

    def _s3_url(self, a: AssetRecord) -> str:
        if a.blob is not None:
            return self.s3.url(a.blob.bucket, a.blob.key)
        assert a.zarr is not None
        return self.s3.url(a.zarr.bucket, f"zarr/{a.zarr.zarr_id}/")

    def _is_embargoed_asset(self, a: AssetRecord) -> bool:
        if a.blob is not None:
            return a.blob.embargoed
        ds = self._dandisets.get(a.dandiset_id)
        return ds is not None and ds.embargo_status != "OPEN"

"""A DANDI Archive REST API stand-in on loopback, good enough for the real ``dandi`` client.

Why: neuromirror's DANDI source is written against ``dandi.dandiapi.DandiAPIClient``
and the archive's S3 layout.  Tests, the demo and benchmarks need an archive whose
state they control (publish, replace an asset, delete a blob, embargo, inject faults)
and which answers exactly like dandi-archive's Django REST API, so the *unmodified*
client can be pointed at it.  Blobs live in a real S3 endpoint (:class:`S3StandIn`,
moto server mode, versioned bucket): nothing but the API itself is imitated.

Shapes follow dandi-archive's serializers (``dandiapi/api/views/serializers.py``,
``pagination.py``, ``asset.py``, ``version.py``, ``zarr/views``); noteworthy details
reproduced here because a mirror can trip on them:

* Asset lists use the archive's "lazy" pagination: ``count`` only on page 1
  (``null`` on later pages), ``next`` is the request URL with ``page=n+1`` (query
  parameters sorted, like DRF's ``replace_query_param``), so the client fetches
  pages 2.. in parallel.  A page past the end is an empty page.  Other lists
  (dandisets, versions, zarrs, paths) carry ``count`` on every page and answer
  404 ``{"detail": "Invalid page."}`` past the end.  ``page_size`` defaults to 100,
  capped at 1000.
* Assets are immutable: replacing the content at a path creates a new asset_id.
  A blob's sha256 can arrive later (``sha256_pending``): :meth:`finalize_sha256`
  adds ``dandi:sha2-256`` to the digest *without* changing the asset_id or its
  ``modified`` (the real archive's sha256 task updates only the blob row).
* Publishing links the draft's assets to the new version (same asset_ids) and, like
  ``publish_asset``, stamps every not-yet-published asset: ``datePublished`` and
  ``publishedBy`` in its metadata and ``modified`` = publish time.  The draft's
  status becomes ``"Published"`` until its next change.
* Asset metadata ``contentUrl`` = [``<api>/assets/<id>/download/``, S3 URL without
  query]; the download routes answer 302 to a presigned S3 URL (the real archive
  presigns even public blobs), which a mirror must not store as the content URL.
* Embargo: dandisets whose ``embargo_status`` is not OPEN answer 401 without a token
  and 403 to a valid non-owner token; an *invalid* token gets 401 ``Invalid token.``
  on every route, public or not (DRF TokenAuthentication).  Their blobs and zarr
  files live in the private bucket ``<bucket>-embargo`` (no policy: anonymous 403),
  so only the presigned download redirect reaches them.  :meth:`set_embargoed` to
  False copies them to the public bucket (their S3 URL changes; on the real archive
  only an object tag changes).  With ``api_token=None`` access control is off.
* Zarr ``files`` listing is cursor paged (``after``/``limit``, ``next`` is *not* a
  page=2 URL, so the client walks it sequentially); ``LastModified`` is rendered
  ``"YYYY-MM-DD HH:MM:SS+00:00"`` (str of a datetime, as DRF's CharField does).
* ``/server-info`` (root) and ``/api/info/`` fault only with ``fault_info = True``:
  ``dandi.utils.get_instance`` fetches it once per URL without retrying and caches
  the answer per process, so a mirror must retry that first request itself.

Benchmarks add many assets with :meth:`DandiStandIn.add_synthetic_assets` (or
``put_asset(..., upload=False)``): metadata only, fake-but-valid sha256/etag, no
S3 object, so a HEAD or GET of their S3 URL answers 404 until the benchmark uploads
an object to :meth:`DandiStandIn.blob_key` itself.

Per-request work is kept small: each asset caches its JSON list item and its full
metadata as bytes, each version caches its sorted/filtered asset lists, and a page
is a ``b",".join`` of cached fragments (100,000 assets list at page_size 1000 in
about a second).
"""

from __future__ import annotations

import bisect
import copy
import functools
import hashlib
import json
import logging
import mimetypes
import os
import random
import re
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from neuromirror.standins.faults import FaultPlan, apply_fault, shifted_page
from neuromirror.standins.s3 import S3StandIn

__all__ = [
    "DandiStandIn",
    "AssetRecord",
    "BlobRecord",
    "ZarrRecord",
    "ZarrFile",
    "VersionRecord",
    "DandisetRecord",
    "encoding_format",
]

lgr = logging.getLogger(__name__)

UTC = timezone.utc
try:  # the schema version the installed dandischema speaks
    from dandischema.consts import ALLOWED_INPUT_SCHEMAS as _ALLOWED_SCHEMAS
    from dandischema.consts import DANDI_SCHEMA_VERSION as _SCHEMA_VERSION
except Exception:  # pragma: no cover - dandischema is a dependency of dandi
    _SCHEMA_VERSION = "0.6.10"
    _ALLOWED_SCHEMAS = [_SCHEMA_VERSION]

DOI_PREFIX = "10.80507"
EMBARGO_STATUSES = ("OPEN", "EMBARGOED", "UNEMBARGOING")
ASSET_ORDERS = ("created", "-created", "modified", "-modified", "path", "-path")
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}

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


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: Optional[datetime]) -> datetime:
    if dt is None:
        return _now()
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@functools.lru_cache(maxsize=8192)
def _drf_dt(dt: datetime) -> str:
    """Datetime as Django REST framework renders it (ISO 8601, 'Z' for UTC)."""
    s = dt.isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _dandi_etag(content: bytes) -> str:
    from dandischema.digests.dandietag import DandiETag

    etag = DandiETag(len(content))
    for part in etag.get_parts():
        etag.update(content[part.offset : part.offset + part.size])
    return etag.as_str()


def _etag_parts(size: int) -> int:
    from dandischema.digests.dandietag import PartGenerator

    return len(PartGenerator.for_file_size(size))


def _blob_key(blob_id: str) -> str:
    return f"blobs/{blob_id[0:3]}/{blob_id[3:6]}/{blob_id}"


def _uuid4s(n: int) -> list[str]:
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


def _pseudo_bytes(seed: str, size: int) -> bytes:
    rnd = random.Random(seed)
    return rnd.randbytes(size)


# ---------------------------------------------------------------------------
# In-memory model
# ---------------------------------------------------------------------------


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
        return _blob_key(self.blob_id)

    @property
    def digest(self) -> dict[str, str]:
        d = {"dandi:dandi-etag": self.etag}
        if self.sha256_ready:
            d["dandi:sha2-256"] = self.sha256
        return d


@dataclass(eq=False)
class ZarrFile:
    size: int
    md5: str
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
    _sorted: Optional[tuple[int, list[str]]] = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())

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
            tree.add_leaf(path=PurePosixPath(rel), size=f.size, digest=f.md5)  # type: ignore[arg-type]
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
        return self.blob.rev if self.blob is not None else self.zarr.rev  # type: ignore[union-attr]


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


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------


@dataclass
class _Resp:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


class _ApiError(Exception):
    def __init__(self, status: int, detail: Any, headers: Sequence[tuple[str, str]] = ()):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = list(headers)

    def response(self) -> _Resp:
        body = _dumps({"detail": self.detail} if isinstance(self.detail, str) else self.detail)
        return _Resp(self.status, body, self.headers)


def _not_found(detail: str = "Not found.") -> _ApiError:
    return _ApiError(404, detail)


_NOT_AUTHENTICATED = "Authentication credentials were not provided."
_FORBIDDEN = "You do not have permission to perform this action."


@dataclass
class _Req:
    method: str
    raw_path: str  # path + query as received (percent-encoded)
    path: str  # decoded path
    query: dict[str, str]
    host: str
    user: Optional[str]  # None (anonymous), "owner" or "other"
    body: bytes
    fault: Optional[str] = None

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.query.get(name)
        if v is None or v == "":
            return default
        lv = v.lower()
        if lv in _TRUE:
            return True
        if lv in _FALSE:
            return False
        raise _ApiError(400, {name: ["Must be a valid boolean."]})

    def url_with(self, **changes: Optional[str]) -> str:
        """This request's absolute URL with query params replaced/removed (DRF style: sorted)."""
        split = urlsplit(self.raw_path)
        params: dict[str, list[str]] = {}
        for k, v in parse_qsl(split.query, keep_blank_values=True):
            params.setdefault(k, []).append(v)
        for k, v in changes.items():
            if v is None:
                params.pop(k, None)
            else:
                params[k] = [v]
        query = urlencode(sorted(params.items()), doseq=True)
        return f"http://{self.host}{split.path}" + (f"?{query}" if query else "")


@dataclass
class _Route:
    methods: frozenset[str]
    regex: re.Pattern[str]
    fn: Callable[..., _Resp]
    paginated: bool = False
    faultable: bool = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: DandiStandIn
    stop_event: threading.Event


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's Session reuses connections
    # headers and body are separate writes; without TCP_NODELAY every keep-alive
    # response waits ~40 ms for the client's delayed ACK (Nagle)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _dispatch(self) -> None:
        self.server.standin._handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


_DS = r"(?P<ds>\d{6})"
_VER = r"(?P<v>draft|0\.\d{6}\.\d{4})"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_AID = rf"(?P<aid>{_UUID})"
_ZID = rf"(?P<zid>{_UUID})"
_VPATH = rf"/api/dandisets/{_DS}/versions/{_VER}"


# ---------------------------------------------------------------------------
# The stand-in
# ---------------------------------------------------------------------------


class DandiStandIn:
    """In-memory DANDI archive with a REST API on ``host:port`` and blobs in ``s3``.

    Mutate it between syncs with the Python API (:meth:`create_dandiset`,
    :meth:`put_asset`, :meth:`publish`, ...); every method is thread-safe and may be
    called before or after :meth:`start`.  ``faults`` (a :class:`FaultPlan`) is
    consulted for every API request; ``request_log`` lists ``(method, path?query)``
    of every request received, ``latency`` adds a fixed delay to each answer.
    """

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
        faults: Optional[FaultPlan] = None,
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
        self.faults: FaultPlan = faults if faults is not None else FaultPlan()
        self.server_version = server_version
        self.latency: float = 0.0
        #: True: the info routes (``/server-info``, ``/api/info/``) fault like every other
        #: route — the real archive can cut any answer short, the client's first one too
        self.fault_info = False
        self.request_log: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._dandisets: dict[str, DandisetRecord] = {}
        self._assets: dict[str, AssetRecord] = {}
        self._blobs: dict[str, BlobRecord] = {}
        self._blobs_by_sha: dict[str, list[BlobRecord]] = {}
        self._zarrs: dict[str, ZarrRecord] = {}
        #: asset_id -> raw bytes served as its metadata (hostile-archive tests)
        self._metadata_overrides: dict[str, bytes] = {}
        self._seq = 0
        self._pk = 0
        self._epoch = 0
        self._buckets_ready = False
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._routes = self._make_routes()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> DandiStandIn:
        """Start the HTTP server thread (idempotent); ``s3`` must be running."""
        if self._server is not None:
            return self
        if not self.s3.running:
            self.s3.start()
        self._ensure_buckets()
        server = _Server((self.host, self.port), _Handler)
        server.standin = self
        server.stop_event = threading.Event()
        self.host, self.port = server.server_address[:2]  # type: ignore[misc]
        self._server = server
        with self._lock:
            self._epoch += 1  # URLs in cached metadata may have changed
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"dandi-standin-{self.port}",
        )
        self._thread.start()
        lgr.debug("DANDI stand-in listening on %s", self.api_url)
        return self

    def stop(self) -> None:
        """Stop serving (stalled "timeout" faults are woken up); state is kept."""
        if self._server is None:
            return
        self._server.stop_event.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> DandiStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        self.stop()

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

    @property
    def request_count(self) -> int:
        return len(self.request_log)

    def reset_request_log(self) -> None:
        with self._lock:
            self.request_log.clear()

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
        return _blob_key(blob_id)

    def s3_url(self, asset_id: str) -> str:
        """The asset's S3 URL as it appears in ``contentUrl`` (no versionId)."""
        with self._lock:
            return self._s3_url(self._assets[asset_id])

    def versions(self, dandiset_id: str) -> list[str]:
        with self._lock:
            ds = self._get_ds(dandiset_id)
            return [v.version for v in ds.published] + ["draft"]

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

    # -- state changes: dandisets ---------------------------------------------
    def create_dandiset(
        self,
        identifier: Optional[str] = None,
        *,
        name: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        embargoed: bool = False,
        created: Optional[datetime] = None,
    ) -> str:
        """Create a dandiset with an empty draft; return its 6-digit identifier.

        Without ``identifier`` the next free number after the highest one is used
        (000001 first).  ``metadata`` is merged over a minimal valid-looking default
        (one contact person who is also an author, CC-BY-4.0).
        """
        when = _aware(created)
        with self._lock:
            if identifier is None:
                n = max((int(i) for i in self._dandisets), default=0) + 1
                ds_id = f"{n:06d}"
            else:
                ds_id = self._norm_id(identifier)
            if ds_id in self._dandisets:
                raise ValueError(f"dandiset {ds_id} exists")
            md: dict[str, Any] = {
                "schemaKey": "Dandiset",
                "schemaVersion": _SCHEMA_VERSION,
                "name": name or f"Stand-in dandiset {ds_id}",
                "description": f"Dandiset {ds_id} served by neuromirror's DANDI stand-in.",
                "contributor": [
                    {
                        "name": "Doe, Jane",
                        "email": "jane.doe@example.org",
                        "roleName": ["dcite:ContactPerson", "dcite:Author"],
                        "includeInCitation": True,
                        "schemaKey": "Person",
                    }
                ],
                "license": ["spdx:CC-BY-4.0"],
                "keywords": ["stand-in"],
                "ethicsApproval": [],
                "wasGeneratedBy": [],
            }
            if metadata:
                md.update(copy.deepcopy(dict(metadata)))
            if name:
                md["name"] = name
            draft = VersionRecord(
                pk=self._next_pk(),
                dandiset_id=ds_id,
                version="draft",
                name=str(md["name"]),
                created=when,
                modified=when,
                metadata=md,
            )
            ds = DandisetRecord(
                identifier=ds_id,
                created=when,
                modified=when,
                embargo_status="EMBARGOED" if embargoed else "OPEN",
                draft=draft,
            )
            if embargoed:
                ds.embargo_end_date = (when + timedelta(days=730)).date().isoformat()
            self._dandisets[ds_id] = ds
            return ds_id

    def set_metadata(
        self,
        dandiset_id: str,
        metadata: Mapping[str, Any],
        *,
        merge: bool = True,
        when: Optional[datetime] = None,
    ) -> None:
        """Change the draft's metadata (merged top-level, or replaced); bumps draft modified."""
        t = _aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            new = copy.deepcopy(dict(metadata))
            if merge:
                md = dict(ds.draft.metadata)
                md.update(new)
            else:
                md = new
                md.setdefault("schemaKey", "Dandiset")
                md.setdefault("schemaVersion", _SCHEMA_VERSION)
            ds.draft.metadata = md
            if "name" in md:
                ds.draft.name = str(md["name"])
            ds.draft.touch(t)

    def set_embargo_status(self, dandiset_id: str, status: str) -> None:
        """Set OPEN / EMBARGOED / UNEMBARGOING without moving any data."""
        if status not in EMBARGO_STATUSES:
            raise ValueError(f"embargo status must be one of {EMBARGO_STATUSES}")
        with self._lock:
            ds = self._get_ds(dandiset_id)
            ds.embargo_status = status
            ds.modified = max(ds.modified, _now())
            if status != "OPEN" and ds.embargo_end_date is None:
                ds.embargo_end_date = (_now() + timedelta(days=730)).date().isoformat()
            for a in self._dandiset_assets(ds):
                a.rev += 1  # access metadata changes

    def set_embargoed(self, dandiset_id: str, embargoed: bool) -> None:
        """Embargo (new uploads go to the private bucket) or unembargo a dandiset.

        Unembargoing copies every embargoed blob and zarr file of the dandiset to the
        public bucket (same key) and marks it public, as the archive's unembargo task
        does (there by removing an object tag).  Embargoing an open dandiset, which
        the real archive does not allow, only changes access control and where new
        uploads go.
        """
        with self._lock:
            ds = self._get_ds(dandiset_id)
            if embargoed:
                self.set_embargo_status(dandiset_id, "EMBARGOED")
                return
            self._ensure_buckets()
            c = self.s3.client()
            for a in self._dandiset_assets(ds):
                if a.blob is not None and a.blob.embargoed:
                    b = a.blob
                    if b.uploaded:
                        r = c.copy_object(
                            Bucket=self.bucket,
                            Key=b.key,
                            CopySource={"Bucket": b.bucket, "Key": b.key},
                        )
                        b.version_id = r.get("VersionId")
                    b.bucket = self.bucket
                    b.embargoed = False
                    b.rev += 1
                if a.zarr is not None and a.zarr.bucket != self.bucket:
                    z = a.zarr
                    for rel, f in z.files.items():
                        key = f"zarr/{z.zarr_id}/{rel}"
                        r = c.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": z.bucket, "Key": key})
                        f.version_id = r.get("VersionId")
                    z.bucket = self.bucket
                    z.rev += 1
            ds.embargo_end_date = None
            self.set_embargo_status(dandiset_id, "OPEN")

    def _dandiset_assets(self, ds: DandisetRecord) -> list[AssetRecord]:
        seen: dict[str, AssetRecord] = {}
        for ver in [ds.draft, *ds.published]:
            for a in ver.assets.values():
                seen[a.asset_id] = a
        for a in self._assets.values():
            if a.dandiset_id == ds.identifier:
                seen.setdefault(a.asset_id, a)
        return list(seen.values())

    # -- state changes: assets ------------------------------------------------
    def put_asset(
        self,
        dandiset_id: str,
        path: str,
        content: Optional[bytes] = None,
        *,
        size: Optional[int] = None,
        sha256_pending: bool = False,
        upload: bool = True,
        when: Optional[datetime] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> str:
        """Add (or replace) the draft's asset at ``path``; return the NEW asset_id.

        The blob is deduplicated by sha256 (same content -> same blob_id) and uploaded
        to ``blobs/{u[0:3]}/{u[3:6]}/{u}`` in the public bucket, or the embargo bucket
        for an embargoed dandiset.  ``content=None`` with ``upload=True`` uploads
        ``size`` (default 64) deterministic pseudo-random bytes.  ``upload=False``
        stores nothing in S3: the asset has the given ``size`` and a fake-but-valid
        sha256/etag (or the real ones if ``content`` is given) and its S3 URL answers
        404 until someone puts an object at :meth:`blob_key`.  ``sha256_pending``
        leaves ``dandi:sha2-256`` out of the digest until :meth:`finalize_sha256`.
        ``path`` is not validated.  ``metadata`` is merged into the asset's metadata.
        """
        t = _aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            seq = self._next_seq()
            if content is None and upload:
                content = _pseudo_bytes(f"{ds.identifier}\0{path}\0{seq}", 64 if size is None else size)
            if content is not None:
                size = len(content)
                sha = hashlib.sha256(content).hexdigest()
                etag = _dandi_etag(content)
            else:
                if size is None:
                    raise ValueError("size is required when content is None and upload=False")
                sha, etag = self._fake_digests(f"{ds.identifier}\0{path}\0{seq}", size)
            embargoed = ds.embargo_status != "OPEN"
            blob, new_blob = self._get_or_make_blob(sha, etag, size, embargoed, t, content if upload else None)
            if new_blob:
                blob.sha256_ready = not sha256_pending
            elif not sha256_pending and not blob.sha256_ready:
                # the same bytes arrive again with their digest known: it is known for all
                blob.sha256_ready = True
                blob.rev += 1
            md = self._asset_user_metadata(path, size, t, metadata)
            asset = AssetRecord(
                asset_id=str(uuid.uuid4()),
                dandiset_id=ds.identifier,
                path=path,
                created=t,
                modified=t,
                metadata=md,
                seq=seq,
                blob=blob,
            )
            self._add_to_draft(ds, asset, t)
            return asset.asset_id

    @staticmethod
    def _fake_digests(seed: str, size: int) -> tuple[str, str]:
        sha = hashlib.sha256(f"synthetic\0{seed}".encode()).hexdigest()
        etag = f"{hashlib.md5(sha.encode()).hexdigest()}-{_etag_parts(size)}"
        return sha, etag

    def _get_or_make_blob(
        self,
        sha: str,
        etag: str,
        size: int,
        embargoed: bool,
        when: datetime,
        content: Optional[bytes],
    ) -> tuple[BlobRecord, bool]:
        """The blob with this sha256 (uploading it if it lacks bytes) or a new one; is-new flag."""
        for b in self._blobs_by_sha.get(sha, []):
            # a public blob serves embargoed dandisets too; not the other way round
            if b.size == size and (not b.embargoed or embargoed):
                if content is not None and not b.uploaded:
                    self._upload_blob(b, content)
                return b, False
        blob = BlobRecord(
            blob_id=str(uuid.uuid4()),
            sha256=sha,
            etag=etag,
            size=size,
            bucket=self.embargo_bucket if embargoed else self.bucket,
            embargoed=embargoed,
            created=when,
        )
        if content is not None:
            self._upload_blob(blob, content)
        self._blobs[blob.blob_id] = blob
        self._blobs_by_sha.setdefault(sha, []).append(blob)
        return blob, True

    def _upload_blob(self, blob: BlobRecord, content: bytes) -> None:
        self._ensure_buckets()
        blob.version_id = self.s3.put(blob.bucket, blob.key, content)
        blob.uploaded = True
        blob.rev += 1

    @staticmethod
    def _asset_user_metadata(
        path: str, size: int, when: datetime, extra: Optional[Mapping[str, Any]]
    ) -> dict[str, Any]:
        md: dict[str, Any] = {
            "schemaKey": "Asset",
            "schemaVersion": _SCHEMA_VERSION,
            "encodingFormat": encoding_format(path),
            "dateModified": when.isoformat(),
            "blobDateModified": when.isoformat(),
        }
        if extra:
            md.update({k: copy.deepcopy(v) for k, v in extra.items() if k not in ASSET_COMPUTED_FIELDS})
        return md

    def _add_to_draft(self, ds: DandisetRecord, asset: AssetRecord, when: datetime) -> None:
        self._assets[asset.asset_id] = asset
        ds.draft.assets[asset.path] = asset
        ds.draft.touch(when)

    def add_synthetic_assets(
        self,
        dandiset_id: str,
        n: int,
        *,
        prefix: str = "sub-",
        size: int = 1024,
        per_dir: int = 100,
        ext: str = ".nwb",
        when: Optional[datetime] = None,
    ) -> list[str]:
        """Add ``n`` metadata-only assets fast (no S3 upload); return their asset_ids.

        Paths look like ``sub-00003/sub-00003_obj-0000312.nwb`` (``per_dir`` per
        folder); each asset gets its own fake blob (sha256/etag valid in form only).
        """
        t = _aware(when)
        parts = _etag_parts(size)
        enc = encoding_format(f"x{ext}")
        iso = t.isoformat()
        user_md = {
            "schemaKey": "Asset",
            "schemaVersion": _SCHEMA_VERSION,
            "encodingFormat": enc,
            "dateModified": iso,
            "blobDateModified": iso,
        }
        user_json = (0, _dumps(user_md))  # identical for all: render once
        uuids = _uuid4s(2 * n)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            embargoed = ds.embargo_status != "OPEN"
            bucket = self.embargo_bucket if embargoed else self.bucket
            ids: list[str] = []
            base = len(ds.draft.assets)
            draft_assets = ds.draft.assets
            for j, i in enumerate(range(base, base + n)):
                d = i // per_dir
                path = f"{prefix}{d:05d}/{prefix}{d:05d}_obj-{i:07d}{ext}"
                self._seq += 1
                seq = self._seq
                sha = hashlib.sha256(f"synthetic\0{ds.identifier}\0{path}\0{seq}".encode()).hexdigest()
                blob = BlobRecord(
                    blob_id=uuids[2 * j],
                    sha256=sha,
                    etag=f"{sha[:32]}-{parts}",
                    size=size,
                    bucket=bucket,
                    embargoed=embargoed,
                    created=t,
                )
                self._blobs[blob.blob_id] = blob
                self._blobs_by_sha[sha] = [blob]
                asset = AssetRecord(
                    asset_id=uuids[2 * j + 1],
                    dandiset_id=ds.identifier,
                    path=path,
                    created=t,
                    modified=t,
                    metadata=user_md,  # shared: records are treated as read-only
                    seq=seq,
                    blob=blob,
                    path_lower=path.lower(),
                    _user_json=user_json,
                )
                self._assets[asset.asset_id] = asset
                draft_assets[path] = asset
                ids.append(asset.asset_id)
            ds.draft.touch(t)
            return ids

    def delete_asset(self, dandiset_id: str, path: str, *, when: Optional[datetime] = None) -> None:
        """Remove the asset at ``path`` from the draft (the asset and blob stay reachable by id)."""
        with self._lock:
            ds = self._get_ds(dandiset_id)
            if path not in ds.draft.assets:
                raise KeyError(f"no asset at {path!r} in {ds.identifier}/draft")
            del ds.draft.assets[path]
            ds.draft.touch(_aware(when))

    def finalize_sha256(self, dandiset_id: str, path: str) -> None:
        """Make the sha256 of the draft asset at ``path`` visible (asset_id/modified unchanged)."""
        with self._lock:
            a = self._get_ds(dandiset_id).draft.assets[path]
            if a.blob is None:
                raise ValueError("zarr assets have no sha256")
            if not a.blob.sha256_ready:
                a.blob.sha256_ready = True
                a.blob.rev += 1

    def delete_blob_object(self, blob_id: str) -> None:
        """Delete the blob's current S3 object (a delete marker: old versions survive)."""
        with self._lock:
            b = self._blobs[blob_id]
            bucket, key = b.bucket, b.key
        self.s3.client().delete_object(Bucket=bucket, Key=key)

    def publish(self, dandiset_id: str, *, when: Optional[datetime] = None) -> str:
        """Publish the draft as ``0.YYMMDD.HHMM`` (next free minute); return the version.

        Freezes the draft's asset map and rendered metadata (doi
        ``10.80507/dandi.<id>/<version>``, citation, assetsSummary, datePublished).
        Embargoed dandisets cannot be published (ValueError), as on the archive.
        """
        t = _aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            if ds.embargo_status != "OPEN":
                raise ValueError(f"dandiset {ds.identifier} is embargoed; it cannot be published")
            existing = {v.version for v in ds.published}
            vt = t
            while (version := vt.strftime("0.%y%m%d.%H%M")) in existing:
                vt += timedelta(minutes=1)
            published_by = self._published_by(t)
            for a in ds.draft.assets.values():
                if not a.published:
                    # like publish_asset(): metadata gains publishedBy/datePublished, and
                    # saving the row bumps the asset's `modified`
                    a.metadata = {
                        **a.metadata,
                        "publishedBy": published_by,
                        "datePublished": t.isoformat(),
                    }
                    a.published = True
                    a.published_at = t
                    a.modified = t
                    a.rev += 1
            ver = VersionRecord(
                pk=self._next_pk(),
                dandiset_id=ds.identifier,
                version=version,
                name=ds.draft.name,
                created=t,
                modified=t,
                metadata={},
                assets=dict(ds.draft.assets),
                status="Valid",
                doi=f"{DOI_PREFIX}/dandi.{ds.identifier}/{version}",
            )
            md = self._render_version_metadata(ds, ver, source=ds.draft.metadata)
            md["datePublished"] = t.isoformat()
            md["publishedBy"] = published_by
            ver.metadata = md
            ds.published.append(ver)
            ds.draft.modified = max(ds.draft.modified, t)
            ds.draft.rev += 1
            ds.draft.status = "Published"
            return version

    @staticmethod
    def _published_by(when: datetime) -> dict[str, Any]:
        return {
            "id": f"urn:uuid:{uuid.uuid4()}",
            "name": "DANDI publish",
            "startDate": when.isoformat(),
            "endDate": when.isoformat(),
            "wasAssociatedWith": [
                {
                    "id": f"urn:uuid:{uuid.uuid4()}",
                    "identifier": "RRID:SCR_017571",
                    "name": "DANDI API",
                    "version": "0.1.0",
                    "schemaKey": "Software",
                }
            ],
            "schemaKey": "PublishActivity",
        }

    # -- zarr ----------------------------------------------------------------
    def add_zarr_asset(
        self,
        dandiset_id: str,
        path: str,
        files: Mapping[str, bytes],
        *,
        when: Optional[datetime] = None,
    ) -> str:
        """Upload ``files`` (relative path -> bytes) as a new zarr; add it at ``path``.

        Objects go to ``zarr/<zarr_id>/<relpath>``; the digest is the
        dandi-zarr-checksum computed with ``zarr_checksum`` from per-file md5s.
        Returns the new asset_id.
        """
        t = _aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            self._ensure_buckets()
            embargoed = ds.embargo_status != "OPEN"
            z = ZarrRecord(
                zarr_id=str(uuid.uuid4()),
                dandiset_id=ds.identifier,
                name=path,
                bucket=self.embargo_bucket if embargoed else self.bucket,
                created=t,
                modified=t,
            )
            self._put_zarr_files(z, files, t)
            z.recompute()
            self._zarrs[z.zarr_id] = z
            asset = AssetRecord(
                asset_id=str(uuid.uuid4()),
                dandiset_id=ds.identifier,
                path=path,
                created=t,
                modified=t,
                metadata=self._asset_user_metadata(path, z.size, t, {"encodingFormat": "application/x-zarr"}),
                seq=self._next_seq(),
                zarr=z,
            )
            self._add_to_draft(ds, asset, t)
            return asset.asset_id

    def _put_zarr_files(self, z: ZarrRecord, files: Mapping[str, bytes], when: datetime) -> None:
        lm = when.replace(microsecond=0)
        for rel, data in files.items():
            rel = rel.lstrip("/")
            vid = self.s3.put(z.bucket, f"zarr/{z.zarr_id}/{rel}", data)
            z.files[rel] = ZarrFile(size=len(data), md5=hashlib.md5(data).hexdigest(), last_modified=lm, version_id=vid)

    def modify_zarr(
        self,
        zarr_id: str,
        put: Optional[Mapping[str, bytes]] = None,
        delete: Iterable[str] = (),
        *,
        when: Optional[datetime] = None,
    ) -> None:
        """Change a zarr's files in place (same zarr_id and asset_id; checksum changes)."""
        t = _aware(when)
        with self._lock:
            z = self._zarrs[zarr_id]
            if put:
                self._put_zarr_files(z, put, t)
            c = self.s3.client()
            for rel in delete:
                rel = rel.lstrip("/")
                if rel in z.files:
                    c.delete_object(Bucket=z.bucket, Key=f"zarr/{z.zarr_id}/{rel}")
                    del z.files[rel]
            z.recompute()
            z.modified = t
            z.rev += 1

    def override_metadata(self, asset_id: str, raw: Optional[bytes]) -> None:
        """Serve ``raw`` (any bytes, e.g. JSON of the wrong type) as this asset's metadata.

        A hostile or broken archive for tests: the mirror must refuse the item and go on.
        ``None`` restores the computed metadata.
        """
        with self._lock:
            if raw is None:
                self._metadata_overrides.pop(asset_id, None)
            else:
                self._metadata_overrides[asset_id] = raw
            self._assets[asset_id].rev += 1

    def corrupt_zarr_checksum(self, asset_id: str) -> None:
        """Make the API report a wrong dandi-zarr-checksum for this zarr asset (test hook)."""
        with self._lock:
            z = self._assets[asset_id].zarr
            if z is None:
                raise ValueError("not a zarr asset")
            z.corrupted = True
            z.rev += 1

    def zarr(self, zarr_id: str) -> ZarrRecord:
        with self._lock:
            return self._zarrs[zarr_id]

    # -- rendering -------------------------------------------------------------
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

    def _asset_item(self, a: AssetRecord) -> bytes:
        """The asset's list item JSON (AssetSerializer without metadata), cached."""
        key = (a.rev, a.backing_rev)
        if a._item is None or a._item[0] != key:
            blob = f'"{a.blob.blob_id}"' if a.blob is not None else "null"
            zarr = f'"{a.zarr.zarr_id}"' if a.zarr is not None else "null"
            path = json.dumps(a.path, ensure_ascii=False)
            a._item = (
                key,
                (
                    f'{{"asset_id":"{a.asset_id}","blob":{blob},"zarr":{zarr},"path":{path},'
                    f'"size":{a.size},"created":"{_drf_dt(a.created)}",'
                    f'"modified":"{_drf_dt(a.modified)}"}}'
                ).encode(),
            )
        return a._item[1]

    def _access_json(self, a: AssetRecord) -> str:
        if not self._is_embargoed_asset(a):
            return '[{"schemaKey":"AccessRequirements","status":"dandi:OpenAccess"}]'
        access: dict[str, Any] = {
            "schemaKey": "AccessRequirements",
            "status": "dandi:EmbargoedAccess",
        }
        ds = self._dandisets.get(a.dandiset_id)
        if ds is not None and ds.embargo_end_date:
            access["embargoedUntil"] = ds.embargo_end_date
        return json.dumps([access])

    def _asset_metadata(self, a: AssetRecord) -> bytes:
        """Full asset metadata (``Asset.full_metadata``) as JSON bytes, cached.

        Assembled from the cached JSON of the user part plus the computed fields
        formatted directly (all of them are hex, uuids, numbers or quoted URLs), which
        is several times faster than ``json.dumps`` of the merged dict for 100k assets.
        """
        override = self._metadata_overrides.get(a.asset_id)
        if override is not None:
            return override
        key = (a.rev, a.backing_rev, self._epoch)
        if a._meta is None or a._meta[0] != key:
            if a._user_json is None or a._user_json[0] != a.rev:
                a._user_json = (a.rev, _dumps(a.metadata))
            user = a._user_json[1]
            if a.blob is not None:
                b = a.blob
                digest = f'{{"dandi:dandi-etag":"{b.etag}"'
                if b.sha256_ready:
                    digest += f',"dandi:sha2-256":"{b.sha256}"'
                digest += "}"
            else:
                assert a.zarr is not None
                digest = f'{{"dandi:dandi-zarr-checksum":"{a.zarr.reported_checksum}"}}'
            schema = a.metadata.get("schemaVersion", _SCHEMA_VERSION)
            computed = (
                f'"id":"dandiasset:{a.asset_id}","access":{self._access_json(a)},'
                f'"path":{json.dumps(a.path, ensure_ascii=False)},"identifier":"{a.asset_id}",'
                f'"contentUrl":[{json.dumps(f"{self.api_url}/assets/{a.asset_id}/download/")},'
                f"{json.dumps(self._s3_url(a))}],"
                f'"contentSize":{a.size},"digest":{digest},'
                f'"@context":{json.dumps(f"https://raw.githubusercontent.com/dandi/schema/master/releases/{schema}/context.json")}}}'
            ).encode()
            sep = b"," if len(user) > 2 else b""
            a._meta = (key, user[:-1] + sep + computed)
        return a._meta[1]

    def _asset_item_with_metadata(self, a: AssetRecord) -> bytes:
        item = self._asset_item(a)
        return item[:-1] + b',"metadata":' + self._asset_metadata(a) + b"}"

    @staticmethod
    def _contact_person(md: Mapping[str, Any]) -> str:
        contributors = md.get("contributor")
        if isinstance(contributors, list):
            for c in contributors:
                if isinstance(c, dict):
                    roles = c.get("roleName")
                    if c.get("name") is not None and roles and "dcite:ContactPerson" in roles:
                        return str(c["name"])
        return ""

    @staticmethod
    def _citation(md: Mapping[str, Any], year: int) -> str:
        name = str(md.get("name", "")).rstrip(".")
        url = f"https://doi.org/{md['doi']}" if "doi" in md else md.get("url", "")
        version = md.get("version", "")
        cites = [
            c["name"]
            for c in md.get("contributor", []) or []
            if isinstance(c, dict) and c.get("includeInCitation") and c.get("name")
        ]
        if cites:
            return f"{'; '.join(cites)} ({year}) {name} (Version {version}) [Data set]. DANDI Archive. {url}"
        return f"{name} ({year}). (Version {version}) [Data set]. DANDI Archive. {url}"

    def _render_version_metadata(
        self, ds: DandisetRecord, ver: VersionRecord, *, source: Mapping[str, Any]
    ) -> dict[str, Any]:
        access: dict[str, Any] = {
            "schemaKey": "AccessRequirements",
            "status": "dandi:OpenAccess" if ds.embargo_status == "OPEN" else "dandi:EmbargoedAccess",
        }
        if ds.embargo_end_date:
            access["embargoedUntil"] = ds.embargo_end_date
        md: dict[str, Any] = copy.deepcopy(dict(source))
        md.update(
            {
                "@context": "https://raw.githubusercontent.com/dandi/schema/master/releases/"
                f"{md.get('schemaVersion', _SCHEMA_VERSION)}/context.json",
                "name": ver.name,
                "identifier": f"DANDI:{ds.identifier}",
                "version": ver.version,
                "id": f"DANDI:{ds.identifier}/{ver.version}",
                "repository": self.webui_url,
                "url": f"{self.webui_url}/dandiset/{ds.identifier}/{ver.version}",
                "dateCreated": ds.created.isoformat(),
                "access": [access],
            }
        )
        md["assetsSummary"] = {
            "schemaKey": "AssetsSummary",
            "numberOfBytes": ver.size,
            "numberOfFiles": ver.asset_count,
        }
        if ver.doi:
            md["doi"] = ver.doi
        md["citation"] = self._citation(md, ver.created.year)
        return md

    def _version_metadata(self, ds: DandisetRecord, ver: VersionRecord) -> dict[str, Any]:
        if ver.version == "draft":
            return self._render_version_metadata(ds, ver, source=ver.metadata)
        return ver.metadata

    def _dandiset_brief(self, ds: DandisetRecord) -> dict[str, Any]:
        return {
            "identifier": ds.identifier,
            "created": _drf_dt(ds.created),
            "modified": _drf_dt(ds.modified),
            "contact_person": self._contact_person(self._version_metadata(ds, ds.latest())),
            "embargo_status": ds.embargo_status,
            "star_count": 0,
            "is_starred": False,
        }

    def _version_short(self, ver: VersionRecord) -> dict[str, Any]:
        return {
            "version": ver.version,
            "name": ver.name,
            "asset_count": ver.asset_count,
            "size": ver.size,
            "status": ver.status,
            "created": _drf_dt(ver.created),
            "modified": _drf_dt(ver.modified),
        }

    def _version_full(self, ds: DandisetRecord, ver: VersionRecord, *, with_dandiset: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": ver.version,
            "name": ver.name,
            "asset_count": ver.asset_count,
            "active_uploads": 0,
            "size": ver.size,
            "status": ver.status,
            "created": _drf_dt(ver.created),
            "modified": _drf_dt(ver.modified),
        }
        if with_dandiset:
            d["dandiset"] = self._dandiset_brief(ds)
        d["release_notes"] = ver.metadata.get("releaseNotes", "") if ver.version != "draft" else ""
        return d

    def _dandiset_detail(self, ds: DandisetRecord) -> dict[str, Any]:
        d = self._dandiset_brief(ds)
        d["most_recent_published_version"] = (
            self._version_full(ds, ds.published[-1], with_dandiset=False) if ds.published else None
        )
        d["draft_version"] = self._version_full(ds, ds.draft, with_dandiset=False)
        return d

    def _dandiset_list_item(self, ds: DandisetRecord) -> dict[str, Any]:
        d = self._dandiset_brief(ds)
        d["most_recent_published_version"] = self._version_short(ds.published[-1]) if ds.published else None
        d["draft_version"] = self._version_short(ds.draft)
        return d

    def _info(self) -> dict[str, Any]:
        return {
            "instance_config": {
                "instance_name": "DANDI",
                "instance_identifier": "RRID:SCR_017571",
                "instance_url": self.webui_url,
                "doi_prefix": DOI_PREFIX,
                "licenses": ["spdx:CC0-1.0", "spdx:CC-BY-4.0"],
            },
            "schema_version": _SCHEMA_VERSION,
            "schema_url": f"{self.api_url}/schemas/?model=Dandiset",
            "allowed_schema_versions": list(_ALLOWED_SCHEMAS),
            "version": self.server_version,
            "cli-minimal-version": "0.60.0",
            "cli-requires-python": ">=3.10",
            "cli-bad-versions": [],
            "services": {
                "api": {"url": self.api_url},
                "webui": {"url": self.webui_url},
                "jupyterhub": {"url": f"{self.root_url}/hub"},
            },
        }

    # -- request handling ------------------------------------------------------
    def _make_routes(self) -> list[_Route]:
        def r(
            methods: str,
            pattern: str,
            fn: Callable[..., _Resp],
            *,
            paginated: bool = False,
            faultable: bool = True,
        ) -> _Route:
            return _Route(frozenset(methods.split("|")), re.compile(pattern + r"/?"), fn, paginated, faultable)

        return [
            r("GET", r"/server-info", self._r_info, faultable=False),
            r("GET", r"/api/info", self._r_info, faultable=False),
            r("GET", r"/api/auth/token", self._r_auth_token),
            r("GET", r"/api/dandisets", self._r_dandisets, paginated=True),
            r("GET", rf"/api/dandisets/{_DS}", self._r_dandiset),
            r("GET", rf"/api/dandisets/{_DS}/versions", self._r_versions, paginated=True),
            r("GET", _VPATH, self._r_version_metadata),
            r("GET", rf"{_VPATH}/info", self._r_version_info),
            r("POST", rf"{_VPATH}/publish", self._r_publish),
            r("GET", rf"{_VPATH}/assets", self._r_assets, paginated=True),
            r("GET", rf"{_VPATH}/assets/paths", self._r_paths, paginated=True),
            r("GET", rf"{_VPATH}/assets/{_AID}", self._r_nested_asset),
            r("GET", rf"{_VPATH}/assets/{_AID}/info", self._r_nested_asset_info),
            r("GET", rf"{_VPATH}/assets/{_AID}/download", self._r_nested_download),
            r("GET", rf"/api/assets/{_AID}", self._r_asset),
            r("GET", rf"/api/assets/{_AID}/info", self._r_asset_info),
            r("GET", rf"/api/assets/{_AID}/download", self._r_asset_download),
            r("GET", r"/api/zarr", self._r_zarrs, paginated=True),
            r("GET", rf"/api/zarr/{_ZID}", self._r_zarr),
            r("GET", rf"/api/zarr/{_ZID}/files", self._r_zarr_files),
        ]

    def _authenticate(self, header: Optional[str]) -> Optional[str]:
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0].lower() != "token":
            return None  # other schemes are not ours (DRF: next authenticator)
        if len(parts) != 2:
            raise _ApiError(401, "Invalid token header. No credentials provided.", [("WWW-Authenticate", "Token")])
        key = parts[1]
        if self.api_token is None or key == self.api_token:
            return "owner"
        if key in self.other_tokens:
            return "other"
        raise _ApiError(401, "Invalid token.", [("WWW-Authenticate", "Token")])

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method = h.command
        raw = h.path
        with self._lock:
            self.request_log.append((method, raw))
        length = int(h.headers.get("Content-Length") or 0)
        body_in = h.rfile.read(length) if length > 0 else b""
        split = urlsplit(raw)
        path = unquote(split.path)
        query: dict[str, str] = {}
        for k, v in parse_qsl(split.query, keep_blank_values=True):
            query[k] = v
        match_method = "GET" if method == "HEAD" else method
        route: Optional[_Route] = None
        kwargs: dict[str, str] = {}
        method_mismatch = False
        for rt in self._routes:
            m = rt.regex.fullmatch(path)
            if m is None:
                continue
            if match_method not in rt.methods:
                method_mismatch = True
                continue
            route, kwargs = rt, m.groupdict()
            break
        kind: Optional[str] = None
        if route is not None and (route.faultable or self.fault_info):
            kind = self.faults.pick(method, raw, paginated=route.paginated)
        try:
            user = self._authenticate(h.headers.get("Authorization"))
            req = _Req(
                method=method,
                raw_path=raw,
                path=path,
                query=query,
                host=h.headers.get("Host") or f"{self.host}:{self.port}",
                user=user,
                body=body_in,
                fault=kind,
            )
            if route is None:
                if method_mismatch:
                    raise _ApiError(405, f'Method "{method}" not allowed.')
                raise _not_found()
            with self._lock:
                resp = route.fn(req, **kwargs)
        except _ApiError as e:
            resp = e.response()
        except Exception:  # pragma: no cover - a bug in the stand-in
            lgr.error("DANDI stand-in failed on %s %s:\n%s", method, raw, traceback.format_exc())
            resp = _Resp(500, _dumps({"detail": "stand-in error"}))
        if self.latency > 0:
            time.sleep(self.latency)
        if kind is not None and apply_fault(h, self.faults, kind, resp.body, content_type=resp.content_type):
            return
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", resp.content_type)
            h.send_header("Content-Length", str(len(resp.body)))
            h.send_header("Vary", "Accept, Authorization")
            for k, v in resp.headers:
                h.send_header(k, v)
            h.end_headers()
            if method != "HEAD" and resp.body:
                h.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):  # client went away
            h.close_connection = True

    # -- access control ----------------------------------------------------------
    def _check_access(self, req: _Req, embargoed: bool) -> None:
        if not embargoed or self.api_token is None:
            return
        if req.user is None:
            raise _ApiError(401, _NOT_AUTHENTICATED, [("WWW-Authenticate", "Token")])
        if req.user != "owner":
            raise _ApiError(403, _FORBIDDEN)

    def _ds_for(self, req: _Req, ds_id: str) -> DandisetRecord:
        ds = self._dandisets.get(ds_id)
        if ds is None:
            raise _not_found()
        self._check_access(req, ds.embargo_status != "OPEN")
        return ds

    def _ver_for(self, req: _Req, ds_id: str, v: str) -> tuple[DandisetRecord, VersionRecord]:
        ds = self._ds_for(req, ds_id)
        ver = ds.version(v)
        if ver is None:
            raise _not_found()
        return ds, ver

    def _visible(self, req: _Req, ds: DandisetRecord) -> bool:
        return ds.embargo_status == "OPEN" or self.api_token is None or req.user == "owner"

    # -- pagination ------------------------------------------------------------
    def _page_params(self, req: _Req) -> tuple[int, int]:
        raw_page = req.query.get("page", "1") or "1"
        try:
            page = int(raw_page)
        except ValueError:
            raise _not_found("Invalid page.") from None
        if page < 1:
            raise _not_found("Invalid page.")
        size = 100
        raw_size = req.query.get("page_size")
        if raw_size:
            try:
                s = int(raw_size)
                if s > 0:
                    size = min(s, 1000)
            except ValueError:
                pass
        return page, size

    def _paginate(
        self,
        req: _Req,
        items: Sequence[Any],
        render: Callable[[Any], bytes],
        *,
        lazy_count: bool,
    ) -> _Resp:
        page, size = self._page_params(req)
        total = len(items)
        if not lazy_count and page > 1 and (page - 1) * size >= total:
            raise _not_found("Invalid page.")
        src = shifted_page(req.fault, page)
        chunk = items[(src - 1) * size : src * size]
        nxt = req.url_with(page=str(page + 1)) if total > page * size else None
        prev = None
        if page > 1:
            prev = req.url_with(page=None) if page == 2 else req.url_with(page=str(page - 1))
        count = total if (not lazy_count or page == 1) else None
        body = b"".join(
            [
                b'{"count":',
                _dumps(count),
                b',"next":',
                _dumps(nxt),
                b',"previous":',
                _dumps(prev),
                b',"results":[',
                b",".join(render(x) for x in chunk),
                b"]}",
            ]
        )
        return _Resp(200, body)

    # -- route handlers ---------------------------------------------------------
    def _r_info(self, req: _Req) -> _Resp:
        return _Resp(200, _dumps(self._info()))

    def _r_auth_token(self, req: _Req) -> _Resp:
        if req.user is None:
            raise _ApiError(401, _NOT_AUTHENTICATED, [("WWW-Authenticate", "Token")])
        token = self.api_token if req.user == "owner" and self.api_token else "stand-in-token"
        return _Resp(200, _dumps(token))

    def _r_dandisets(self, req: _Req) -> _Resp:
        show_draft = req.flag("draft", True)
        show_empty = req.flag("empty", True)
        show_embargoed = req.flag("embargoed", False)
        if show_embargoed and req.user is None and self.api_token is not None:
            raise _ApiError(
                401,
                "Authentication credentials must be provided when attempting to access embargoed dandisets",
            )
        items = sorted(self._dandisets.values(), key=lambda d: (d.created, d.identifier))
        items = [d for d in items if self._visible(req, d)]
        if req.query.get("user") == "me":
            items = items if req.user == "owner" else []
        if not show_draft:
            items = [d for d in items if d.published]
        if not show_empty:
            items = [d for d in items if d.latest().asset_count > 0]
        if not show_embargoed:
            items = [d for d in items if d.embargo_status == "OPEN"]
        search = req.query.get("search", "").replace("\x00", "").strip()
        if search:
            words = search.lower().split()

            def hay(d: DandisetRecord) -> str:
                mds = [self._version_metadata(d, v) for v in [d.draft, *d.published]]
                return json.dumps(mds).lower()

            items = [d for d in items if all(w in hay(d) for w in words)]
        ordering = req.query.get("ordering") or ""
        field_ = ordering.lstrip("-")
        keys: dict[str, Callable[[DandisetRecord], Any]] = {
            "id": lambda d: d.identifier,
            "name": lambda d: d.latest().name,
            "modified": lambda d: d.latest().modified,
            "size": lambda d: d.latest().size,
            "stars": lambda d: 0,
        }
        if field_ in keys:
            items = sorted(items, key=keys[field_], reverse=ordering.startswith("-"))
        return self._paginate(req, items, lambda d: _dumps(self._dandiset_list_item(d)), lazy_count=False)

    def _r_dandiset(self, req: _Req, ds: str) -> _Resp:
        return _Resp(200, _dumps(self._dandiset_detail(self._ds_for(req, ds))))

    def _r_versions(self, req: _Req, ds: str) -> _Resp:
        d = self._ds_for(req, ds)
        versions = sorted([d.draft, *d.published], key=lambda v: (v.created, v.pk))
        if req.query.get("order") == "-created":
            versions.reverse()
        return self._paginate(req, versions, lambda v: _dumps(self._version_full(d, v)), lazy_count=False)

    def _r_version_metadata(self, req: _Req, ds: str, v: str) -> _Resp:
        d, ver = self._ver_for(req, ds, v)
        return _Resp(200, _dumps(self._version_metadata(d, ver)))

    def _r_version_info(self, req: _Req, ds: str, v: str) -> _Resp:
        d, ver = self._ver_for(req, ds, v)
        info = self._version_full(d, ver)
        md = self._version_metadata(d, ver)
        info.update(
            {
                "asset_validation_errors": [],
                "version_validation_errors": [],
                "metadata": md,
                "contact_person": self._contact_person(md),
            }
        )
        return _Resp(200, _dumps(info))

    def _r_publish(self, req: _Req, ds: str, v: str) -> _Resp:
        if self.api_token is not None:
            if req.user is None:
                raise _ApiError(401, _NOT_AUTHENTICATED, [("WWW-Authenticate", "Token")])
            if req.user != "owner":
                raise _ApiError(403, _FORBIDDEN)
        d, _ = self._ver_for(req, ds, v)
        if v != "draft":
            raise _ApiError(405, "Only draft versions can be published")
        if d.embargo_status != "OPEN":
            raise _ApiError(400, "Dandiset is embargoed")
        self.publish(d.identifier)
        return _Resp(202, b"")

    def _filtered_assets(
        self, ver: VersionRecord, order: str, path: str, glob: Optional[str], zarr_only: bool
    ) -> list[AssetRecord]:
        key = (order, path, glob, zarr_only)
        hit = ver._lists.get(key)
        if hit is not None and hit[0] == ver.rev:
            return hit[1]
        base_key = (order, "", None, False)
        base_hit = ver._lists.get(base_key)
        if base_hit is not None and base_hit[0] == ver.rev:
            items = base_hit[1]
        else:
            fld = order.lstrip("-")
            if fld == "path":
                items = sorted(ver.assets.values(), key=lambda a: a.path)
            elif fld == "modified":
                items = sorted(ver.assets.values(), key=lambda a: (a.modified, a.seq))
            else:
                items = sorted(ver.assets.values(), key=lambda a: (a.created, a.seq))
            if order.startswith("-"):
                items.reverse()
            ver._lists = {k: v for k, v in ver._lists.items() if v[0] == ver.rev}
            ver._lists[base_key] = (ver.rev, items)
        if path:
            exact = ver.assets.get(path)
            if exact is not None:
                items = [exact]
            else:
                lp = path.lower()
                items = [a for a in items if a.path_lower.startswith(lp)]
        if zarr_only:
            items = [a for a in items if a.zarr is not None]
        if glob is not None:
            rx = re.compile("^" + re.escape(glob).replace("\\*", ".*") + "$", re.IGNORECASE)
            items = [a for a in items if rx.match(a.path)]
        if len(ver._lists) > 64:
            ver._lists = {base_key: ver._lists[base_key]}
        ver._lists[key] = (ver.rev, items)
        return items

    def _r_assets(self, req: _Req, ds: str, v: str) -> _Resp:
        _, ver = self._ver_for(req, ds, v)
        order = req.query.get("order") or "created"
        if order not in ASSET_ORDERS:
            order = "created"
        with_md = req.flag("metadata", False)
        zarr_only = req.flag("zarr", False)
        items = self._filtered_assets(ver, order, req.query.get("path", ""), req.query.get("glob"), zarr_only)
        render = self._asset_item_with_metadata if with_md else self._asset_item
        return self._paginate(req, items, render, lazy_count=True)

    def _r_paths(self, req: _Req, ds: str, v: str) -> _Resp:
        _, ver = self._ver_for(req, ds, v)
        prefix = req.query.get("path_prefix", "")
        folders: dict[str, list[int]] = {}
        files: dict[str, AssetRecord] = {}
        for a in ver.assets.values():
            if not a.path.startswith(prefix):
                continue
            rest = a.path[len(prefix) :]
            head, sep, _ = rest.partition("/")
            if sep:
                agg = folders.setdefault(prefix + head, [0, 0])
                agg[0] += 1
                agg[1] += a.size
            else:
                files[a.path] = a
        if prefix and not folders and not files:
            raise _not_found("Specified path not found.")
        rows: list[dict[str, Any]] = []
        for p, (n, s) in folders.items():
            rows.append({"path": p, "version": ver.pk, "aggregate_files": n, "aggregate_size": s, "asset": None})
        for p, a in files.items():
            rows.append(
                {
                    "path": p,
                    "version": ver.pk,
                    "aggregate_files": 1,
                    "aggregate_size": a.size,
                    "asset": {"asset_id": a.asset_id, "url": self._s3_url(a)},
                }
            )
        rows.sort(key=lambda r: r["path"])
        return self._paginate(req, rows, _dumps, lazy_count=False)

    def _nested(self, req: _Req, ds: str, v: str, aid: str) -> AssetRecord:
        _, ver = self._ver_for(req, ds, v)
        a = self._assets.get(aid)
        if a is None or ver.assets.get(a.path) is not a:
            raise _not_found()
        return a

    def _top_asset(self, req: _Req, aid: str) -> AssetRecord:
        a = self._assets.get(aid)
        if a is None:
            raise _not_found()
        self._check_access(req, self._is_embargoed_asset(a))
        return a

    def _r_nested_asset(self, req: _Req, ds: str, v: str, aid: str) -> _Resp:
        return _Resp(200, self._asset_metadata(self._nested(req, ds, v, aid)))

    def _r_nested_asset_info(self, req: _Req, ds: str, v: str, aid: str) -> _Resp:
        return _Resp(200, self._asset_item_with_metadata(self._nested(req, ds, v, aid)))

    def _r_nested_download(self, req: _Req, ds: str, v: str, aid: str) -> _Resp:
        return self._download(self._nested(req, ds, v, aid))

    def _r_asset(self, req: _Req, aid: str) -> _Resp:
        return _Resp(200, self._asset_metadata(self._top_asset(req, aid)))

    def _r_asset_info(self, req: _Req, aid: str) -> _Resp:
        return _Resp(200, self._asset_item_with_metadata(self._top_asset(req, aid)))

    def _r_asset_download(self, req: _Req, aid: str) -> _Resp:
        return self._download(self._top_asset(req, aid))

    def _download(self, a: AssetRecord) -> _Resp:
        if a.blob is None:
            raise _ApiError(
                400,
                "Unable to provide download link for zarr assets. Please browse the zarr files directly to do so.",
            )
        name = PurePosixPath(a.path).name.replace('"', "")
        url = self.s3.presigned_url(
            a.blob.bucket,
            a.blob.key,
            params={"ResponseContentDisposition": f'attachment; filename="{name}"'},
        )
        return _Resp(302, b"", [("Location", url)], content_type="text/html; charset=utf-8")

    def _zarr_json(self, z: ZarrRecord) -> dict[str, Any]:
        return {
            "name": z.name,
            "dandiset": z.dandiset_id,
            "zarr_id": z.zarr_id,
            "status": "Complete",
            "checksum": z.reported_checksum,
            "file_count": z.file_count,
            "size": z.size,
        }

    def _r_zarrs(self, req: _Req) -> _Resp:
        zs = [
            z
            for z in sorted(self._zarrs.values(), key=lambda z: (z.created, z.zarr_id))
            if (ds := self._dandisets.get(z.dandiset_id)) is not None and self._visible(req, ds)
        ]
        if "dandiset" in req.query:
            try:
                want = self._norm_id(req.query["dandiset"])
            except ValueError:
                raise _ApiError(400, {"dandiset": ["A valid Dandiset identifier is required."]}) from None
            zs = [z for z in zs if z.dandiset_id == want]
        if "name" in req.query:
            zs = [z for z in zs if z.name == req.query["name"]]
        return self._paginate(req, zs, lambda z: _dumps(self._zarr_json(z)), lazy_count=False)

    def _zarr_for(self, req: _Req, zid: str) -> ZarrRecord:
        z = self._zarrs.get(zid)
        if z is None:
            raise _not_found()
        ds = self._dandisets.get(z.dandiset_id)
        self._check_access(req, ds is not None and ds.embargo_status != "OPEN")
        return z

    def _r_zarr(self, req: _Req, zid: str) -> _Resp:
        return _Resp(200, _dumps(self._zarr_json(self._zarr_for(req, zid))))

    def _r_zarr_files(self, req: _Req, zid: str) -> _Resp:
        z = self._zarr_for(req, zid)
        raw_prefix = req.query.get("prefix", "").lstrip("/")
        if any(seg == ".." for seg in raw_prefix.replace("\\", "/").split("/")):
            raise _ApiError(400, {"prefix": ['Zarr path cannot contain ".." components.']})
        prefix = raw_prefix.rstrip("/")
        after = req.query.get("after", "").lstrip("/").rstrip("/")
        try:
            limit = int(req.query.get("limit", "1000") or "1000")
        except ValueError:
            raise _ApiError(400, {"limit": ["A valid integer is required."]}) from None
        if not 0 <= limit <= 1000:
            raise _ApiError(400, {"limit": ["Ensure this value is between 0 and 1000."]})
        if req.method == "HEAD" or req.flag("download", False):
            url = self.s3.presigned_url(z.bucket, f"zarr/{z.zarr_id}/{raw_prefix}")
            return _Resp(302, b"", [("Location", url)], content_type="text/html; charset=utf-8")
        keys = z.sorted_keys()
        i = bisect.bisect_left(keys, prefix)
        if after:
            i = max(i, bisect.bisect_right(keys, after))
        results: list[dict[str, Any]] = []
        truncated = False
        while i < len(keys) and keys[i].startswith(prefix):
            if len(results) >= limit:
                truncated = True
                break
            f = z.files[keys[i]]
            results.append({"Key": keys[i], "LastModified": str(f.last_modified), "ETag": f.md5, "Size": f.size})
            i += 1
        nxt = req.url_with(after=results[-1]["Key"]) if truncated and results else None
        return _Resp(200, _dumps({"next": nxt, "results": results}))

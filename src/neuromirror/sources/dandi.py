"""DANDI: dandisets as snapshots, through the official ``dandi`` client.

Every published version becomes a tagged snapshot (oldest first), the draft
an untagged one.  Blob assets become SHA256E keys from the archive's own
sha256 — nothing is downloaded — with two URLs: the S3 URL pinned by
``?versionId=`` (asked once per blob with a HEAD, cached forever, since a
blob's content never changes) and the API download URL.  Small text assets
go into git, downloaded lazily and checked against their sha256.  A resync
lists without the assets' metadata and takes the files of unchanged asset ids
from the last synced state (:class:`_Reuse`): metadata only for new assets.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import itertools
import logging
import os
import posixpath
import re
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import urlsplit

import requests

from neuromirror.annex.keys import sha256e_key
from neuromirror.records import (
    SHA256,
    AnnexEntry,
    ContentMismatch,
    Entry,
    GitEntry,
    Pending,
    PreviousFile,
    ProgressCallback,
    Refusal,
    Snapshot,
    SourceState,
)
from neuromirror.sources import dandi_auth, dandi_zarr, s3urls  # embargo (key-reading special remote), Zarr subdatasets
from neuromirror.spec import Spec
from neuromirror.util import timing
from neuromirror.util.crashpoints import crashpoint
from neuromirror.util.dates import parse_iso as parse_time
from neuromirror.util.paths import check_path
from neuromirror.util.spool import Spool

log = logging.getLogger("neuromirror.dandi")

DEFAULT_API = "https://api.dandiarchive.org/api"
PAGE_SIZE = 1000
TEXT_EXTENSIONS = {".json", ".jsonld", ".yaml", ".yml", ".tsv", ".csv", ".txt", ".md", ".rst", ".bib", ".cff"}
TEXT_NAMES = {"README", "CHANGES", "LICENSE", "CITATION"}
GIT_MAX_BYTES = 1 << 20
PIN_NAMESPACE = "s3-version-id"
METADATA_FILE = "dandiset.yaml"
HEAD_WORKERS = 32
LISTING_ATTEMPTS = 5
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
#: the archive's own download route of an asset, on whatever host (top-level or under a version)
_DOWNLOAD_ROUTE = re.compile(r"/assets/[^/]+/download/?$")
#: the metadata fields a blob asset's entry is made from (the listing keeps only these)
BLOB_METADATA = ("digest", "contentSize", "contentUrl")
MAX_URL = 8192
#: single metadata GETs in flight during a resync (the client's connection pool holds 10)
METADATA_WORKERS = 8
#: a resync lists with metadata after all once more assets than both of these need it (see _Reuse)
REFETCH_MIN = 200
REFETCH_SHARE = 0.10


class _Listing(Spool):
    """A version's asset records on disk, refusing an asset id seen twice (a repeated page).

    With ``reuse`` (a resync), assets wait a page at a time to be looked up in
    the last synced state together; a reusable one is spooled as the fields of
    its file (a :data:`_Reused` tuple), the others as they came (dicts).  ``flush``
    before reading ``count`` or iterating.
    """

    def __init__(self, reuse: Optional[_Reuse] = None) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self._reuse = reuse
        self._page: list[dict] = []

    def add(self, asset: dict) -> bool:  # type: ignore[override]
        if asset["asset_id"] in self.ids:
            return False
        self.ids.add(asset["asset_id"])
        if self._reuse is not None:
            self._page.append(asset)
            if len(self._page) >= PAGE_SIZE:
                self.flush()
            return True
        md = asset.get("metadata")
        if isinstance(md, dict) and asset.get("blob") and not asset.get("zarr"):
            # a blob asset needs only these (see _resolve/_entry); pickling the whole
            # metadata was 1-2 s of a 10^5-asset listing, and 4x the spool's size
            asset = {**asset, "metadata": {k: md[k] for k in BLOB_METADATA if k in md}}
        super().add(asset)
        return True

    def flush(self) -> None:
        if self._reuse is not None and self._page:
            for record in self._reuse.records(self._page):
                super().add(record)
            self._page = []


class DandiError(RuntimeError):
    """The DANDI archive could not be read; message names the archive and the cause."""


class _ZarrSlot:
    """A Zarr asset's place in a page's entries, filled from :class:`dandi_zarr.ZarrRun`."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path


class _Inline:
    """An executor that runs the job at once (``_resolve`` called without a snapshot's pool)."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except BaseException as exc:
            f.set_exception(exc)
        return f


class _Reuse:
    """The files of the last synced state a resync takes as they are, found while listing.

    A DANDI asset never changes: new content or new metadata makes a new asset
    id.  So where the draft still has, at a path, the asset id the last sync
    recorded there, the file's key, size and URLs are what a listing with
    metadata (and the pin cache) would give again, and the resync lists
    without ``metadata=1`` (4.5x less JSON to parse on the stand-in, more on
    the archive, whose asset metadata is richer) and makes no metadata or pin
    look-up for it.  That holds only for what the last sync made the same
    way, hence the guards: an annexed SHA256 file (not a text file in git, a
    Zarr, a pending asset), its URLs under this run's API URL
    (``--dandi-api`` may point elsewhere now), every other URL pinned with
    ``?versionId=`` (an unpinned one means the HEAD failed or the bucket did
    not say: a full resync would ask again), and no embargo now or at the last
    sync (lifting it changes URLs under fixed asset ids; checked by
    :meth:`DandiSource._reuse_for`).  The archive changing the form of its S3
    URLs under fixed asset ids would go unnoticed until the asset changes.

    Every other asset needs its metadata, one GET each (``METADATA_WORKERS``
    at a time): a round trip and a request's overhead at the archive apiece
    (~1 ms of CPU here, ~0.1 s of latency from afar), where the listing with
    metadata costs the parse of ~1 KB of JSON per asset of the whole version
    (~100 MB at 10^5) in pages of 1000.  When more than ``REFETCH_SHARE`` of
    the version and more than ``REFETCH_MIN`` assets need their metadata (a
    large upload, a mirror whose URLs are not pinned), the GETs would cost
    about as much as that listing or more, and load the archive with
    thousands of requests: the listing stops as soon as that is known and the
    version is listed again with metadata, as a cold mirror does.  Below
    ``REFETCH_MIN`` the GETs take about the wall time of one listing page.
    """

    def __init__(self, state: SourceState, api_url: str, known: Optional[dict] = None) -> None:
        self._state = state
        self._api = api_url.rstrip("/") + "/"
        self.to_fetch = 0  # assets of this listing that need their metadata
        self._known = known or {}  # Zarr asset ids whose checksum is known: no metadata needed

    def restart(self) -> None:
        """A new listing attempt."""
        self.to_fetch = 0

    def too_many(self, total: Optional[int]) -> bool:
        """Whether a listing with metadata is cheaper than the GETs to make (see the class)."""
        return total is not None and self.to_fetch > max(REFETCH_MIN, REFETCH_SHARE * total)

    def records(self, page: list[dict]) -> Iterator[dict | tuple]:
        """The page's assets as the listing keeps them: the reusable ones as their files' fields.

        One look-up of the page's paths in the last synced state: memory for a
        page of files, not for the whole state (10^5 files with their URLs are
        ~100 MB), and each asset is looked up once.
        """
        candidates = [self._candidate(a) for a in page]
        paths = [a["path"] for a, candidate in zip(page, candidates) if candidate]
        many = getattr(self._state, "previous_many", None)  # IndexState has it; a plain SourceState may not
        if many is not None:
            found: dict[str, PreviousFile] = many(paths)
        else:
            found = {p: f for p in paths if (f := self._state.previous(p)) is not None}
        for asset, candidate in zip(page, candidates):
            prev = found.get(asset["path"]) if candidate else None
            if prev is not None and self._reusable(asset, prev):
                yield (asset["asset_id"], prev.path, prev.key, prev.size, prev.urls, prev.checksum)
            else:
                if not (asset.get("zarr") and asset.get("asset_id") in self._known):
                    self.to_fetch += 1
                yield asset

    @staticmethod
    def _candidate(asset: dict) -> bool:
        size = asset.get("size")
        return (
            bool(asset.get("blob"))
            and not asset.get("zarr")
            and isinstance(asset.get("path"), str)
            and type(size) is int
        )

    def _reusable(self, asset: dict, prev: PreviousFile) -> bool:
        path, size = asset["path"], asset["size"]
        if (
            prev.remote_id != asset["asset_id"]
            or prev.checksum_kind != SHA256
            or prev.key is None
            or prev.size != size
            or is_text_asset(path, size)
        ):
            return False
        api = self._api
        on_api = False  # at least one URL under this run's API, every other one pinned
        for u in prev.urls:
            if u.startswith(api):
                on_api = True
            elif "?versionId=" not in u:
                return False
        return on_api


#: a listed asset whose file is the last synced state's, as the listing spools it:
#: (asset_id, path, key, size, urls, checksum) — a plain tuple pickles 2x faster than a NamedTuple
_Reused = tuple


def _reused_entry(record: tuple) -> AnnexEntry:
    asset_id, path, key, size, urls, checksum = record
    return AnnexEntry(path, key, size, urls, SHA256, checksum, asset_id)


def _quiet_client_env() -> None:
    # dandi's version check reaches out to the internet; a mirror must not need it
    os.environ.setdefault("DANDI_NO_ET", "1")
    os.environ.setdefault("DANDI_CACHE", "ignore")


def make_client(api_url: str, token: Optional[str]) -> Any:
    """The dandi client for ``api_url``, its first requests retried like every later one.

    Creating the client asks the server for its info (``/server-info``, once per
    URL and process, not retried by the client): a body cut short there must not
    fail the sync.  Then ``<api>/info/`` must answer like a DANDI API, so that a
    wrong API path is reported as exactly that, not as a missing dandiset.
    """
    _quiet_client_env()
    from dandi import dandiapi
    from dandi.dandiapi import DandiAPIClient

    retries = os.environ.get("NEUROMIRROR_HTTP_RETRIES")
    if retries:
        # the client retries a failing request 12 times with backoff (minutes); operators may bound it
        dandiapi.REQUEST_RETRIES = max(1, int(retries))

    api_url = api_url.rstrip("/")
    last: Optional[BaseException] = None
    for attempt in range(LISTING_ATTEMPTS):
        try:
            client = DandiAPIClient(api_url=api_url, token=token)
            break
        except Exception as exc:  # the client raises RuntimeError/ConnectionError with long texts
            last = exc
            if "Connection refused" in str(exc) or "Max retries exceeded" in str(exc):
                break  # nothing listens there: retrying only delays the one-line error
            time.sleep(min(2**attempt * 0.2, 3))
    else:
        client = None
    if client is None:
        raise DandiError(f"DANDI API at {api_url} is unreachable: {_gist(last) if last else 'no answer'}") from None
    check_api(api_url)
    return client


#: API URLs found to answer like a DANDI API in this process (the client caches its server info alike)
_CHECKED_APIS: set[str] = set()


def check_api(api_url: str) -> None:
    """Raise DandiError unless ``<api_url>/info/`` answers like a DANDI API (retrying cut-short answers)."""
    if api_url in _CHECKED_APIS:
        return
    why = "no answer"
    for attempt in range(LISTING_ATTEMPTS):
        try:
            r = requests.get(f"{api_url}/info/", timeout=30)
            if r.status_code in (429, 500, 502, 503, 504):
                why = f"HTTP {r.status_code}"
            elif r.status_code != 200:
                why = f"GET {api_url}/info/ answered HTTP {r.status_code}"
                break
            else:
                info = r.json()
                if isinstance(info, dict) and isinstance(info.get("services"), dict) and "version" in info:
                    _CHECKED_APIS.add(api_url)
                    return
                why = f"GET {api_url}/info/ is not a DANDI server's info"
                break
        except (ValueError, requests.RequestException) as exc:  # a body cut short, a reset
            why = _gist(exc)
        time.sleep(min(2**attempt * 0.2, 3))
    raise DandiError(f"{api_url} is not a DANDI API ({why}); --dandi-api wants the API's base URL, e.g. {DEFAULT_API}")


def _gist(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Max retries exceeded" in text or "Connection refused" in text:
        return "connection refused"
    return text[:300]


def is_text_asset(path: str, size: int) -> bool:
    if size > GIT_MAX_BYTES:
        return False
    name = posixpath.basename(path)
    stem, ext = posixpath.splitext(name)
    return ext.lower() in TEXT_EXTENSIONS or stem.upper() in TEXT_NAMES and ext == ""


def download_verified(url: str, timeout: float = 60.0) -> bytes:
    """Fetch a small file; the caller's GitEntry checks the sha256."""
    last: Optional[BaseException] = None
    for _ in range(4):
        try:
            r = requests.get(url, timeout=timeout)
            if r.status_code in (429, 500, 502, 503, 504):
                last = DandiError(f"HTTP {r.status_code} from {url}")
                continue
            r.raise_for_status()
            return r.content
        except requests.RequestException as exc:
            last = exc
    raise DandiError(f"could not download {url}: {_gist(last) if last else 'unknown error'}")


def remote_id_for(path: str, key: Optional[str], urls: tuple[str, ...]) -> Optional[str]:
    """The asset id, recovered from the API download URL (used by reindex)."""
    for u in urls:
        parts = urlsplit(u).path.rstrip("/").split("/")
        if len(parts) >= 3 and parts[-1] == "download" and parts[-3] == "assets":
            return parts[-2]
    return None


class DandiSource:
    archive = "dandi"
    reserved = (METADATA_FILE,)

    def __init__(
        self,
        identifier: str,
        *,
        api_url: str = DEFAULT_API,
        token: Optional[str] = None,
        client: Any = None,
        s3_endpoint: Optional[str] = None,
        zarr_executor: Optional[Executor] = None,
    ):
        #: runs the changed Zarr assets' work (``zarr_job.mirror_zarr``); None: a thread pool per snapshot
        self.zarr_executor = zarr_executor
        self.identifier = identifier
        self.api_url = api_url.rstrip("/")
        self._s3_endpoints = s3urls.endpoints_in_use([s3_endpoint])
        self.token = token
        self._client = client
        self.id = f"dandi:{identifier}"
        self.remote_id = identifier
        self.relpath = f"dandi/{identifier}"
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=HEAD_WORKERS)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.api_url, self.token)
        return self._client

    def describe(self) -> str:
        return f"DANDI:{self.identifier} mirrored from {self.api_url}"

    def prepare_dataset(self, path: Path) -> dict[str, str]:
        return dandi_auth.prepare_dataset(self, path)

    # -- snapshots ------------------------------------------------------
    def snapshots(self, state: SourceState, progress: Optional[ProgressCallback] = None) -> Iterator[Snapshot]:
        if self._unchanged_at_a_glance(state):
            return
        d = self._call(lambda: self.client.get_dandiset(self.identifier, "draft", lazy=False), "reading dandiset")
        versions = self._call(lambda: [v for v in d.get_versions() if v.identifier != "draft"], "listing versions")
        known = state.labels()
        new_published = sorted((v for v in versions if v.identifier not in known), key=lambda v: v.created)
        draft = d.version
        draft_modified = dandi_auth.draft_stamp(self, d, draft.modified.isoformat())  # + embargo status
        if not new_published and dandi_zarr.unchanged(self, state.last_remote_modified("draft"), draft_modified):
            return
        for v in new_published:
            yield self._snapshot(d.for_version(v), v, "published", state, progress)
        snap = self._snapshot(d, draft, "draft", state, progress)
        snap.remote_modified = draft_modified  # the Zarr hook appends zarrs=<digest> while streaming
        yield snap

    def _unchanged_at_a_glance(self, state: SourceState) -> bool:
        """The no-change check of :meth:`snapshots` with two plain GETs instead of the dandi client.

        Importing ``dandi.dandiapi`` (pydantic models) alone takes longer than a whole
        resync with no change should.  True only when the draft's stamp (modified time,
        plus the embargo status) is exactly the recorded one and no published version is
        new, which is what the client path decides from the same fields; anything else —
        a Zarr digest to compare, an error, an unexpected answer — says False, and the
        client path decides (and reports errors) as before.
        """
        recorded = state.last_remote_modified("draft")
        if not recorded or "zarrs=" in recorded:
            return False
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        try:
            r = self._session.get(f"{self.api_url}/dandisets/{self.identifier}/", headers=headers, timeout=30)
            if r.status_code != 200:
                return False
            info = r.json()
            status = str(info.get("embargo_status") or dandi_auth.OPEN).upper()
            stamp = parse_time(info["draft_version"]["modified"]).isoformat()
            if status != dandi_auth.OPEN:
                stamp = f"{stamp} embargo={status}"
            if stamp != recorded:
                return False
            known = state.labels()
            url: Optional[str] = f"{self.api_url}/dandisets/{self.identifier}/versions/?page_size={PAGE_SIZE}"
            while url:
                r = self._session.get(url, headers=headers, timeout=30)
                if r.status_code != 200:
                    return False
                page = r.json()
                if any(v["version"] != "draft" and v["version"] not in known for v in page["results"]):
                    return False
                url = page.get("next")
        except Exception:  # the client path retries, and words errors for the user
            return False
        self.embargo_status = status
        return True

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        """One API call; the dandi client retries HTTP errors, this also retries unreadable bodies."""
        last: Optional[BaseException] = None
        for attempt in range(LISTING_ATTEMPTS):
            try:
                return fn()
            except (ValueError, requests.exceptions.ChunkedEncodingError) as exc:
                # a body cut short: unparsable JSON, or fewer bytes than the server announced
                last = exc
                time.sleep(min(2**attempt * 0.2, 3))
            except DandiError:
                raise
            except Exception as exc:
                raise DandiError(f"DANDI API at {self.api_url}: {what} {self.identifier}: {_gist(exc)}") from None
        raise DandiError(f"DANDI API at {self.api_url}: {what} {self.identifier}: {_gist(last) if last else 'failed'}")

    def _snapshot(
        self, rd: Any, version: Any, kind: str, state: SourceState, progress: Optional[ProgressCallback]
    ) -> Snapshot:
        meta = self._call(rd.get_raw_metadata, "reading metadata of")
        if not isinstance(meta, dict):
            raise DandiError(
                f"DANDI API at {self.api_url}: metadata of {self.identifier}/{version.identifier} is not an object"
            )
        label = version.identifier
        snap = Snapshot(
            label=label,
            kind=kind,
            entries=[],
            date=version.created if kind == "published" else version.modified,
            message=(
                f"DANDI:{self.identifier} version {label}" if kind == "published" else f"DANDI:{self.identifier} draft"
            ),
            remote_modified=version.modified.isoformat(),
        )
        if kind == "published":
            snap.tag = label
            snap.doi = meta.get("doi")
            snap.citation = meta.get("citation")
            snap.tag_message = self._tag_message(label, meta)
        snap.entries = self._entries(rd, version, meta, snap, state, progress)
        return snap

    def _tag_message(self, label: str, meta: dict) -> str:
        lines = [f"DANDI:{self.identifier} version {label}", ""]
        if meta.get("name"):
            lines.append(f"Name: {' '.join(str(meta['name']).split())}")
        if meta.get("doi"):
            lines.append(f"DOI: {meta['doi']}")
        if meta.get("citation"):
            lines.append(f"Citation: {' '.join(str(meta['citation']).split())}")
        lines.append(f"Source: {self.api_url}/dandisets/{self.identifier}/versions/{label}/")
        return "\n".join(lines) + "\n"

    def _entries(
        self,
        rd: Any,
        version: Any,
        meta: dict,
        snap: Snapshot,
        state: SourceState,
        progress: Optional[ProgressCallback],
    ) -> Iterator[Entry]:
        import yaml

        yield GitEntry(METADATA_FILE, yaml.safe_dump(meta, sort_keys=True, allow_unicode=True).encode())
        reuse = self._reuse_for(state)
        listing = self._list_assets(rd, version, progress, reuse)
        if listing is None:  # too many assets need their metadata: one listing with it is cheaper
            listing = self._list_assets(rd, version, progress)
        assert listing is not None
        own_executor = self.zarr_executor is None
        zarr_pool = ThreadPoolExecutor(dandi_zarr.ZARR_WORKERS) if own_executor else self.zarr_executor
        zarrs = dandi_zarr.ZarrRun(self, snap, state, zarr_pool)
        try:
            with ThreadPoolExecutor(HEAD_WORKERS) as pool, ThreadPoolExecutor(METADATA_WORKERS) as md_pool:
                batch: list[Any] = []
                for asset in listing:
                    batch.append(asset)
                    if len(batch) >= PAGE_SIZE:
                        yield from self._resolve(batch, snap, state, pool, md_pool, zarrs)
                        batch = []
                if batch:
                    yield from self._resolve(batch, snap, state, pool, md_pool, zarrs)
        finally:
            listing.close()
            if own_executor:
                zarr_pool.shutdown(wait=True, cancel_futures=True)

    def _reuse_for(self, state: SourceState) -> Optional[_Reuse]:
        """How this snapshot may reuse the last synced state (see :class:`_Reuse`), or None.

        None when no draft is recorded — a cold mirror (nothing to reuse: one
        listing with metadata), or ``verify``, whose state records none because it
        must compare the mirror with the archive's own metadata — and while the
        dandiset is embargoed or was at the last sync: its files were registered
        behind the key then, and lifting the embargo changes their URLs under the
        same asset ids.
        """
        recorded = state.last_remote_modified("draft")
        if recorded is None or " embargo=" in recorded or dandi_auth.is_embargoed(self):
            return None
        return _Reuse(state, self.api_url, getattr(self, "zarr_checksums", None))

    def _list_assets(
        self, rd: Any, version: Any, progress: Optional[ProgressCallback], reuse: Optional[_Reuse] = None
    ) -> Optional[_Listing]:
        """The version's complete asset list, spooled to disk and checked for completeness.

        A page that repeats or skips, or a body cut short, must never become
        a commit that lies about the archive: every asset id must be unique
        and their number must match the version's ``asset_count``; otherwise
        list again.  With ``reuse``, the assets come without their metadata and
        are looked up in the last synced state a page at a time; None when so
        many need their metadata that listing with it is cheaper (:class:`_Reuse`).
        """
        expected = getattr(version, "asset_count", None)
        total = expected if isinstance(expected, int) and not isinstance(expected, bool) else None
        params = {"order": "path"} if reuse is not None else {"order": "path", "metadata": "1"}
        last_problem = ""
        for attempt in range(LISTING_ATTEMPTS):
            listing = _Listing(reuse)
            if reuse is not None:
                reuse.restart()
            problem = None
            try:
                for asset in self._paginate(f"{rd.version_api_path}assets/", page_size=PAGE_SIZE, params=params):
                    if not isinstance(asset, dict) or not isinstance(asset.get("asset_id"), str):
                        problem = "malformed asset record in listing"
                        break
                    if not listing.add(asset):
                        problem = f"asset {asset['asset_id']} listed twice (a page repeated)"
                        break
                    if reuse is not None and reuse.too_many(total):
                        self._abandon(listing, reuse)
                        return None
                    crashpoint("dandi-asset")
                    if progress and len(listing.ids) % PAGE_SIZE == 0:
                        progress("listing", len(listing.ids), expected)
                if problem is None:
                    listing.flush()
            except DandiError:
                listing.close()
                raise
            except ValueError as exc:  # JSON cut short: requests' JSONDecodeError is a ValueError
                problem = f"unreadable page ({_gist(exc)})"
            except Exception as exc:
                listing.close()
                raise DandiError(
                    f"DANDI API at {self.api_url}: listing assets of {self.identifier}: {_gist(exc)}"
                ) from None
            if problem is None and isinstance(expected, int) and listing.count != expected:
                problem = f"listing has {listing.count} assets, the version says {expected}"
            if problem is None and reuse is not None and reuse.too_many(listing.count):  # the last page's share
                self._abandon(listing, reuse)
                return None
            if problem is None:
                if progress:
                    progress("listing", listing.count, expected)
                return listing
            listing.close()
            last_problem = problem
            log.warning("DANDI:%s: %s; listing again (attempt %d)", self.identifier, problem, attempt + 2)
            time.sleep(min(2**attempt * 0.2, 3))
        raise DandiError(
            f"DANDI API at {self.api_url}: inconsistent asset listing of {self.identifier}: {last_problem}"
        )

    def _abandon(self, listing: _Listing, reuse: _Reuse) -> None:
        listing.close()
        log.info(
            "DANDI:%s: %d assets or more need their metadata: listing again with it", self.identifier, reuse.to_fetch
        )

    def _paginate(self, path: str, *, page_size: int, params: dict) -> Iterator[Any]:
        """The items of a paged list, as ``client.paginate`` yields them, holding a few pages at most.

        The client's ``paginate`` submits every page 2..n at once and keeps each page
        until the listing ends: all 10^5 assets with their metadata (~5 KB each as
        Python objects) in memory together.  Here at most ``2 * page_workers`` pages
        are in flight and a page is dropped once yielded.  Same requests, same order,
        same fallback (follow ``next``) when the archive does not page by number.
        """
        from collections import deque

        from dandi.utils import is_page2_url

        client = self.client
        params = {**params, "page_size": page_size}
        resp = client.get(path, params=params, json_resp=False)
        r = resp.json()
        yield from r["results"]
        if r["next"] is None:
            return
        page1 = resp.history[0].url if resp.history else resp.url
        if not is_page2_url(page1, r["next"]):
            if os.environ.get("DANDI_PAGINATION_DISABLE_FALLBACK"):  # as the client's paginate
                raise RuntimeError(
                    f"API server changed pagination strategy: {page1} URL is now followed by {r['next']}"
                )
            while r.get("next"):
                r = client.get(r["next"])
                yield from r["results"]
            return
        pages = (r["count"] + page_size - 1) // page_size
        del r, resp

        def get_page(pageno: int) -> list:
            results = client.get(path, params={**params, "page": pageno})["results"]
            assert isinstance(results, list)
            return results

        workers = max(1, getattr(client, "page_workers", 5))
        todo = iter(range(2, pages + 1))
        with ThreadPoolExecutor(workers) as pool:
            window: deque = deque(pool.submit(get_page, n) for n in itertools.islice(todo, 2 * workers))
            try:
                while window:
                    results = window.popleft().result()
                    window.extend(pool.submit(get_page, n) for n in itertools.islice(todo, 1))
                    yield from results
                    del results
            finally:
                for f in window:
                    f.cancel()

    def _resolve(
        self,
        batch: list[Any],
        snap: Snapshot,
        state: SourceState,
        pool: ThreadPoolExecutor,
        md_pool: Optional[ThreadPoolExecutor] = None,
        zarrs: Optional[dandi_zarr.ZarrRun] = None,
    ) -> Iterator[Entry]:
        """Turn a page of the listing into entries, pinning unknown blobs concurrently.

        An asset the listing found reusable (a :data:`_Reused` tuple, a resync) is its
        file of the last synced state again: no check, metadata or pin is needed
        (its path passed the same checks when it was recorded).  The others'
        missing metadata is fetched first, concurrently, and they go through
        every check below.
        """
        reasons = [None if type(a) is _Reused else check_path(a.get("path"), self.reserved) for a in batch]
        known = getattr(self, "zarr_checksums", None) or {}
        self._fetch_metadata(
            [
                a
                for a, reason in zip(batch, reasons)
                if type(a) is not _Reused
                and not reason
                and a.get("metadata") is None
                and not (a.get("zarr") and a.get("asset_id") in known)
            ],
            md_pool or pool,
        )
        if zarrs is None:
            zarrs = dandi_zarr.ZarrRun(self, snap, state, self.zarr_executor or _Inline())
        # Zarr assets: mirrored by the executor (their own datasets) while the blobs are pinned
        zarrs.add([a for a, reason in zip(batch, reasons) if type(a) is not _Reused and not reason and a.get("zarr")])
        ready: list[tuple[dict, dict] | Entry | _ZarrSlot] = []
        for asset, reason in zip(batch, reasons):
            if type(asset) is _Reused:
                ready.append(_reused_entry(asset))
                continue
            path = asset.get("path")
            if reason:
                snap.refused.append(Refusal(str(path), f"refused: {reason}"))
                log.warning("DANDI:%s: refusing asset %r: %s", self.identifier, path, reason)
                continue
            if asset.get("zarr"):  # its own dataset (see above); a subdataset entry here
                ready.append(_ZarrSlot(path))
                continue
            md = asset.get("metadata")
            if not isinstance(md, dict):
                snap.refused.append(Refusal(path, "refused: asset metadata is not an object"))
                continue
            digest = md.get("digest")
            if digest is not None and not isinstance(digest, dict):
                snap.refused.append(Refusal(path, "refused: malformed digest (not an object)"))
                continue
            sha = (digest or {}).get("dandi:sha2-256")
            if sha is None:
                snap.pending.append(
                    Pending(path, "no sha256 yet: will be mirrored when the archive has it", asset.get("asset_id"))
                )
                continue
            if not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha):
                snap.refused.append(Refusal(path, "refused: malformed sha256 digest"))
                continue
            size = asset.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                snap.refused.append(Refusal(path, "refused: size missing or not a non-negative integer"))
                continue
            urls = md.get("contentUrl")
            if urls is not None and (
                not isinstance(urls, list) or any(not isinstance(u, str) or len(u) > MAX_URL for u in urls)
            ):
                snap.refused.append(
                    Refusal(path, f"refused: contentUrl is not a list of URLs of at most {MAX_URL} characters")
                )
                continue
            content_size = md.get("contentSize")
            if content_size is not None and content_size != size:
                snap.refused.append(
                    Refusal(path, f"refused: size {size} disagrees with the metadata's contentSize {content_size!r}")
                )
                continue
            ready.append((asset, md))
        fresh = [r for r in ready if isinstance(r, tuple)]  # (asset, metadata): the entries still to make
        s3_urls = {a["asset_id"]: self._s3_url(md) for a, md in fresh}
        blobs = {a.get("blob") for a, _ in fresh if a.get("blob") and s3_urls.get(a["asset_id"])}
        get_many = getattr(state, "cache_get_many", None)  # one query per page, not one per blob
        if get_many is not None:
            pins: dict = get_many(PIN_NAMESPACE, blobs)
        else:
            pins = {b: state.cache_get(PIN_NAMESPACE, b) for b in blobs}
        todo = {
            a["blob"]: s3_urls[a["asset_id"]]
            for a, _ in fresh
            if a.get("blob") in blobs and pins.get(a["blob"]) is None
        }
        with timing.phase("pinning"):
            found = list(pool.map(self._head_version_id, todo.values()))
        learned = []
        for blob, version_id in zip(todo, found):
            pins[blob] = version_id
            if version_id:
                learned.append((blob, version_id))
        put_many = getattr(state, "cache_put_many", None)  # one transaction per page
        if put_many is not None and learned:
            put_many(PIN_NAMESPACE, learned)
        else:
            for blob, version_id in learned:
                state.cache_put(PIN_NAMESPACE, blob, version_id)
        zarr_entries = zarrs.entries()
        entries = [
            self._entry(r[0], r[1], s3_urls.get(r[0]["asset_id"]), pins.get(r[0].get("blob")))
            if isinstance(r, tuple)
            else zarr_entries.get(r.path)
            if isinstance(r, _ZarrSlot)
            else r
            for r in ready
        ]
        entries = [e for e in entries if e is not None]
        yield from self._fetch_new_text(entries, snap, state, pool)

    def _fetch_metadata(self, assets: list[dict], pool: ThreadPoolExecutor) -> None:
        """Each asset's metadata (GET /assets/{id}/), concurrently, into ``asset["metadata"]``."""
        if not assets:
            return
        found = pool.map(self._metadata_of, [a["asset_id"] for a in assets])
        for asset, md in zip(assets, found):
            asset["metadata"] = md

    def _metadata_of(self, asset_id: str) -> Any:
        return self._call(lambda: self._asset_metadata(asset_id), f"reading metadata of asset {asset_id} of")

    def _fetch_new_text(
        self, entries: list[Entry], snap: Snapshot, state: SourceState, pool: ThreadPoolExecutor
    ) -> Iterator[Entry]:
        """Download new or changed text files now, concurrently, checked against size and sha256.

        A file whose bytes disagree with the archive's digest (or whose download
        fails) is refused on its own — the rest of the dandiset is mirrored.
        Unchanged ones stay lazy: the sync never needs their bytes.
        """

        def needs(e: Entry) -> bool:
            if not isinstance(e, GitEntry) or e.content is not None:
                return False
            prev = state.previous(e.path)
            return prev is None or prev.checksum != e.sha256

        def fetch(e: GitEntry) -> object:
            try:
                data = e.read()
            except Exception as exc:  # ContentMismatch, DandiError
                return exc
            if len(data) != e.length:
                return ContentMismatch(f"{len(data)} bytes downloaded, the archive says {e.length}")
            return data

        todo = [e for e in entries if needs(e)]
        fetched = dict(zip((id(e) for e in todo), pool.map(fetch, todo)))
        for e in entries:
            got = fetched.get(id(e))
            if got is None:
                yield e
            elif isinstance(got, bytes):
                yield dataclasses.replace(e, content=got)  # type: ignore[type-var]
            else:
                reason = (
                    "content does not match the archive's size and sha256"
                    if isinstance(got, ContentMismatch)
                    else _gist(got)
                )  # type: ignore[arg-type]
                snap.refused.append(Refusal(e.path, f"refused: {reason}"))

    def _entry(self, asset: dict, md: dict, s3_url: Optional[str], version_id: Optional[str]) -> Entry:
        path = asset["path"]
        sha = md["digest"]["dandi:sha2-256"].lower()
        size = asset["size"]
        api_download = self._api_url(md, asset["asset_id"])
        if dandi_auth.is_embargoed(self):  # only the key opens it: the special remote's URL
            return dandi_auth.embargoed_entry(self, path, sha, size, api_download, asset["asset_id"])
        pinned = f"{s3_url}?versionId={version_id}" if s3_url and version_id else s3_url
        if is_text_asset(path, size):
            # no remote_id: a file in git is identified by its sha256, and the
            # index must stay rebuildable from the dataset alone
            return GitEntry(path, None, None, sha, size, functools.partial(download_verified, pinned or api_download))
        urls = tuple(u for u in (pinned, api_download) if u)
        return AnnexEntry(path, sha256e_key(sha, size, path), size, urls, SHA256, sha, asset["asset_id"])

    def _asset_metadata(self, asset_id: str) -> Any:
        return self.client.get(f"/assets/{asset_id}/")

    def _api_url(self, md: dict, asset_id: str) -> str:
        for u in md.get("contentUrl") or []:
            if isinstance(u, str) and u.startswith(self.api_url + "/"):
                return u
        return f"{self.api_url}/assets/{asset_id}/download/"

    def _s3_url(self, md: dict) -> Optional[str]:
        """The asset's S3 URL among its ``contentUrl``s, recognised as one (:mod:`.s3urls`).

        The archive writes its *configured* API URL into ``contentUrl``, whatever
        host this sync reaches it by, so "the URL not under our API URL" may be
        the archive's own download route: S3 is told by its shape instead.
        """
        for u in md.get("contentUrl") or []:
            if (
                isinstance(u, str)
                and not _DOWNLOAD_ROUTE.search(urlsplit(u).path)
                and s3urls.locate(u, self._s3_endpoints, archive_key=dandi_zarr.is_archive_key) is not None
            ):
                return u.split("?", 1)[0]
        return None

    def _head_version_id(self, url: str) -> Optional[str]:
        """The object's current S3 version id, from a HEAD of the object itself.

        Redirects are not followed: an S3 object answers directly, and a version id
        found behind a redirect would belong to another URL's object.
        """
        for _attempt in range(5):
            try:
                r = self._session.head(url, timeout=30, allow_redirects=False)
            except requests.RequestException:
                continue
            if r.status_code in (429, 500, 502, 503, 504):
                continue
            if r.ok:
                vid = r.headers.get("x-amz-version-id")
                return vid if vid and vid != "null" else None
            return None
        return None


def add_options(group: Any) -> None:
    group.add_argument(
        "--dandi-api",
        default=os.environ.get("NEUROMIRROR_DANDI_API"),
        help=f"DANDI API URL (env NEUROMIRROR_DANDI_API; default {DEFAULT_API})",
    )


def expand(spec: Spec, options: dict) -> Iterator[DandiSource]:
    api_url = options.get("dandi_api") or os.environ.get("NEUROMIRROR_DANDI_API") or DEFAULT_API
    token = os.environ.get("DANDI_API_KEY") or None
    endpoint = options.get("s3_endpoint")
    if not spec.is_glob:
        yield DandiSource(spec.name, api_url=api_url, token=token, s3_endpoint=endpoint)
        return
    client = make_client(api_url, token)
    try:
        ids = sorted(d.identifier for d in client.get_dandisets(**({"embargoed": True} if token else {})))
    except Exception as exc:
        raise DandiError(f"DANDI API at {api_url}: cannot list dandisets: {_gist(exc)}") from None
    for ident in ids:
        if fnmatch.fnmatchcase(ident, spec.name):
            yield DandiSource(ident, api_url=api_url, token=token, client=client, s3_endpoint=endpoint)

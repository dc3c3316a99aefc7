"""DANDI: dandisets as snapshots, through the official ``dandi`` client.

Every published version becomes a tagged snapshot (oldest first), the draft
an untagged one.  Blob assets become SHA256E keys from the archive's own
sha256 — nothing is downloaded — with two URLs: the S3 URL pinned by
``?versionId=`` (asked once per blob with a HEAD, cached forever, since a
blob's content never changes) and the API download URL.  Small text assets
go into git, downloaded lazily and checked against their sha256.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import urlsplit

import requests

from ..annex.keys import sha256e_key
from .. import timing
from ..crashpoints import crashpoint
from ..dates import parse_iso as parse_time
from ..paths import check_path
from ..spool import Spool
from ..records import (
    SHA256,
    AnnexEntry,
    ContentMismatch,
    Entry,
    GitEntry,
    Pending,
    ProgressCallback,
    Refusal,
    Snapshot,
    SourceState,
)
from ..spec import Spec
from . import dandi_auth, dandi_zarr  # embargo (key-reading special remote) and Zarr subdatasets

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
#: the metadata fields a blob asset's entry is made from (the listing keeps only these)
BLOB_METADATA = ("digest", "contentSize", "contentUrl")
MAX_URL = 8192


class _Listing(Spool):
    """A version's asset records on disk, refusing an asset id seen twice (a repeated page)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def add(self, asset: dict) -> bool:  # type: ignore[override]
        if asset["asset_id"] in self.ids:
            return False
        self.ids.add(asset["asset_id"])
        md = asset.get("metadata")
        if isinstance(md, dict) and asset.get("blob") and not asset.get("zarr"):
            # a blob asset needs only these (see _resolve/_entry); pickling the whole
            # metadata was 1-2 s of a 10^5-asset listing, and 4x the spool's size
            asset = {**asset, "metadata": {k: md[k] for k in BLOB_METADATA if k in md}}
        super().add(asset)
        return True


class DandiError(RuntimeError):
    """The DANDI archive could not be read; message names the archive and the cause."""


def _quiet_client_env() -> None:
    # dandi's version check reaches out to the internet; a mirror must not need it
    os.environ.setdefault("DANDI_NO_ET", "1")
    os.environ.setdefault("DANDI_CACHE", "ignore")


def make_client(api_url: str, token: Optional[str]) -> Any:
    _quiet_client_env()
    from dandi import dandiapi
    from dandi.dandiapi import DandiAPIClient

    retries = os.environ.get("NEUROMIRROR_HTTP_RETRIES")
    if retries:
        # the client retries a failing request 12 times with backoff (minutes); operators may bound it
        dandiapi.REQUEST_RETRIES = max(1, int(retries))

    try:
        return DandiAPIClient(api_url=api_url.rstrip("/"), token=token)
    except Exception as exc:  # the client raises RuntimeError/ConnectionError with long texts
        raise DandiError(f"DANDI API at {api_url} is unreachable: {_gist(exc)}") from None


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

    def __init__(self, identifier: str, *, api_url: str = DEFAULT_API, token: Optional[str] = None, client: Any = None):
        self.identifier = identifier
        self.api_url = api_url.rstrip("/")
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
            except ValueError as exc:  # a JSON body cut short
                last = exc
                time.sleep(min(2 ** attempt * 0.2, 3))
            except DandiError:
                raise
            except Exception as exc:
                raise DandiError(f"DANDI API at {self.api_url}: {what} {self.identifier}: {_gist(exc)}") from None
        raise DandiError(f"DANDI API at {self.api_url}: {what} {self.identifier}: {_gist(last) if last else 'failed'}")

    def _snapshot(self, rd: Any, version: Any, kind: str, state: SourceState, progress: Optional[ProgressCallback]) -> Snapshot:
        meta = self._call(rd.get_raw_metadata, "reading metadata of")
        if not isinstance(meta, dict):
            raise DandiError(f"DANDI API at {self.api_url}: metadata of {self.identifier}/{version.identifier} is not an object")
        label = version.identifier
        snap = Snapshot(
            label=label,
            kind=kind,
            entries=[],
            date=version.created if kind == "published" else version.modified,
            message=(f"DANDI:{self.identifier} version {label}" if kind == "published" else f"DANDI:{self.identifier} draft"),
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

    def _entries(self, rd: Any, version: Any, meta: dict, snap: Snapshot, state: SourceState,
                 progress: Optional[ProgressCallback]) -> Iterator[Entry]:
        import yaml

        yield GitEntry(METADATA_FILE, yaml.safe_dump(meta, sort_keys=True, allow_unicode=True).encode())
        listing = self._list_assets(rd, version, progress)
        try:
            with ThreadPoolExecutor(HEAD_WORKERS) as pool:
                batch: list[dict] = []
                for asset in listing:
                    batch.append(asset)
                    if len(batch) >= PAGE_SIZE:
                        yield from self._resolve(batch, snap, state, pool)
                        batch = []
                if batch:
                    yield from self._resolve(batch, snap, state, pool)
        finally:
            listing.close()

    def _list_assets(self, rd: Any, version: Any, progress: Optional[ProgressCallback]) -> "_Listing":
        """The version's complete asset list, spooled to disk and checked for completeness.

        A page that repeats or skips, or a body cut short, must never become
        a commit that lies about the archive: every asset id must be unique
        and their number must match the version's ``asset_count``; otherwise
        list again.
        """
        expected = getattr(version, "asset_count", None)
        last_problem = ""
        for attempt in range(LISTING_ATTEMPTS):
            listing = _Listing()
            problem = None
            try:
                for asset in self._paginate(
                    f"{rd.version_api_path}assets/", page_size=PAGE_SIZE, params={"order": "path", "metadata": "1"}
                ):
                    if not isinstance(asset, dict) or not isinstance(asset.get("asset_id"), str):
                        problem = "malformed asset record in listing"
                        break
                    if not listing.add(asset):
                        problem = f"asset {asset['asset_id']} listed twice (a page repeated)"
                        break
                    crashpoint("dandi-asset")
                    if progress and listing.count % PAGE_SIZE == 0:
                        progress("listing", listing.count, expected)
            except DandiError:
                listing.close()
                raise
            except ValueError as exc:  # JSON cut short: requests' JSONDecodeError is a ValueError
                problem = f"unreadable page ({_gist(exc)})"
            except Exception as exc:
                listing.close()
                raise DandiError(f"DANDI API at {self.api_url}: listing assets of {self.identifier}: {_gist(exc)}") from None
            if problem is None and isinstance(expected, int) and listing.count != expected:
                problem = f"listing has {listing.count} assets, the version says {expected}"
            if problem is None:
                if progress:
                    progress("listing", listing.count, expected)
                return listing
            listing.close()
            last_problem = problem
            log.warning("DANDI:%s: %s; listing again (attempt %d)", self.identifier, problem, attempt + 2)
            time.sleep(min(2 ** attempt * 0.2, 3))
        raise DandiError(f"DANDI API at {self.api_url}: inconsistent asset listing of {self.identifier}: {last_problem}")

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
                raise RuntimeError(f"API server changed pagination strategy: {page1} URL is now followed by {r['next']}")
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

    def _resolve(self, batch: list[dict], snap: Snapshot, state: SourceState, pool: ThreadPoolExecutor) -> Iterator[Entry]:
        """Turn a page of assets into entries, pinning unknown blobs concurrently."""
        ready: list[tuple[dict, dict]] = []
        for asset in batch:
            path = asset.get("path")
            reason = check_path(path, self.reserved)
            if reason:
                snap.refused.append(Refusal(str(path), f"refused: {reason}"))
                log.warning("DANDI:%s: refusing asset %r: %s", self.identifier, path, reason)
                continue
            if asset.get("zarr"):  # its own dataset, synced now; a subdataset entry here
                entry = dandi_zarr.zarr_entry(self, asset, snap, state)
                if entry is not None:
                    yield entry
                continue
            md = asset.get("metadata")
            if md is None:
                md = pool.submit(self._asset_metadata, asset["asset_id"]).result()
            if not isinstance(md, dict):
                snap.refused.append(Refusal(path, "refused: asset metadata is not an object"))
                continue
            digest = md.get("digest")
            if digest is not None and not isinstance(digest, dict):
                snap.refused.append(Refusal(path, "refused: malformed digest (not an object)"))
                continue
            sha = (digest or {}).get("dandi:sha2-256")
            if sha is None:
                snap.pending.append(Pending(path, "no sha256 yet: will be mirrored when the archive has it", asset.get("asset_id")))
                continue
            if not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha):
                snap.refused.append(Refusal(path, "refused: malformed sha256 digest"))
                continue
            size = asset.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                snap.refused.append(Refusal(path, "refused: size missing or not a non-negative integer"))
                continue
            urls = md.get("contentUrl")
            if urls is not None and (not isinstance(urls, list) or any(not isinstance(u, str) or len(u) > MAX_URL for u in urls)):
                snap.refused.append(Refusal(path, f"refused: contentUrl is not a list of URLs of at most {MAX_URL} characters"))
                continue
            content_size = md.get("contentSize")
            if content_size is not None and content_size != size:
                snap.refused.append(Refusal(path, f"refused: size {size} disagrees with the metadata's contentSize {content_size!r}"))
                continue
            ready.append((asset, md))
        s3_urls = {a["asset_id"]: self._s3_url(md) for a, md in ready}
        blobs = {a.get("blob") for a, _ in ready if a.get("blob") and s3_urls.get(a["asset_id"])}
        get_many = getattr(state, "cache_get_many", None)  # one query per page, not one per blob
        if get_many is not None:
            pins: dict = get_many(PIN_NAMESPACE, blobs)
        else:
            pins = {b: state.cache_get(PIN_NAMESPACE, b) for b in blobs}
        todo = {a["blob"]: s3_urls[a["asset_id"]] for a, _ in ready if a.get("blob") in blobs and pins.get(a["blob"]) is None}
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
        entries = [self._entry(asset, md, s3_urls.get(asset["asset_id"]), pins.get(asset.get("blob"))) for asset, md in ready]
        yield from self._fetch_new_text(entries, snap, state, pool)

    def _fetch_new_text(self, entries: list[Entry], snap: Snapshot, state: SourceState,
                        pool: ThreadPoolExecutor) -> Iterator[Entry]:
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
                reason = "content does not match the archive's size and sha256" if isinstance(got, ContentMismatch) else _gist(got)  # type: ignore[arg-type]
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
            return GitEntry(path, None, None, sha, size,
                            functools.partial(download_verified, pinned or api_download))
        urls = tuple(u for u in (pinned, api_download) if u)
        return AnnexEntry(path, sha256e_key(sha, size, path), size, urls, SHA256, sha, asset["asset_id"])

    def _asset_metadata(self, asset_id: str) -> Any:
        return self.client.get(f"/assets/{asset_id}/")

    def _api_url(self, md: dict, asset_id: str) -> str:
        for u in md.get("contentUrl") or []:
            if isinstance(u, str) and u.startswith(self.api_url):
                return u
        return f"{self.api_url}/assets/{asset_id}/download/"

    def _s3_url(self, md: dict) -> Optional[str]:
        """The content URL that is not under the API (as the client's as_readable() picks it)."""
        for u in md.get("contentUrl") or []:
            if isinstance(u, str) and u.startswith(("http://", "https://")) and not u.startswith(self.api_url):
                return u.split("?", 1)[0]
        return None

    def _head_version_id(self, url: str) -> Optional[str]:
        for attempt in range(5):
            try:
                r = self._session.head(url, timeout=30, allow_redirects=True)
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
    group.add_argument("--dandi-api", default=os.environ.get("NEUROMIRROR_DANDI_API"),
                       help=f"DANDI API URL (env NEUROMIRROR_DANDI_API; default {DEFAULT_API})")


def expand(spec: Spec, options: dict) -> Iterator[DandiSource]:
    api_url = options.get("dandi_api") or os.environ.get("NEUROMIRROR_DANDI_API") or DEFAULT_API
    token = os.environ.get("DANDI_API_KEY") or None
    if not spec.is_glob:
        yield DandiSource(spec.name, api_url=api_url, token=token)
        return
    client = make_client(api_url, token)
    try:
        ids = sorted(d.identifier for d in client.get_dandisets(**({"embargoed": True} if token else {})))
    except Exception as exc:
        raise DandiError(f"DANDI API at {api_url}: cannot list dandisets: {_gist(exc)}") from None
    for ident in ids:
        if fnmatch.fnmatchcase(ident, spec.name):
            yield DandiSource(ident, api_url=api_url, token=token, client=client)



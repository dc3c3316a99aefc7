"""A page of a version's listing made entries: blob assets as annexed files, small text files in git.

Blob assets become SHA256E keys from the archive's own sha256 — nothing is downloaded —
with two URLs: the S3 URL pinned by ``?versionId=`` (asked once per blob with a HEAD,
cached forever, since a blob's content never changes: :mod:`.pins`; behind a delete marker, the
noncurrent version with the asset's ETag and size: :mod:`.blob_versions`) and the API download URL.  Small
text assets go into git, downloaded now when new and checked against their sha256.  Every
asset is checked before it becomes an entry (path, digest, size, URLs): what the archive
gets wrong is refused on its own, with the reason.  Zarr assets are handed to the Zarr run
(:mod:`.zarr_assets`) and come back as subdataset entries in their place.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeGuard, TypeVar
from urllib.parse import urlsplit

from neuromirror.annex.keys import sha256e_key
from neuromirror.network import pacing
from neuromirror.records import (
    SHA256,
    AnnexEntry,
    ContentMismatch,
    Entry,
    GitEntry,
    Pending,
    Refusal,
    Snapshot,
    SourceState,
)
from neuromirror.sources import s3urls
from neuromirror.sources.dandi import embargo
from neuromirror.sources.dandi.assets import Reused, is_text_asset, reused_entry
from neuromirror.sources.dandi.client import download_verified, gist
from neuromirror.sources.dandi.held import held_entry, hold
from neuromirror.sources.dandi.pin_ahead import PinAhead, PinJob
from neuromirror.sources.dandi.pins import BlobPins, cached_pins
from neuromirror.sources.dandi.zarr_assets import ZarrRun, expect_zarrs, zarr_run
from neuromirror.sources.dandi.zarr_listing import is_archive_key
from neuromirror.sources.dandi.zarr_states import ZarrStates
from neuromirror.util.paths import check_path

log = logging.getLogger("neuromirror.dandi")

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
#: the archive's own download route of an asset, on whatever host (top-level or under a version)
_DOWNLOAD_ROUTE = re.compile(r"/assets/[^/]+/download/?$")
MAX_URL = 8192


class _ZarrSlot:
    """A Zarr asset's place in a page's entries, filled from the Zarr run (:class:`.zarr_assets.ZarrRun`)."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path


_T = TypeVar("_T")


class _Inline(Executor):
    """An executor that runs the job at once (``_resolve`` called without a snapshot's pool)."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        f: Future[_T] = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            f.set_exception(exc)
        return f


def _checked_metadata(asset: dict, path: str, snap: Snapshot) -> Optional[dict]:
    """A blob asset's metadata when the asset may become an entry (digest, size and URLs well
    formed and agreeing); otherwise None, with why recorded in ``snap`` (refused, or pending
    while the archive has no sha256 yet): what the archive gets wrong is refused on its own."""
    md = asset.get("metadata")
    if not isinstance(md, dict):
        snap.refused.append(Refusal(path, "refused: asset metadata is not an object"))
        return None
    digest = md.get("digest")
    if digest is not None and not isinstance(digest, dict):
        snap.refused.append(Refusal(path, "refused: malformed digest (not an object)"))
        return None
    sha = (digest or {}).get("dandi:sha2-256")
    if sha is None:
        snap.pending.append(
            Pending(path, "no sha256 yet: will be mirrored when the archive has it", asset.get("asset_id"))
        )
        return None
    problem = _metadata_problem(asset, md, sha)
    if problem is not None:
        snap.refused.append(Refusal(path, f"refused: {problem}"))
        return None
    return md


def _metadata_problem(asset: dict, md: dict, sha: object) -> Optional[str]:
    """What is wrong with a blob asset's digest, size or URLs once it has a sha256, or None: the
    checks that refuse the asset (a missing sha256 only defers it, :func:`_checked_metadata`)."""
    if not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha):
        return "malformed sha256 digest"
    size = asset.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "size missing or not a non-negative integer"
    urls = md.get("contentUrl")
    if urls is not None and (
        not isinstance(urls, list) or any(not isinstance(u, str) or len(u) > MAX_URL for u in urls)
    ):
        return f"contentUrl is not a list of URLs of at most {MAX_URL} characters"
    content_size = md.get("contentSize")
    if content_size is not None and content_size != size:
        return f"size {size} disagrees with the metadata's contentSize {content_size!r}"
    return None


def _carried(item: Any) -> bool:
    """A listing's item that is the last synced state's file (a :data:`Reused` tuple, or an entry the
    listing by changes carried over: :mod:`.changes.listing`), not an asset as the archive listed it."""
    return type(item) is not dict


def _zarr_assets(batch: list[Any], reasons: list[Optional[str]]) -> list[dict]:
    """The page's Zarr assets to hand to the Zarr run: not reused, not refused by their path."""
    return [a for a, reason in zip(batch, reasons) if not _carried(a) and not reason and a.get("zarr")]


class AssetEntries(BlobPins):
    """The part of :class:`~neuromirror.sources.dandi.source.DandiSource` that makes a page's entries."""

    #: paths the source writes itself (dandiset.yaml)
    reserved: tuple[str, ...]
    #: runs the changed Zarr assets' work; None: a thread pool per snapshot
    zarr_executor: Optional[Executor]
    #: zarr id -> the archive's checksum, when the dandiset's Zarr list gave it (draft only, :mod:`.zarr_states`)
    zarr_checksums: Optional[dict[str, str]] = None
    #: the dandiset's dataset, once ``prepare_dataset`` named it: the Zarrs' datasets go inside it
    dataset_path: Optional[Path] = None

    def zarr_states(self) -> Optional[ZarrStates]:
        """The dandiset's Zarr list of this sync; the source reads it (here: none known)."""
        return None

    def _resolve(
        self,
        batch: list[Any],
        snap: Snapshot,
        state: SourceState,
        pool: Executor,
        md_pool: Optional[Executor] = None,
        zarrs: Optional[ZarrRun] = None,
        ahead: Optional[PinAhead] = None,
    ) -> Iterator[Entry]:
        """Turn a page of the listing into entries, pinning unknown blobs concurrently.

        An asset the listing found reusable (a :data:`Reused` tuple, a resync) is its
        file of the last synced state again: no check, metadata or pin is needed
        (its path passed the same checks when it was recorded).  The others'
        missing metadata is fetched first, concurrently, and they go through
        every check below.
        """
        reasons = [None if _carried(a) else check_path(a.get("path"), self.reserved) for a in batch]
        self._fetch_metadata(self._lacking_metadata(batch, reasons), md_pool or pool)
        if zarrs is None:
            zarrs = zarr_run(self, snap, state, self.zarr_executor or _Inline())
        # Zarr assets: mirrored by the executor (their own datasets) while the blobs are pinned
        zarr_assets = _zarr_assets(batch, reasons)
        expect_zarrs(snap, zarr_assets)
        zarrs.add(zarr_assets)
        ready = self._sorted_page(batch, reasons, snap)
        fresh = [r for r in ready if isinstance(r, tuple)]  # (asset, metadata): the entries still to make
        s3_urls = {a["asset_id"]: self.s3_url(md) for a, md in fresh}
        pins, held = self._pins(fresh, s3_urls, snap, state, pool, ahead)
        made = self._made(ready, s3_urls, pins, held, zarrs.entries(), state)
        yield from self._fetch_new_text(made, snap, state, pool)

    def _made(
        self,
        ready: list[tuple[dict, dict] | Entry | _ZarrSlot],
        s3_urls: dict[str, Optional[str]],
        pins: dict,
        held: set[str],
        zarr_entries: dict[str, Optional[Entry]],
        state: SourceState,
    ) -> list[Entry]:
        """The page's entries in its order: each sorted asset made an entry with its pin (or held at
        its last state), each Zarr's slot filled from its run; those with nothing to show dropped."""
        made = [
            held_entry(state, r[0]["path"])
            if isinstance(r, tuple) and r[0].get("blob") in held
            else self._entry(r[0], r[1], s3_urls.get(r[0]["asset_id"]), pins.get(r[0].get("blob")))
            if isinstance(r, tuple)
            else zarr_entries.get(r.path)
            if isinstance(r, _ZarrSlot)
            else r
            for r in ready
        ]
        return [e for e in made if e is not None]

    def _lacking_metadata(self, batch: list[Any], reasons: list[Optional[str]]) -> list[dict]:
        """The page's assets whose metadata must still be asked: not reused, not refused by path,
        without metadata, and not a Zarr whose checksum the dandiset's Zarr list already gave."""
        known = self.zarr_checksums or {}
        return [
            a
            for a, reason in zip(batch, reasons)
            if not _carried(a)
            and not reason
            and a.get("metadata") is None
            and not (a.get("zarr") and a.get("zarr") in known)
        ]

    def _sorted_page(
        self, batch: list[Any], reasons: list[Optional[str]], snap: Snapshot
    ) -> list[tuple[dict, dict] | Entry | _ZarrSlot]:
        """The page in its order, each asset as what it becomes: a reused entry, a Zarr's slot, or
        (asset, metadata) still to be made an entry; those refused (by path or metadata) are left
        out, recorded in ``snap``."""
        ready: list[tuple[dict, dict] | Entry | _ZarrSlot] = []
        for asset, reason in zip(batch, reasons):
            if _carried(asset):  # the last state's file: a Reused tuple, or an entry (.changes)
                ready.append(reused_entry(asset) if type(asset) is Reused else asset)
                continue
            path = asset.get("path")
            if reason:
                snap.refused.append(Refusal(str(path), f"refused: {reason}"))
                log.warning("DANDI:%s: refusing asset %r: %s", self.identifier, path, reason)
                continue
            if asset.get("zarr"):  # its own dataset (see above); a subdataset entry here
                ready.append(_ZarrSlot(path))
                continue
            md = _checked_metadata(asset, path, snap)
            if md is not None:
                ready.append((asset, md))
        return ready

    def pin_ahead(self, pool: Executor, state: SourceState) -> PinAhead:
        """Pins asked from the listing's pages, by ``pool`` (:mod:`.pin_ahead`)."""
        refused = functools.partial(check_path, reserved=self.reserved)
        return PinAhead(pool, self._pin_or_hold, self._pin_job, functools.partial(cached_pins, state), refused)

    def _pin_job(self, asset: dict) -> Optional[PinJob]:
        """What pinning ``asset``'s blob takes (its S3 URL, dandi-etag, size), if its listing says."""
        md = asset.get("metadata")
        size = asset.get("size")
        if not isinstance(md, dict) or not isinstance(size, int):
            return None
        url = self.s3_url(md)
        digest = md.get("digest")
        etag = digest.get("dandi:dandi-etag") if isinstance(digest, dict) else None
        return (url, etag if isinstance(etag, str) else None, size) if url else None

    def _fetch_metadata(self, assets: list[dict], pool: Executor) -> None:
        """Each asset's metadata (GET /assets/{id}/), concurrently, into ``asset["metadata"]``."""
        if not assets:
            return
        found = pool.map(self._metadata_of, [a["asset_id"] for a in assets])
        for asset, md in zip(assets, found):
            asset["metadata"] = md

    def _metadata_of(self, asset_id: str) -> Any:
        return self._call(lambda: self.asset_metadata(asset_id), f"reading metadata of asset {asset_id} of")

    def _fetch_new_text(
        self, entries: list[Entry], snap: Snapshot, state: SourceState, pool: Executor
    ) -> Iterator[Entry]:
        """Download new or changed text files now, concurrently, checked against size and sha256.

        A file whose bytes disagree with the archive's digest (or whose download
        fails) is refused on its own — the rest of the dandiset is mirrored.
        Unchanged ones stay lazy: the sync never needs their bytes.
        """

        def needs(e: Entry) -> TypeGuard[GitEntry]:
            if not isinstance(e, GitEntry) or e.content is not None:
                return False
            prev = state.previous(e.path)
            return prev is None or prev.checksum != e.sha256

        def fetch(e: GitEntry) -> bytes | BaseException:
            try:
                data = e.read()
            except Exception as exc:  # ContentMismatch, DandiError, GaveUp
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
                assert isinstance(e, GitEntry)  # only text files in git were fetched
                yield dataclasses.replace(e, content=got)
            elif isinstance(got, pacing.GaveUp):  # the archive never served it: held at its last state
                hold(snap, state, e.path, f"not downloaded: no answer after {got.attempts} attempts ({got.last})")
                kept = held_entry(state, e.path)
                if kept is not None:
                    yield kept
            else:
                reason = (
                    "content does not match the archive's size and sha256"
                    if isinstance(got, ContentMismatch)
                    else gist(got)
                )
                snap.refused.append(Refusal(e.path, f"refused: {reason}"))

    def _entry(self, asset: dict, md: dict, s3_url: Optional[str], version_id: Optional[str]) -> Entry:
        path = asset["path"]
        sha = md["digest"]["dandi:sha2-256"].lower()
        size = asset["size"]
        api_download = self._api_url(md, asset["asset_id"])
        if embargo.is_embargoed(self):  # only the key opens it: the special remote's URL
            return embargo.embargoed_entry(self, path, sha, size, api_download, asset["asset_id"])
        pinned = f"{s3_url}?versionId={version_id}" if s3_url and version_id else s3_url
        urls = tuple(u for u in (pinned, api_download) if u)
        if is_text_asset(path, size):
            # no remote_id: a file in git is identified by its sha256, and the
            # index must stay rebuildable from the dataset alone; its URLs go on the git-annex branch
            return GitEntry(path, None, None, sha, size, functools.partial(download_verified, urls[0]), urls)
        return AnnexEntry(path, sha256e_key(sha, size, path), size, urls, SHA256, sha, asset["asset_id"])

    def _api_url(self, md: dict, asset_id: str) -> str:
        for u in md.get("contentUrl") or []:
            if isinstance(u, str) and u.startswith(self.api_url + "/"):
                return u
        return f"{self.api_url}/assets/{asset_id}/download/"

    def s3_url(self, md: dict) -> Optional[str]:
        """The asset's S3 URL among its ``contentUrl``s, recognised as one (:mod:`.s3urls`).

        The archive writes its *configured* API URL into ``contentUrl``, whatever
        host this sync reaches it by, so "the URL not under our API URL" may be
        the archive's own download route: S3 is told by its shape instead.
        """
        for u in md.get("contentUrl") or []:
            if (
                isinstance(u, str)
                and not _DOWNLOAD_ROUTE.search(urlsplit(u).path)
                and s3urls.locate(u, self._s3_endpoints, archive_key=is_archive_key) is not None
            ):
                return u.split("?", 1)[0]
        return None

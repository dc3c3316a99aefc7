"""DANDI: dandisets as snapshots, through the official ``dandi`` client.

Every published version becomes a tagged snapshot (oldest first), the draft
an untagged one; an unchanged dandiset costs two plain GETs (and its Zarr list, if it
has Zarr assets: :mod:`.zarr_states`).  A version's assets
are listed completely or not at all (:mod:`.changes.whole`) and made
entries a page at a time (:mod:`.blobs`, Zarr assets through :mod:`.zarr_assets`).
A resync lists without the assets' metadata and takes the files of unchanged asset
ids from the last synced state (:class:`~.assets.Reuse`): metadata only for new assets.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

import requests

from neuromirror.network import identity
from neuromirror.network.adapter import pace_session
from neuromirror.network.workers import Workers
from neuromirror.records import Entry, GitEntry, ProgressCallback, Snapshot, SourceState, VersionKind
from neuromirror.sources import s3urls
from neuromirror.sources.base import Listed, Source
from neuromirror.sources.dandi import assets, embargo, zarr_states
from neuromirror.sources.dandi.assets import Listing, Reuse
from neuromirror.sources.dandi.blobs import AssetEntries
from neuromirror.sources.dandi.changes import listing as changes
from neuromirror.sources.dandi.changes import stamp as changes_stamp
from neuromirror.sources.dandi.changes.stamp import Mark
from neuromirror.sources.dandi.changes.whole import AssetListing
from neuromirror.sources.dandi.client import DEFAULT_API, DandiError, gist, make_client
from neuromirror.sources.dandi.held import check_published
from neuromirror.sources.dandi.options import add_options  # noqa: F401 - the source's options, as aind's and boss's
from neuromirror.sources.dandi.pins import HEAD_BASE
from neuromirror.sources.dandi.zarr_assets import settle, split_stamp, track_draft, unchanged, zarr_executor, zarr_run
from neuromirror.sources.dandi.zarr_states import ZarrStates
from neuromirror.spec import Spec
from neuromirror.util.dates import parse_iso as parse_time

log = logging.getLogger("neuromirror.dandi")

METADATA_FILE = "dandiset.yaml"
#: threads pinning blobs: 32 HEADs in flight near S3, up to 128 when it is 50 ms away (network.pacing)
HEAD_WORKERS = 128
#: single metadata GETs in flight during a resync (the client's connection pool holds 10)
METADATA_WORKERS = 8
#: the -modified head (the watermark's look) asked this many times while the API answers 429 or 5xx
HEAD_ATTEMPTS = 3


def remote_id_for(path: str, key: Optional[str], urls: tuple[str, ...]) -> Optional[str]:
    """The asset id, recovered from the API download URL (used by reindex)."""
    for u in urls:
        parts = urlsplit(u).path.rstrip("/").split("/")
        if len(parts) >= 3 and parts[-1] == "download" and parts[-3] == "assets":
            return parts[-2]
    return None


class DandiSource(AssetEntries, AssetListing):
    """One dandiset at one DANDI API (a :class:`~neuromirror.sources.base.Source`)."""

    archive = "dandi"
    reserved: tuple[str, ...] = (METADATA_FILE,)

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
        super().__init__(identifier, api_url=api_url, token=token, client=client)
        #: runs the changed Zarr assets' work (``engine.zarr.job.mirror_zarr``); None: a thread pool per snapshot
        self.zarr_executor = zarr_executor
        self._s3_endpoints = s3urls.endpoints_in_use([s3_endpoint])
        self.id = f"dandi:{identifier}"
        self.remote_id = identifier
        self.relpath = f"dandi/{identifier}"
        self._session = identity.session()  # named: network.identity
        self.head_workers = HEAD_WORKERS
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=HEAD_WORKERS)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        pace_session(self._session, self.api_url)  # the stamp's GETs (_glance) go through the API's pace
        #: the dandiset's Zarr list of this sync, read while the rest is asked (:meth:`zarr_states`)
        self._zarr_states: Optional[Future[Optional[ZarrStates]]] = None

    def __getstate__(self) -> dict:
        """Without this sync's Zarr list in flight (a Future): a worker reads its own if it needs one."""
        state = super().__getstate__()
        state["_zarr_states"] = None
        return state

    def describe(self) -> str:
        return f"DANDI:{self.identifier} mirrored from {self.api_url}"

    def prepare_dataset(self, path: Path) -> dict[str, str]:
        return embargo.prepare_dataset(self, path)

    # -- snapshots ------------------------------------------------------
    def snapshots(self, state: SourceState, progress: Optional[ProgressCallback] = None) -> Iterator[Snapshot]:
        self._zarr_states = None  # read anew by each sync
        recorded = state.last_remote_modified("draft")
        if recorded is not None:
            if split_stamp(recorded)[1] not in (None, changes_stamp.BY_MODIFIED):
                self._start_zarr_states()  # compared below: read (and the client made) meanwhile
            glance = self._glance(state)
            if glance is not None and unchanged(self, recorded, glance, getattr(state, "zarr_manifest_wanted", None)):
                return  # a resync with no change
        # the client checks the API first (a wrong --dandi-api reads as such) and words errors for the user
        d = self._call(lambda: self.client.get_dandiset(self.identifier, "draft", lazy=False), "reading dandiset")
        if split_stamp(recorded or "")[1] != changes_stamp.BY_MODIFIED:  # else read if the draft is listed whole
            self._start_zarr_states()  # before any listing: the draft's stamp says what was mirrored since
        versions = self._published_versions(d)
        known = state.labels()
        new_published = sorted((v for v in versions if v.identifier not in known), key=lambda v: v.created)
        draft = d.version
        draft_modified = embargo.draft_stamp(self, d, draft.modified.isoformat())  # + embargo status
        draft_modified += changes_stamp.counts(getattr(draft, "asset_count", None), getattr(draft, "size", None))
        if not new_published and unchanged(
            self, recorded, draft_modified, getattr(state, "zarr_manifest_wanted", None)
        ):
            return
        for v in new_published:
            published = self._snapshot(d.for_version(v), v, VersionKind.PUBLISHED, state, progress)
            yield published
            settle(published)  # asked for the next one: this one is committed (see zarr_assets.settle)
        snap = self._snapshot(d, draft, VersionKind.DRAFT, state, progress)
        snap.remote_modified = draft_modified  # the Zarr hook appends zarrs=<digest> while streaming
        track_draft(snap, self.zarr_states)
        yield snap
        settle(snap)

    def zarr_states(self) -> Optional[ZarrStates]:
        """The dandiset's Zarr archives as this sync first read them (:mod:`.zarr_states`); None: unknown."""
        self._start_zarr_states()
        assert self._zarr_states is not None
        return self._zarr_states.result()

    def _start_zarr_states(self) -> None:
        """Read the Zarr list now, in a thread: before the draft is listed (the stamp says what was
        mirrored since), and while the rest is asked."""
        if self._zarr_states is None:
            self._zarr_states = zarr_states.start(self)

    def _glance(self, state: SourceState) -> Optional[str]:
        """The draft's stamp through two plain GETs, when no published version is new.

        Importing ``dandi.dandiapi`` (pydantic models) alone takes longer than a whole
        resync with no change should.  The stamp (modified time, plus the embargo status)
        comes from the dandiset's JSON, which is what the client path decides from; None
        when a published version is new, or on an error or an unexpected answer: then the
        client path decides (and reports errors) as before.
        """
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        try:
            r = self._session.get(f"{self.api_url}/dandisets/{self.identifier}/", headers=headers, timeout=30)
            if r.status_code != 200:
                return None
            info = r.json()
            status = str(info.get("embargo_status") or embargo.OPEN).upper()
            modified = parse_time(info["draft_version"]["modified"])
            if modified is None:
                return None
            known = state.labels()
            url: Optional[str] = f"{self.api_url}/dandisets/{self.identifier}/versions/?page_size={assets.PAGE_SIZE}"
            while url:
                r = self._session.get(url, headers=headers, timeout=30)
                if r.status_code != 200:
                    return None
                page = r.json()
                if any(v["version"] != "draft" and v["version"] not in known for v in page["results"]):
                    return None
                url = page.get("next")
        except Exception:  # the client path retries, and words errors for the user
            return None
        self.embargo_status = status
        stamp = modified.isoformat()
        stamp = stamp if status == embargo.OPEN else f"{stamp} embargo={status}"
        draft = info["draft_version"]
        return stamp + changes_stamp.counts(draft.get("asset_count"), draft.get("size"))

    def _snapshot(
        self, rd: Any, version: Any, kind: VersionKind, state: SourceState, progress: Optional[ProgressCallback]
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
            date=version.created if kind == VersionKind.PUBLISHED else version.modified,
            message=(
                f"DANDI:{self.identifier} version {label}"
                if kind == VersionKind.PUBLISHED
                else f"DANDI:{self.identifier} draft"
            ),
            remote_modified=version.modified.isoformat(),
        )
        if kind == VersionKind.PUBLISHED:
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

        described = GitEntry(METADATA_FILE, yaml.safe_dump(meta, sort_keys=True, allow_unicode=True).encode())
        pool = Workers(HEAD_BASE, self.head_workers, name="pin")  # pins asked while listing; more threads if far
        ahead = self.pin_ahead(pool, state)
        listing: Optional[Listing] = None
        own_pool = None
        try:
            listing, mark = self._listing(rd, version, snap, state, progress, ahead)
            snap.over_head = listing.over_head  # said before the first entry (Snapshot.over_head)
            yield described
            zarr_pool = self.zarr_executor
            if zarr_pool is None:
                zarr_pool = own_pool = zarr_executor()
            zarrs = zarr_run(self, snap, state, zarr_pool)
            page = assets.PAGE_SIZE
            with ThreadPoolExecutor(METADATA_WORKERS) as md_pool:
                batch: list[Any] = []
                for asset in listing:
                    batch.append(asset)
                    if len(batch) >= page:
                        yield from self._resolve(batch, snap, state, pool, md_pool, zarrs, ahead)
                        batch = []
                if batch:
                    yield from self._resolve(batch, snap, state, pool, md_pool, zarrs, ahead)
            if snap.kind == VersionKind.DRAFT and changes.enabled():  # the watermark, for a whole state
                whole = not (snap.refused or snap.pending or snap.unreachable)
                stamp = changes_stamp.finish(snap.remote_modified, mark, whole, listing.zarrs, listing.by_changes)
                snap.remote_modified = stamp
            check_published(snap)  # a tag is forever: never one with an asset held back
        finally:  # pins asked ahead and not taken (a failure) are not waited for
            ahead.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            if listing is not None:
                listing.close()
            if own_pool is not None:
                own_pool.shutdown(wait=True, cancel_futures=True)

    def _listing(
        self,
        rd: Any,
        version: Any,
        snap: Snapshot,
        state: SourceState,
        progress: Optional[ProgressCallback],
        ahead: Any,
    ) -> tuple[Listing, Optional[Mark]]:
        """The version's listing and its newest asset: from the draft's changes when the last synced
        state allows (:mod:`.changes`: no Zarr list then, a changed Zarr's checksum is in its metadata),
        else the whole version (without metadata on a resync)."""
        draft = snap.kind == VersionKind.DRAFT
        self.zarr_checksums = None
        if draft and changes.enabled() and self._reuse_for(state) is not None:
            recorded = state.last_remote_modified("draft")
            made = changes.changed_listing(self, rd, version, state, recorded, self.reserved)
            if made is not None:
                snap.__dict__.pop("_nm_draft_stamp", None)  # Zarr changes come from the head (changes.stamp)
                return made
        # the Zarr list's checksums spare the draft a metadata GET per Zarr asset; a published
        # version's Zarr assets keep the checksums of their publication: their metadata says
        states = self.zarr_states() if draft else None
        self.zarr_checksums = states.known() if states is not None else None
        reuse = self._reuse_for(state)
        listing = self._list_assets(rd, version, progress, reuse, ahead)
        if listing is None:  # too many assets need their metadata: one listing with it is cheaper
            listing = self._list_assets(rd, version, progress, None, ahead)
        assert listing is not None
        return listing, (self._ties(listing) if draft else listing.newest)

    def head_moved(self, recorded: str) -> bool:
        """Whether the draft's newest asset is not the one ``recorded`` names (``newest=``): an asset added,
        replaced or a Zarr ingested since (PR #2720).  One plain GET of the ``-modified`` listing's first
        asset, as :meth:`_glance` asks (no dandi client for an unchanged dandiset); True when unsure."""
        mark = changes_stamp.recorded_mark(recorded)
        head = self._head()
        if mark is None or head is False:
            return True
        return isinstance(head, Mark) and (head.when > mark.when or head.asset_id != mark.asset_id)

    def _head(self) -> Optional[Mark] | bool:
        """The draft's newest asset as the ``-modified`` listing's first (None: no asset; False: unknown)."""
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        url = f"{self.api_url}/dandisets/{self.identifier}/versions/draft/assets/"
        try:
            for _ in range(HEAD_ATTEMPTS):  # a throttled or busy answer asked again: the pace holds its Retry-After
                r = self._session.get(url, params={"order": "-modified", "page_size": "1"}, headers=headers, timeout=30)
                if r.status_code not in (429, 502, 503, 504):
                    break
            results = r.json()["results"] if r.status_code == 200 else None
            if not results:
                return None if results == [] else False
            when = parse_time(results[0]["modified"])
            return Mark(when, str(results[0]["asset_id"])) if when is not None else False
        except Exception:  # the listing path retries, and words errors for the user
            return False

    def _ties(self, listing: Listing) -> Optional[Mark]:
        """The watermark of a draft listed whole: its newest asset, or, of the assets sharing its time, the one
        the archive lists first by ``-modified`` (its order among equal times): the one the next sync's
        first look finds (:meth:`head_moved`).  A head newer than the listing is not taken (it was not listed)."""
        newest = listing.newest
        head = self._head()
        if newest is None or not isinstance(head, Mark) or head.when != newest.when or head.asset_id not in listing.ids:
            return newest
        return head

    def _reuse_for(self, state: SourceState) -> Optional[Reuse]:
        """How this snapshot may reuse the last synced state (see :class:`Reuse`), or None.

        None when no draft is recorded — a cold mirror (nothing to reuse: one
        listing with metadata), or ``verify``, whose state records none because it
        must compare the mirror with the archive's own metadata — and while the
        dandiset is embargoed or was at the last sync: its files were registered
        behind the key then, and lifting the embargo changes their URLs under the
        same asset ids.
        """
        recorded = state.last_remote_modified("draft")
        if recorded is None or " embargo=" in recorded or embargo.is_embargoed(self):
            return None
        return Reuse(state, self.api_url, self.zarr_checksums)


#: dandisets per page of the archive's list (its maximum): 2,000 dandisets in two requests
LIST_PAGE_SIZE = 1000


def expand(spec: Spec, options: dict) -> Iterator[Source]:
    for item in listed(spec, options):
        yield item.source


def listed(spec: Spec, options: dict) -> Iterator[Listed]:
    """The dandisets a SPEC names, each with the archive list's stamp of its state (the quiet hour).

    One listing of the whole archive, ``GET /dandisets/?ordering=-modified&page_size=1000``
    through the client (two requests for 2,000 dandisets).  The stamp is the draft's
    ``modified`` (plus the embargo status, as the draft's recorded ``remote_modified``) and the
    most recent published version: every change of a dandiset's draft (assets added or removed,
    metadata) moves the draft's ``modified``, and a publication adds a version.

    Why the whole list and not only its head: the archive orders ``modified`` by the most
    recently *created* version (dandi-archive's ``DandisetFilterBackend``), which for a
    published dandiset is its latest published version, not the draft; a draft edited since
    its publication stays where it was in that order.  Stopping at the first dandiset older
    than the last cycle would miss exactly those, so every item is compared instead.
    """
    api_url = options.get("dandi_api") or os.environ.get("NEUROMIRROR_DANDI_API") or DEFAULT_API
    token = os.environ.get("DANDI_API_KEY") or None
    endpoint = options.get("s3_endpoint")
    if not spec.is_glob:
        yield Listed(DandiSource(spec.name, api_url=api_url, token=token, s3_endpoint=endpoint))
        return
    client = make_client(api_url, token)
    params: dict[str, Any] = {"ordering": "-modified", **({"embargoed": "true"} if token else {})}
    try:
        items = list(client.paginate("/dandisets/", page_size=LIST_PAGE_SIZE, params=params))
    except Exception as exc:
        raise DandiError(f"DANDI API at {api_url}: cannot list dandisets: {gist(exc)}") from None
    found = {}
    for item in items:
        ident = item.get("identifier") if isinstance(item, dict) else None
        if isinstance(ident, str) and fnmatch.fnmatchcase(ident, spec.name):
            found[ident] = _list_stamp(item)
    for ident in sorted(found):
        source = DandiSource(ident, api_url=api_url, token=token, client=client, s3_endpoint=endpoint)
        yield Listed(source, found[ident])


def _list_stamp(item: dict) -> Optional[str]:
    """What one item of the dandiset list says of the dandiset's state; None when it cannot say."""
    draft = item.get("draft_version")
    modified = parse_time(draft.get("modified")) if isinstance(draft, dict) else None
    if modified is None:
        return None
    status = str(item.get("embargo_status") or embargo.OPEN).upper()
    latest = item.get("most_recent_published_version")
    published = latest.get("version") if isinstance(latest, dict) else None
    stamp = modified.isoformat() if status == embargo.OPEN else f"{modified.isoformat()} embargo={status}"
    assert isinstance(draft, dict)  # it gave the modified time
    stamp += changes_stamp.counts(draft.get("asset_count"), draft.get("size"))  # a deletion moves no modified
    return f"{stamp} published={published or '-'}"


def listing_covers(recorded: Optional[str]) -> bool:
    """Whether the list's stamp sees every change of a dandiset whose draft recorded ``recorded``:
    not when it holds Zarr assets (``zarrs=`` in its stamp), which change in place without moving
    the draft's ``modified``; such a dandiset is asked each cycle (a few GETs: :mod:`.zarr_assets`)."""
    return recorded is None or split_stamp(recorded)[1] is None

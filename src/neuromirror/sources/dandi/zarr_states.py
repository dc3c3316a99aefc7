"""The dandiset's Zarr archives and their checksums, as ``GET /api/zarr/?dandiset=ID`` lists them.

Why this listing: the draft's stamp must notice a Zarr changed in place (the archive does
not move the draft's ``modified`` then), and a resync must know each Zarr asset's checksum
without a metadata GET per asset.  The draft's asset listing with ``metadata=1`` gives
both, but at ~1 KB of JSON per Zarr asset, rendered by the archive and parsed here: ~2 s
of a resync at 20,000 Zarrs.  dandi-archive's Zarr list (``zarr/views``: ``ZarrViewSet.list``,
filter ``dandiset``, ``DandiPagination``: ``count`` on every page, ``page_size`` at most
1000, ordered by ``created``) gives each Zarr archive of the dandiset visible to the
caller as ``{name, dandiset, zarr_id, status, checksum, file_count, size}``, ``checksum``
null until the archive has ingested it: ~200 bytes a Zarr, no asset metadata.

It lists Zarr *archives*, not the draft's assets: one no asset uses any more is listed
too.  That is harmless for a stamp (:func:`.zarr_assets.stamp_zarrs` digests the whole
list, so such a Zarr only ever costs a resync when it changes), and an asset's checksum
is looked up by its ``zarr`` id.  A listing that cannot be read or is not complete is
None: the sync then decides without it (a full resync; the stamp says "look again").
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

import requests

from neuromirror.sources.dandi.client import DandiAPI, gist
from neuromirror.sources.dandi.zarr_listing import CHECKSUM_RE

log = logging.getLogger("neuromirror.dandi")

PAGE_SIZE = 1000
#: pages 2..n asked at once (the archive's own client fetches 5 pages at a time)
PAGE_WORKERS = 4
ATTEMPTS = 3


@dataclass(frozen=True)
class ZarrStates:
    """The Zarr archives of a dandiset at one moment: zarr id -> checksum (None: not ingested yet)."""

    checksums: dict[str, Optional[str]]

    @functools.cached_property
    def digest(self) -> str:
        """What the draft's stamp records (``zarrs=<digest>``): equal digests, equal Zarr states.

        Computed once: the stamp is written after each page of the draft's listing.
        """
        h = hashlib.sha1()
        for zarr_id, checksum in sorted(self.checksums.items()):
            h.update(f"{zarr_id}\0{checksum or ''}\n".encode())
        return h.hexdigest()[:16]

    def known(self) -> dict[str, str]:
        """zarr id -> checksum, for the Zarrs the archive has a well-formed checksum for."""
        return {z: c for z, c in self.checksums.items() if c is not None}


def start(api: DandiAPI) -> Future[Optional[ZarrStates]]:
    """:func:`fetch` in a thread of its own: it waits on the network (and makes the dandi client,
    ~1 s of import) while the sync asks the rest."""
    pool = ThreadPoolExecutor(1, thread_name_prefix=f"zarr-states-{api.identifier}")
    try:
        return pool.submit(fetch, api)
    finally:
        pool.shutdown(wait=False)


def fetch(api: DandiAPI) -> Optional[ZarrStates]:
    """The dandiset's Zarr archives now, or None when they cannot be listed completely."""
    params = {"dandiset": api.identifier, "page_size": str(PAGE_SIZE)}
    try:
        first = _page(api, {**params, "page": "1"})
        count = first.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError("no count on the first page")
        pages = [first]
        rest = range(2, (count + PAGE_SIZE - 1) // PAGE_SIZE + 1)
        if len(rest):
            with ThreadPoolExecutor(min(PAGE_WORKERS, len(rest))) as pool:
                pages += pool.map(lambda n: _page(api, {**params, "page": str(n)}), rest)
        return _states(pages, count)
    except Exception as exc:  # the sync goes on without: correct, only slower
        log.info("DANDI:%s: cannot list its Zarr archives (%s): deciding without them", api.identifier, gist(exc))
        return None


def _page(api: DandiAPI, params: dict) -> dict:
    """One page through the dandi client (which retries the archive's transient errors); a body
    cut short, which the client does not retry, is asked again."""
    last = ""
    for attempt in range(ATTEMPTS):
        try:
            page = api.get_json("/zarr/", params)
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                raise ValueError("not a page of a list")
            return page
        except (ValueError, requests.exceptions.ChunkedEncodingError) as exc:
            last = str(exc)[:200]
        time.sleep(min(2**attempt * 0.2, 2))
    raise RuntimeError(f"page {params.get('page')}: {last}")


def _states(pages: list[dict], count: int) -> ZarrStates:
    """The pages' Zarrs, refusing a listing that repeats, skips or changes its count on the way."""
    checksums: dict[str, Optional[str]] = {}
    for page in pages:
        if page.get("count") != count:
            raise ValueError(f"the count changed while listing ({count}, then {page.get('count')})")
        for z in page["results"]:
            zarr_id = z.get("zarr_id") if isinstance(z, dict) else None
            if not isinstance(zarr_id, str) or zarr_id in checksums:
                raise ValueError(f"malformed or repeated Zarr {str(zarr_id)[:80]!r}")
            checksums[zarr_id] = _checksum(z.get("checksum"))
    if len(checksums) != count:
        raise ValueError(f"{len(checksums)} Zarrs listed, the archive says {count}")
    return ZarrStates(checksums)


def _checksum(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and CHECKSUM_RE.match(value) else None

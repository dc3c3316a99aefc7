"""A resync's listing of the draft made from its changes: the ``-modified`` listing's head and the last synced state.

Why: a 2-asset change in a dandiset of 20,000 assets paged all of them (20 pages; 20-100 s at the
real API's 100-500 ms a page).  The archive lists a version's assets by ``order=-modified``
(dandi-archive PR #2414) and a new asset, a replaced one (new content or metadata makes a new asset
id, at its path) and, since PR #2720, a Zarr ingest move an asset's ``modified``.  So the assets the
last sync did not see are the head of that order down to the recorded watermark
(:class:`~.stamp.Mark`): read with ``>=`` (an asset sharing the watermark's time is read again and
found the same, never missed) a page at a time, and stopped at the first older one.

The rest of the version is the last synced state's files, taken as a resync would take them
(:class:`~neuromirror.sources.dandi.assets.Reuse`).  That holds only when nothing left the version
without a ``modified`` moving; a deletion moves none (dandi-archive #1871), so the version's own
``asset_count`` and ``size`` must equal the recorded ones plus what the head adds; otherwise, or
when anything else does not add up (a page not as expected, a file of the last state a resync
would not take as it is), this gives None and the version is listed whole, by path.  A Zarr asset in
the head (an ingest moved its ``modified``) goes to the Zarr run as a listed one does; the others are
their datasets' commits of the last state.
Where the state says which files HEAD holds (``IndexState.head_files``: a sync on one host), the listing
holds the fresh assets alone (``Listing.over_head``): checked above, the rest is carried forward
unlisted, undiffed and unwritten (``Snapshot.over_head``), where merging it cost ~0.6 s of a 2-asset
change in 20,000 assets (bench/RUNS.md, 2026-11-29).
Every time compared is the archive's own: no clock of this host enters.

Known limits, told in docs/performance.md: an asset committed upstream with a ``modified`` older than
the watermark (a transaction open across the last sync) is seen only by its size, and an asset moved
between pages by a deletion during the read is seen at the next sync (the deletion makes it list whole).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator, Optional, Union

from neuromirror.records import GIT, SUBDATASET, GitEntry, SourceState, SubdatasetEntry, VersionFile
from neuromirror.sources.dandi.assets import Listing, Reuse
from neuromirror.sources.dandi.changes.stamp import Mark, recorded_counts, recorded_mark
from neuromirror.util.dates import parse_iso

log = logging.getLogger("neuromirror.dandi")

#: assets per page of the ``-modified`` listing (the archive's maximum)
PAGE_SIZE = 1000
#: "0" turns the listing by changes off (every resync pages the whole version, as before)
ENV = "NEUROMIRROR_DANDI_CHANGES"


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def changed_listing(
    source: Any, rd: Any, version: Any, state: SourceState, recorded: Optional[str], reserved: tuple[str, ...]
) -> Optional[tuple[Listing, Mark]]:
    """The draft's listing built from its changes since ``recorded`` (the last draft stamp), with the
    new watermark; None when the version must be listed whole (see the module)."""
    mark, was = recorded_mark(recorded), recorded_counts(recorded)
    count, size = getattr(version, "asset_count", None), getattr(version, "size", None)
    if mark is None or was is None or type(count) is not int or type(size) is not int:
        return None
    head = _newest_first(source, f"{rd.version_api_path}assets/", mark)
    if head is None:
        return None
    changed, pages = head
    held, prev = _last_state(state, reserved)
    fresh = _fresh(changed, prev, was, (count, size), mark)
    if fresh is None:
        log.info("DANDI:%s: the version's count or size says more changed: listing it whole", source.identifier)
        return None
    reuse = Reuse(state, source.api_url)
    reuse.to_fetch = len(fresh)
    if reuse.too_many(count):  # a large upload: one listing with metadata is cheaper than a GET each
        return None
    listing = _merged(prev, fresh, reuse) if held is None else _over_head(prev, fresh, reuse, held.keys() & reserved)
    if listing is None:
        return None
    if changed:  # the archive's own head (on equal times, its order): what the next sync's first look compares
        when = parse_iso(changed[0]["modified"])
        mark = Mark(when, changed[0]["asset_id"]) if when is not None and when >= mark.when else mark
    listing.by_changes = True
    log.info("DANDI:%s: %d asset(s) changed (%d listing page(s))", source.identifier, len(fresh), pages)
    return listing, mark


def _last_state(
    state: SourceState, reserved: tuple[str, ...]
) -> tuple[Optional[dict[str, VersionFile]], dict[str, VersionFile]]:
    """(HEAD's files as the state keeps them, None when it does not: the listing is then merged, whole;
    the last state's files a listing takes, by path: all but the reserved ones)."""
    held = state.head_files()
    files = held.values() if held is not None else state.previous_files()
    return held, {f.path: f for f in files if f.path not in reserved}


def _newest_first(source: Any, path: str, mark: Mark) -> Optional[tuple[list[dict], int]]:
    """The assets as new as ``mark`` or newer, each once, and the pages read; None on a page not as
    expected (the whole listing then judges and retries as it does)."""
    out: list[dict] = []
    seen: set[str] = set()
    page = 1
    while True:
        try:
            r = source.client.get(path, params={"order": "-modified", "page_size": PAGE_SIZE, "page": page})
        except Exception as exc:
            log.info("DANDI:%s: the -modified listing failed (%s): listing whole", source.identifier, exc)
            return None
        results = r.get("results") if isinstance(r, dict) else None
        if not isinstance(results, list):
            return None
        for a in results:
            when = parse_iso(a.get("modified")) if isinstance(a, dict) else None
            if when is None or not isinstance(a.get("asset_id"), str) or not isinstance(a.get("path"), str):
                return None
            if when < mark.when:
                return out, page
            if a["asset_id"] not in seen:
                seen.add(a["asset_id"])
                out.append(a)
        if not r.get("next"):
            return out, page
        page += 1


def _at(asset: dict, mark: Mark) -> bool:
    """Whether ``asset`` is as old as the watermark: listed so by the last sync (an ingest since would have
    moved it past: only one at that very microsecond would not, which this takes as none)."""
    return parse_iso(asset.get("modified")) == mark.when


def _fresh(
    changed: list[dict], prev: dict[str, VersionFile], was: tuple[int, int], expected: tuple[int, int], mark: Mark
) -> Optional[dict[str, dict]]:
    """path -> the changed asset the last state does not hold; None when the version's count and size
    are not the recorded ones plus these (a deletion, or a change this does not take: a Zarr)."""
    n, size = was
    sized = True  # whether the version's size can be checked (a Zarr replaced: its last size is not recorded)
    fresh: dict[str, dict] = {}
    for a in changed:
        f = prev.get(a["path"])
        if f is not None and _same(f, a) and (not a.get("zarr") or _at(a, mark)):
            continue  # the asset at the watermark's time the last sync saw (a Zarr: no ingest moved it since)
        if not (a.get("zarr") or a.get("blob")) or type(a.get("size")) is not int or a["path"] in fresh:
            return None
        delta = _size_delta(a, f)
        n += f is None
        sized = sized and delta is not None
        size += delta or 0
        fresh[a["path"]] = a
    return fresh if n == expected[0] and (not sized or size == expected[1]) else None


def _same(f: VersionFile, asset: dict) -> bool:
    """Whether the last state's file at the asset's path is that asset: by its id; a Zarr's subdataset records
    none, so a Zarr asset at the watermark's very time over a Zarr there is the one the last sync listed (an
    asset tied with the watermark was in its listing; a Zarr made anew at that very microsecond is not told)."""
    if f.remote_id is not None:
        return f.remote_id == asset["asset_id"]
    return f.checksum_kind == SUBDATASET and bool(asset.get("zarr"))


def _size_delta(asset: dict, f: Optional[VersionFile]) -> Optional[int]:
    """What ``asset`` adds to the version's size over the last state's file at its path (None: not known,
    a Zarr ingested or replaced: its last size is not recorded)."""
    if f is None:
        return int(asset["size"])
    if asset.get("zarr") or type(f.size) is not int:
        return None
    return int(asset["size"]) - f.size


def _merged(prev: dict[str, VersionFile], fresh: dict[str, dict], reuse: Reuse) -> Optional[Listing]:
    """The version's listing in path order: the fresh assets as listed, the rest as the last state's
    files a resync takes as they are; None when one of those would not be taken so."""
    listing = Listing(None)
    try:
        for item in _items(prev, fresh, reuse):
            if item is None:
                listing.close()
                return None
            if isinstance(item, dict):
                listing.add_asset(item)
            else:
                listing.zarrs = listing.zarrs or isinstance(item, SubdatasetEntry)
                listing.add(item)
        listing.flush()
    except BaseException:
        listing.close()
        raise
    return listing


def _over_head(
    prev: dict[str, VersionFile], fresh: dict[str, dict], reuse: Reuse, reserved: set[str]
) -> Optional[Listing]:
    """The fresh assets alone, as changes over the last synced state (``Listing.over_head``), when every
    other file of it is one :func:`_merged` would carry as it is (None otherwise): the sync then diffs
    and records these only, the rest of the state's files and index rows kept (O(changes), not O(files))."""
    zarrs = False
    for path, f in prev.items():
        if path not in fresh:
            carried = _carried(f, reuse)
            if carried is None:
                return None
            zarrs = zarrs or isinstance(carried, SubdatasetEntry)
    listing = Listing(None)
    try:
        for path in sorted(fresh):
            listing.add_asset(fresh[path])
        listing.flush()
    except BaseException:
        listing.close()
        raise
    listing.zarrs = listing.zarrs or zarrs
    listing.over_head = frozenset(fresh.keys() | reserved)
    return listing


def _items(
    prev: dict[str, VersionFile], fresh: dict[str, dict], reuse: Reuse
) -> Iterator[Union[dict, tuple, GitEntry, SubdatasetEntry, None]]:
    for path in sorted(prev.keys() | fresh.keys()):
        yield fresh[path] if path in fresh else _carried(prev[path], reuse)


def _carried(f: VersionFile, reuse: Reuse) -> Union[tuple, GitEntry, SubdatasetEntry, None]:
    """The last state's file as the listing keeps it (a Reused tuple, a text file in git), or None."""
    if f.checksum_kind == GIT:
        # a text file in git, recorded with neither asset id nor URLs (blobs.py): older than the watermark, the
        # asset at its path is the one the last sync saw there (assets do not move); found unchanged by its sha256
        return GitEntry(f.path, None, None, f.checksum, f.size, None, f.urls)
    if f.checksum_kind == SUBDATASET and f.checksum:
        # a Zarr no ingest touched since (PR #2720 moves its asset's modified): its dataset's commit, as the
        # Zarr run gives an unchanged Zarr (engine.zarr.run.ZarrRun._take: no datalad id read)
        return SubdatasetEntry(f.path, f.checksum, "./" + f.path, None)
    if f.remote_id and f.key and reuse.reusable({"asset_id": f.remote_id, "path": f.path, "size": f.size}, f):
        return (f.remote_id, f.path, f.key, f.size, f.urls, f.checksum)
    return None

"""An AIND asset's listing: its objects, the counts and digest that tell a sync whether anything changed,
and — for the first sync of an asset — its pages handed over while the listing goes on.

The first sync has no earlier state to compare the listing with, so nothing needs
the whole listing before the first entry is registered: the pages flow from a
listing thread into the sync, which pins, diffs and writes while S3 (or the
stand-in) answers the next page.  Later syncs list everything first: an unchanged
asset must cost its listing and nothing more.

A listing is read from S3 with ``ListObjectVersions`` (version ids and delete
markers in one pass), or, where that is not allowed, with ``ListObjectsV2`` and a
HEAD per object for its version id (cached, so later syncs HEAD only what changed).
Root-level JSON files are noted on the way: they are the asset's sidecars.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, Optional

from neuromirror.records import ProgressCallback, SourceState
from neuromirror.sources.aind.context import ListedAsset
from neuromirror.sources.aind.s3 import WORKERS, AindError, _is_denied_or_unsupported, _s3_gist
from neuromirror.util.memory.spool import Spool
from neuromirror.util.paths import check_path

log = logging.getLogger("neuromirror.aind")

#: metadata files at an asset's root (aind-data-schema); always fetched when small enough
SIDECARS = (
    "data_description.json",
    "subject.json",
    "procedures.json",
    "processing.json",
    "rig.json",
    "instrument.json",
    "acquisition.json",
    "session.json",
    "quality_control.json",
    "metadata.nd.json",
)
#: a root-level JSON file up to this size goes into git
SIDECAR_MAX_BYTES = 4 << 20
#: at most this many root-level JSON files are read before the snapshot is yielded (for its metadata)
MAX_EAGER_SIDECARS = 64
#: version ids learned by HEAD (when the versioned listing is not allowed), per listed object version
VERSION_NAMESPACE = "aind-version-id"


@dataclass
class Obj:
    key: str  # full S3 key
    version_id: Optional[str]  # None when S3 gave none ("null")
    etag: str  # without quotes
    size: int
    modified: datetime
    storage_class: Optional[str] = None


class Listing(Spool[Obj]):
    """An asset's listing, spooled to disk (unless ``keep`` is false); counts and digest computed on the way."""

    def __init__(self, keep: bool = True) -> None:
        super().__init__()
        self.keep = keep
        self.bytes = 0
        self.unpinned = 0
        self.newest: Optional[datetime] = None
        self.digest: Any = hashlib.sha256()
        self.sidecars: list[Obj] = []
        self.versioned_listing = False

    def add(self, o: Obj) -> None:
        if self.keep:
            super().add(o)
        else:
            self.count += 1
        self.bytes += o.size
        if o.version_id is None:
            self.unpinned += 1
        self.seen(o.modified)
        self.digest.update(f"{o.key}\0{o.version_id or ''}\0{o.etag}\0{o.size}\n".encode("utf-8", "surrogateescape"))

    def seen(self, modified: Optional[datetime]) -> None:
        if modified is not None and (self.newest is None or modified > self.newest):
            self.newest = modified


def version_id_of(v: Any) -> Optional[str]:
    return v if isinstance(v, str) and v and v != "null" else None


def etag_of(v: Any) -> str:
    return str(v or "").strip('"')


class _Stopped(BaseException):
    """The consumer went away: the listing thread ends quietly."""


#: a listing run: it calls the sink with each page's objects
ListingRun = Callable[[Callable[[list[Obj]], None]], None]


class PageStream:
    """A listing run in its own thread; iterate for its pages, as lists of objects, in order.

    At most ``depth`` pages wait in memory.  An error of the listing is raised by
    the iteration, where the pages stop; :meth:`close` ends the thread whatever
    the consumer did.
    """

    def __init__(self, run: ListingRun, depth: int = 2, name: str = "listing") -> None:
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(run,), daemon=True, name=name)
        self._thread.start()

    def _produce(self, run: ListingRun) -> None:
        try:
            try:
                run(self._put)
            except _Stopped:
                return
            except BaseException as exc:  # handed to the consumer, raised there
                self._put(exc)
                return
            self._put(None)
        except _Stopped:
            return

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def __iter__(self) -> Iterator[list[Obj]]:
        while True:
            item = self._q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------- listing an asset


def list_asset(src: ListedAsset, progress: Optional[ProgressCallback], state: Optional[SourceState] = None) -> Listing:
    """The asset's listing, spooled: versioned where S3 allows it, else the latest objects and HEAD."""
    listing = Listing()
    try:
        try:
            list_versions(src, listing, progress)
        except AindError as exc:
            if not getattr(exc, "fallback", False):
                raise
            listing.close()
            listing = Listing()
            log.info("%s: versioned listing not allowed, listing latest objects and asking HEAD", src.id)
            _list_latest(src, listing, progress, state)
    except BaseException:
        listing.close()
        raise
    return listing


def _note(src: ListedAsset, listing: Listing, o: Obj) -> None:
    """Keep ``o`` in the listing's sidecars if it is one."""
    rel = o.key[len(src.asset_prefix) :]
    if (
        "/" not in rel
        and rel.endswith(".json")
        and o.size <= SIDECAR_MAX_BYTES
        and check_path(rel) is None
        and (rel in SIDECARS or len(listing.sidecars) < MAX_EAGER_SIDECARS)
    ):
        listing.sidecars.append(o)


def list_versions(
    src: ListedAsset,
    listing: Listing,
    progress: Optional[ProgressCallback],
    sink: Optional[Callable[[list[Obj]], None]] = None,
) -> None:
    """ListObjectVersions: gives version ids and delete markers in one pass (needs ListBucketVersions).

    ``sink`` receives each page's current objects (the first sync's page stream)."""
    s = src.settings
    from neuromirror.sources.s3listing import (
        paginate_versions,  # the pages botocore's paginator gives, at 1/25 of its CPU
    )

    pages = paginate_versions(src.client, Bucket=s.bucket, Prefix=src.asset_prefix)
    try:
        for page in pages:
            objs = []
            for v in page.get("Versions") or []:
                if not v.get("IsLatest"):
                    continue
                o = Obj(
                    v["Key"],
                    version_id_of(v.get("VersionId")),
                    etag_of(v.get("ETag")),
                    int(v.get("Size") or 0),
                    v["LastModified"],
                    v.get("StorageClass"),
                )
                listing.add(o)
                _note(src, listing, o)
                objs.append(o)
            for d in page.get("DeleteMarkers") or []:
                if d.get("IsLatest"):
                    listing.seen(d.get("LastModified"))  # a deletion is a change, dated
            listing.versioned_listing = True
            if sink is not None:
                sink(objs)
            if progress:
                progress("listing", listing.count, None)
    except Exception as exc:
        if _is_denied_or_unsupported(exc) and listing.count == 0:
            err = _s3_gist(exc, s, f"listing versions of {src.name}")
            err.fallback = True
            raise err from None
        raise _s3_gist(exc, s, f"listing {src.name}") from None


def _list_latest(
    src: ListedAsset, listing: Listing, progress: Optional[ProgressCallback], state: Optional[SourceState] = None
) -> None:
    """ListObjectsV2 + HEAD for the version id (only if the bucket turns out to be versioned).

    A version id learned once is cached per (key, ETag, LastModified), so later
    syncs HEAD only new or changed objects.  Whether the bucket is versioned is
    decided by the first object HEAD is asked about.
    """
    s = src.settings
    versioned: Optional[bool] = None
    try:
        pages = src.client.get_paginator("list_objects_v2").paginate(Bucket=s.bucket, Prefix=src.asset_prefix)
        with ThreadPoolExecutor(WORKERS) as pool:
            for page in pages:
                objs = _contents(page)
                misses = _cached_versions(src, objs, state)
                if misses:
                    versioned = _head_misses(src, objs, misses, versioned, pool, state)
                for o in objs:
                    listing.add(o)
                    _note(src, listing, o)
                if progress:
                    progress("listing", listing.count, None)
    except AindError:
        raise
    except Exception as exc:
        raise _s3_gist(exc, s, f"listing {src.name}") from None


def _contents(page: dict) -> list[Obj]:
    """A ListObjectsV2 page's objects, without version ids (a HEAD or the cache gives them)."""
    return [
        Obj(
            c["Key"],
            None,
            etag_of(c.get("ETag")),
            int(c.get("Size") or 0),
            c["LastModified"],
            c.get("StorageClass"),
        )
        for c in page.get("Contents") or []
    ]


def _cached_versions(src: ListedAsset, objs: list[Obj], state: Optional[SourceState]) -> list[int]:
    """Give ``objs`` the version ids the cache knows (per key, ETag and LastModified); the indexes of
    those it does not know (all, without a state)."""
    misses: list[int] = []
    for i, o in enumerate(objs):
        cached = state.cache_get(VERSION_NAMESPACE, _version_key(src, o)) if state is not None else None
        if cached is None:
            misses.append(i)
        else:
            o.version_id = version_id_of(cached)
    return misses


def _head_misses(
    src: ListedAsset,
    objs: list[Obj],
    misses: list[int],
    versioned: Optional[bool],
    pool: ThreadPoolExecutor,
    state: Optional[SourceState],
) -> Optional[bool]:
    """HEAD the objects whose version id is unknown, in ``pool``, and cache what they say; whether the
    bucket is versioned (decided by the first HEAD when still unknown: an unversioned one needs no more)."""
    heads: list[Obj] = []
    if versioned is None:
        heads.append(_head(src, objs[misses[0]]))
        versioned = heads[0].version_id is not None
    if versioned:
        heads += pool.map(functools.partial(_head, src), [objs[i] for i in misses[len(heads) :]])
        for i, h in zip(misses, heads):
            if state is not None and h.etag == objs[i].etag:
                state.cache_put(VERSION_NAMESPACE, _version_key(src, objs[i]), h.version_id or "null")
            objs[i] = h  # changed since the listing: HEAD's record is the consistent one
    return versioned


def _version_key(src: ListedAsset, o: Obj) -> str:
    return f"{src.settings.bucket}/{o.key}#{o.etag}@{o.modified.isoformat()}"


def _head(src: ListedAsset, o: Obj) -> Obj:
    try:
        r = src.client.head_object(Bucket=src.settings.bucket, Key=o.key)
    except Exception as exc:
        raise _s3_gist(exc, src.settings, f"HEAD {o.key}") from None
    return Obj(
        o.key,
        version_id_of(r.get("VersionId")),
        etag_of(r.get("ETag")),
        int(r.get("ContentLength") or 0),
        r.get("LastModified") or o.modified,
        o.storage_class,
    )

"""A blob's S3 version pin: asked with a HEAD, remembered in the index's cache, held when never answered.

Why its own room: a blob's content never changes, so its pin (the S3 ``versionId`` of the object
holding its bytes) is asked once, cached forever in the index, and reused by every later sync;
behind a delete marker the noncurrent version with the asset's ETag and size is pinned
(:mod:`.blob_versions`).  A HEAD the archive never answered holds the asset at its last state
(:func:`.held.hold`): a mutable URL is never registered as if pinned.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from typing import Optional

import requests

from neuromirror.network import pacing
from neuromirror.records import Snapshot, SourceState
from neuromirror.sources import inventory_pins
from neuromirror.sources.dandi.blob_versions import LIST_AFTER, noncurrent_version
from neuromirror.sources.dandi.client import DandiAPI
from neuromirror.sources.dandi.held import hold
from neuromirror.sources.dandi.pin_ahead import PinAhead
from neuromirror.sources.dandi.zarr_listing import is_archive_key
from neuromirror.util import timing

log = logging.getLogger("neuromirror.dandi")

PIN_NAMESPACE = "s3-version-id"
#: HEADs in flight to an S3 endpoint on loopback or a LAN (a farther one gets more, up to ``head_workers``)
HEAD_BASE = 32
#: a pin the archive never answered for (see :meth:`BlobPins._pin_or_hold`)
HELD = "\0held"
#: blob -> (S3 URL, dandi-etag, size, path): what asking a blob's pin takes
PinTodo = dict[str, tuple[str, Optional[str], int, str]]


def cached_pins(state: SourceState, blobs: set[str]) -> dict:
    """blob -> the S3 version the index knows for it (or None): one query for a page, not one per blob."""
    get_many = getattr(state, "cache_get_many", None)
    if get_many is not None:
        return dict(get_many(PIN_NAMESPACE, blobs))
    return {b: state.cache_get(PIN_NAMESPACE, b) for b in blobs}


def _remember_pins(state: SourceState, learned: list[tuple[str, str]]) -> None:
    """Put the pins learned from a page into the index's cache: in one transaction when the state can."""
    put_many = getattr(state, "cache_put_many", None)  # one transaction per page
    if put_many is not None and learned:
        put_many(PIN_NAMESPACE, learned)
    else:
        for blob, version_id in learned:
            state.cache_put(PIN_NAMESPACE, blob, version_id)


class BlobPins(DandiAPI):
    """The part of :class:`~neuromirror.sources.dandi.blobs.AssetEntries` that pins a page's blobs."""

    _s3_endpoints: tuple[str, ...]
    _session: requests.Session
    #: HEADs of pins in flight at most (the pool's size): :data:`HEAD_BASE` near the archive, more as far
    #: as its round trip asks (the endpoint's controller, :class:`neuromirror.network.pacing.Pace`)
    head_workers: int = 128

    def _pins(
        self,
        fresh: list[tuple[dict, dict]],
        s3_urls: dict[str, Optional[str]],
        snap: Snapshot,
        state: SourceState,
        pool: Executor,
        ahead: Optional[PinAhead],
    ) -> tuple[dict, set[str]]:
        """(blob -> S3 version id, blobs held): the index's known pins, the unknown ones asked
        (most already asked while the version was listed, :mod:`.pin_ahead`) and remembered."""
        blobs: set[str] = {a["blob"] for a, _ in fresh if a.get("blob") and s3_urls.get(a["asset_id"])}
        pins = cached_pins(state, blobs)
        todo: PinTodo = {
            a["blob"]: (
                str(s3_urls[a["asset_id"]]),
                (md.get("digest") or {}).get("dandi:dandi-etag"),
                a["size"],
                a["path"],
            )
            for a, md in fresh
            if a.get("blob") in blobs and pins.get(a["blob"]) is None
        }
        with timing.phase("pinning"):  # most asked while the version was listed (:mod:`.pin_ahead`)
            asked = [
                (ahead and ahead.take(b)) or pool.submit(self._pin_or_hold, t[0], t[1], t[2]) for b, t in todo.items()
            ]
            found = [f.result() for f in asked]
        held = _settle(todo, found, pins, snap, state)
        return pins, held

    def _pin_or_hold(self, url: str, etag: Optional[str], size: int) -> tuple[Optional[str], Optional[str]]:
        """:meth:`_pin_blob`, or (``HELD``, why) when the archive never answered its HEAD: the
        asset is held at its last state (:func:`.held.hold`), never registered by a mutable URL."""
        try:
            return self._pin_blob(url, etag, size)
        except pacing.GaveUp as exc:
            log.warning("DANDI:%s: %s", self.identifier, exc)
            return HELD, f"the archive's S3 gave no answer to its HEAD after {exc.attempts} attempts ({exc.last})"

    def _pin_blob(self, url: str, etag: Optional[str], size: int) -> tuple[Optional[str], Optional[str]]:
        """(the blob's S3 version id or None, what the report should say or None).

        The current object's version as a HEAD gives it; when the HEAD finds no current
        object (a delete marker), the noncurrent version holding the asset's bytes
        (:mod:`.blob_versions`).
        """
        known = inventory_pins.blob_pin(url, self._s3_endpoints, is_archive_key, etag, size)
        if known is not None:  # sync --inventory: the archive's S3 Inventory lists it, no HEAD, no listing
            return known
        version_id, status = self._head_version_id(url)
        if version_id is not None or status not in LIST_AFTER:
            return version_id, None
        older = noncurrent_version(url, self._s3_endpoints, etag, size)
        if older is None:
            return None, (
                f"its S3 object answers HTTP {status} and no S3 version of it has the asset's ETag and size: "
                "not pinned (the plain S3 URL and the archive's download URL are registered)"
            )
        return older, (
            f"its current S3 object is deleted (HTTP {status}); pinned to the noncurrent version {older}, "
            "whose ETag and size are the asset's"
        )

    def _head_version_id(self, url: str) -> tuple[Optional[str], Optional[int]]:
        """The object's current S3 version id, from a HEAD of the object itself; the HEAD's status.

        Redirects are not followed: an S3 object answers directly, and a version id
        found behind a redirect would belong to another URL's object.  Asked through the
        endpoint's controller (:mod:`neuromirror.network.pacing`): throttled answers slow every
        thread down, Retry-After is honoured, and a HEAD that never got an answer raises
        :class:`~neuromirror.network.pacing.GaveUp` -- never a plain URL in a pinned state.
        """
        r = pacing.call(
            url,
            lambda: self._session.head(url, timeout=30, allow_redirects=False),
            lambda r: r.status_code,
            lambda r: r.headers.get("Retry-After"),
            transient=(requests.RequestException,),
            ceiling=HEAD_BASE,
            most=self.head_workers,
        )
        if r.ok:
            vid = r.headers.get("x-amz-version-id")
            return (vid if vid and vid != "null" else None), r.status_code
        return None, r.status_code


def _settle(
    todo: PinTodo, found: list[tuple[Optional[str], Optional[str]]], pins: dict, snap: Snapshot, state: SourceState
) -> set[str]:
    """Record the answers to a page's pins: into ``pins`` and the index's cache, the report's warnings
    for a pin found behind a delete marker; the blobs never answered are held (returned)."""
    learned = []
    held: set[str] = set()
    for (blob, (_, _, _, path)), (version_id, how) in zip(todo.items(), found):
        if version_id is HELD:
            held.add(blob)
            hold(snap, state, path, f"not pinned: {how}")
            continue
        pins[blob] = version_id
        if version_id:
            learned.append((blob, version_id))
        if how:  # the HEAD found no current object: the sync's report says what was pinned instead
            snap.warnings.append(f"{path}: {how}")
    _remember_pins(state, learned)
    return held

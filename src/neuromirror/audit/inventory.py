"""``audit --inventory``: the newest state's pinned S3 versions against the archive bucket's S3 Inventory.

Why: the records say what the mirror pinned; only the archive's bucket says what is still there.  Its
daily inventory lists every (key, versionId, size, ETag, latest or not), so one read of it, with no
request per object, tells for every pin whether the version is gone (``inventory-absent``: lost
upstream, the mirror's copy or a store's is the last), whether its size or MD5 ETag is not what the
mirror recorded (``inventory-mismatch``), and whether only a noncurrent version serves it
(``noncurrent-only``, its expiry exact: the date the next version or delete marker was written, plus
the bucket's 30 days).  The inventory is streamed one data file at a time; what is held is the pins
and the inventory's rows of the pinned keys only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Optional
from urllib.parse import parse_qs, urlsplit

from neuromirror.audit.findings import EXPIRE_AFTER, Audit, Finding
from neuromirror.index import filesets
from neuromirror.inventory import Inventory, InventoryRow
from neuromirror.sources.s3urls import Locator, endpoints_in_use
from neuromirror.util.dates import iso_z

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: the archive's key prefixes a pinned URL may name (DANDI's blobs and Zarrs)
ARCHIVE_PREFIXES = ("blobs/", "zarr/")


@dataclass(frozen=True)
class Pin:
    """A file of a source's newest state pinned to an S3 version: its size and, from an MD5 annex key, its MD5."""

    source: str
    path: str
    size: Optional[int]
    md5: Optional[str]
    label: Optional[str]


def _md5_of(annex_key: Optional[str]) -> Optional[str]:
    """The MD5 an ``MD5E-s<size>--<md5>.ext`` (or ``MD5-``) annex key names, else None."""
    if not annex_key or not annex_key.startswith(("MD5E-", "MD5-")):
        return None
    return annex_key.partition("--")[2].partition(".")[0] or None


def pinned(index: Index, sources: Iterable[str], bucket: str) -> dict[tuple[str, str], list[Pin]]:
    """(key, versionId) -> the pins of the newest states of ``sources`` resting on that version of ``bucket``."""
    locate = Locator(endpoints_in_use(), archive_key=lambda k: k.startswith(ARCHIVE_PREFIXES))
    out: dict[tuple[str, str], list[Pin]] = {}
    for sid in sources:
        head = index.head_version(sid)
        for path, key, size, urls in filesets.newest_pinned(index.db.conn, sid):
            for url in json.loads(urls or "[]"):
                vid = (parse_qs(urlsplit(url).query).get("versionId") or [""])[0]
                where = locate(url.partition("?")[0]) if vid else None
                if where is not None and where.bucket == bucket:
                    pin = Pin(sid, path, size, _md5_of(key), head.label if head else None)
                    out.setdefault((where.key, vid), []).append(pin)
                    break
    return out


def _when(date: str) -> datetime:
    """An inventory date folder's time (``2026-11-28T01-00Z``)."""
    return datetime.strptime(date, "%Y-%m-%dT%H-%MZ").replace(tzinfo=timezone.utc)


def _mismatch(pin: Pin, row: InventoryRow) -> list[str]:
    """What of ``row`` is not what the mirror recorded of ``pin``: its size, its ETag against an MD5 key."""
    wrong = []
    if pin.size is not None and row.size != pin.size:
        wrong.append(f"size {row.size} where the mirror recorded {pin.size}")
    if pin.md5 and row.etag and not row.multipart and row.etag != pin.md5:
        wrong.append(f"ETag {row.etag} where the mirror's MD5 is {pin.md5}")
    return wrong


def _expiry(mine: InventoryRow, rows: list[InventoryRow]) -> Optional[str]:
    """When a noncurrent version expires: the key's first later version or delete marker, plus 30 days."""
    after = [
        r.last_modified for r in rows if r.last_modified and mine.last_modified and r.last_modified > mine.last_modified
    ]
    return iso_z(min(after) + EXPIRE_AFTER) if after else None


def _judge(pin: Pin, vid: str, rows: list[InventoryRow], seen: str) -> Optional[Finding]:
    """The finding of one pin against the inventory's rows of its key (None: all is well)."""
    mine = next((r for r in rows if r.version_id == vid), None)
    if mine is None or mine.is_delete_marker:
        detail = f"its pinned S3 version {vid} is not in the archive's inventory: lost upstream"
        return Finding(pin.source, "inventory-absent", pin.path, detail, pin.label, seen, seen)
    wrong = _mismatch(pin, mine)
    if wrong:
        detail = f"the inventory's S3 version {vid} has " + " and ".join(wrong)
        return Finding(pin.source, "inventory-mismatch", pin.path, detail, pin.label, seen, seen)
    if mine.is_latest:
        return None
    expires = _expiry(mine, rows)
    detail = f"per the archive's inventory, only the noncurrent version {vid} the mirror pinned serves it"
    return Finding(pin.source, "noncurrent-only", pin.path, detail, pin.label, seen, seen, expires, expires is not None)


def compare(index: Index, audit: Audit, inv: Inventory, url: str) -> Audit:
    """``audit`` with what the inventory ``inv`` says of the pins of its sources (the records' own
    ``noncurrent-only`` findings replaced by the inventory's, whose expiry is exact)."""
    pins = pinned(index, audit.sources, inv.manifest.source_bucket)
    keys = {key for key, _ in pins}
    rows: dict[str, list[InventoryRow]] = {}
    count = 0
    for row in inv.rows():  # one data file at a time
        count += 1
        if row.key in keys:
            rows.setdefault(row.key, []).append(row)
    seen = iso_z(_when(inv.date))
    found = [f for (key, vid), mine in pins.items() for pin in mine if (f := _judge(pin, vid, rows.get(key, []), seen))]
    told = {(f.source, f.path) for f in found if f.kind == "noncurrent-only"}
    kept = [f for f in audit.findings if not (f.kind == "noncurrent-only" and (f.source, f.path) in told)]
    audit.findings = sorted(kept + found, key=lambda f: (f.source, f.kind, f.path, f.version or ""))
    audit.inventory = {
        "url": url,
        "date": inv.date,
        "source_bucket": inv.manifest.source_bucket,
        "files": len(inv.files),
        "rows": count,
        "pins": sum(len(p) for p in pins.values()),
    }
    return audit

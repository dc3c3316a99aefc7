"""The backup page's records: what the archive holds of a source, what each store holds of it, what is at risk.

Counted in *objects* (distinct annexed keys: a file several versions share counts once, as a store holds it
once) and bytes.  An object is *current* when the source's newest recorded state holds it, *noncurrent* when
only older states (published versions, earlier drafts a pin may name) do.  *Kept* in a store means the index
holds a good check of the store's copy (``keep`` hashed it on the way in, ``verify --stores`` re-read it).
Every number here is computed once (:func:`neuromirror.account.backup.backup`) and rendered as
lines, JSON and HTML from these records, so that the three never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from neuromirror.results import Item, Result, Status

#: the JSON's version: fields are added without a new one, never renamed or removed
SCHEMA_VERSION = 1
#: what "expires soon" means: unkept objects the archive's lifecycle deletes within this many days
WINDOW_DAYS = 30
#: files of the newest state in no store named per source (the counts are always whole)
MOST_NAMED = 20


@dataclass
class Count:
    objects: int = 0
    bytes: int = 0

    def add(self, size: Optional[int], objects: int = 1) -> None:
        """``objects`` more, of ``size`` bytes together."""
        self.objects += objects
        self.bytes += size or 0

    def to_json(self) -> dict[str, Any]:
        return {"objects": self.objects, "bytes": self.bytes}


@dataclass
class Split:
    """Objects and bytes of the newest state (``current``) and of older states only (``noncurrent``)."""

    current: Count = field(default_factory=Count)
    noncurrent: Count = field(default_factory=Count)

    def add(self, size: Optional[int], current: bool, objects: int = 1) -> None:
        (self.current if current else self.noncurrent).add(size, objects)

    @property
    def objects(self) -> int:
        return self.current.objects + self.noncurrent.objects

    @property
    def bytes(self) -> int:
        return self.current.bytes + self.noncurrent.bytes

    def minus(self, other: Split) -> Split:
        return Split(
            Count(self.current.objects - other.current.objects, self.current.bytes - other.current.bytes),
            Count(self.noncurrent.objects - other.noncurrent.objects, self.noncurrent.bytes - other.noncurrent.bytes),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "current": self.current.to_json(),
            "noncurrent": self.noncurrent.to_json(),
        }


@dataclass(frozen=True)
class State:
    """A recorded state of a source (a published version or a draft/snapshot state a pin may name)."""

    version: str
    kind: str
    commit: str
    synced_at: Optional[str]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "kind": self.kind, "commit": self.commit, "synced_at": self.synced_at}


@dataclass(frozen=True)
class Verification:
    """The last ``verify --stores`` that re-read copies in a store (by hand or the service's rolling check)."""

    at: str
    checked: int
    bad: int
    missing: int
    unreadable: int
    repaired: int
    scope: str

    @property
    def ok(self) -> bool:
        """Nothing found: every copy re-read was right."""
        return not (self.bad or self.missing or self.unreadable)

    @property
    def unresolved(self) -> int:
        """Copies found wrong, gone or unreadable that were not re-kept: still at risk."""
        return max(0, self.bad + self.missing - self.repaired) + self.unreadable

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "checked": self.checked,
            "bad": self.bad,
            "missing": self.missing,
            "unreadable": self.unreadable,
            "repaired": self.repaired,
            "scope": self.scope,
            "ok": self.ok,
            "unresolved": self.unresolved,
        }


@dataclass
class StoreBackup:
    """One store's share of one source: what it holds, what it lacks, since which state, when last re-read."""

    uuid: str
    url: Optional[str]
    kind: Optional[str]
    name: Optional[str]
    kept: Split = field(default_factory=Split)
    missing: Split = field(default_factory=Split)
    oldest_unkept: Optional[State] = None
    verification: Optional[Verification] = None
    newest_check: Optional[str] = None  # the store's newest good check of any copy (keep's or verify's)
    unreachable_since: Optional[str] = None  # not reachable here since (what it holds counts nowhere)
    unreachable_why: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "url": self.url,
            "kind": self.kind,
            "name": self.name,
            "kept": self.kept.to_json(),
            "missing": self.missing.to_json(),
            "oldest_unkept": self.oldest_unkept.to_json() if self.oldest_unkept else None,
            "last_verification": self.verification.to_json() if self.verification else None,
            "newest_check": self.newest_check,
            "reachable": self.unreachable_since is None,
            "unreachable_since": self.unreachable_since,
            "unreachable_why": self.unreachable_why,
        }


@dataclass(frozen=True)
class Expiring:
    """An object no store holds whose only archive copy is a noncurrent S3 version the lifecycle will delete."""

    path: str
    version: Optional[str]
    key: str
    size: Optional[int]
    expires: Optional[str]
    expires_is: str  # "exact" (asked the archive), "at the latest" (a bound from the records)
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "version": self.version,
            "key": self.key,
            "size": self.size,
            "expires": self.expires,
            "expires_is": self.expires_is,
            "why": self.why,
        }


@dataclass(frozen=True)
class Unkept:
    """A file of the newest state no store holds (the first few by path are named)."""

    path: str
    key: str
    size: Optional[int]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "key": self.key, "size": self.size}


@dataclass
class SourceBackup:
    source: str
    versions: int = 0
    archive: Split = field(default_factory=Split)  # what the index says the source's states hold
    nowhere: Split = field(default_factory=Split)  # of it, what no store reachable here holds
    stores: list[StoreBackup] = field(default_factory=list)
    expiring: list[Expiring] = field(default_factory=list)
    zarrs_uncounted: int = 0  # Zarr states whose objects the index's catalogue has not read: not in the counts
    unkept: list[Unkept] = field(default_factory=list)  # the first files of the newest state in no store, by path

    @property
    def expiring_count(self) -> Count:
        out = Count()
        for x in self.expiring:
            out.add(x.size)
        return out

    @property
    def verdict(self) -> str:
        """``at risk``: something of the newest state or expiring is in no store, or a store's last check found
        copies it could not re-keep;
        ``partly kept``: only older states' objects are in no store; ``kept``: every object is in a store;
        ``not synced yet``: no state recorded; ``not counted``: the only objects are in Zarr states this host does
        not hold (their objects unread); ``nothing to keep``: the recorded states hold no object at all."""
        bad_check = any(s.verification is not None and s.verification.unresolved for s in self.stores)
        if self.nowhere.current.objects or self.expiring or bad_check:
            return "at risk"
        if self.nowhere.noncurrent.objects:
            return "partly kept"
        if self.archive.objects:
            return "kept"
        if not self.versions:
            return "not synced yet"
        return "not counted" if self.zarrs_uncounted else "nothing to keep"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "verdict": self.verdict,
            "versions": self.versions,
            "archive": self.archive.to_json(),
            "kept_nowhere": self.nowhere.to_json(),
            "in_no_store": [u.to_json() for u in self.unkept],
            "stores": [s.to_json() for s in self.stores],
            "expiring": {**self.expiring_count.to_json(), "items": [x.to_json() for x in self.expiring]},
            "zarr_states_uncounted": self.zarrs_uncounted,
        }


@dataclass(repr=False)
class Backup(Result):
    """The backup page's record (``Mirror.backup``, ``status --backup --json``): an ``ok`` item per source, its
    verdict the message (a report of the index: what is at risk is the archive's state, not a failed verb)."""

    generated: str
    sources: list[SourceBackup] = field(default_factory=list)
    window_days: int = WINDOW_DAYS

    def items(self) -> list[Item]:
        return [Item(Status.OK, s.source, s.verdict) for s in self.sources]

    def __repr__(self) -> str:
        return f"<Backup {len(self.sources)} source(s) at {self.generated}>"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "generated": self.generated,
            "expiry_window_days": self.window_days,
            "sources": [s.to_json() for s in self.sources],
        }

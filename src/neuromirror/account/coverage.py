"""The coverage page's numbers (``status --coverage``, ``/coverage/``, ``/coverage.json``, ``/metrics``): per source
and archive prefix (``blobs``, ``zarr``, the rest), what the archive holds, what its own backup holds (the LIST:
:mod:`.covered`), what the lab's stores keep, and what is in neither -- the part only the archive holds.

Counted in objects (distinct annexed keys of every recorded version, each placed at its archive key as
:mod:`neuromirror.restore.objects` places it) and bytes.  *Kept* means a good check of a store's copy is in the
index (as the backup page counts it); *held by the backup* means the LIST names the key at the pinned size (and
ETag).  The oldest object in neither is the one the earliest recorded state names; what expires in neither
within 30 days is what only a noncurrent S3 version serves (:func:`neuromirror.account.backup.expiring_keys`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional

from neuromirror.account.backup_model import WINDOW_DAYS, Count
from neuromirror.account.covered import CoverList, Figure, pinned_etag
from neuromirror.dataset.files import VersionFiles, annex_key, each_version_file
from neuromirror.index.store_checks import checks_of
from neuromirror.keep.keyset import KeySet
from neuromirror.restore.objects import ArchiveObject, locator_for, place
from neuromirror.results import Item, Result, Status
from neuromirror.util.dates import iso_seconds, iso_z

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets

PREFIXES = ("blobs", "zarr")
_BATCH = 5000


@dataclass
class PrefixCoverage:
    prefix: str
    archive: Count = field(default_factory=Count)
    backup: Count = field(default_factory=Count)  # held by the archive's own backup (the LIST)
    kept: Count = field(default_factory=Count)  # kept by the lab's stores
    neither: Count = field(default_factory=Count)

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "archive": self.archive.to_json(),
            "backup": self.backup.to_json(),
            "kept": self.kept.to_json(),
            "neither": self.neither.to_json(),
        }


@dataclass
class Oldest:
    path: str
    version: str
    since: Optional[str]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "version": self.version, "since": self.since}


@dataclass
class SourceCoverage:
    source: str
    prefixes: dict[str, PrefixCoverage] = field(default_factory=dict)
    oldest_neither: Optional[Oldest] = None
    expiring: Count = field(default_factory=Count)  # in neither, deleted by the archive within the window
    expiring_first: Optional[str] = None

    def prefix(self, name: str) -> PrefixCoverage:
        return self.prefixes.setdefault(name, PrefixCoverage(name))

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "prefixes": [p.to_json() for p in self.prefixes.values()],
            "oldest_in_neither": self.oldest_neither.to_json() if self.oldest_neither else None,
            "expiring_in_neither": {**self.expiring.to_json(), "first": self.expiring_first},
        }


@dataclass(repr=False)
class Coverage(Result):
    """The coverage record: an ``ok`` item per source (a report of the index, not a failed verb)."""

    generated: str
    lists: list[str]
    figures: list[Figure] = field(default_factory=list)
    sources: list[SourceCoverage] = field(default_factory=list)
    window_days: int = WINDOW_DAYS

    def items(self) -> list[Item]:
        return [Item(Status.OK, s.source, f"{_neither(s).objects} object(s) in neither") for s in self.sources]

    def to_json(self) -> dict[str, Any]:
        return {
            "generated": self.generated,
            "covered_by": self.lists,
            "expiry_window_days": self.window_days,
            "backup_reports": [f.to_json() for f in self.figures],
            "sources": [s.to_json() for s in self.sources],
        }

    def lines(self) -> list[str]:
        from neuromirror.util.sizes import human_bytes

        said = ", ".join(self.lists) or "none named (a covered-by LIST)"
        out = [f"coverage at {self.generated}; the archive's own backup: {said}"]
        for s in self.sources:
            out.append(s.source)
            for p in s.prefixes.values():
                out.append(
                    f"  {p.prefix + '/':7} archive {_amount(p.archive)}; backup {_amount(p.backup)}; "
                    f"kept {_amount(p.kept)}; in neither {_amount(p.neither)}"
                )
            if s.oldest_neither is not None:
                o = s.oldest_neither
                out.append(f"  oldest in neither: {o.path} ({o.version}, since {o.since or 'unknown'})")
            if s.expiring.objects:
                out.append(
                    f"  deleted by the archive within {self.window_days} days, in neither: {s.expiring.objects} "
                    f"object(s), {human_bytes(s.expiring.bytes)}, the first by {s.expiring_first}"
                )
        for f in self.figures:
            out.append(f"backup reports {f.prefix}: {f.objects} of {f.archive_objects} objects")
        return out


def _amount(c: Count) -> str:
    from neuromirror.util.sizes import human_bytes

    return f"{c.objects} ({human_bytes(c.bytes)})"


def _neither(s: SourceCoverage) -> Count:
    out = Count()
    for p in s.prefixes.values():
        out.add(p.neither.bytes, p.neither.objects)
    return out


def coverage(
    mirror: Datasets,
    cover: CoverList,
    sources: Optional[list[str]] = None,
    *,
    expire_after: Optional[Mapping[str, float]] = None,
    now: Optional[float] = None,
) -> Coverage:
    """The coverage record of ``sources`` (default: every one the index knows) against ``cover``."""
    from neuromirror.account.backup import expiring_keys

    now = time.time() if now is None else now
    wanted = sources if sources is not None else sorted(mirror.index.source_ids())
    out = Coverage(iso_z(now) or "", list(cover.names), list(cover.figures))
    horizon = now + WINDOW_DAYS * 86400.0
    for sid in wanted:
        expiring = expiring_keys(mirror.index, [sid], expire_after=expire_after)
        soon = {k: d for k, d in expiring.items() if (iso_seconds(d) or 0) <= horizon}
        out.sources.append(_source(mirror, sid, cover, soon))
    return out


def _source(mirror: Datasets, sid: str, cover: CoverList, soon: dict[str, str]) -> SourceCoverage:
    """One source's counts: every recorded version's files, each key once (the oldest version first)."""
    out = SourceCoverage(sid)
    for name in PREFIXES:
        out.prefix(name)
    seen = KeySet()
    pending: list[tuple[str, str, int, str, str]] = []  # key, prefix, size, covered?, first version
    for v in mirror.index.versions(sid):
        locator = locator_for(sid)
        for f in each_version_file(mirror.index, mirror.dataset_path(v.relpath), v.id, VersionFiles()):
            key = annex_key(f)
            if key in seen:
                continue
            seen.add(key)
            obj = place(f, sid, v.label, locator)
            archive_key = obj.archive_key if isinstance(obj, ArchiveObject) else f.path
            prefix = archive_key.split("/", 1)[0] if archive_key.split("/", 1)[0] in PREFIXES else "other"
            held = cover.covers(archive_key, f.size, pinned_etag(key)) if isinstance(obj, ArchiveObject) else False
            pending.append((key, prefix, f.size or 0, "y" if held else "", f"{v.label}\t{f.path}\t{v.synced_at}"))
            if len(pending) >= _BATCH:
                _settle(mirror, out, pending, soon)
    _settle(mirror, out, pending, soon)
    return out


def _settle(
    mirror: Datasets, out: SourceCoverage, pending: list[tuple[str, str, int, str, str]], soon: dict[str, str]
) -> None:
    """A batch of keys counted: the stores' checks asked once for all of them."""
    checks = checks_of(mirror.index, [p[0] for p in pending])
    for key, prefix, size, held, first in pending:
        p = out.prefix(prefix)
        p.archive.add(size)
        kept = bool(checks.get(key))
        if held:
            p.backup.add(size)
        if kept:
            p.kept.add(size)
        if held or kept:
            continue
        p.neither.add(size)
        if out.oldest_neither is None:
            version, path, since = first.split("\t")
            out.oldest_neither = Oldest(path, version, None if since == "None" else since)
        if key in soon:
            out.expiring.add(size)
            out.expiring_first = min(out.expiring_first or soon[key], soon[key])
    pending.clear()

"""The backup page's numbers, from the index alone: no dataset, store or archive is read.

What it reads (a handful of queries for the whole mirror, whatever the number of versions):

* every annexed key any recorded state holds, counted in groups by source, whether the newest state holds
  it and the stores holding a checked copy, each group with the first file list (fileset) holding one of its
  keys (:func:`neuromirror.index.filesets.held_counts`, one query: a few rows per source);
* the stores (``stores``), which stores each source was kept into (``kept_versions``), each store's last
  ``verify --stores`` (the cache, written by :func:`neuromirror.verify.stores.verify_stores`);
* what rests on a noncurrent S3 version: the audit's ``noncurrent-only`` findings (a blob whose current
  object is deleted, from the syncs' warnings: :mod:`neuromirror.audit.findings`) and the top-level files of
  older states whose S3 version the newest state no longer names (:mod:`neuromirror.verify.noncurrent`'s
  rule on the index's URLs) -- each counted only when no store holds its key.

The per-version copy counts of ``status --copies`` (which read the git-annex branches) stay that command's; a
Zarr state whose objects the index's catalogue has not read is counted in ``zarr_states_uncounted``, not in
the objects.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from neuromirror.account.backup_model import (
    MOST_NAMED,
    WINDOW_DAYS,
    Backup,
    Expiring,
    SourceBackup,
    Split,
    State,
    StoreBackup,
    Unkept,
    Verification,
)
from neuromirror.index import filesets, store_checks
from neuromirror.index.rows import Version
from neuromirror.store.reach import Lost, survey
from neuromirror.util.dates import iso_seconds, iso_z

if TYPE_CHECKING:
    from neuromirror.index.db import Index

DAY = 86400.0


def backup(
    index: Index,
    specs: Optional[list[str]] = None,
    *,
    expire_after: Optional[Mapping[str, float]] = None,
    now: Optional[float] = None,
    found: Any = None,
) -> Backup:
    """The backup record of the sources ``specs`` name (globs; all without).  ``expire_after``: SPEC (a glob) ->
    after how long the archive deletes a noncurrent S3 version (``keep: {expire_after}``; default 30 days).
    ``found``: the audit of the same sources, when the caller made it already (``/metrics`` reports both; the
    audit is most of the record's time)."""
    now = time.time() if now is None else now
    wanted = sorted(s for s in index.source_ids() if _matches(s, specs))
    out = {sid: SourceBackup(sid) for sid in wanted}
    known = store_checks.known_stores(index)
    newest = store_checks.newest_checks(index)
    uuids = sorted(set(known) | set(newest))
    lost = survey(index)  # a store not reachable here holds no copy that counts
    counts = dict(index.version_counts())
    versions = _Versions(index)
    tallies = _count_keys(index, out, uuids, set(lost))
    related = store_checks.kept_pairs(index) | {(sid, u) for sid, t in tallies.items() for u in t.kept}
    verified = store_checks.last_verified(index, uuids)
    zarrs = filesets.uncounted_zarrs(index.db.conn)
    for sid, b in out.items():
        b.versions = int(counts.get(sid, 0))
        b.zarrs_uncounted = zarrs.get(sid, 0)
        b.stores = [
            _store(b, u, known.get(u, {}), tallies[sid], versions, verified.get(u), newest.get(u), lost.get(u))
            for u in uuids
            if (sid, u) in related
        ]
        b.stores.sort(key=lambda s: (s.url or "", s.uuid))
    for sid, path, key, size in filesets.unkept_newest(index.db.conn, MOST_NAMED):
        if sid in out:
            out[sid].unkept.append(Unkept(path, key, size))
    _expiring(index, out, specs, expire_after or {}, now, found)
    return Backup(iso_z(now), [out[s] for s in wanted], WINDOW_DAYS)


def _matches(sid: str, specs: Optional[list[str]]) -> bool:
    return not specs or any(fnmatchcase(sid, s) or fnmatchcase(sid, s + "@*") for s in specs)


class _Versions(dict):
    """source -> its recorded versions, read when first asked for (only the sources a store lacks something of)."""

    def __init__(self, index: Index):
        super().__init__()
        self.index = index

    def __missing__(self, sid: str) -> list[Version]:
        self[sid] = rows = self.index.versions(sid)
        return rows


@dataclass
class _Tally:
    """A source's counts per store while the keys stream by."""

    kept: dict[str, Split] = field(default_factory=dict)  # store UUID -> what it holds
    lacking: dict[str, int] = field(default_factory=dict)  # store UUID -> the first fileset holding a key it lacks


def _count_keys(index: Index, out: dict[str, SourceBackup], uuids: list[str], lost: set[str]) -> dict[str, _Tally]:
    """The archive's counts, what no store reachable here holds (``lost``: those that are not), and per store
    what it holds and the first fileset holding a key it lacks, from the keys counted in groups by source, newest
    state or not, and the stores holding them."""
    tallies = {sid: _Tally() for sid in out}
    for sid, current, stores, objects, size, since in filesets.held_counts(index.db.conn):
        b = out.get(sid)
        if b is None:
            continue
        holders = set(stores.split(",")) if stores else set()
        b.archive.add(size, bool(current), objects)
        if not holders - lost:
            b.nowhere.add(size, bool(current), objects)
        t = tallies[sid]
        for u in uuids:
            if u in holders:
                t.kept.setdefault(u, Split()).add(size, bool(current), objects)
            else:
                t.lacking[u] = min(t.lacking.get(u, since), since)
    return tallies


def _store(
    b: SourceBackup,
    uuid: str,
    known: dict,
    t: _Tally,
    versions: _Versions,
    verified: Optional[dict],
    newest: Optional[float],
    gone: Optional[Lost],
) -> StoreBackup:
    s = StoreBackup(uuid, known.get("url"), known.get("kind"), known.get("name"), kept=t.kept.get(uuid, Split()))
    if gone is not None:  # not reachable here: what it is recorded to hold is shown, and counted nowhere
        s.unreachable_since, s.unreachable_why = iso_z(gone.since), gone.why
    s.missing = b.archive.minus(s.kept)
    s.oldest_unkept = _state_at(versions[b.source], t.lacking.get(uuid)) if s.missing.objects else None
    s.newest_check = iso_z(newest)
    if verified:
        s.verification = Verification(
            str(verified.get("at")),
            int(verified.get("checked") or 0),
            int(verified.get("bad") or 0),
            int(verified.get("missing") or 0),
            int(verified.get("unreadable") or 0),
            int(verified.get("repaired") or 0),
            str(verified.get("scope") or ""),
        )
    return s


def _state_at(rows: list[Version], fileset: Optional[int]) -> Optional[State]:
    """The oldest recorded state holding file list ``fileset`` (or, that one gone, the first after it)."""
    if fileset is None:
        return None
    exact = [r for r in rows if r.fileset == fileset]
    later = [r for r in rows if r.fileset is not None and r.fileset >= fileset]
    found = exact or later
    if not found:
        return None
    return State(found[0].label, found[0].kind, found[0].commit, found[0].synced_at)


def _expiring(
    index: Index,
    out: dict[str, SourceBackup],
    specs: Optional[list[str]],
    expire_after: Mapping[str, float],
    now: float,
    found: Any,
) -> None:
    """Per source, the objects no store holds that the archive's lifecycle deletes within the window (or already
    may have: an expiry date in the past), soonest first."""
    horizon = now + WINDOW_DAYS * DAY
    seen: set[tuple[str, str]] = set()
    deleted = _deleted_blobs(index, out, specs, expire_after, found)
    for sid, x in [*deleted, *_overwritten(index, out, expire_after)]:
        when = iso_seconds(x.expires)
        if (sid, x.key) in seen or when is None or when > horizon:
            continue
        seen.add((sid, x.key))
        out[sid].expiring.append(x)
    for b in out.values():
        b.expiring.sort(key=lambda x: (x.expires or "", x.path))


def expiring_keys(
    index: Index, specs: Optional[list[str]] = None, *, expire_after: Optional[Mapping[str, float]] = None
) -> dict[str, str]:
    """key -> when the archive's lifecycle deletes the only (noncurrent) S3 version serving it, for the keys no
    store holds, whatever the window: the order a gap-fill keeps them in (:mod:`.gapfill`)."""
    wanted = sorted(s for s in index.source_ids() if _matches(s, specs))
    out = {sid: SourceBackup(sid) for sid in wanted}
    after = expire_after or {}
    got: dict[str, str] = {}
    for _sid, x in [*_deleted_blobs(index, out, specs, after, None), *_overwritten(index, out, after)]:
        if x.expires and (x.key not in got or x.expires < got[x.key]):
            got[x.key] = x.expires
    return got


def expire_after_of(config: Any) -> dict[str, float]:
    """SPEC -> the archive's noncurrent-version expiry its ``keep:`` policy names, of a service's definitions (the
    others: the default): what ``/backup/`` and ``/metrics`` count expiring by."""
    entries = getattr(config, "sources", None) or []
    return {e.spec: e.keep.expire_after for e in entries if e.keep is not None and e.keep.expire_after is not None}


def _after(expire_after: Mapping[str, float], sid: str) -> float:
    """How long after it became noncurrent the archive deletes a version of ``sid``'s objects."""
    from neuromirror.verify.noncurrent import DEFAULT_EXPIRE_AFTER

    return next((v for pat, v in expire_after.items() if fnmatchcase(sid, pat)), DEFAULT_EXPIRE_AFTER)


def _deleted_blobs(
    index: Any,
    out: dict[str, SourceBackup],
    specs: Optional[list[str]],
    expire_after: Mapping[str, float],
    found: Any,
) -> Iterable[tuple[str, Expiring]]:
    """The audit's ``noncurrent-only`` findings (a blob whose current S3 object is deleted: only the noncurrent
    version the mirror pinned serves it) whose key no store holds; the bound from the records is the first sync
    that saw it plus the source's ``expire_after`` (an exact date, from ``audit --recheck``, stays)."""
    from neuromirror.audit.findings import audit

    findings = (found if found is not None else audit(index, specs)).findings
    files = []
    for f in (f for f in findings if f.kind == "noncurrent-only" and f.source in out):
        head = index.head_version(f.source)
        vf = index.version_file(head.id, f.source, f.path) if head is not None else None
        if vf is not None and vf.key:
            files.append((f, vf))
    held = store_checks.checks_of(index, [vf.key for _, vf in files])
    for f, vf in files:
        if held.get(vf.key):
            continue
        seen = iso_seconds(f.first_seen)
        expires = f.expires if f.expires_exact or seen is None else iso_z(seen + _after(expire_after, f.source))
        how = "exact" if f.expires_exact else "at the latest"
        yield f.source, Expiring(f.path, f.version, vf.key, vf.size, expires, how, f.detail)


def _overwritten(
    index: Index, out: dict[str, SourceBackup], expire_after: Mapping[str, float]
) -> Iterable[tuple[str, Expiring]]:
    """Top-level files of older states pinned by an S3 version the newest state no longer names (the object was
    overwritten or deleted since): noncurrent from the first state without it, expiring ``expire_after`` later."""
    from neuromirror.verify.noncurrent import CurrentObjects

    by_source: dict[str, list[tuple]] = {}
    for row in filesets.unkept_pinned_gone(index.db.conn):
        if row[0] in out:
            by_source.setdefault(row[0], []).append(row)
    for sid, found in by_source.items():
        current = CurrentObjects()
        for urls in filesets.newest_versioned_urls(index.db.conn, sid):
            current.add(json.loads(urls or "[]"))
        after = _after(expire_after, sid)
        rows = index.versions(sid)
        for _sid, path, key, size, urls, until in found:
            x = _gone_since(rows, path, key, size, until, after)
            if x is not None and current.only_noncurrent(json.loads(urls or "[]")):
                yield sid, x


def _gone_since(rows: list[Version], path: str, key: str, size: int, until: int, after: float) -> Optional[Expiring]:
    """The file as expiring: noncurrent since the first state of ``rows`` past its last (fileset ``until``),
    ``after`` seconds then; None when no later state dates it."""
    from neuromirror.verify.noncurrent import state_time

    gone = next((r for r in rows if r.fileset is not None and r.fileset >= until), None)
    since = state_time(gone) if gone is not None else None
    if gone is None or since is None:
        return None
    last = [r for r in rows if r.fileset is not None and r.fileset < until]
    why = f"its pinned S3 version is noncurrent since the state of {iso_z(since)} ({gone.label})"
    version = last[-1].label if last else None
    return Expiring(path, version, key, size, iso_z(since + after), "at the latest", why)

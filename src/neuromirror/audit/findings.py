"""What the mirror saw wrong upstream, read from what its syncs recorded: no archive is asked.

Each kind and where it comes from (:data:`KINDS`; ``docs/service.md``, *Audit*):

* ``zarr-checksum-mismatch``: a Zarr the newest successful sync refused because its objects never give the
  checksum the archive states (the run's ``refused``);
* ``zarr-no-checksum``: a Zarr asset the archive gives no (or a malformed) checksum for, held pending
  (the ``pending`` table);
* ``digest-mismatch``: an asset whose downloaded bytes disagreed with the archive's size and sha256, or whose
  size disagreed with its metadata's ``contentSize`` (the newest successful run's ``refused``);
* ``blob-unpinned``: a blob of the newest state registered without a ``versionId`` (its object answered
  404 with no version holding its bytes, or a bucket whose versioning is off: the newest state's entries);
* ``noncurrent-only``: a blob the archive still lists whose current S3 object is deleted: only the noncurrent
  version the mirror pinned serves it, until the bucket's lifecycle expires it (the warning of the run that
  pinned it, while the newest state still names that version). ``expires`` is a bound from the records
  (at the latest ``first_seen`` + 30 days); ``--recheck`` reads the date it became noncurrent;
* ``no-doi``: a published version recorded without a DOI (the versions);
* ``modified-unchanged``: two draft states recorded with the same ``modified`` and different files (a Zarr
  rewritten in place: the sync tells it by the Zarr list's checksums; an asset deleted with ``modified`` as it
  was: the sync tells it by the version's asset count in the draft's stamp, and the finding names the path);
* ``manifest-drift``: with ``--recheck`` only (:mod:`.manifests`): the archive's manifest of each Zarr state
  recorded against the mirror's own of it; a state the archive publishes none of is counted in ``coverage``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Iterable, Optional

from neuromirror.index import filesets, runs
from neuromirror.records import VersionKind
from neuromirror.util.dates import iso_z, parse_iso

if TYPE_CHECKING:
    from neuromirror.index.db import Index

SCHEMA_VERSION = 1
#: DANDI's lifecycle rule: a noncurrent S3 version expires this long after it became noncurrent
EXPIRE_AFTER = timedelta(days=30)

#: how a kind the records cannot tell begins: looked at (and counted) only when the archive is asked
RECHECK_ONLY = "recheck only"
#: ... and a kind only the archive's S3 Inventory tells (``audit --inventory``, :mod:`.inventory`)
INVENTORY_ONLY = "inventory only"
#: kind -> (how it is known, what it means)
KINDS: dict[str, tuple[str, str]] = {
    "zarr-checksum-mismatch": ("recorded", "a Zarr refused: its objects never give the checksum the archive states"),
    "zarr-no-checksum": ("recorded", "a Zarr asset the archive gives no (or a malformed) checksum for: pending"),
    "digest-mismatch": ("recorded", "an asset whose bytes or size disagree with the archive's digest or metadata"),
    "blob-unpinned": ("recorded", "a blob with no S3 versionId: its object is gone or the bucket is not versioned"),
    "noncurrent-only": (
        "recorded; the expiry date with a recheck",
        "an asset whose current S3 object is deleted: only a noncurrent version serves it, until it expires",
    ),
    "no-doi": ("recorded; a recheck asks again", "a published version without a DOI"),
    "modified-unchanged": (
        "recorded for Zarrs changed in place and deletions (seen by the version's asset count)",
        "files changed while the draft's (and the asset's) modified did not",
    ),
    "manifest-drift": (
        RECHECK_ONLY + ": the archive's manifest of each Zarr state recorded, against the mirror's",
        "a Zarr manifest of the archive that differs from the listed objects",
    ),
    "inventory-absent": (
        INVENTORY_ONLY + ": the newest state's pinned S3 versions looked for in the archive's S3 Inventory",
        "a pinned S3 version the archive's inventory does not list: lost upstream",
    ),
    "inventory-mismatch": (
        INVENTORY_ONLY + ": each pinned version's size (and MD5 ETag) against the inventory's",
        "a pinned S3 version whose size or ETag in the archive's inventory is not the mirror's",
    ),
}

_NONCURRENT = re.compile(
    r"^(?P<path>.+?): its current S3 object is deleted \((?:HTTP \d+|per the S3 Inventory [^)]*)\); "
    r"pinned to the noncurrent version (?P<vid>\S+?),"
)
_UNPINNED = re.compile(
    r"^(?P<path>.+?): (?P<why>its (?:S3 object answers HTTP \d+|current S3 object is deleted \(per the S3 "
    r"Inventory [^)]*\)) and no S3 version .*)$"
)
_DIGEST = ("content does not match the archive's size and sha256", "disagrees with the metadata's contentSize")


@dataclass(frozen=True)
class Finding:
    """One thing the mirror saw wrong upstream: its ``source``, ``kind`` (:data:`KINDS`), ``path`` (an asset's
    path; "" for a version's own), ``version`` (the label it was seen in, when known), ``detail``, when the
    syncs first and last saw it, and for ``noncurrent-only`` when the archive's copy ``expires``."""

    source: str
    kind: str
    path: str
    detail: str
    version: Optional[str] = None
    first_seen: Optional[str] = None
    last_seen: Optional[str] = None
    expires: Optional[str] = None
    expires_exact: bool = False  # True: read from the archive (--recheck); False: a bound from the records

    def to_json(self) -> dict:
        out = {
            "source": self.source,
            "kind": self.kind,
            "path": self.path,
            "version": self.version,
            "detail": self.detail,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }
        if self.kind == "noncurrent-only":
            out["expires"] = self.expires
            out["expires_is"] = "exact" if self.expires_exact else "at the latest"
        return out


@dataclass
class Audit:
    """The findings of the sources audited (sorted by source, kind, path), and how they were known."""

    findings: list[Finding]
    sources: list[str]
    generated: str = field(default_factory=lambda: iso_z(time.time()))
    rechecked: bool = False
    recheck_errors: list[str] = field(default_factory=list)
    #: kind -> how far a kind the recheck looks for was looked at (``manifest-drift``: Zarr states compared)
    coverage: dict[str, Any] = field(default_factory=dict)
    #: the S3 Inventory compared with (``audit --inventory``): its url, date, files, rows and pins looked for
    inventory: Optional[dict[str, Any]] = None

    def looked_at(self) -> list[str]:
        """The kinds this audit looked for: the recorded ones, and with ``--recheck`` the recheck's own."""
        return [
            k
            for k, (how, _) in KINDS.items()
            if (self.rechecked or not how.startswith(RECHECK_ONLY))
            and (self.inventory is not None or not how.startswith(INVENTORY_ONLY))
        ]

    def counts(self) -> dict[tuple[str, str], int]:
        """(source, kind) -> findings; every kind looked at of every source audited, 0 included."""
        out = {(s, k): 0 for s in self.sources for k in self.looked_at()}
        for f in self.findings:
            out[(f.source, f.kind)] = out.get((f.source, f.kind), 0) + 1
        return out

    def to_json(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "generated": self.generated,
            "rechecked": self.rechecked,
            "recheck_errors": self.recheck_errors,
            "coverage": self.coverage,
            "inventory": self.inventory,
            "kinds": {k: {"covered": how, "what": what} for k, (how, what) in KINDS.items()},
            "sources": self.by_source(),
            "findings": [f.to_json() for f in self.findings],
        }

    def by_source(self) -> dict[str, dict[str, int]]:
        """source -> kind -> findings, from one :meth:`counts`: counted again per source it was O(sources^2),
        ``audit --json`` over 2,000 dandisets 14.9 s, now 1.9 s (``scripts/bench --scenarios audit-scale``)."""
        out: dict[str, dict[str, int]] = {s: {} for s in self.sources}
        for (src, kind), n in self.counts().items():
            if src in out:
                out[src][kind] = n
        return out


def _matches(sid: str, specs: Optional[list[str]]) -> bool:
    return not specs or any(fnmatchcase(sid, s) or fnmatchcase(sid, s + "@*") for s in specs)


def audit(index: Index, specs: Optional[list[str]] = None) -> Audit:
    """The findings the index holds for the sources ``specs`` name (globs; all without)."""
    sources = sorted(s for s in index.source_ids() if _matches(s, specs))
    wanted = set(sources)
    looked = {sid: (rid, ended) for sid, rid, ended in runs.last_successes(index) if sid in wanted}
    found: list[Finding] = []
    recorded, seen = _from_reports(index, wanted, looked)
    found += recorded
    found += _pending(index, wanted, seen)
    found += _unpinned(index, wanted, looked, seen)
    for sid in sources:
        versions = index.versions(sid)
        found += _no_doi(sid, versions)
        found += _modified_unchanged(index, sid, versions)
    found.sort(key=lambda f: (f.source, f.kind, f.path, f.version or ""))
    return Audit(found, sources)


#: (source, kind, path) -> [first seen, last seen, detail, run id] over the runs' reports
Seen = dict[tuple[str, str, str], list[Any]]


def _from_reports(
    index: Index, wanted: set[str], looked: dict[str, tuple[int, Optional[str]]]
) -> tuple[list[Finding], Seen]:
    """Refusals of the newest successful run, and noncurrent pins the newest state still rests on; what
    every run noted (:data:`Seen`)."""
    seen = _seen(index, wanted)
    heads = {sid: index.head_version(sid) for sid in wanted}
    out = []
    for key, noted in seen.items():
        found = _still_so(index, key, noted, heads.get(key[0]), looked)
        if found is not None:
            out.append(found)
    return out, seen


def _seen(index: Index, wanted: set[str]) -> Seen:
    """What the wanted sources' runs noted, each with the first and the last run that noted it."""
    seen: Seen = {}  # (source, kind, path) -> [first, last, detail, run id]
    for sid, rid, started, ended, raw in runs.noted_reports(index):
        if sid not in wanted or not raw:
            continue
        report = json.loads(raw)
        for kind, path, detail in _notes(report):
            got = seen.setdefault((sid, kind, path), [started, ended, detail, rid])
            got[1:] = [ended, detail, rid]
    return seen


def _still_so(
    index: Index,
    key: tuple[str, str, str],
    noted: list[Any],
    head: Any,
    looked: dict[str, tuple[int, Optional[str]]],
) -> Optional[Finding]:
    """The finding of one thing a run noted if it still holds at the newest state, else None."""
    sid, kind, path = key
    first, last, detail, rid = noted
    if kind in ("blob-unpinned", "zarr-no-checksum"):
        return None  # the newest state's entries and the pending table say which still are (_unpinned, _pending)
    if kind == "noncurrent-only":
        entry = index.version_file(head.id, sid, path) if head is not None else None
        if head is None or entry is None or not any(f"versionId={detail}" in u for u in entry.urls):
            return None  # pinned otherwise since, or gone from the archive's listing
        return _noncurrent(sid, path, detail, first, looked.get(sid, (0, last))[1], head.label)
    if rid == looked.get(sid, (None,))[0]:  # a refusal: still wrong at the last look
        return Finding(sid, kind, path, detail, head.label if head else None, first, last)
    return None


def _notes(report: dict) -> Iterable[tuple[str, str, str]]:
    """(kind, path, detail) of what one run's report says was wrong upstream."""
    for r in report.get("refused") or []:
        path, reason = str(r.get("path")), str(r.get("reason"))
        if "Zarr checksum mismatch" in reason:
            yield "zarr-checksum-mismatch", path, reason
        elif any(d in reason for d in _DIGEST):
            yield "digest-mismatch", path, reason
    for p in report.get("pending") or []:
        if str(p.get("reason")).startswith("Zarr asset:"):
            yield "zarr-no-checksum", str(p.get("path")), str(p.get("reason"))
    for w in report.get("warnings") or []:
        m = _NONCURRENT.match(str(w))
        if m:
            yield "noncurrent-only", m["path"], m["vid"]
        m = _UNPINNED.match(str(w))
        if m:
            yield "blob-unpinned", m["path"], m["why"]


def _noncurrent(
    sid: str, path: str, vid: str, first: Optional[str], last: Optional[str], label: Optional[str]
) -> Finding:
    seen = parse_iso(first) if first else None
    bound = iso_z(seen + EXPIRE_AFTER) if seen else None
    detail = f"its current S3 object is deleted; the mirror's pin rests on the noncurrent version {vid}"
    return Finding(sid, "noncurrent-only", path, detail, label, first, last, bound)


def _pending(index: Index, wanted: set[str], seen: Seen) -> list[Finding]:
    out = []
    for sid, path, reason, last in runs.pending_items(index):
        if sid in wanted and (reason or "").startswith("Zarr asset:"):
            first = seen.get((sid, "zarr-no-checksum", path), [last])[0]
            out.append(Finding(sid, "zarr-no-checksum", path, str(reason), "draft", first, last))
    return out


def _unpinned(
    index: Index, wanted: set[str], looked: dict[str, tuple[int, Optional[str]]], seen: Seen
) -> list[Finding]:
    """Blobs of the newest state without a versionId; why and since when, as the runs' warnings said."""
    out = []
    for sid, path, urls in filesets.open_unversioned_blobs(index.db.conn):
        if sid not in wanted:
            continue
        blob = next((u for u in json.loads(urls or "[]") if "/blobs/" in u), "")
        first, _, why, _ = seen.get((sid, "blob-unpinned", path), [None, None, None, None])
        why = why or "its object answered with no versionId (a bucket whose versioning is off or suspended)"
        detail = f"{blob}: {why}"
        out.append(Finding(sid, "blob-unpinned", path, detail, "draft", first, looked.get(sid, (0, None))[1]))
    return out


def _no_doi(sid: str, versions: list[Any]) -> list[Finding]:
    return [
        Finding(sid, "no-doi", "", "a published version recorded without a DOI", v.label, v.synced_at, v.synced_at)
        for v in versions
        if v.kind == VersionKind.PUBLISHED and not v.doi
    ]


#: the tokens of a draft's stamp that are not its ``modified`` (sources.dandi.changes.stamp, zarr_assets)
_NOT_MODIFIED = ("zarrs=", "assets=", "bytes=", "newest=")


def _stamp(recorded: Optional[str]) -> Optional[str]:
    """The draft's own ``modified`` stamp of a recorded ``remote_modified``: the ``zarrs=`` token, the version's
    count and size and the listing's watermark left out (a deletion moves the count, not ``modified``)."""
    return " ".join(t for t in (recorded or "").split(" ") if not t.startswith(_NOT_MODIFIED)) or None


def _modified_unchanged(index: Index, sid: str, versions: list[Any]) -> list[Finding]:
    drafts = [v for v in versions if v.kind == VersionKind.DRAFT and v.fileset is not None]
    drafts.sort(key=lambda v: v.id)
    out = []
    for before, after in zip(drafts, drafts[1:]):
        stamp = _stamp(before.remote_modified)
        if stamp is None or stamp != _stamp(after.remote_modified) or before.fileset == after.fileset:
            continue
        for path in filesets.difference(index.db.conn, sid, before.fileset, after.fileset):
            detail = f"changed between the states synced {before.synced_at} and {after.synced_at}; modified {stamp}"
            out.append(Finding(sid, "modified-unchanged", path, detail, after.label, after.synced_at, after.synced_at))
    return out

"""What changed in a source: between two recorded states (``diff``), and since a date (``changes``).

Both read the index only (each version's file rows, streamed in path order): no dataset is opened,
so a report over every source of a large mirror costs one walk of two file lists per source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Optional

from neuromirror.errors import BadInput
from neuromirror.index.rows import Version
from neuromirror.records import SUBDATASET, VersionFile, VersionKind
from neuromirror.results import Item, Listing, Result, Status
from neuromirror.util.dates import parse_iso
from neuromirror.util.sizes import human_bytes

if TYPE_CHECKING:
    from neuromirror.index.db import Index


def _merge(a: Iterator[Any], b: Iterator[Any]) -> Iterator[tuple[Optional[Any], Optional[Any]]]:
    """Walk two path-sorted file lists together (constant memory)."""

    def k(f: VersionFile) -> bytes:
        return f.path.encode("utf-8", "surrogateescape")

    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and k(x) < k(y)):
            yield x, None
            x = next(a, None)
        elif x is None or k(y) < k(x):
            yield None, y
            y = next(b, None)
        else:
            yield x, y
            x, y = next(a, None), next(b, None)


def _content_id(f: Any) -> str:
    return f.key if f.key else f"{f.checksum_kind}:{f.checksum}"


def _changed(old: Any, new: Any) -> dict[str, Any]:
    """A path whose content differs: its sizes and keys, a subdataset's commits."""
    rec = {"path": new.path, "old_size": old.size, "new_size": new.size, "old_key": old.key, "new_key": new.key}
    if SUBDATASET in (old.checksum_kind, new.checksum_kind):
        rec.update(subdataset=True, old_commit=old.checksum, new_commit=new.checksum)
    return rec


def diff_versions(index: Index, row_a: Version, row_b: Version) -> dict[str, Any]:
    lists: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "changed": []}
    relinked = 0
    # the index streams each list ORDER BY path (SQLite's BINARY collation: UTF-8 byte order, as _merge compares)
    for old, new in _merge(iter(index.version_files(row_a.id)), iter(index.version_files(row_b.id))):
        if old is None or new is None:  # _merge never yields two Nones
            f: Any = new if old is None else old
            lists["added" if old is None else "removed"].append({"path": f.path, "size": f.size, "key": f.key})
        elif _content_id(old) != _content_id(new):
            lists["changed"].append(_changed(old, new))
        elif tuple(old.urls) != tuple(new.urls):
            relinked += 1
    added, removed = lists["added"], lists["removed"]
    return {
        **lists,
        "summary": {
            "added": len(added),
            "removed": len(removed),
            "changed": len(lists["changed"]),
            "same_content_new_urls": relinked,
            "bytes_added": sum(f["size"] or 0 for f in added),
            "bytes_removed": sum(f["size"] or 0 for f in removed),
            "bytes_delta": (row_b.bytes or 0) - (row_a.bytes or 0),
        },
    }


def parse_since(text: str) -> datetime:
    when = parse_iso(text.strip())
    if when is None:
        try:
            when = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise BadInput(f"since {text!r}: not a date (give YYYY-MM-DD or an ISO 8601 time)") from None
    return when


#: the state before a source's first: no files, no bytes (what ``changes --since`` diffs a first state with)
NOTHING = Version(id=-1, label="", kind=VersionKind.DRAFT, commit="", bytes=0)  # the state before any: empty


def _states(index: Index, source: str) -> list[Version]:
    """The rows that are the source's successive states, oldest first: drafts/snapshots and published
    versions alike (a published version is the archive's state at its date, and on a mirror made after
    a publish the only record of what the draft held then), by the archive's date of each."""
    rows = index.versions(source)
    return sorted(rows, key=lambda r: (r.state_time() or datetime.max.replace(tzinfo=timezone.utc), r.id))


def _head(rows: list[Version]) -> Version:
    """The state recorded now: the last draft/snapshot row, else the last published one (as ``status``)."""
    drafts = [r for r in rows if r.kind != VersionKind.PUBLISHED]
    return max(drafts or rows, key=lambda r: r.id)


def _end(row: Optional[Version]) -> Optional[dict[str, Any]]:
    if row is None:
        return None
    when = row.state_time()
    return {"version": row.label, "commit": row.commit, "date": when.isoformat() if when else None}


def source_changes(index: Index, source: str, since: datetime) -> Optional[SourceChanges]:
    """The source's changes since ``since``; None when it has no recorded state."""
    states = _states(index, source)
    if not states:
        return None
    before = [r for r in states if (r.state_time() or since) <= since]
    old, new = (before[-1] if before else None), _head(states)
    if (new.state_time() or since) <= since:  # nothing recorded after DATE (a publish of then is no change since)
        old = new
    if old is not None and old.id == new.id:
        d: dict[str, Any] = {"added": [], "removed": [], "changed": []}
    elif old is None:
        d = diff_versions(index, NOTHING, new)
    else:
        d = diff_versions(index, old, new)
    return SourceChanges(source, _end(old), _end(new), d["added"], d["removed"], d["changed"])


@dataclass(frozen=True)
class SourceChanges:
    """One source's changes since a date (:func:`source_changes`): the states compared (``old``/``new``: version,
    commit, date; ``old`` None when none was recorded then) and the files added, removed and changed.  Read as
    the dict ``changes --json`` lists (``c["source"]``, ``c["summary"]``) or by field."""

    source: str
    old: Optional[dict[str, Any]]
    new: Optional[dict[str, Any]]
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[dict[str, Any]]

    @property
    def summary(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed)}

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "from": self.old,
            "to": self.new,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "summary": self.summary,
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def lines(self) -> list[str]:
        """What ``changes`` prints for the source: nothing when nothing changed."""
        s = self.summary
        if not any(s.values()):
            return []
        old, new = self.old, self.new or {}
        frm = old["version"] + " " + (old["date"] or "") if old else "(not recorded then)"
        out = [
            f"{self.source}: {frm} -> {new.get('version')} {new.get('date') or ''}: "
            f"{s['added']} added, {s['removed']} removed, {s['changed']} changed"
        ]
        out += [f"  A  {f['path']}  {human_bytes(f['size'])}" for f in self.added]
        out += [f"  D  {f['path']}  {human_bytes(f['size'])}" for f in self.removed]
        return out + [f"  M  {f['path']}" for f in self.changed]


@dataclass(frozen=True)
class Changes(Listing[SourceChanges]):
    """Per source, what changed since ``since`` (``Mirror.changes``, ``changes --json``): an ``ok`` item per
    source (a report of the index: nothing in it fails).  Iterates, indexes and counts as its sources."""

    since: datetime
    sources: tuple[SourceChanges, ...]

    def records(self) -> tuple[SourceChanges, ...]:
        return self.sources

    def items(self) -> list[Item]:
        return [Item(Status.OK, c.source, ", ".join(f"{n} {k}" for k, n in c.summary.items())) for c in self]

    def total(self) -> dict[str, int]:
        return {k: sum(c.summary[k] for c in self) for k in ("added", "removed", "changed")}

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "sources": [c.to_json() for c in self],
            "summary": {"sources": len(self), **self.total()},
        }

    def lines(self) -> list[str]:
        t = self.total()
        return [line for c in self for line in c.lines()] + [
            f"since {self.since.isoformat()}: {len(self)} source(s), {t['added']} added, {t['removed']} removed, "
            f"{t['changed']} changed"
        ]

    def __repr__(self) -> str:
        return f"<Changes since {self.since.isoformat()}: {len(self)} source(s) {self.total()}>"


@dataclass(frozen=True)
class VersionDiff(Result):
    """Two recorded states compared (``neuromirror diff``, ``Mirror.diff``): each end's source and row, and
    :func:`diff_versions`' lists.  ``to_json()`` is ``diff --json``; ``lines()`` what ``diff`` prints."""

    old_source: str
    old: Version
    new_source: str
    new: Version
    changes: dict[str, Any]

    def items(self) -> list[Item]:
        """An ``ok`` item per file added, removed or changed (a comparison: nothing in it fails)."""
        c = self.changes
        return [Item(Status.OK, f["path"], how) for how in ("added", "removed", "changed") for f in c[how]]

    def __repr__(self) -> str:
        s = self.changes["summary"]
        return (
            f"<VersionDiff {self.old_source}@{self.old.label} -> {self.new_source}@{self.new.label}: "
            f"{s['added']} added, {s['removed']} removed, {s['changed']} changed>"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "from": _diff_end(self.old_source, self.old),
            "to": _diff_end(self.new_source, self.new),
            **self.changes,
        }

    def lines(self) -> list[str]:
        s = self.changes["summary"]
        title = self.old_source if self.old_source == self.new_source else f"{self.old_source} -> {self.new_source}"
        out = [
            f"{title} {self.old.label} ({self.old.commit[:12]}) -> {self.new.label} ({self.new.commit[:12]}): "
            f"{s['added']} added, {s['removed']} removed, {s['changed']} changed"
        ]
        rows = (
            [("A", f["path"], human_bytes(f["size"])) for f in self.changes["added"]]
            + [("D", f["path"], human_bytes(f["size"])) for f in self.changes["removed"]]
            + [("M", f["path"], _change(f)) for f in self.changes["changed"]]
        )
        rows.sort(key=lambda r: r[1])
        width = max((len(r[1]) for r in rows), default=0)
        out += [f"{flag}  {path.ljust(width)}  {size}" for flag, path, size in rows]
        if s["same_content_new_urls"]:
            out.append(f"({s['same_content_new_urls']} file(s) kept their content but got new URLs)")
        return out


def _diff_end(source: str, row: Version) -> dict[str, Any]:
    """One end of the diff in ``--json``: the version, its commit and its counts."""
    return {"source": source, "version": row.label, "commit": row.commit, "files": row.file_count, "bytes": row.bytes}


def _change(f: dict[str, Any]) -> str:
    if f.get("subdataset"):
        return f"subdataset {(f['old_commit'] or '-')[:12]} -> {(f['new_commit'] or '-')[:12]}"
    return f"{human_bytes(f['old_size'])} -> {human_bytes(f['new_size'])}"

"""A snapshot against the state of HEAD: only what changed reaches git.

The HEAD state is a path -> identity digest map (from the index, or from git when the index is
behind); each entry passes the URL rule and the path check, and the changes and the version's
file rows are spooled, so an asset of 10^6 files costs memory for its paths, not its records.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

from neuromirror.annex.tree import iter_version
from neuromirror.annex.writer import Delete, Put
from neuromirror.engine.state import IndexState
from neuromirror.index.trailers import format_trailers
from neuromirror.index.version_rows import Over
from neuromirror.records import (
    AnnexEntry,
    Entry,
    Refusal,
    Snapshot,
    SyncReport,
    VersionFile,
)
from neuromirror.sources.urlrule import Tally
from neuromirror.util.memory.spool import Spool
from neuromirror.util.paths import check_path

if TYPE_CHECKING:
    pass


def _digest(identity: str) -> bytes:
    return hashlib.blake2b(identity.encode("utf-8", "surrogateescape"), digest_size=12).digest()


@dataclass
class _Diff:
    changes: Spool
    files: Spool
    #: the index rows ``files`` are laid over (a diff over HEAD: :func:`diff_over_head`); None: ``files`` is the whole
    over: Optional[Over] = None
    added: int = 0
    removed: int = 0
    changed: int = 0

    @property
    def n(self) -> int:
        return self.added + self.removed + self.changed


def _as_record(e: Entry) -> tuple:
    """A file of the version, as a plain tuple: pickling slotted dataclasses costs 4x more."""
    return (e.path, e.key, e.size, e.checksum_kind, e.checksum, tuple(e.urls), e.remote_id)


def records_of(spool: Spool) -> Iterator[VersionFile]:
    return (VersionFile(*t) for t in spool)


def diff_snapshot(
    current: dict[str, bytes], snap: Snapshot, report: SyncReport, files: Optional[Spool] = None
) -> _Diff:
    """Stream ``snap.entries`` against ``current`` (path -> identity digest), updating it.

    Every annexed entry passes the URL rule here (:mod:`neuromirror.sources.urlrule`), whatever its
    source: what is diffed, recorded and registered is what the rule admits.
    ``files`` receives the version's file records (a named spool when a Dask worker
    hands them to the submitting process); an anonymous one by default.
    """
    d = _Diff(Spool(), Spool() if files is None else files)
    tally = Tally()
    seen: set[str] = set()
    lowered: dict[str, str] = {}
    dirs: set[str] = set()
    # the parent directory of the last file taken: its ancestors were checked then, and a
    # listing in path order takes a folder's files one after another
    last_dir: Optional[str] = None
    for e in snap.entries:
        path = e.path
        reason = check_path(path)
        parents: list[str] = []
        parent_dir = ""
        if reason is None:
            if path in seen:
                reason = "two items with the same path"
            elif path in dirs:
                reason = "a file and a directory of the same name"
            else:
                cut = path.rfind("/")
                parent_dir = path[:cut] if cut > 0 else ""
                if parent_dir != last_dir:  # once a directory: its files come one after another
                    parents, reason = _new_directory(path, seen)
                if reason is None and (other := lowered.get(path.lower())) is not None:
                    reason = f"path differs only by case from {other!r}"
        if reason is not None:
            _refuse(snap, path, reason)
            continue
        seen.add(path)
        lowered[path.lower()] = path
        dirs.update(parents)
        last_dir = parent_dir
        if type(e) is AnnexEntry:
            e = tally.admit(e)
        d.files.add(_as_record(e))
        ident = _digest(e.identity)
        old = current.get(path)
        if old == ident:
            continue
        if old is None:
            d.added += 1
        else:
            d.changed += 1
        current[path] = ident
        d.changes.add(Put(e))
    _finish(d, current, seen, snap, report, tally)
    return d


def diff_over_head(
    head: dict[str, VersionFile], entries: Iterable[Entry], snap: Snapshot, report: SyncReport, files: Spool
) -> _Diff:
    """``entries`` as changes over ``head`` (HEAD's files by path, not changed here): what a whole diff
    (:func:`diff_snapshot`) of HEAD's files but ``snap.over_head``'s paths, with ``entries`` among them,
    gives, in O(changes).  The paths of ``snap.over_head`` no entry names are removed; ``files`` receives
    only ``entries``' records (the index carries the rest of HEAD's rows forward).  A path new to HEAD is
    checked against HEAD's paths (a file and a directory of the same name, a case clash): refused, the
    newcomer is, where a whole listing refuses whichever comes later in path order; a refusal leaves
    the source's state not whole (a DANDI draft is listed whole next time, and decides so then)."""
    d = _Diff(Spool(), files)
    tally = Tally()
    taken = _Taken(head)
    for e in entries:
        path = e.path
        reason = check_path(path)
        if reason is None:
            reason = taken.clash(path)
        if reason is not None:
            _refuse(snap, path, reason)
            continue
        taken.add(path)
        if type(e) is AnnexEntry:
            e = tally.admit(e)
        d.files.add(_as_record(e))
        old = head.get(path)
        if old is not None and old.identity == e.identity:
            continue
        if old is None:
            d.added += 1
        else:
            d.changed += 1
        d.changes.add(Put(e))
    for p in sorted((snap.over_head or frozenset()) - taken.seen):
        if p in head:
            d.changes.add(Delete(p))
            d.removed += 1
    _reported(snap, report, tally)
    return d


class _Taken:
    """The paths of a diff over HEAD: HEAD's (but those the snapshot names) and the entries taken, for the
    checks a whole diff makes on every path, asked only of a path new to HEAD; HEAD's paths sorted and
    lower-cased at the first such path (C loops: a directory is a run of the sorted paths)."""

    def __init__(self, head: dict[str, VersionFile]) -> None:
        self.head = head
        self.seen: set[str] = set()
        self._sorted: Optional[list[str]] = None
        self._lowered: dict[str, str] = {}
        self._dirs: set[str] = set()  # of the new paths taken

    def clash(self, path: str) -> Optional[str]:
        if path in self.seen:
            return "two items with the same path"
        if path in self.head:
            return None  # HEAD's file at that path, checked when it was recorded
        if self._sorted is None:
            self._sorted = sorted(self.head)
            self._lowered = {p.lower(): p for p in self._sorted}
        parents = [path[:i] for i, c in enumerate(path) if c == "/"]
        if self._is_dir(path) or any(p in self.head or p in self.seen for p in parents):
            return "a file and a directory of the same name"
        other = self._lowered.get(path.lower())
        return f"path differs only by case from {other!r}" if other is not None else None

    def _is_dir(self, path: str) -> bool:
        assert self._sorted is not None
        at = bisect.bisect_left(self._sorted, path + "/")
        return path in self._dirs or (at < len(self._sorted) and self._sorted[at].startswith(path + "/"))

    def add(self, path: str) -> None:
        self.seen.add(path)
        if self._sorted is not None:
            self._lowered[path.lower()] = path
            self._dirs.update(path[:i] for i, c in enumerate(path) if c == "/")


def _new_directory(path: str, seen: set[str]) -> tuple[list[str], Optional[str]]:
    """(the ancestors of ``path``, why it is refused or None) when its directory differs from the
    last file's: one of them being a file already taken is a clash of a file and a directory."""
    parts = path.split("/")
    parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
    clash = any(p in seen for p in parents)
    return parents, ("a file and a directory of the same name" if clash else None)


def _refuse(snap: Snapshot, path: object, reason: str) -> None:
    """An entry refused on its own (the rest of the snapshot is mirrored), its path shown as it is."""
    snap.refused.append(Refusal(path if isinstance(path, str) else repr(path), reason))


def _finish(
    d: _Diff, current: dict[str, bytes], seen: set[str], snap: Snapshot, report: SyncReport, tally: Tally
) -> None:
    """After the last entry: the paths no entry named are deleted (from ``current`` too); the
    snapshot's refusals, unreachable assets and unpinned URLs go into the report."""
    gone = [p for p in current if p not in seen]
    for p in gone:
        del current[p]
        d.changes.add(Delete(p))
        d.removed += 1
    _reported(snap, report, tally)


def _reported(snap: Snapshot, report: SyncReport, tally: Tally) -> None:
    """The snapshot's refusals, unreachable assets and unpinned URLs, into the report (a diff's last step)."""
    report.refused.extend(snap.refused)
    report.unreachable.extend(snap.unreachable)
    if unpinned := tally.warning(snap.label):
        snap.warnings.append(unpinned)


def current_state(ds: Path, head: Optional[str], state: IndexState) -> dict[str, bytes]:
    """path -> identity of HEAD: from the index, or from the dataset when the index lacks HEAD
    (an interrupted run committed a version it did not finish recording)."""
    if state.head_version is not None or not head:
        return {f.path: _digest(f.identity) for f in state.previous_files()}
    return {f.path: _digest(f.identity) for f in iter_version(ds, head, urls=True)}


def commit_message(source: str, snap: Snapshot, d: _Diff) -> str:
    head = f"[neuromirror] {snap.message}: {d.added} added, {d.removed} removed, {d.changed} changed"
    trailers = {
        "Neuromirror-Source": source,
        "Neuromirror-Label": snap.label,
        "Neuromirror-Kind": snap.kind,
        "Neuromirror-Remote-Modified": snap.remote_modified,
        "Neuromirror-DOI": snap.doi,
        "Neuromirror-Meta": json.dumps(snap.meta, sort_keys=True, separators=(",", ":")) if snap.meta else None,
    }
    return head + "\n\n" + format_trailers(trailers)

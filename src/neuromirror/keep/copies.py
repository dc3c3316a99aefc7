"""How many verified copies outside the archive each file of a version has: the count a backup is judged by.

A copy counts when two records agree: the key's location log on the dataset's git-annex branch
names the store (what every clone reads: :func:`neuromirror.store.record.present_stores`), and the
index says when its bytes were last read back right (``keep`` hashed them on the way in; ``verify
--stores`` re-reads them: :mod:`neuromirror.index.store_checks`). Per version: the files and
bytes with at least the wanted number of such copies, with fewer, and with none; the oldest check;
the keys at risk, named.  ``status --copies``, ``verify --kept``, the status pages and ``/metrics``
all read :func:`version_copies`; the keep lag (:func:`note_lag`) is recorded from it after a keep.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from neuromirror.dataset.files import VersionFiles, annex_key, annex_repo, each_version_file
from neuromirror.index import store_checks
from neuromirror.keep.inflight import BATCH, batches
from neuromirror.records import VersionFile
from neuromirror.spec import Spec, parse_spec
from neuromirror.store.holders import Locations
from neuromirror.store.record import store_uuids
from neuromirror.util.dates import iso_seconds, iso_z
from neuromirror.util.sizes import human_bytes

if TYPE_CHECKING:
    from neuromirror.index.rows import Version

#: told each file of a version and its verified copies (store uuid -> last good check)
OnFile = Callable[["Version", VersionFile, dict[str, float]], None]
#: keys at risk named per version in a report (the counts are always whole)
MAX_NAMED = 50


@dataclass(frozen=True)
class AtRisk:
    path: str
    key: str
    size: Optional[int]
    verified: int  # stores holding a verified copy
    recorded: int  # stores the location log names (checked or not)

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "key": self.key,
            "size": self.size,
            "copies": self.verified,
            "recorded": self.recorded,
        }


@dataclass
class VersionCopies:
    source: str
    version: str
    commit: str
    wanted: int
    files: int = 0
    bytes: int = 0
    enough_files: int = 0
    enough_bytes: int = 0
    fewer_files: int = 0
    fewer_bytes: int = 0
    none_files: int = 0
    none_bytes: int = 0
    oldest_check: Optional[float] = None
    at_risk: list[AtRisk] = field(default_factory=list)
    at_risk_count: int = 0
    stores: dict[str, int] = field(default_factory=dict)  # store uuid -> files with a verified copy there
    problems: list[str] = field(default_factory=list)
    last_stored: Optional[float] = None  # when the slowest key got its wanted-th copy (version_copies(lag=True))
    unstored: bool = False  # some key has fewer stored times than wanted (stored before they were kept)
    seen: Optional[float] = None  # when the mirror first recorded the version (the keep lag's start)
    unverified: int = 0  # copies the location logs record without a check in the index
    branches: Optional[dict[str, str]] = field(default=None, repr=False)  # relpath -> branch commit counted at
    from_mark: bool = False  # taken from the version's count mark (keep/marks.py)

    @property
    def label(self) -> str:
        return f"{self.source}@{self.version}"

    @property
    def ok(self) -> bool:
        return self.enough_files == self.files and not self.problems

    def add(self, f: VersionFile, verified: int, recorded: int) -> None:
        self.files += 1
        self.bytes += f.size or 0
        if verified >= self.wanted:
            self.enough_files += 1
            self.enough_bytes += f.size or 0
            return
        if verified:
            self.fewer_files += 1
            self.fewer_bytes += f.size or 0
        else:
            self.none_files += 1
            self.none_bytes += f.size or 0
        self.at_risk_count += 1
        if len(self.at_risk) < MAX_NAMED:
            self.at_risk.append(AtRisk(f.path, annex_key(f), f.size, verified, recorded))

    def stored(self, times: dict[str, list[float]], keys: Sequence[str]) -> None:
        """The keep lag's end, from when ``keys`` were put in each store (:func:`note_lag`)."""
        for key in keys:
            got = sorted(times.get(key, ()))
            if len(got) < self.wanted:
                self.unstored = True
            else:
                end = got[self.wanted - 1]
                self.last_stored = end if self.last_stored is None else max(self.last_stored, end)

    def line(self) -> str:
        """The counts in a line: files with enough verified copies, with fewer, with none; the oldest check."""
        oldest = iso_z(self.oldest_check) or "never"
        return (
            f"{self.label}: {self.enough_files}/{self.files} file(s) with >= {self.wanted} verified "
            f"cop{'y' if self.wanted == 1 else 'ies'} ({human_bytes(self.enough_bytes)}), {self.fewer_files} with "
            f"fewer ({human_bytes(self.fewer_bytes)}), {self.none_files} with none outside the archive "
            f"({human_bytes(self.none_bytes)}); oldest check {oldest}"
        )

    def risk_lines(self, limit: int = 10) -> list[str]:
        out = [
            f"  at risk: {a.path} ({a.key}): {a.verified} of {self.wanted} verified cop{'y' if self.wanted == 1 else 'ies'}"
            + (f", {a.recorded} recorded" if a.recorded != a.verified else "")
            for a in self.at_risk[:limit]
        ]
        if self.at_risk_count > len(out):
            out.append(f"  ... and {self.at_risk_count - len(out)} more at risk")
        return out + [f"  problem: {p}" for p in self.problems]

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "version": self.version,
            "commit": self.commit,
            "wanted": self.wanted,
            "files": self.files,
            "bytes": self.bytes,
            "enough": {"files": self.enough_files, "bytes": self.enough_bytes},
            "fewer": {"files": self.fewer_files, "bytes": self.fewer_bytes},
            "none": {"files": self.none_files, "bytes": self.none_bytes},
            "oldest_check": iso_z(self.oldest_check),
            "seen": iso_z(self.seen),
            "stores": self.stores,
            "at_risk": [a.to_json() for a in self.at_risk],
            "at_risk_count": self.at_risk_count,
            "problems": self.problems,
            "from_mark": self.from_mark,
            "ok": self.ok,
        }


def version_copies(
    mirror: Any,
    target: Version,
    wanted: int,
    locations: Optional[Locations] = None,
    on_file: Optional[OnFile] = None,
    *,
    lag: bool = False,
) -> VersionCopies:
    """The copies of every annexed file of ``target`` (Zarr subdatasets' files included); ``locations``:
    the location logs read for the previous version of the same dataset, reused; ``on_file``: told each
    file and its verified copies (store uuid -> last check), for counts per key (:mod:`.archive_copies`);
    ``lag``: the times the keys were stored read too, for :func:`note_lag`.

    The files are read and counted a batch at a time (as keep reads them): a version of 10^6 Zarr chunks
    is never held whole, nor its keys' checks."""
    row = target
    out = VersionCopies(target.source, row.label, row.commit, wanted)
    out.seen = _timestamp(row.synced_at)
    listing = VersionFiles()
    # keys and sizes are what is counted: a Zarr's URL logs are not read
    files = each_version_file(mirror.index, mirror.dataset_path(target.relpath), row.id, listing, urls=False)
    locations = locations or Locations()
    lost = frozenset(store_checks.unreachable(mirror.index))  # a copy nobody can read here counts as none
    branches: Optional[dict[str, str]] = {}
    stores: dict[Path, frozenset[str]] = {}  # repository -> the stores its branch records
    for batch, _ in batches(files, BATCH):
        by_repo: dict[Path, list[VersionFile]] = {}
        for f in batch:
            by_repo.setdefault(annex_repo(f), []).append(f)
        keys = list(dict.fromkeys(annex_key(f) for f in batch))
        checks = store_checks.checks_of(mirror.index, keys)
        if lag:
            out.stored(store_checks.stored_times(mirror.index, keys), keys)
        for repo, files_here in by_repo.items():
            if repo not in stores:
                stores[repo] = frozenset(store_uuids(repo))
            holders = locations.of(repo, (annex_key(f) for f in files_here))  # key -> stores its log names
            head = locations.head(repo)
            if head is None or branches is None:
                branches = None
            else:
                branches[os.path.relpath(repo, mirror.root)] = head
            _count_files(
                out,
                files_here,
                holders,
                (stores[repo], lost),
                checks,
                lambda f, c: on_file(target, f, c) if on_file else None,
            )
    out.problems[:0] = [f"{path}: {why}" for path, why in listing.problems]
    out.branches = branches
    return out


def _count_files(
    out: VersionCopies,
    files: list[VersionFile],
    holders: dict[str, frozenset[str]],
    stores: tuple[frozenset[str], frozenset[str]],
    checks: dict[str, dict[str, float]],
    told: Callable[[VersionFile, dict[str, float]], object],
) -> None:
    """One repository's files of a batch counted: the stores its logs name that it records, with their checks
    (``stores``: those it records, and those not reachable here, whose copies are recorded but not verified)."""
    recorded_here, lost = stores
    for f in files:
        recorded = holders[annex_key(f)] & recorded_here
        checked = {u: t for u, t in checks.get(annex_key(f), {}).items() if u in recorded and u not in lost}
        _count_file(out, f, recorded, checked)
        told(f, checked)


def _count_file(out: VersionCopies, f: VersionFile, recorded: frozenset[str], checked: dict[str, float]) -> None:
    """One file's copies into the version's counts: the stores holding a verified one, the oldest check,
    and the copies the logs record that no check backs."""
    for u in checked:
        out.stores[u] = out.stores.get(u, 0) + 1
    if checked:
        first = min(checked.values())
        out.oldest_check = first if out.oldest_check is None else min(out.oldest_check, first)
    out.add(f, len(checked), len(recorded))
    out.unverified += len(recorded) - len(checked)


def mark_counts(c: VersionCopies) -> dict:
    """What a count mark keeps of a version's copies (all of its files have enough, every copy checked)."""
    return {"files": c.files, "bytes": c.bytes, "stores": c.stores, "oldest_check": c.oldest_check}


def from_mark(target: Version, wanted: int, counts: dict) -> VersionCopies:
    """A version's copies from its count mark: every file with enough verified copies, as counted then."""
    row = target
    out = VersionCopies(target.source, row.label, row.commit, wanted, from_mark=True)
    out.seen = _timestamp(row.synced_at)
    out.files = out.enough_files = int(counts["files"])
    out.bytes = out.enough_bytes = int(counts["bytes"])
    out.stores = {str(u): int(n) for u, n in counts["stores"].items()}
    out.oldest_check = counts["oldest_check"]
    return out


def note_lag(mirror: Any, target: Version, copies: VersionCopies, now: Optional[float] = None) -> Optional[float]:
    """Record the version's keep lag once all its files have their wanted copies; the lag (None: not yet).

    The start is when the mirror first recorded the version (its ``synced_at``); the end, the time
    its slowest key got its last wanted copy (the ``copies``-th time neuromirror put it in a store).
    A version whose keys were stored before those times were recorded is not measured."""
    if not copies.ok or not copies.files:
        return None
    seen = _timestamp(target.synced_at)
    if seen is None:
        return None
    if copies.unstored:
        return None  # some copies came from before stored times were kept: no honest lag
    end = copies.last_stored if copies.last_stored is not None else (now if now is not None else time.time())
    if store_checks.record_lag(mirror.index, target.id, target.source, copies.version, seen, end):
        return max(0.0, end - seen)
    return None


def _timestamp(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return iso_seconds(str(value))


def copies_report(mirror: Any, specs: Sequence[Spec], on_file: Optional[OnFile] = None) -> list[VersionCopies]:
    """Per source and version the SPECs name (a SPEC without a version: its published versions and latest
    draft; no SPEC: every source a keep gave a store or set a wanted number for, else every source:
    :func:`neuromirror.index.store_checks.copies_sources`), the copies counted against the wanted number the
    keep recorded for the source (default 1); the stores looked at first
    (:func:`neuromirror.store.reach.survey`): what one not reachable here holds does not count."""
    from neuromirror.dataset.versions import select_versions
    from neuromirror.store.reach import survey

    survey(mirror.index)
    if not specs:
        specs = [parse_spec(s, allow_version=False) for s in store_checks.copies_sources(mirror.index)]
    locations = Locations()  # a dataset's versions come one after another: its logs read once
    return [
        version_copies(mirror, t, store_checks.wanted(mirror.index, t.source), locations, on_file)
        for t in select_versions(mirror.index, specs)
    ]

"""Pins resting only on a noncurrent S3 version: safe today, gone when the archive's lifecycle expires it.

A file pinned by ``?versionId=`` is safe while that version exists.  Once the archive overwrote the
object (a Zarr chunk rewritten in place, an AIND object replaced) or deleted it, the pinned version
is *noncurrent*, and buckets expire noncurrent versions (DANDI: 30 days after they became
noncurrent, doc/design/s3-trailing-delete.md).  Such a file counts as at risk (``noncurrent``), not
as safely pinned.  Known from the index alone, no network: the source's newest recorded state says
which version of each S3 object is current; an older state's pinned URL is noncurrent when

* the newest state names the same bucket and key with other versionIds only (overwritten), or
* the newest state lacks the key but still holds its container — the same Zarr (``zarr/<id>/``) or
  AIND asset (the key's first component) — (deleted from it).

A DANDI blob (``blobs/…``) is content-addressed and never overwritten; a blob no state names any
more stays current until garbage collection deletes it (``verify --archive`` finds that), so it is
not counted here; neither is a key whose container the newest state dropped as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional
from urllib.parse import parse_qs, urlsplit

from neuromirror.annex.logs import branch_logs, log_state
from neuromirror.dataset.files import annex_key, annex_repo
from neuromirror.index.rows import Version
from neuromirror.records import GIT, SUBDATASET, VersionKind
from neuromirror.sources import s3urls
from neuromirror.store.record import store_uuids
from neuromirror.util.dates import iso_z

if TYPE_CHECKING:
    from neuromirror.index.db import Index


def kept_keys(repo: Path, keys: Iterable[str], uuids: Optional[set[str]] = None) -> set[str]:
    """The ``keys`` whose location log in ``repo`` names one of ``uuids`` (default: every recorded store)."""
    if uuids is None:
        uuids = set(store_uuids(repo))
    if not uuids:
        return set()
    return {k for k, d in branch_logs(repo, keys).items() if d and any(log_state(d).get(u) for u in uuids)}


def _versioned(url: str) -> Optional[tuple[str, str, str]]:
    """(bucket, key, versionId) of a versioned S3 object URL, else None."""
    vid = parse_qs(urlsplit(url).query).get("versionId")
    if not vid:
        return None
    loc = s3urls.locate(url, s3urls.endpoints_in_use(), archive_key=lambda k: bool(k))
    if loc is None or not loc.key:
        return None
    return loc.bucket, loc.key, vid[0]


def _container(key: str) -> str:
    parts = key.split("/")
    return "/".join(parts[:2]) if parts[0] == "zarr" else parts[0]


@dataclass
class CurrentObjects:
    """The S3 objects the source's newest state names: (bucket, key) -> versionIds; their containers."""

    versions: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    containers: set[tuple[str, str]] = field(default_factory=set)

    def add(self, urls: Iterable[str]) -> None:
        for u in urls:
            got = _versioned(u)
            if got is not None:
                bucket, key, vid = got
                self.versions.setdefault((bucket, key), set()).add(vid)
                self.containers.add((bucket, _container(key)))

    def only_noncurrent(self, urls: Iterable[str]) -> bool:
        """Whether every versioned URL of a file names a noncurrent version (and it has one at least)."""
        from neuromirror.sources.dandi.zarr_listing import is_archive_key  # here: it imports requests

        seen = False
        for u in urls:
            got = _versioned(u)
            if got is None:
                continue
            bucket, key, vid = got
            current = self.versions.get((bucket, key))
            if current is None:
                if key.startswith("blobs/") and is_archive_key(key):
                    return False  # a DANDI blob: never overwritten, current until GC
                if (bucket, _container(key)) not in self.containers:
                    return False  # its whole container left the newest state: not known here
            elif vid in current:
                return False
            seen = True
        return seen


def current_objects(index: Index, ds: Path, source: str) -> Optional[CurrentObjects]:
    """The objects the source's newest recorded state names (None: no state recorded)."""
    from neuromirror.dataset.files import version_files

    head = index.head_version(source)
    if head is None:
        return None
    out = CurrentObjects()
    for f in version_files(index, ds, head.id).annexed:
        out.add(f.urls)
    return out


# -- keep before expiry ------------------------------------------------------------------------
#: DANDI's lifecycle rule: noncurrent versions expire 30 days after they became noncurrent
DEFAULT_EXPIRE_AFTER = 30 * 86400.0
#: less time than this left for an unkept noncurrent object: a failure state (status, /metrics)
WARN_BEFORE = 7 * 86400.0


def state_time(row: Version) -> Optional[float]:
    """When the archive was in the state a version row records (:meth:`Version.state_time`), in seconds."""
    got = row.state_time()
    return got.timestamp() if got is not None else None


@dataclass
class Expiry:
    """Unkept files of any recorded version pinned only by noncurrent S3 versions, and the time the
    oldest of them has left before the archive's noncurrent-version expiry (``expire_after``)."""

    expire_after: float = DEFAULT_EXPIRE_AFTER
    unkept_files: int = 0
    unkept_bytes: int = 0
    oldest_since: Optional[float] = None  # when the oldest became noncurrent (the first state without it)
    version_ids: list[int] = field(default_factory=list)  # the versions holding them (to keep)
    examples: list[str] = field(default_factory=list)

    def time_left(self, now: float) -> Optional[float]:
        return None if self.oldest_since is None else self.expire_after - (now - self.oldest_since)

    def state(self, now: float) -> str:
        left = self.time_left(now)
        return "ok" if left is None or left >= WARN_BEFORE else "failing"

    def to_json(self, now: Optional[float] = None) -> dict:
        import time

        now = time.time() if now is None else now
        left = self.time_left(now)
        return {
            "expire_after": self.expire_after,
            "unkept": {"files": self.unkept_files, "bytes": self.unkept_bytes},
            "oldest_noncurrent_since": None if self.oldest_since is None else iso_z(self.oldest_since),
            "time_left_s": None if left is None else round(left, 1),
            "state": self.state(now),
            "examples": self.examples,
        }


def expiry_of(index: Index, ds: Path, source: str, expire_after: float = DEFAULT_EXPIRE_AFTER) -> Expiry:
    """Every recorded version's unkept files pinned only by noncurrent versions (any state may be pinned:
    ``pin``/``lock`` name drafts by commit), and when the oldest became noncurrent: the archive's date of
    the first recorded state after its version that no longer names that S3 version.

    Reads only what can hold a file not met yet: a version whose file list an earlier one had is
    skipped, and so is a Zarr's dataset at a commit an earlier version pinned (its files were all
    judged there: a file's URLs, read from the Zarr's git-annex branch, are the same whichever
    version names it).  The later states are read only while some pin's noncurrent date is open,
    each Zarr commit once, for the objects still open."""
    from neuromirror.dataset.files import VersionFiles, each_version_file

    out = Expiry(expire_after)
    current = current_objects(index, ds, source)
    if current is None:
        return out
    rows = index.versions(source)
    states = [r for r in rows if r.kind != VersionKind.PUBLISHED] or rows
    seen_filesets: set[object] = set()  # a version whose file list an earlier one had: nothing new in it
    seen_zarrs: set[tuple[str, str]] = set()  # (path, commit) of the Zarrs read: nothing new in them either
    seen_keys: set[str] = set()
    pending: dict[tuple[str, str, str], int] = {}  # (bucket, key, versionId) -> the earliest version id naming it
    for row in rows:
        fs = row.fileset
        if fs is not None and fs in seen_filesets:
            continue
        seen_filesets.add(fs)
        listed = each_version_file(index, ds, row.id, VersionFiles(), seen_zarrs)
        fresh = [f for f in listed if f.key not in seen_keys and current.only_noncurrent(f.urls)]
        if fresh:
            _count_unkept(out, row, fresh, seen_keys, pending)
    _noncurrent_since(index, ds, states, pending, out)
    return out


def _count_unkept(
    out: Expiry, row: Version, fresh: list[Any], seen_keys: set[str], pending: dict[tuple[str, str, str], int]
) -> None:
    """A version's files met for the first time, pinned only by noncurrent versions: those no store keeps are
    counted, and their pinned versions wait in ``pending`` for the date they became noncurrent."""
    by_repo: dict[Path, set[str]] = {}
    for f in fresh:
        by_repo.setdefault(annex_repo(f), set()).add(annex_key(f))
    kept = set().union(*(kept_keys(repo, keys) for repo, keys in by_repo.items()))
    for f in fresh:
        seen_keys.add(annex_key(f))
        if f.key in kept:
            continue
        out.unkept_files += 1
        out.unkept_bytes += f.size or 0
        if len(out.examples) < 3:
            out.examples.append(f"{row.label}: {f.path}")
        if row.id not in out.version_ids:
            out.version_ids.append(row.id)
        for got in filter(None, map(_versioned, f.urls)):
            pending.setdefault(got, row.id)


def _noncurrent_since(
    index: Index, ds: Path, states: list[Version], pending: dict[tuple[str, str, str], int], out: Expiry
) -> None:
    """The first later state without each ``pending`` pinned version: when it became noncurrent (at the latest)."""
    wanted = {(t[0], t[1]) for t in pending}
    zarrs: dict[tuple[str, str], set[tuple[str, str, str]]] = {}  # (path, commit) -> the open objects it names
    for s in states:
        if not pending:
            break
        if not any(s.id > vid for vid in pending.values()):
            continue
        objs = _named_in(index, ds, s, wanted, zarrs)
        when = state_time(s)
        for t in [t for t, vid in pending.items() if s.id > vid]:
            if t not in objs:
                del pending[t]
                if when is not None:
                    out.oldest_since = when if out.oldest_since is None else min(out.oldest_since, when)


def _named(urls: Iterable[str], wanted: set[tuple[str, str]]) -> Iterator[tuple[str, str, str]]:
    """The versioned objects of ``urls`` whose bucket and key are ``wanted``."""
    for u in urls:
        got = _versioned(u)
        if got is not None and (got[0], got[1]) in wanted:
            yield got


def _named_in(
    index: Index,
    ds: Path,
    s: Version,
    wanted: set[tuple[str, str]],
    zarrs: dict[tuple[str, str], set[tuple[str, str, str]]],
) -> set[tuple[str, str, str]]:
    """The wanted objects the state ``s`` names, a Zarr's dataset read once per commit (``zarrs``)."""
    from neuromirror.dataset.files import VersionFiles, subdataset_files

    objs: set[tuple[str, str, str]] = set()
    for f in index.version_files(s.id):
        if f.checksum_kind == SUBDATASET:
            where = (f.path, f.checksum or "")
            if where not in zarrs:
                files = subdataset_files(ds / f.path, f.checksum or "", f.path + "/", VersionFiles())
                zarrs[where] = {t for z in files for t in _named(z.urls, wanted)}
            objs |= zarrs[where]
        elif f.key and f.checksum_kind != GIT:
            objs.update(_named(f.urls, wanted))
    return objs

"""Records that cross module boundaries.

A *source* (``neuromirror.sources.*``) knows one archive and describes what it
holds as :class:`Snapshot` objects made of :class:`AnnexEntry` (content stays
remote, registered by key + URLs) and :class:`GitEntry` (small files committed
to git).  The *sync* turns snapshots into commits through the *annex writer*,
which knows git-annex but nothing of archives, and records them in the
*index*.  Keeping these records plain dataclasses lets each side be tested
and swapped on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Protocol, Sequence, Union

from neuromirror.errors import NeuromirrorError
from neuromirror.results import Item, Result, Status

#: checksum kinds recorded per file in the index
SHA256 = "sha256"  # SHA256E key: git-annex verifies every byte
MD5 = "md5"  # MD5E key (S3 single-part ETag): verified on get
VERIFY_ON_GET = "verify-on-get"  # VURL key: checksum learned on first download
MPETAG = "s3-multipart-etag"  # XMPETAG key (S3 multipart ETag + part size): verified on get by the backend
GIT = "git"  # stored in git itself
SUBDATASET = "subdataset"  # a nested dataset (gitlink); the index's checksum is its commit
#: how a file list names a file stored in git: GIT-SHA256-s<size>--<sha256> of its bytes
GIT_PREFIX = "GIT-SHA256"


@dataclass(frozen=True, slots=True)
class AnnexEntry:
    """A file whose content stays at the archive: a git-annex key plus URLs."""

    path: str
    key: str
    size: Optional[int]
    urls: tuple[str, ...]
    checksum_kind: str = SHA256
    checksum: Optional[str] = None
    #: the archive's own id for the thing behind the file (asset id, S3 key@version, cutout)
    remote_id: Optional[str] = None

    @property
    def identity(self) -> str:
        """What must differ for the file to count as changed."""
        return self.key + "\n" + "\n".join(self.urls)

    def __reduce__(self) -> tuple[Any, ...]:
        # change sets of 10^5 entries are pickled to spools: the dataclass default asks fields() twice per record
        return (
            AnnexEntry,
            (self.path, self.key, self.size, self.urls, self.checksum_kind, self.checksum, self.remote_id),
        )


class ContentMismatch(NeuromirrorError, RuntimeError):
    """Downloaded bytes do not match the checksum the archive gave."""


@dataclass(frozen=True, slots=True)
class GitEntry:
    """A small file committed to git (metadata, sidecar JSON, README...).

    Either ``content`` is given, or ``sha256`` + ``loader``: the bytes are then
    fetched only if the file must be written, and checked against ``sha256``.
    ``loader`` must be picklable (a module-level function or a partial of one).
    """

    path: str
    content: Optional[bytes] = None
    remote_id: Optional[str] = None
    sha256: Optional[str] = None
    length: Optional[int] = None
    loader: Optional[Callable[[], bytes]] = None
    #: the archive's URLs that serve exactly these bytes (a DANDI asset's pinned S3 URL): registered for the
    #: bytes' ``SHA256-s<size>--<sha256>`` key on the git-annex branch, so ``urls`` names one for a file in git
    urls: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (GitEntry, (self.path, self.content, self.remote_id, self.sha256, self.length, self.loader, self.urls))

    def read(self) -> bytes:
        if self.content is not None:
            return self.content
        if self.loader is None:
            raise ValueError(f"{self.path}: no content and no loader")
        data = self.loader()
        if self.sha256 and hashlib.sha256(data).hexdigest() != self.sha256.lower():
            raise ContentMismatch(f"{self.path}: downloaded bytes do not match the archive's sha256")
        return data

    @property
    def checksum(self) -> str:
        if self.sha256:
            return self.sha256.lower()
        return hashlib.sha256(self.read()).hexdigest()

    @property
    def checksum_kind(self) -> str:
        return GIT

    @property
    def size(self) -> int:
        if self.length is not None:
            return self.length
        return len(self.read())

    @property
    def key(self) -> None:
        return None

    @property
    def identity(self) -> str:
        return "git:" + self.checksum


@dataclass(frozen=True, slots=True)
class SubdatasetEntry:
    """A nested DataLad dataset at ``path``, pinned at ``commit`` (a gitlink + .gitmodules entry).

    The source has already written the subdataset itself (a DANDI Zarr asset is
    one); the writer records only where it is and which commit the version means.
    ``url`` goes to .gitmodules and should be relative (``./<path>``) so that it
    resolves against a clone's origin.
    """

    path: str
    commit: str
    url: str
    datalad_id: Optional[str] = None

    @property
    def key(self) -> None:
        return None

    @property
    def size(self) -> None:
        return None

    @property
    def urls(self) -> tuple[str, ...]:
        return ()

    @property
    def checksum_kind(self) -> str:
        return SUBDATASET

    @property
    def checksum(self) -> str:
        return self.commit

    @property
    def remote_id(self) -> None:
        return None

    @property
    def identity(self) -> str:
        return "subdataset:" + self.commit


Entry = Union[AnnexEntry, GitEntry, SubdatasetEntry]


@dataclass(frozen=True, slots=True)
class Refusal:
    """An item the archive offered that the mirror will not write, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Pending:
    """An item that cannot be mirrored yet (no sha256 yet, Zarr not supported...)."""

    path: str
    reason: str
    remote_id: Optional[str] = None


class VersionKind(str, Enum):
    """What a recorded state of a source is: the archive's answer to "will it change?".

    A ``str`` as well, so that the index stores it, JSON prints it and older code comparing it to
    ``"published"`` still holds; read it as ``VersionKind.PUBLISHED`` in new code."""

    PUBLISHED = "published"  # tagged, immutable upstream (a DANDI version)
    DRAFT = "draft"  # the archive's changing state, recorded each time it changed
    SNAPSHOT = "snapshot"  # a state of a bucket or volume the mirror dated and tagged (AIND, BOSS)

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:  # f"{kind}" is "draft", as str() (Python 3.11 gives the name)
        return format(str(self.value), spec)

    @property
    def changes(self) -> bool:
        """Whether the archive may still change what this kind of state names (a draft): it is read at a commit."""
        return self is VersionKind.DRAFT


@dataclass
class Snapshot:
    """One complete state of a remote dataset that should become a commit.

    ``entries`` is the *whole* tree of that state, streamed; the sync diffs it
    against the previous commit so that only changes reach git.  Sources call
    ``refuse`` / ``pending`` for items they skip, so that the run's report and
    the index say why.
    """

    label: str  # version label: "0.230629.1955", "draft", "2026-11-21T10-00-00Z"
    kind: VersionKind  # published (tagged, immutable upstream), draft, snapshot (tagged)
    entries: Iterable[Entry]
    date: datetime  # commit date (draft modified, version created, newest LastModified)
    message: str  # first line of the commit message
    tag: Optional[str] = None
    tag_message: Optional[str] = None
    remote_modified: Optional[str] = None
    doi: Optional[str] = None
    citation: Optional[str] = None
    meta: dict[str, Any] = field(default_factory=dict)  # extra JSON for the index (AIND fields...)
    refused: list[Refusal] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # told to the user in the sync report
    #: items the archive never answered for (after retries): held at their last state, the sync fails
    #: naming them and the next one tries again (:mod:`neuromirror.sources.dandi.held`)
    unreachable: list[Refusal] = field(default_factory=list)
    #: set by the time the first entry is yielded, when the entries are changes over the state at HEAD (a
    #: DANDI draft read from its changes): these paths are the snapshot's to name (one it yields no entry
    #: for is removed), every other path of HEAD's state is kept as recorded; None: the entries are the whole tree
    over_head: Optional[frozenset[str]] = None


@dataclass(frozen=True, slots=True)
class VersionFile:
    """A file of a version: what the index records of it (a version's file rows, the last synced state
    a source reuses) and what the dataset's tree says of it (:func:`neuromirror.annex.tree.iter_version`).

    ``checksum`` is the key's checksum for an annexed file, the sha256 of the bytes for a file in
    git (``checksum_kind`` ``git``, ``key`` None), the pinned commit for a subdataset (``subdataset``).
    Read from git, it also names the repository whose tree and git-annex branch hold it (``repo``: a
    Zarr's files are in the Zarr's dataset) and the file's blob there (``blob``).  Spooled as a
    tuple of the first seven fields (``VersionFile(*t)``).
    """

    path: str
    key: Optional[str]
    size: Optional[int]
    checksum_kind: str
    checksum: Optional[str]
    urls: tuple[str, ...] = ()
    remote_id: Optional[str] = None
    repo: Optional[Path] = None
    blob: Optional[str] = None

    def __repr__(self) -> str:
        what = self.key or f"{self.checksum_kind}:{(self.checksum or '')[:12]}"
        return f"<VersionFile {self.path} {self.size if self.size is not None else '?'} bytes {what}>"

    @property
    def identity(self) -> str:
        """What must differ for the file to count as changed (the sync's diff)."""
        if self.checksum_kind == GIT:
            return "git:" + (self.checksum or "")
        if self.checksum_kind == SUBDATASET:
            return "subdataset:" + (self.checksum or "")
        return (self.key or "") + "\n" + "\n".join(self.urls)

    @property
    def ident(self) -> str:
        """What a file list (a lock's digest) records for the file: its key, ``GIT-SHA256-s<size>--<sha256>``
        for a file in git, ``SUBDATASET--<commit>`` for a subdataset."""
        if self.key:
            return self.key
        if self.checksum_kind == SUBDATASET:
            return f"SUBDATASET--{self.checksum}"
        return f"{GIT_PREFIX}-s{self.size}--{self.checksum}"

    @property
    def in_git(self) -> bool:
        return self.key is None and self.checksum_kind != SUBDATASET

    @property
    def is_subdataset(self) -> bool:
        return self.checksum_kind == SUBDATASET


#: what the index stores of a file: an entry a source produced, or a file a version already recorded
FileRow = Union[Entry, VersionFile]


class SourceState(Protocol):
    """What a source may ask of the mirror's memory (backed by the index)."""

    def labels(self) -> set[str]:
        """Version labels already recorded (published versions are not redone)."""

    def last_remote_modified(self, label: str) -> Optional[str]:
        """The remote modification stamp recorded with the last sync of ``label``."""

    def recorded_meta(self) -> dict[str, Any]:
        """The meta the last synced state was recorded with (an AIND asset's bucket and prefix); {} if none."""

    def previous(self, path: str) -> Optional[VersionFile]:
        """The file at ``path`` in the last synced state, if any."""

    def previous_files(self) -> Iterator[VersionFile]:
        """All files of the last synced state."""

    def head_files(self) -> Optional[dict[str, VersionFile]]:
        """HEAD's files by path, when the state may take a snapshot made as changes over HEAD
        (``Snapshot.over_head``); None where it may not (a Dask worker's journal, verify's archive view):
        the source then lists the version whole."""

    def cache_get(self, namespace: str, key: str) -> Optional[str]:
        """A value cached forever (e.g. a blob's S3 versionId)."""

    def cache_put(self, namespace: str, key: str, value: str) -> None: ...


class ContentSink(Protocol):
    """Where a source hands bytes it read anyway (a BOSS chunk it hashed), to be kept by the mirror.

    The engine offers one as ``state.content_sink`` when the sync has a store; without a store the
    state has none (``None``) and a source does no extra work. ``key`` names exactly ``data`` (its
    SHA256 the source computed from these bytes); ``put`` may be called from several threads.
    """

    def put(self, key: str, data: bytes) -> None: ...


def sync_item(source: str, outcome: str, error: Optional[str], refused: Sequence[Refusal], summary: str) -> Item:
    """A source synced as one result item: ok: new versions; notneeded: nothing new; impossible: synced, but
    items refused; error: failed (``Mirror.sync``'s items and ``Mirror.sync_source``'s are the same)."""
    if outcome == "failed":
        return Item(Status.ERROR, source, error or "failed")
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        return Item(Status.IMPOSSIBLE, source, f"refused {refused[0].path!r}: {refused[0].reason}{more}")
    return Item(Status.NOTNEEDED if outcome == "unchanged" else Status.OK, source, summary)


def sync_summary(outcome: str, labels: Sequence[str], added: int, removed: int, changed: int) -> str:
    """``2 new version(s) (0.230629.1955, draft): 3 added, 0 removed, 1 changed``, or ``unchanged``."""
    if outcome == "unchanged":
        return "unchanged"
    return f"{len(labels)} new version(s) ({', '.join(labels)}): {added} added, {removed} removed, {changed} changed"


@dataclass
class SyncReport(Result):
    """What one sync of one source did; printed and recorded as the run.  A result of one item
    (:func:`sync_item`), as ``Mirror.sync_source`` returns it."""

    source: str
    dataset: str
    outcome: str = "ok"  # ok | unchanged | failed
    versions: list[dict[str, Any]] = field(default_factory=list)  # {label, commit, tag, added, removed, changed}
    added: int = 0
    removed: int = 0
    changed: int = 0
    refused: list[Refusal] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: Optional[str] = None
    #: seconds per phase (listing+diff, pinning, registration+commit, index, total)
    timings: dict[str, Any] = field(default_factory=dict)
    #: on a Dask cluster: each task run for this source {task, worker, seconds, outcome}
    tasks: list[dict[str, Any]] = field(default_factory=list)
    #: items held at their last state: the archive never answered for them (see :class:`Snapshot`)
    unreachable: list[Refusal] = field(default_factory=list)
    #: per archive endpoint: requests, throttled answers, retries, the in-flight limit reached
    #: (:func:`neuromirror.network.report.since`)
    network: list[dict[str, Any]] = field(default_factory=list)

    def items(self) -> list[Item]:
        labels = [str(v.get("label")) for v in self.versions]
        summary = sync_summary(self.outcome, labels, self.added, self.removed, self.changed)
        return [sync_item(self.source, self.outcome, self.error, self.refused, summary)]

    def to_json(self) -> dict[str, Any]:
        extra = {"tasks": self.tasks} if self.tasks else {}
        return {
            "source": self.source,
            "dataset": self.dataset,
            "outcome": self.outcome,
            "versions": self.versions,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "refused": [{"path": r.path, "reason": r.reason} for r in self.refused],
            "pending": [{"path": p.path, "reason": p.reason} for p in self.pending],
            "warnings": self.warnings,
            "unreachable": [{"path": r.path, "reason": r.reason} for r in self.unreachable],
            "network": self.network,
            "error": self.error,
            "timings": self.timings,
            **extra,
        }


ProgressCallback = Callable[[str, int, Optional[int]], None]
"""progress(stage, done, total) — sources and the writer report long work here."""

Meta = Mapping[str, object]


def http_urls(urls: Sequence[str]) -> list[str]:
    """The URLs a plain HTTP client fetches (a special remote's ``neuromirror+...`` URLs are not among them)."""
    return [u for u in urls if u.startswith(("http://", "https://"))]


@dataclass(frozen=True)
class FileNote:
    """A file a run skipped or failed, and why: keep's ``skipped``/``failed``, restore's ``differs``,
    ``failed``, ``skipped`` and ``displaced`` (which also name the object's key in the archive's layout)."""

    path: str
    key: Optional[str]
    size: Optional[int]
    why: str
    #: restore: the object's key in the archive's layout ("" when it has none); None: not a restore's note
    archive_key: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        where = {} if self.archive_key is None else {"archive_key": self.archive_key}
        return {"path": self.path, **where, "key": self.key, "size": self.size, "why": self.why}

"""The archive check of ``verify --archive``: the source lists the version at the archive again.

The source module is the one ``sync`` uses, run against a read-only state
that holds exactly the recorded version: a published version must list
exactly the dataset's paths and keys, and its URLs must be registered; the
latest draft/snapshot is compared with the archive's current state (a
difference then means the archive moved on since the last sync).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator, Iterator, Optional

from neuromirror.index.rows import Version
from neuromirror.records import SUBDATASET, Entry, VersionFile, VersionKind
from neuromirror.util.text import one_line
from neuromirror.verify.report import VerifyReport

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.engine.zarr.nested import NestedZarrCheck
    from neuromirror.index.db import Index
    from neuromirror.sources.base import Source


class _ArchiveState:
    """A read-only SourceState that makes a source list exactly one recorded version again."""

    reads_only = True

    def __init__(self, index: Index, source: str, row: Version):
        self.index = index
        self._labels = {v.label for v in index.versions(source)} - {row.label}
        self._files = {f.path: f for f in index.version_files(row.id)}
        self._cache: dict[tuple[str, str], str] = {}

    def labels(self) -> set[str]:
        return set(self._labels)

    def last_remote_modified(self, label: str) -> Optional[str]:
        return None  # never "unchanged": always list

    def recorded_meta(self) -> dict[str, Any]:
        return {}  # no state at HEAD: the listing is checked as the archive gives it

    def previous(self, path: str) -> Optional[VersionFile]:
        return self._files.get(path)

    def previous_files(self) -> Iterator[VersionFile]:
        return iter(self._files.values())

    def head_files(self) -> Optional[dict[str, VersionFile]]:
        return None  # the archive is checked whole, never as changes over HEAD

    def cache_get(self, namespace: str, key: str) -> Optional[str]:
        return self._cache.get((namespace, key)) or self.index.cache_get(namespace, key)

    def cache_put(self, namespace: str, key: str, value: str) -> None:
        self._cache[(namespace, key)] = value  # verify writes nothing

    def nested_zarr_run(
        self, owner: str, snap: object, parent: object, executor: object, describe: str
    ) -> NestedZarrCheck:
        """Nested stores (AIND's ``*.zarr/``) digested and named by the mirror's commit of that state."""
        from neuromirror.engine.zarr.nested import NestedZarrCheck

        return NestedZarrCheck(self)


def check_archive(
    report: VerifyReport,
    mirror: Datasets,
    source: str,
    row: Version,
    tree: dict[str, VersionFile],
    urls_of: dict[str, list[str]],
    options: dict,
) -> None:
    """List ``row``'s version at the archive again and compare it with the dataset's ``tree`` into ``report``."""
    from neuromirror.sources import expand
    from neuromirror.spec import parse_spec

    try:
        found = list(expand(parse_spec(source, allow_version=False), options))
    except Exception as exc:  # an archive we cannot reach is a mismatch we must report, not a crash
        report.add("archive", None, f"cannot reach the archive: {one_line(exc, 300)}")
        return
    if len(found) != 1:
        report.notes.append(f"the archive check needs exactly one source for {source}, got {len(found)}")
        return
    src = found[0]
    current = row.kind != VersionKind.PUBLISHED
    if current:
        head = mirror.index.head_version(source)
        if head is not None and head.id != row.id:
            report.notes.append(
                f"{row.label} is an older {row.kind} state: the archive serves only its "
                "current state, so it was not compared with the archive"
            )
            return
    state = _ArchiveState(mirror.index, source, row)
    # the source code is the sync's: hold the source's lock so no sync runs alongside (a DANDI Zarr whose
    # state is new may be listed and committed to its own dataset, as the next sync would do anyway)
    with mirror.lock(source, wait=True):
        _compare_archive(report, src, state, row, tree, urls_of, current)


def _compare_archive(
    report: VerifyReport,
    src: Source,
    state: _ArchiveState,
    row: Version,
    tree: dict[str, VersionFile],
    urls_of: dict[str, list[str]],
    current: bool,
) -> None:
    gen = src.snapshots(state, None)
    try:
        snap = None
        for s in gen:
            if (s.kind != VersionKind.PUBLISHED) if current else (s.label == row.label):
                snap = s
                break
        if snap is None:
            if current:
                # the source compared the archive with this state (our SourceState's previous files) and
                # found nothing new: the archive agrees
                report.archive_checked = True
                report.notes.append("the source found the archive unchanged since this state")
            else:
                report.add("archive", None, f"the archive no longer lists version {row.label}")
            return
        report.archive_checked = True
        why = "the archive changed since the last sync (run: neuromirror sync)" if current else ""
        seen: set[str] = set()
        for e in snap.entries:
            seen.add(e.path)
            t = tree.get(e.path)
            if t is None:
                report.add("archive", e.path, "at the archive, not in the dataset" + _then(why))
                continue
            _compare_entry(report, e, t, urls_of, why)
        skipped = {x.path for x in snap.refused} | {x.path for x in snap.pending}
        for path in sorted(set(tree) - seen - skipped):
            report.add("archive", path, "in the dataset, not at the archive" + _then(why), tree[path].key)
    finally:
        if isinstance(gen, Generator):  # the sources' snapshots are generators: end the listing now
            gen.close()


def _compare_entry(report: VerifyReport, e: Entry, t: VersionFile, urls_of: dict[str, list[str]], why: str) -> None:
    """One path the archive lists and the dataset has: the same subdataset commit, key (its URLs registered)
    or git-kept bytes; ``why`` ends what differs in the current state (the archive moved on)."""
    if getattr(e, "checksum_kind", None) == SUBDATASET:
        _compare_pinned(report, e, t, why)
    elif e.key is not None:
        _compare_key(report, e, t, urls_of, why)
    elif not t.in_git:
        report.add("archive", e.path, f"the archive has a small file kept in git, the dataset has key {t.key}")
    elif e.checksum != t.checksum:
        report.add(
            "archive",
            e.path,
            f"the archive's bytes (sha256 {e.checksum[:16]}…) differ from the "
            f"dataset's ({(t.checksum or '')[:16]}…)" + _then(why),
        )


def _then(why: str) -> str:
    """The end of a difference's message: why it may be the archive's move, when the state is the current one."""
    return f"; {why}" if why else ""


def _compare_pinned(report: VerifyReport, e: Entry, t: VersionFile, why: str) -> None:
    """A subdataset (a Zarr): the dataset pins the commit of the archive's state."""
    pinned = t.checksum if t.is_subdataset else None
    if pinned != e.checksum:
        report.add(
            "archive",
            e.path,
            f"the archive's state is subdataset commit {str(e.checksum)[:12]}, the "
            f"dataset pins {(pinned or 'no subdataset')[:12]}" + _then(why),
        )


def _compare_key(report: VerifyReport, e: Entry, t: VersionFile, urls_of: dict[str, list[str]], why: str) -> None:
    """An annexed file: the archive's key, and each of its URLs registered for the key."""
    if t.key != e.key:
        report.add(
            "archive",
            e.path,
            f"the archive gives key {e.key}, the dataset has {t.key or 'the file in git'}" + _then(why),
            t.key,
        )
        return
    registered = set(urls_of.get(e.key or "", ()))
    for u in e.urls:
        if u not in registered:
            report.add("archive", e.path, f"the archive's URL {u} is not registered for its key", e.key, u)

"""What a source may ask of the mirror's memory during a sync, backed by the index.

``IndexState`` is the engine's :class:`~neuromirror.records.SourceState`: the files the last
version recorded (point queries first, the whole state only when many are asked), recorded labels,
the forever-cache, and the hook through which a source's Zarr assets become datasets of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

from neuromirror.index.db import Index
from neuromirror.index.rows import Version
from neuromirror.records import (
    ContentSink,
    Snapshot,
    VersionFile,
)

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from neuromirror.engine.zarr.nested import NestedZarrRun
    from neuromirror.engine.zarr.run import ZarrRun
    from neuromirror.sources.dandi.zarr_assets import ZarrOwner


#: IndexState.previous answers this many paths by point queries before loading the whole state
POINT_LOOKUPS = 2000


@dataclass(frozen=True)
class Head:
    """The state a sync compares with: the version recorded at the dataset's HEAD, or the one this sync
    just recorded.  A sync on a cluster journals its index writes, so its new state has no row id yet,
    only its place in the journal (``journal``)."""

    id: Optional[int]
    commit: str
    meta: Optional[str] = None  # the row's meta, JSON
    journal: Optional[int] = None

    @classmethod
    def of(cls, row: Version) -> Head:
        return cls(row.id, row.commit, row.meta)


class IndexState:
    """The source's memory, as the index holds it for the dataset's HEAD."""

    def __init__(self, index: Index, source: str, head: Optional[str]):
        self.index = index
        self.source = source
        row = index.version_by_commit(source, head) if head else None
        self.head_version: Optional[Head] = Head.of(row) if row else None
        self._prev: Optional[dict[str, VersionFile]] = None
        self._lookups = 0
        self._labels = {v.label for v in index.versions(source)}
        #: where a source keeps bytes it read anyway (BOSS chunks): set by the engine when the
        #: sync has a store, else None (and the source does no extra work)
        self.content_sink: Optional[ContentSink] = None
        #: where the Zarr states a sync records get their manifests (DANDI's format): set by the engine
        self.manifest_root: Optional[Path] = None
        #: (zarr id, checksum) -> does that held Zarr state still need its manifest: set with manifest_root
        self.zarr_manifest_wanted: Optional[Callable[[str, str], bool]] = None

    def now_at(self, version: Head) -> None:
        """The sync recorded ``version``: it is the state from now on (what was loaded is the one before)."""
        self.head_version = version
        self._prev = None

    def labels(self) -> set[str]:
        return set(self._labels)

    def recorded_meta(self) -> dict[str, Any]:
        """The meta the state at HEAD was recorded with; {} when there is none or it is not JSON."""
        raw = self.head_version.meta if self.head_version else None
        try:
            meta = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return meta if isinstance(meta, dict) else {}

    def last_remote_modified(self, label: str) -> Optional[str]:
        v = self.index.latest_version(self.source, label)
        return v.remote_modified if v else None

    def _head_id(self) -> Optional[int]:
        """The index row of the state at HEAD (None: no state, or one only this run's journal holds)."""
        return self.head_version.id if self.head_version else None

    def _load(self) -> dict[str, VersionFile]:
        if self._prev is None:
            self._prev = {}
            if (vid := self._head_id()) is not None:
                for f in self.index.version_files(vid):
                    self._prev[f.path] = f
        return self._prev

    def head_files(self) -> Optional[dict[str, VersionFile]]:
        """HEAD's files by path, read once and kept for the sync; None when HEAD's state has no index row
        (none recorded, or only this run's journal).  For a snapshot made as changes over HEAD
        (``Snapshot.over_head``): its source checks the state with them, the diff compares with them, and
        the version's rows carry the rest of HEAD's forward (:func:`~neuromirror.index.version_rows.carry_entries`)."""
        return self._load() if self._head_id() is not None else None

    def previous(self, path: str) -> Optional[VersionFile]:
        # a few lookups (a dandiset's text files) are point queries; many load the whole state
        # once (10^5 files: ~1 s and ~40 MB, which a handful of lookups should not cost)
        if self._prev is None and self._lookups < POINT_LOOKUPS and (vid := self._head_id()) is not None:
            self._lookups += 1
            return self.index.version_file(vid, self.source, path)
        return self._load().get(path)

    def previous_many(self, paths: Iterable[str]) -> dict[str, VersionFile]:
        """The files at ``paths`` in the last synced state (those it has), one query per
        ``index.MANY_PATHS`` paths.

        For a source that looks up every path of a large listing a page at a time (a
        DANDI resync): it holds a page of files, where :meth:`previous` would load the
        whole state (10^5 files with their URLs: ~100 MB).
        """
        wanted = list(paths)
        if self._prev is not None:
            return {p: f for p in wanted if (f := self._prev.get(p)) is not None}
        if (vid := self._head_id()) is None or not wanted:
            return {}
        return self.index.version_files_at(vid, self.source, wanted)

    def previous_files(self) -> Iterator[VersionFile]:
        if self._prev is not None:
            yield from self._prev.values()
        elif (vid := self._head_id()) is not None:
            yield from self.index.version_files(vid)

    def cache_get(self, namespace: str, key: str) -> Optional[str]:
        return self.index.cache_get(namespace, key)

    def cache_put(self, namespace: str, key: str, value: str) -> None:
        self.index.cache_put(namespace, key, value)

    def cache_get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        """The cached values of many keys in a few queries (a page of blobs, say)."""
        return self.index.cache_get_many(namespace, keys)

    def cache_put_many(self, namespace: str, items: Iterable[tuple[str, str]]) -> None:
        """Many values in one transaction: one commit per page instead of one per blob."""
        self.index.cache_put_many(namespace, items)

    def zarr_run(self, source: ZarrOwner, snap: Snapshot, parent: Path, executor: Executor) -> ZarrRun:
        """A snapshot's Zarr assets written as datasets of their own inside ``parent`` (:mod:`.zarr`)."""
        from neuromirror.engine.zarr import run

        return run.ZarrRun(source, snap, self, parent, executor)

    def nested_zarr_run(
        self, owner: str, snap: Snapshot, parent: Path, executor: Executor, describe: str
    ) -> NestedZarrRun:
        """A snapshot's nested stores (AIND's ``*.zarr/``) written as datasets inside ``parent``
        (:mod:`.zarr.nested`)."""
        from neuromirror.engine.zarr.nested import NestedZarrRun

        return NestedZarrRun(owner, snap, self, parent, executor, describe)

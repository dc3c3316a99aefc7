"""Which stores hold each key, as the location logs of one repository say, read once for a run of versions.

``keep`` records and counts a version's keys on its dataset's git-annex branch, and a dataset's
versions come one after another and share most of their keys (2-3 versions of a dandiset: each
key's log read 2-3 times per store, and once more per store for the counts).  This reads each
key's log once per repository and branch state, for every store at once; a write to the branch
(a new head) or another repository starts afresh, so nothing stale is ever answered and only one
repository's keys are held at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from neuromirror.annex.blobmap import BlobMap
from neuromirror.annex.logs import BRANCH
from neuromirror.store.record import log_blobs, present_stores
from neuromirror.util import gitutil

NONE: frozenset[str] = frozenset()
#: keys whose stores are held at most: past it those held are let go (a version of 10^6 Zarr chunks, counted
#: a batch at a time, holds a batch's; the branch's listing, 32 bytes a log, is kept for the next batch)
HELD = 100_000


class Locations:
    def __init__(self) -> None:
        self._at: tuple[Optional[Path], Optional[str]] = (None, None)
        self._states: dict[str, frozenset[str]] = {}
        self._blobs: Optional[BlobMap] = None  # the branch's log paths -> blob ids, listed once

    def of(self, repo: Path, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        """key -> the store UUIDs the branch of ``repo`` says have it (empty: none), for ``keys``."""
        wanted = list(dict.fromkeys(keys))
        ref = gitutil.branch_sha(repo, BRANCH)
        if (repo, ref) != self._at:
            self._at, self._states, self._blobs = (repo, ref), {}, None
        new = [k for k in wanted if k not in self._states]
        if new and len(self._states) + len(new) > HELD:  # a version counted in batches: its keys not all held
            self._states, new = {}, wanted
        if new and ref is not None:
            if self._blobs is None:
                self._blobs = log_blobs(repo, ref)
            got = present_stores(repo, new, ref, self._blobs)
            self._states.update((k, got.get(k, NONE)) for k in new)
        return {k: self._states.get(k, NONE) for k in wanted}

    def head(self, repo: Path) -> Optional[str]:
        """The branch commit the answers for ``repo`` were read at (None: not read, or no branch)."""
        return self._at[1] if self._at[0] == repo else None

    def all_in(self, repo: Path, uuid: str, keys: Iterable[str]) -> bool:
        """Does the branch of ``repo`` record every one of ``keys`` in the store ``uuid``?"""
        return all(uuid in there for there in self.of(repo, keys).values())

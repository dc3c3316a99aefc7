"""The keys a keep run holds: those it has met, for 10^6 keys in ~12 bytes each; a version's, until recorded.

A run remembers, per source, which keys it put into the store and which it found there, so that a key
its versions share is looked at once.  As sets of the keys' strings those cost ~170 bytes a key (the
string kept alive by the set): 170 MB for one Zarr of 10^6 chunks.  Here, past 20,000 keys, each key's
fingerprint, sorted (:mod:`neuromirror.util.memory.fingerprints`); the keys since the last sort stay a set.  Membership only: the keys
cannot be listed back (nobody asks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

from neuromirror.dataset.files import annex_key, annex_repo
from neuromirror.records import VersionFile
from neuromirror.util.memory import fingerprints

if TYPE_CHECKING:
    import numpy as np

#: keys held as a set until this many (numpy not imported below it)
COMPACT_MIN = 20_000


class KeySet:
    """``add`` and ``in``; nothing is ever taken out."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._recent: set[str] = set()
        self._sorted: Optional[tuple[np.ndarray, ...]] = None  # string hash, CRC-32
        for key in keys:
            self.add(key)

    def add(self, key: str) -> None:
        self._recent.add(key)
        if len(self._recent) >= COMPACT_MIN:
            self._compact()

    def __contains__(self, key: object) -> bool:
        if key in self._recent:
            return True
        if self._sorted is None or not isinstance(key, str):
            return False
        h, c = self._sorted
        return fingerprints.has(h, c, key)

    def _compact(self) -> None:
        import numpy as np

        h, c = fingerprints.of(self._recent)
        if self._sorted is not None:
            h, c = np.concatenate((self._sorted[0], h)), np.concatenate((self._sorted[1], c))
        self._sorted = fingerprints.ordered(h, c)
        self._recent = set()


@dataclass
class Held:
    """The keys of one version the store holds, by repository, until they are recorded: a version of more
    than :data:`~neuromirror.keep.versions.FLUSH` of them is recorded as it goes, so that a run holds a batch of
    keys' names, not the version's (10^6 Zarr chunks held ~150 MB of names until the end)."""

    keys: dict[Path, list[str]] = field(default_factory=dict)
    count: int = 0
    repos: set[Path] = field(default_factory=set)  # every repository given a key (the mark's branch heads)
    unchecked: bool = False  # a key recorded already is one another process put in the store meanwhile

    def add(self, f: VersionFile) -> None:
        repo = annex_repo(f)
        if repo not in self.keys:
            self.keys[repo] = []
            self.repos.add(repo)
        self.keys[repo].append(annex_key(f))
        self.count += 1

    def each(self) -> Iterator[str]:
        return (k for ks in self.keys.values() for k in ks)

"""Which blob each log of a git-annex branch is, for a branch of 10^6 keys, in 32 bytes a log.

Reading a key's log by its blob id spares git a search of the branch's 4,096-entry trees per key
(~0.3 ms a key, a ``ref:abc/def/KEY.log`` spec), so the readers list the branch once (``git ls-tree
-r``) and look each log up in the listing.  Held as a dict of path -> id, that listing cost ~250 bytes a
log: 250 MB for one Zarr of 10^6 chunks, once per reader at the same time (its URL logs for keep's list
of files, its location logs for the recording and the counts).  Here: each path's fingerprint, sorted,
and the ids in the same order (:mod:`neuromirror.util.memory.fingerprints`); a lookup is a binary search (~2 us
a path where the dict took ~0.5).  A listing of fewer than 20,000 logs stays a dict.
"""

from __future__ import annotations

import itertools
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Sequence

from neuromirror.util import gitutil
from neuromirror.util.memory import fingerprints
from neuromirror.util.memory.fingerprints import crc32_of

if TYPE_CHECKING:
    import numpy as np

#: below this many logs the listing stays a dict (numpy is not even imported: a sync reading a Zarr of
#: 5,000 objects runs as it did); from it on, the arrays
COMPACT_MIN = 20_000
#: the id asked for a path the listing lacks
MISSING = "0" * 40


class BlobMap:
    """path -> blob id (hex) of the logs one listing of a branch found; read only."""

    def __init__(self, small: Optional[dict[str, str]] = None) -> None:
        self._small: Optional[dict[str, str]] = small if small is not None else {}
        self._h: Optional[np.ndarray] = None
        self._c: Optional[np.ndarray] = None
        self._ids: Optional[np.ndarray] = None

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]], compact_min: int = COMPACT_MIN) -> BlobMap:
        """From (path, hex blob id) pairs: a dict while they are fewer than ``compact_min``, else the arrays."""
        small: dict[str, str] = {}
        rest = iter(pairs)
        for path, sha in rest:
            small[path] = sha
            if len(small) >= compact_min:
                out = cls()
                out._compact(itertools.chain(small.items(), rest))
                return out
        return cls(small)

    @classmethod
    def listed(
        cls, repo: Path, ref: str, suffix: str, dirs: Sequence[str] = (), compact_min: int = COMPACT_MIN
    ) -> BlobMap:
        """The blobs whose paths end in ``suffix`` (``.log``, ``.log.web``) on ``ref``, under the top-level
        directories ``dirs`` (default: all); empty when ``ref`` does not name a tree."""
        listed = gitutil.ls_tree(repo, ref, [f"{d}/" for d in dirs])
        return cls.of(
            ((path, sha) for _, typ, sha, path in listed if typ == "blob" and path.endswith(suffix)), compact_min
        )

    @classmethod
    def walked(
        cls, repo: Path, ref: str, suffix: str, dirs: Sequence[str] = (), compact_min: int = COMPACT_MIN
    ) -> BlobMap:
        """As :meth:`listed`, read a tree at a time through one ``cat-file``: ``git ls-tree -r`` holds every
        tree it read to its end (319 MB for a branch of 10^6 keys' logs, 100 MB for a fifth of it); this
        holds ~50 MB in git and a group of directories' subtrees here, at ~2x the time of the whole listing
        (8.5 against 4.4 s at 10^6) and the same for a fifth."""
        return cls.of(_walk(repo, ref, suffix, dirs), compact_min)

    def _compact(self, pairs: Iterable[tuple[str, str]]) -> None:
        import numpy as np

        hashes, crcs, ids = array("q"), array("I"), bytearray()
        for path, sha in pairs:
            hashes.append(hash(path))
            crcs.append(crc32_of(path))
            ids += bytes.fromhex(sha)
        h, c = np.frombuffer(hashes, dtype=np.int64), np.frombuffer(crcs, dtype=np.uint32)
        raw = np.frombuffer(ids, dtype=np.uint8).reshape(-1, 20)  # sorted without a copy of the ids first
        self._small = None
        self._h, self._c, self._ids = fingerprints.ordered(h, c, raw)

    def __len__(self) -> int:
        return len(self._small) if self._small is not None else len(self._h)  # type: ignore[arg-type]

    def specs(self, paths: Iterable[str]) -> list[str]:
        """What ``cat-file`` is asked for each path: its blob id, or an id no object has (git answers
        "missing", as it does for a path the branch lacks)."""
        return [sha or MISSING for sha in self.get_many(paths)]

    def get_many(self, paths: Iterable[str]) -> list[Optional[str]]:
        """Each path's blob id (None: not on the branch), in order: one search for all of them."""
        if self._small is not None:
            return [self._small.get(p) for p in paths]
        assert self._h is not None and self._c is not None and self._ids is not None
        paths = list(paths)
        if not len(self._h):
            return [None] * len(paths)
        at = fingerprints.first(self._h, self._c, paths)
        ids = self._ids[at].tobytes().hex()  # a row of -1 (not found) read and not answered
        return [ids[40 * i : 40 * i + 40] if k >= 0 else None for i, k in enumerate(at.tolist())]


#: top-level directories whose subtrees are asked for at once (~250 each at 10^6 keys)
_WALK_GROUP = 64
#: a whole branch is walked from this many top-level directories (of git-annex's 4,096: ~15,000 keys and more);
#: below, ``ls-tree`` lists it, in a fifth of the time (a Zarr of 1,000 keys: 9 against 40 ms) and a few MB
_WALK_MIN = 4000
_TREE = b"40000"
_GITLINK = b"160000"


def _walk(repo: Path, ref: str, suffix: str, dirs: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(path, blob id) of the blobs under ``ref``'s top-level directories ``dirs`` (all, and the top-level
    blobs, when empty) whose paths end in ``suffix``, tree by tree (nothing when ``ref`` names no tree).  A
    whole branch of fewer than :data:`_WALK_MIN` top-level directories is listed by ``ls-tree`` instead."""
    with gitutil.CatFile(repo, lean=True) as cat:  # status --copies too: 331 MB of git at 10^6 keys, else
        root = cat.get(f"{ref}^{{tree}}")
        if root is None:
            return
        tops, blobs = _top(root, suffix, set(dirs))
        if dirs or len(tops) >= _WALK_MIN:
            yield from blobs
            for at in range(0, len(tops), _WALK_GROUP):
                yield from _below(cat, tops[at : at + _WALK_GROUP], suffix)
            return
    listed = gitutil.ls_tree(repo, ref)
    yield from ((path, sha) for _, typ, sha, path in listed if typ == "blob" and path.endswith(suffix))


def _top(root: bytes, suffix: str, wanted: set[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The root tree's directories to walk (``wanted``, or all) and, reading it whole, its blobs."""
    tops, blobs = [], []
    for path, mode, sha in _entries("", root):
        if mode == _TREE:
            if not wanted or path in wanted:
                tops.append((path, sha))
        elif not wanted and mode != _GITLINK and path.endswith(suffix):
            blobs.append((path, sha))
    return tops, blobs


def _below(cat: gitutil.CatFile, level: list[tuple[str, str]], suffix: str) -> Iterator[tuple[str, str]]:
    """The blobs under the trees ``level`` ((path, id) each), one level of trees asked for at once."""
    while level:
        deeper = []
        for (prefix, _), data in zip(level, cat.get_many(sha for _, sha in level)):
            for path, mode, sha in _entries(f"{prefix}/", data or b""):
                if mode == _TREE:
                    deeper.append((path, sha))
                elif mode != _GITLINK and path.endswith(suffix):
                    yield path, sha
        level = deeper


def _entries(prefix: str, tree: bytes) -> Iterator[tuple[str, bytes, str]]:
    from neuromirror.annex.pack import parse_tree

    for raw, (mode, oid) in parse_tree(tree).items():
        yield prefix + raw.decode("utf-8", "surrogateescape"), mode, oid.hex()


def blob_ids(cat: gitutil.CatFile, ref: str, paths: Sequence[str]) -> list[Optional[str]]:
    """Each path's blob id on ``ref`` (None: not there), reading only the trees on the paths' way, each once.

    Asked ``ref:PATH``, git searches from the root tree for every spec, and a git-annex branch's root has
    4,096 entries: ~0.6 ms a log on a busy host (the two logs of each of 10^5 Zarr chunks: 127 s for the view's
    first listing of their directory).  Here the root is read once, then the directories the paths pass
    through, a level at a time through ``cat`` (the caller's, already open): a few seconds at 10^5, and no
    listing of the rest of the branch (:class:`BlobMap`)."""
    from neuromirror.annex.pack import parse_tree

    out: list[Optional[str]] = [None] * len(paths)
    names: dict[str, list[tuple[int, bytes]]] = {}  # directory -> (index, name) of the paths in it
    children: dict[str, set[str]] = {}  # directory -> its subdirectories on the paths' way
    for i, p in enumerate(paths):
        d, _, name = p.rpartition("/")
        names.setdefault(d, []).append((i, name.encode("utf-8", "surrogateescape")))
        while d and d not in children.setdefault(d.rpartition("/")[0], set()):
            children[d.rpartition("/")[0]].add(d)
            d = d.rpartition("/")[0]
    level = [("", f"{ref}^{{tree}}")]
    while level:
        deeper = []
        for (d, _), data in zip(level, cat.get_many(spec for _, spec in level)):
            entries = parse_tree(data) if data is not None else {}
            for i, leaf in names.get(d, ()):
                e = entries.get(leaf)
                out[i] = e[1].hex() if e is not None and e[0] != _TREE else None
            for sub in children.get(d, ()):
                e = entries.get(sub.rpartition("/")[2].encode("utf-8", "surrogateescape"))
                if e is not None and e[0] == _TREE:
                    deeper.append((sub, e[1].hex()))
        level = deeper
    return out

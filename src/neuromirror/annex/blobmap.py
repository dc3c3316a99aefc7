"""Which blob each log of a git-annex branch is, for a branch of 10^6 keys, in 32 bytes a log.

Reading a key's log by its blob id spares git a search of the branch's 4,096-entry trees per key
(~0.3 ms a key, a ``ref:abc/def/KEY.log`` spec), so the readers list the branch once (``git ls-tree
-r``) and look each log up in the listing.  Held as a dict of path -> id, that listing cost ~250 bytes a
log: 250 MB for one Zarr of 10^6 chunks, once per reader at the same time (its URL logs for keep's list
of files, its location logs for the recording and the counts).  Here: numpy arrays of each path's
96-bit fingerprint (the process's own string hash and a CRC-32 beside it), sorted, and the ids in the
same order; a lookup is a binary search (~1 us a path where the dict took ~0.5).  Never written
anywhere: the string hash is this process's.
"""

from __future__ import annotations

import zlib
from array import array
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from neuromirror.util import gitutil


def _crc(path: str) -> int:
    return zlib.crc32(path.encode("utf-8", "surrogateescape"))


class BlobMap:
    """path -> blob id (hex) of the logs one listing of a branch found; read only."""

    def __init__(self, paths: Iterable[str] = (), ids: bytes = b"") -> None:
        hashes, crcs = array("q"), array("I")
        for p in paths:
            hashes.append(hash(p))
            crcs.append(_crc(p))
        self._set(hashes, crcs, ids)

    def _set(self, hashes: array, crcs: array, ids: bytes) -> None:
        h, c = np.frombuffer(hashes, dtype=np.int64), np.frombuffer(crcs, dtype=np.uint32)
        order = np.lexsort((c, h))
        self._h, self._c = h[order], c[order]
        self._ids = np.frombuffer(ids, dtype=np.uint8).reshape(-1, 20)[order]

    @classmethod
    def listed(cls, repo: Path, ref: str, suffix: str, dirs: Sequence[str] = ()) -> BlobMap:
        """The blobs whose paths end in ``suffix`` (``.log``, ``.log.web``) on ``ref``, under the top-level
        directories ``dirs`` (default: all); empty when ``ref`` does not name a tree."""
        hashes, crcs, ids = array("q"), array("I"), bytearray()
        for _, typ, sha, path in gitutil.ls_tree(repo, ref, [f"{d}/" for d in dirs]):
            if typ == "blob" and path.endswith(suffix):
                hashes.append(hash(path))
                crcs.append(_crc(path))
                ids += bytes.fromhex(sha)
        out = cls.__new__(cls)
        out._set(hashes, crcs, bytes(ids))
        return out

    def __len__(self) -> int:
        return len(self._h)

    def get(self, path: str, default: Optional[str] = None) -> Optional[str]:
        got = self.get_many([path])[0]
        return default if got is None else got

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def __getitem__(self, path: str) -> str:
        got = self.get(path)
        if got is None:
            raise KeyError(path)
        return got

    def get_many(self, paths: Iterable[str]) -> list[Optional[str]]:
        """Each path's blob id (None: not on the branch), in order: one search for all of them."""
        paths = list(paths)
        n = len(self._h)
        if not paths or not n:
            return [None] * len(paths)
        h = np.fromiter((hash(p) for p in paths), dtype=np.int64, count=len(paths))
        c = np.fromiter((_crc(p) for p in paths), dtype=np.uint32, count=len(paths))
        at = np.searchsorted(self._h, h)  # the first of the paths with the same string hash
        clipped = np.minimum(at, n - 1)
        same = self._h[clipped] == h
        found = same & (self._c[clipped] == c)
        where = clipped.tolist()
        for i in np.flatnonzero(same & ~found).tolist():  # the string hash shared (1 in 10^13): the CRC decides
            j = where[i] + 1
            while j < n and self._h[j] == h[i] and not found[i]:
                found[i], where[i] = bool(self._c[j] == c[i]), j
                j += 1
        ids = self._ids[where].tobytes().hex()
        return [ids[40 * i : 40 * i + 40] if ok else None for i, ok in enumerate(found.tolist())]

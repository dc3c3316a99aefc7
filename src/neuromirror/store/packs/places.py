"""Where each key of a packed store lies, for 10^6 keys in ~32 bytes each.

A packed store of one Zarr of 10^6 chunks names 10^6 keys; held as a dict of key -> (pack, offset,
length) and a tuple of keys per pack, the map cost ~300 bytes a key: 300 MB in every process that read
the store (keep into it, verify, the view).  Here, once there are more than 20,000 rows: numpy columns of
each key's fingerprint (:mod:`neuromirror.util.memory.fingerprints`), its pack's id, offset and length, sorted by
fingerprint; the rows since the last sort stay in a dict.  The
keys themselves stay in the store's index files (read again where a pack's keys are wanted by name).

A key may have rows in several packs (a repack killed between writing the new pack and deleting the old):
the live row of the highest pack id answers, whatever was sorted when, so that two readers of the map
never disagree on which pack serves a key.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Iterable, Optional

from neuromirror.util.memory import fingerprints

if TYPE_CHECKING:
    import numpy as np

#: rows kept in the dict until this many (numpy is not imported below it: a small store reads as before)
COMPACT_MIN = 20_000

#: pack id, offset, length
Row = tuple[int, int, int]


class Places:
    """key -> rows (pack id, offset, length); :meth:`drop` forgets a pack's rows at once."""

    def __init__(self, compact_min: Optional[int] = None) -> None:
        self.compact_min = COMPACT_MIN if compact_min is None else compact_min
        self._recent: dict[str, list[Row]] = {}
        self._recent_rows = 0
        self._sorted: Optional[tuple[np.ndarray, ...]] = None  # hash, crc, pack id, offset, length
        self._dead: set[int] = set()

    def add(self, pack_id: int, rows: Iterable[tuple[str, int, int]]) -> None:
        """A pack's (key, offset, length) rows."""
        for key, offset, length in rows:
            self._recent.setdefault(key, []).append((pack_id, offset, length))
            self._recent_rows += 1
        if self._recent_rows >= self.compact_min:
            self._compact()

    def drop(self, pack_id: int) -> None:
        """A pack gone (or its index file read again under a new id): its rows answer no more."""
        self._dead.add(pack_id)

    def get(self, key: str) -> Optional[Row]:
        return self.get_many([key])[0]

    def get_many(self, keys: Iterable[str]) -> list[Optional[Row]]:
        """Each key's live row of the highest pack id (None: no live pack holds it), in order."""
        keys = list(keys)
        found = self._sorted_rows_of(keys) if self._sorted is not None else [[] for _ in keys]
        out: list[Optional[Row]] = []
        for key, rows in zip(keys, found):
            rows = rows + self._recent.get(key, [])
            live = [r for r in rows if r[0] not in self._dead]
            out.append(max(live) if live else None)
        return out

    def pack_ids(self, keys: Iterable[str]) -> set[int]:
        """The live packs with a row of any of ``keys``."""
        keys = list(keys)
        found = self._sorted_rows_of(keys) if self._sorted is not None else [[] for _ in keys]
        out = {r[0] for rows in found for r in rows}
        out.update(r[0] for k in keys for r in self._recent.get(k, ()))
        return out - self._dead

    def _sorted_rows_of(self, keys: list[str]) -> list[list[Row]]:
        """Every sorted row of each key (one binary search for all of them)."""
        assert self._sorted is not None
        h, c, pid, off, length = self._sorted
        return [[(int(pid[j]), int(off[j]), int(length[j])) for j in at] for at in fingerprints.every(h, c, keys)]

    def _compact(self) -> None:
        """The dict's rows into the sorted columns; the rows of dropped packs left out."""
        import numpy as np

        hs, cs, ps, offs, lens = array("q"), array("I"), array("i"), array("q"), array("q")
        for key, rows in self._recent.items():
            h, c = hash(key), fingerprints.crc32_of(key)
            for p, o, n in rows:
                if p not in self._dead:
                    hs.append(h)
                    cs.append(c)
                    ps.append(p)
                    offs.append(o)
                    lens.append(n)
        kinds = (np.int64, np.uint32, np.int32, np.int64, np.int64)
        new = tuple(
            np.frombuffer(a, dtype=k) if len(a) else np.zeros(0, k) for a, k in zip((hs, cs, ps, offs, lens), kinds)
        )
        if self._sorted is not None:
            dead = np.fromiter(self._dead, dtype=np.int32, count=len(self._dead))
            keep = ~np.isin(self._sorted[2], dead)
            new = tuple(np.concatenate((old[keep], add)) for old, add in zip(self._sorted, new))
        self._sorted = fingerprints.ordered(*new)
        self._recent, self._recent_rows = {}, 0

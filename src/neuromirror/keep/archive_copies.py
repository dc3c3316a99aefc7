"""Verified copies per archive, counted per key: the numbers an operator judges a backup by.

``status --copies --json`` gives, besides each version's counts (:mod:`.copies`), one record per
archive (``dandi``, ``aind``, ``boss``): its distinct keys by number of verified copies outside the
archive (``by_copies``: ``{"0": n, "1": n, "2": n}``), per store the keys and bytes it holds verified
and the times of its oldest and newest good check, and the age of the oldest last check (how long
the stalest verified copy has gone unread).  A key several versions share counts once; a copy counts
as :mod:`.copies` counts it (named by the location log, with a good check in the index).

An archive of 10^6 keys is counted in ~28 bytes a key (:class:`_PerKey`): a dict of the keys' names and
their checks held ~450 bytes a key, ``status --copies`` of one Zarr of 10^6 chunks 575 MB of Python.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from neuromirror.dataset.files import annex_key
from neuromirror.errors import UserError
from neuromirror.records import VersionFile
from neuromirror.util.dates import iso_z
from neuromirror.util.memory import fingerprints

if TYPE_CHECKING:
    import numpy as np

    from neuromirror.index.rows import Version

#: distinct keys held by name until this many, then as sorted fingerprints (numpy not imported below it)
COMPACT_MIN = 20_000
#: stores told apart per key, a bit each
MAX_STORES = 64


#: a key's newest check when it has none (NaN, as in the columns; one object for every such key)
_NONE = math.nan


def _fold(old_bits: int, old_newest: float, bits: int, newest: Optional[float]) -> tuple[int, int, float]:
    """A key's record (its stores' bits, its newest check, NaN: none) met again with ``bits`` and ``newest``:
    (the bits new to it, its bits, its newest check): the one rule for a key by name and in the columns."""
    if newest is not None and not old_newest >= newest:  # NaN: none before
        old_newest = newest
    return bits & ~old_bits, old_bits | bits, old_newest


class _PerKey:
    """Per distinct key: the stores counted with a verified copy of it (a bit each) and its newest check
    (NaN: none); by name (a dict) for the keys met since the last sort, the others as sorted columns."""

    def __init__(self) -> None:
        self.recent: dict[str, list] = {}  # key -> [bits, newest check (NaN: none)]
        self.cols: Optional[tuple[np.ndarray, ...]] = None  # string hash, CRC-32, bits, newest check

    def __len__(self) -> int:
        return len(self.recent) + (0 if self.cols is None else len(self.cols[0]))

    def merge(self, key: str, bits: int, newest: Optional[float]) -> tuple[bool, int]:
        """``key`` seen with the stores ``bits`` and its newest check: (the key is new, the bits new to it)."""
        row = self.recent.get(key)
        if row is None and self.cols is not None:
            at = fingerprints.find(self.cols[0], self.cols[1], key)
            if at >= 0:
                bits_col, newest_col = self.cols[2], self.cols[3]
                fresh, bits_col[at], newest_col[at] = _fold(int(bits_col[at]), float(newest_col[at]), bits, newest)
                return False, fresh
        if row is None:
            self.recent[key] = [bits, _NONE if newest is None else newest]
            if len(self.recent) >= COMPACT_MIN:
                self._compact()
            return True, bits
        fresh, row[0], row[1] = _fold(row[0], row[1], bits, newest)
        return False, fresh

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Every key's bits and newest check (NaN: none)."""
        import numpy as np

        bits, newest = self._recent_columns()
        if self.cols is None:
            return bits, newest
        return np.concatenate((self.cols[2], bits)), np.concatenate((self.cols[3], newest))

    def _recent_columns(self) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        n, rows = len(self.recent), self.recent.values()
        bits = np.fromiter((b for b, _ in rows), dtype=np.uint64, count=n)
        newest = np.fromiter((t for _, t in rows), dtype=np.float64, count=n)
        return bits, newest

    def _compact(self) -> None:
        """The keys met since the last sort into the sorted columns, by fingerprint."""
        import numpy as np

        new: tuple[np.ndarray, ...] = (*fingerprints.of(self.recent), *self._recent_columns())
        if self.cols is not None:
            new = tuple(np.concatenate((old, add)) for old, add in zip(self.cols, new))
        self.cols = fingerprints.ordered(*new)
        self.recent = {}


@dataclass
class ArchiveCopies:
    archive: str
    wanted: int = 1
    nbytes: int = 0  # of its distinct keys
    stores: dict[str, dict] = field(default_factory=dict)  # uuid -> keys, bytes, oldest and newest check
    _keys: _PerKey = field(default_factory=_PerKey, repr=False)
    _bit: dict[str, int] = field(default_factory=dict, repr=False)  # store uuid -> its bit

    def add(self, key: str, size: int, checked: dict[str, float]) -> None:
        """A file's key and its verified copies (store uuid -> last good check): a key met again in another
        version adds the stores not counted for it yet."""
        bits = 0
        for uuid in checked:
            bit = self._bit.setdefault(uuid, len(self._bit))
            if bit >= MAX_STORES:
                raise UserError(f"{self.archive}: copies are counted per archive in at most {MAX_STORES} stores")
            bits |= 1 << bit
        new, fresh = self._keys.merge(key, bits, max(checked.values()) if checked else None)
        self.nbytes += size if new else 0
        for uuid, t in checked.items():
            if fresh >> self._bit[uuid] & 1:
                s = self.stores.setdefault(uuid, {"keys": 0, "bytes": 0, "oldest_check": t, "newest_check": t})
                s["keys"] += 1
                s["bytes"] += size
                s["oldest_check"], s["newest_check"] = min(s["oldest_check"], t), max(s["newest_check"], t)

    def to_json(self, stores: dict[str, dict], now: Optional[float] = None) -> dict:
        import numpy as np

        now = time.time() if now is None else now
        bits, newest = self._keys.columns()
        copies = np.zeros(len(bits), dtype=np.int64)
        for bit in range(len(self._bit)):
            copies += (bits >> np.uint64(bit) & np.uint64(1)).astype(np.int64)
        counted, how_many = np.unique(copies, return_counts=True)
        by_store: dict[str, dict] = {}
        for uuid, s in self.stores.items():
            known = stores.get(uuid, {})
            by_store[uuid] = {
                **s,
                "url": known.get("url"),
                "name": known.get("name"),
                "kind": known.get("kind"),
                "oldest_check_age_s": round(now - s["oldest_check"], 1),
                "oldest_check": iso_z(s["oldest_check"]),
                "newest_check": iso_z(s["newest_check"]),
            }
        checked = newest[~np.isnan(newest)]
        stalest = float(checked.min()) if len(checked) else None
        return {
            "archive": self.archive,
            "keys": len(self._keys),
            "bytes": self.nbytes,
            "wanted": self.wanted,
            "by_copies": {str(n): int(k) for n, k in zip(counted.tolist(), how_many.tolist())},
            "fewer_than_wanted": int((copies < self.wanted).sum()),
            "by_store": by_store,
            "oldest_last_check": iso_z(stalest),
            "oldest_last_check_age_s": None if stalest is None else round(now - stalest, 1),
        }


class PerArchive:
    """Collects :class:`ArchiveCopies` from :func:`neuromirror.keep.copies.copies_report`'s ``on_file``."""

    def __init__(self, wanted: dict[str, int]):
        self.archives: dict[str, ArchiveCopies] = {}
        self._wanted = wanted  # source -> the copies wanted for it

    def __call__(self, target: Version, f: VersionFile, checked: dict[str, float]) -> None:
        archive = target.source.split(":", 1)[0]
        a = self.archives.setdefault(archive, ArchiveCopies(archive))
        a.wanted = max(a.wanted, self._wanted.get(target.source, 1))
        a.add(annex_key(f), f.size or 0, checked)

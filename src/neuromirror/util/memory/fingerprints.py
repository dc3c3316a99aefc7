"""Strings held as 96-bit fingerprints in sorted numpy columns: 10^6 keys or paths in 12 bytes each.

Three readers of a 10^6-chunk Zarr hold a set or a map of its keys (or their logs' paths), and a Python
``str`` in a set or dict costs 100-300 bytes: 100-300 MB each.  :mod:`neuromirror.annex.blobmap` (a
branch's log paths -> blob ids), :mod:`neuromirror.store.packs.places` (a packed store's keys -> pack
rows) and :mod:`neuromirror.keep.keyset` (the keys a keep met) hold instead each string's fingerprint,
this process's string hash and a CRC-32 beside it, with their own columns, sorted by it; a lookup is a
binary search.  The string hash alone is shared by two of 10^6 strings once in ~10^7 such sets; the
CRC then tells them apart (a false match needs both to agree: ~1 in 10^16).  Never written anywhere: the
string hash is this process's (``PYTHONHASHSEED``).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Collection, Sequence

if TYPE_CHECKING:
    import numpy as np


def crc32_of(text: str) -> int:
    """The CRC-32 beside the string hash: two strings the hash cannot tell apart, it does."""
    return zlib.crc32(text.encode("utf-8", "surrogateescape"))


def of(texts: Collection[str]) -> tuple[np.ndarray, np.ndarray]:
    """The string hash and the CRC-32 of each of ``texts``, as two columns."""
    import numpy as np

    n = len(texts)
    return (
        np.fromiter((hash(t) for t in texts), dtype=np.int64, count=n),
        np.fromiter((crc32_of(t) for t in texts), dtype=np.uint32, count=n),
    )


def ordered(h: np.ndarray, c: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """The rows ``(h, c, *columns)`` sorted by string hash, rows of one hash kept in the order given (a stable
    sort: sorted rows with a few new ones after them sort in ~0.02 s at 10^6, where sorting by hash and CRC
    took 0.5 s each time); what :func:`first`, :func:`every` and :func:`find` search."""
    import numpy as np

    order = np.argsort(h, kind="stable")
    return tuple(a[order] for a in (h, c, *columns))


def first(h: np.ndarray, c: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """For each of ``texts``, the index of the first row of sorted ``h``, ``c`` with its fingerprint
    (-1: none): one binary search for all of them."""
    import numpy as np

    n = len(h)
    if not texts or not n:
        return np.full(len(texts), -1, dtype=np.int64)
    kh, kc = of(texts)
    at = np.minimum(np.searchsorted(h, kh), n - 1)  # the first row with the same string hash, if any
    same = h[at] == kh
    found = same & (c[at] == kc)
    for i in np.flatnonzero(same & ~found).tolist():  # the string hash shared: the CRC decides
        j = int(at[i]) + 1
        while j < n and h[j] == kh[i] and not found[i]:
            found[i], at[i] = bool(c[j] == kc[i]), j
            j += 1
    return np.where(found, at, -1)


def every(h: np.ndarray, c: np.ndarray, texts: Sequence[str]) -> list[Sequence[int]]:
    """For each of ``texts``, the indices of all the rows of sorted ``h``, ``c`` with its fingerprint (a map
    with several rows per string)."""
    import numpy as np

    if not texts or not len(h):
        return [range(0) for _ in texts]
    kh = np.fromiter((hash(t) for t in texts), dtype=np.int64, count=len(texts))
    lo, hi = np.searchsorted(h, kh, "left").tolist(), np.searchsorted(h, kh, "right").tolist()
    out: list[Sequence[int]] = []
    for text, a, b in zip(texts, lo, hi):
        if b - a == 1:  # one row of this string hash (nearly always): this string's if the CRC agrees
            out.append(range(a, b) if int(c[a]) == crc32_of(text) else range(0))
        elif a < b:  # several: this string's rows among them, in the order given
            crc = crc32_of(text)
            out.append([j for j in range(a, b) if int(c[j]) == crc])
        else:
            out.append(range(0))
    return out


def find(h: np.ndarray, c: np.ndarray, text: str) -> int:
    """The index of the first row of sorted ``h``, ``c`` with ``text``'s fingerprint (-1: none); one string,
    no array made (~2 us)."""
    key = hash(text)
    at = int(h.searchsorted(key))
    crc = None
    while at < len(h) and int(h[at]) == key:
        crc = crc32_of(text) if crc is None else crc
        if int(c[at]) == crc:
            return at
        at += 1
    return -1


def has(h: np.ndarray, c: np.ndarray, text: str) -> bool:
    """Is ``text``'s fingerprint a row of sorted ``h``, ``c``?"""
    return find(h, c, text) >= 0

"""A packed store's keys re-read and hashed pack by pack: each pack read once, front to back, every key
asked for in it checked against its checksum (``verify --stores``), instead of one ranged read per key.

The verdicts are :func:`neuromirror.store.transfer.read_back`'s: ``good``, ``bad`` (wrong bytes),
``missing`` (no index names the key, or its pack ends before the key does), ``unreadable`` (the store
did not answer).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Optional

from neuromirror.annex.keys import key_checksum
from neuromirror.store.packs.layout import pack_object

Verdict = tuple[str, str]


def check_keys(store: Any, keys: list[str], jobs: int = 4) -> Iterator[tuple[str, Verdict]]:
    """(key, verdict) for each of ``keys``: those of one pack from one sequential read of it."""
    by_pack: dict[str, list[tuple[int, int, str]]] = {}
    for key in keys:
        got = store.where(key)
        if got is None:
            yield key, ("missing", "no index file of the store names it")
            continue
        by_pack.setdefault(got[0], []).append((got[1], got[2], key))
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="verify-packs") as pool:
        for found in pool.map(lambda item: _one_pack(store, *item), by_pack.items()):
            yield from found


def _one_pack(store: Any, pack: str, wanted: list[tuple[int, int, str]]) -> list[tuple[str, Verdict]]:
    wanted.sort()
    end = max(o + n for o, n, _ in wanted)
    out: list[tuple[str, Verdict]] = []
    try:
        if store.cold(pack):
            return [
                (k, ("unreadable", f"pack {pack} is in a cold storage class: thaw asked for")) for _, _, k in wanted
            ]
        fh = store.backend.open_range(pack_object(pack), 0, end)
    except FileNotFoundError as exc:  # gone, or cut short before the last key asked for: read key by key
        return [(k, _alone(store, k, o, n, str(exc))) for o, n, k in wanted]
    except OSError as exc:
        return [(k, ("unreadable", " ".join(str(exc).split())[:300])) for _, _, k in wanted]
    with fh:
        at = 0
        for offset, length, key in wanted:
            try:
                _skip(fh, offset - at)
                out.append((key, _verdict(key, fh, length)))
            except OSError as exc:
                out.append((key, ("unreadable", " ".join(str(exc).split())[:300])))
            at = offset + length
    return out


def _alone(store: Any, key: str, offset: int, length: int, why: str) -> Verdict:
    try:
        with store.backend.open_range(pack_object(store.where(key)[0]), offset, length) as fh:
            return _verdict(key, fh, length)
    except FileNotFoundError:
        return "missing", why
    except (OSError, TypeError) as exc:
        return "unreadable", " ".join(str(exc).split())[:300]


def _verdict(key: str, fh: Any, length: int) -> Verdict:
    checksum = key_checksum(key)
    digest: Optional[Any] = checksum.new() if checksum else None
    left = length
    while left > 0:
        data = fh.read(min(left, 1 << 20))
        if not data:
            return "missing", f"the pack ends {left} bytes before the key does"
        if digest is not None:
            digest.update(data)
        left -= len(data)
    if checksum is None or digest is None:
        return "good", "no checksum in the key: its size only"
    if digest.hexdigest() != checksum.digest:
        return "bad", f"{checksum.algorithm} {digest.hexdigest()[:16]}…, the key says {checksum.digest[:16]}…"
    return "good", ""


def _skip(fh: Any, n: int) -> None:
    while n > 0:
        got = fh.read(min(n, 1 << 20))
        if not got:
            raise OSError("pack cut short")
        n -= len(got)

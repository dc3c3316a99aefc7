"""Packs rewritten: small packs merged, and packs mostly dead since keys were dropped rewritten (restic's
prune), so that a store's object count keeps following its bytes.

Always in this order: the keys carried over are appended to new packs, which are sealed (durable, then
indexed) before the old packs' index files are deleted, and the old packs only after that.  A kill at any
point leaves every key named by some index file whose pack is durable (at worst by two: the next merge
or the key map takes either).  Each key carried over is checked against its checksum on the way: a
rotten key is not carried (``verify --stores`` names and repairs it).  Cold packs are never merged
(reading them needs a thaw).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Protocol, Sequence

from neuromirror.annex.keys import key_checksum
from neuromirror.store.packs.backend import COLD_CLASSES, Backend, DirectoryBackend
from neuromirror.store.packs.keymap import KeyMap
from neuromirror.store.packs.layout import Entry, PackIndex, index_object, pack_object, read_exact, skip
from neuromirror.store.packs.writer import PackWriter
from neuromirror.util.crashpoints import crashpoint


class PackStore(Protocol):
    """What a repack needs of a packed store (:class:`neuromirror.store.packs.store.PackStore`)."""

    backend: Backend
    keys: KeyMap
    merged: int

    @property
    def pack_size(self) -> int: ...

    def writer(self) -> PackWriter: ...


#: more packs smaller than the pack size than this: the smallest are merged
MAX_SMALL = 6
#: a pack whose live bytes fall below this share of its size is rewritten by a prune
PRUNE_BELOW = 0.5


@dataclass
class RepackReport:
    merged: int = 0  # old packs rewritten
    written: int = 0  # new packs sealed
    carried: int = 0  # keys carried over
    dropped: int = 0  # dead keys left behind
    deleted_bytes: int = 0
    rotten: list[str] = field(default_factory=list)  # keys not carried: their bytes were wrong

    def to_json(self) -> dict:
        return {
            "merged": self.merged,
            "written": self.written,
            "carried": self.carried,
            "dropped": self.dropped,
            "deleted_bytes": self.deleted_bytes,
            "rotten": self.rotten,
        }


def merge_small(store: PackStore) -> Optional[RepackReport]:
    """Merge the smallest packs while more than :data:`MAX_SMALL` are below the pack size."""
    packs = store.keys.packs()
    small = sorted(
        (size, p) for p, (size, _, klass) in packs.items() if size < store.pack_size and klass not in COLD_CLASSES
    )
    if len(small) <= MAX_SMALL:
        return None
    chosen = [p for _, p in small[: max(2, len(small) // 2)]]
    with _exclusive(store) as ok:
        if not ok:
            return None  # another process is repacking this store
        return rewrite(store, chosen, live=None)


def prune(store: PackStore, live: set[str], below: float = PRUNE_BELOW) -> RepackReport:
    """Drop every key not in ``live``: packs with no live key deleted, packs whose live bytes fall below
    ``below`` of their size rewritten with their live keys only; never a key in ``live`` lost."""
    store.keys.refresh()
    chosen = []
    for pack, (size, _, klass) in store.keys.packs().items():
        if klass in COLD_CLASSES:
            continue
        alive = sum(e.length for e in store.keys.entries(pack) if e.key in live)
        if alive < below * size:
            chosen.append(pack)
    with _exclusive(store) as ok:
        if not ok:
            return RepackReport()
        return rewrite(store, chosen, live=live)


def rewrite(store: PackStore, packs: list[str], live: Optional[set[str]]) -> RepackReport:
    report = RepackReport()
    if not packs:
        return report
    writer = store.writer()
    writer.seal()  # the open pack first: the new packs hold only what is carried over
    first = len(writer.sealed)
    for pack in packs:
        _carry(store, pack, live, report)
    writer.seal()
    new = set(writer.sealed[first:])
    report.written = len(new)
    crashpoint("repack-sealed")  # the new packs durable and indexed, the old ones still named
    sizes = store.keys.packs()
    # a pack named by its bytes: the same keys carried in the same order make the same pack again (a rerun
    # after a kill): it is new, never deleted as old
    packs = [p for p in packs if p not in new]
    for pack in packs:
        store.backend.delete(index_object(pack))
    crashpoint("repack-unindexed")  # the old packs named by no index: adopted again if a rerun comes first
    for pack in packs:
        store.backend.delete(pack_object(pack))
        report.deleted_bytes += sizes.get(pack, (0, 0, ""))[0]
        report.merged += 1
    store.keys.refresh()
    store.merged += report.merged
    return report


def _carry(store: PackStore, pack: str, live: Optional[set[str]], report: RepackReport) -> None:
    """Append ``pack``'s keys (those in ``live``, when given) to the open pack, each checked on the way.
    One sequential read of the pack; nothing of it held in memory beyond one key."""
    entries = sorted(store.keys.entries(pack), key=lambda e: e.offset)
    if not entries:
        return
    end = max(e.offset + e.length for e in entries)
    writer = store.writer()
    with store.backend.open_range(pack_object(pack), 0, end) as fh:
        at = 0
        for e in entries:
            skip(fh, e.offset - at)
            data = read_exact(fh, e.length)
            at = e.offset + e.length
            if live is not None and e.key not in live:
                report.dropped += 1
                continue
            if not _good(e, data):
                report.rotten.append(e.key)
                continue
            c = key_checksum(e.key)
            writer.pending.pop(e.key, None)
            writer.append(e.key, [data], len(data), f"{c.algorithm}:{c.digest}" if c else "")
            report.carried += 1


def _good(e: Entry, data: bytes) -> bool:
    c = key_checksum(e.key)
    if c is None:
        return True
    h = c.new()
    h.update(data)
    return bool(h.hexdigest() == c.digest)


@contextmanager
def _exclusive(store: PackStore) -> Iterator[bool]:
    """One repack of a directory store at a time (``tmp/repack.lock``); S3 has no lock to take."""
    if not isinstance(store.backend, DirectoryBackend):
        yield True
        return
    fd = os.open(store.backend.staging() / "repack.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


__all__ = ["PackIndex", "merge_small", "prune", "rewrite"]


@contextmanager
def merges_held(stores: Sequence[Any]) -> Iterator[None]:
    """No packs merged in this process while others write into the same packed stores (``keep --dask``'s
    workers): a merge deletes the index files of the packs it merged before the packs, and a writer adopting
    such a pack then would name its keys twice.  Once they are done, the packs they sealed are read and the
    small ones merged.  Stores that are not packed are left alone."""
    packed = [s for s in stores if s.capabilities.packed]
    for s in packed:
        s.merge = False
    try:
        yield
    finally:
        for s in packed:
            s.merge = True
            s.keys.refresh()
            s.sync()

"""Where a packed store's keys lie, held in ~32 bytes a key (``store/packs/places.py``).

A store of one 10^6-chunk Zarr names 10^6 keys; every process reading it (keep into it, verify, the view)
held ~300 bytes a key of map.  These tests write real packed stores on disk and read them back through
the store's API, with the map in its dict form and in its sorted-array form, a key held in two packs (a
repack killed before it deleted the old pack), a pack gone, and paths of the same string hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest

from helpers.packs import blobs, put
from neuromirror.store.packs import places
from neuromirror.store.packs.places import Places
from neuromirror.store.packs.store import PackStore


@pytest.mark.parametrize("compact_min", [3, places.COMPACT_MIN])
def test_every_key_reads_back_from_the_map_in_either_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compact_min: int
) -> None:
    monkeypatch.setattr(places, "COMPACT_MIN", compact_min)
    objects = blobs(60)
    store = PackStore.directory(str(tmp_path / "s"), pack_size=4096)
    put(store, objects)
    assert len(list((tmp_path / "s" / "packs").glob("*.pack"))) > 3

    fresh = PackStore.directory(str(tmp_path / "s"))  # the map read from the index files only
    for key, data in objects.items():
        assert fresh.has(key)
        assert fresh.read_range(key, 0, None) == data
    assert not fresh.has("MD5E-s1--" + "0" * 32 + ".bin")
    assert fresh.keys.all_keys() == set(objects)
    served = [e.key for pack in fresh.keys.packs() for e in fresh.keys.entries(pack)]
    assert sorted(served) == sorted(objects)  # each key served by one pack
    some = list(objects)[:5]
    held_by = fresh.keys.holding(some)
    assert held_by == {fresh.where(k)[0] for k in some}


def test_a_key_in_two_packs_is_served_by_one_and_survives_either_pack_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repack killed after writing its new pack and before deleting the old leaves keys in both: every
    reader agrees on one of them, whether the map was sorted since or not, and deleting either pack loses
    no key."""
    monkeypatch.setattr(places, "COMPACT_MIN", 4)
    root = tmp_path / "s"
    objects = blobs(10)
    store = PackStore.directory(str(root), pack_size=1 << 20)
    put(store, objects)
    (first,) = [p.stem for p in (root / "packs").glob("*.pack")]
    # the same keys again in a second pack: a copy of the first under a new name, as a repack would write it
    again = PackStore.directory(str(tmp_path / "other"), pack_size=1 << 20)
    put(again, {**objects, **blobs(1, 99)})
    (second,) = [p.stem for p in (tmp_path / "other" / "packs").glob("*.pack")]
    shutil.copy(tmp_path / "other" / "packs" / f"{second}.pack", root / "packs")
    shutil.copy(tmp_path / "other" / "index" / f"{second}.json", root / "index")

    reader = PackStore.directory(str(root))
    served = {k: reader.where(k)[0] for k in objects}
    assert len(set(served.values())) == 1
    by_pack = {p: [e.key for e in reader.keys.entries(p)] for p in (first, second)}
    assert sorted(by_pack[first] + by_pack[second]) == sorted([*objects, *blobs(1, 99)])
    assert reader.keys.holding(list(objects)[:1]) == {first, second}  # forget_keys rewrites both index files

    loser = served[next(iter(objects))]
    (root / "index" / f"{loser}.json").unlink()
    (root / "packs" / f"{loser}.pack").unlink()
    for key, data in objects.items():
        assert reader.read_range(key, 0, None) == data  # read from the other pack, the map read again


def test_a_forgotten_key_is_gone_from_every_pack_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(places, "COMPACT_MIN", 2)
    root = tmp_path / "s"
    objects = blobs(12)
    store = PackStore.directory(str(root), pack_size=4096)
    put(store, objects)
    victim = list(objects)[5]
    assert store.forget_keys({victim}) == 1
    named = {k for f in (root / "index").glob("*.json") for k, *_ in json.loads(f.read_text())["keys"]}
    assert named == set(objects) - {victim}
    assert not PackStore.directory(str(root)).has(victim)


class _SameHash(str):
    def __hash__(self) -> int:  # every key one string hash: the CRC beside it tells them apart
        return 42


def test_keys_of_the_same_string_hash_are_told_apart() -> None:
    p = Places(compact_min=2)
    p.add(0, [(_SameHash("MD5E-s1--a"), 0, 1), (_SameHash("MD5E-s2--b"), 1, 2), (_SameHash("MD5E-s3--c"), 3, 3)])
    p.add(1, [(_SameHash("MD5E-s2--b"), 10, 2)])
    assert p.get_many([_SameHash(k) for k in ("MD5E-s1--a", "MD5E-s2--b", "MD5E-s3--c", "MD5E-s4--d")]) == [
        (0, 0, 1),
        (1, 10, 2),  # in two packs: the higher pack id answers
        (0, 3, 3),
        None,
    ]
    p.drop(1)
    assert p.get(_SameHash("MD5E-s2--b")) == (0, 1, 2)


def test_a_hundred_thousand_keys_hold_under_sixty_four_bytes_each() -> None:
    """The point of the module: 10^6 keys in tens of MB, not the ~300 MB a dict of tuples held."""
    keys = [f"SHA256E-s10000--{hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(100_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        p = Places()
        for pack in range(5):
            p.add(pack, ((k, i * 10_000, 10_000) for i, k in enumerate(keys[pack * 20_000 : (pack + 1) * 20_000])))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / len(keys) < 64, held / len(keys)
    assert p.get(keys[12_345]) == (0, 12_345 * 10_000, 10_000)
    assert p.get(keys[99_999]) == (4, 19_999 * 10_000, 10_000)

"""What only a packed store (``pack+file://``, ``pack+s3://``) does: keys packed into a pack and its index file (files
follow bytes, not keys), a pack read alone from its trailer, small packs merged, its settings, and the map of where
its keys lie in ~32 bytes a key (``store/packs/places.py``; ~300 bytes a key before, for 10^6-chunk Zarrs).

Why: a store of a file per key is refused where a backup can afford to go (tape, an inode quota, Deep Archive's
price per object).  What every kind owes: tests/test_store_kinds.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from helpers.keep import key_of, make_dandiset
from helpers.packs import blobs, held, indexed, put
from neuromirror.store.packs import places
from neuromirror.store.packs.layout import PackIndex
from neuromirror.store.packs.places import Places
from neuromirror.store.packs.store import PackStore

CHUNKS = {
    ".zgroup": b'{"zarr_format": 2}',
    "0/.zarray": b'{"chunks": [64], "zarr_format": 2}',
    "0/0": bytes(range(256)) * 3,
    "0/1": bytes(range(255, -1, -1)) * 4,
}


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_keep_packs_a_versions_blobs_and_zarr_chunks_into_one_pack_and_its_index(
    dandi_archive, s3, tmp_path, request, backend
) -> None:  # noqa: ANN001
    """12 blobs and a Zarr kept by 3 jobs: the store's config, one index file and one pack, each key one range of
    it; the pack size is the store's.  (A kept Zarr checked, read and got by a stranger: tests/test_store_kinds.py.)"""
    sizes = {f"sub-{i:02d}/f.nwb": 5_000 + 300 * i for i in range(12)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes, zarr=CHUNKS)
    bucket = request.getfixturevalue("bucket") if backend == "s3" else ""
    url = f"pack+s3://{bucket}/lab/packed" if bucket else f"pack+file://{tmp_path / 'packed'}"
    code, out, err = d.run("keep", d.spec, "--to", url, "--pack-size", "1M", "--json", "-J", "3")
    assert code == 0 and json.loads(out)["store"]["kind"] == "pack", out + err
    assert json.loads(out)["versions"][0]["kept"] == len(sizes) + len(CHUNKS)
    files = held(url, s3)
    assert sorted(n.split("/")[0] for n in files) == [".neuromirror-store.json", "index", "packs"], sorted(files)
    where, chunks = indexed(files), d.ds / "sub-09" / "sample.zarr"
    keys = {p: key_of(d.ds, p, d.version) for p in sizes} | {f"zarr/{c}": key_of(chunks, c, "HEAD") for c in CHUNKS}
    assert set(where) == set(keys.values())
    (pack,) = {p for p, _, _ in where.values()}
    for path, key in keys.items():
        _, offset, length = where[key]
        assert files[f"packs/{pack}.pack"][offset : offset + length] == (d.files.get(path) or CHUNKS[path[5:]]), path
    config = json.loads(files[".neuromirror-store.json"])
    assert (config["type"], config["pack_size"]) == ("pack", 1_000_000)
    remote_log = subprocess.run(["git", "-C", str(d.ds), "show", "git-annex:remote.log"], capture_output=True).stdout
    assert b"externaltype=neuromirror-pack" in remote_log and (not bucket or b"endpoint=http" in remote_log)
    code, _, err = d.run("keep", d.spec, "--to", url, "--pack-size", "4K")
    assert code == 2 and "a store's pack size is fixed" in err and len(err.strip().splitlines()) == 1, err


def test_a_store_is_readable_with_its_own_files_only(tmp_path: Path) -> None:
    """The trailer of each pack repeats its index: a pack alone says what it holds."""
    store = PackStore.directory(str(tmp_path / "s"), pack_size=4096)
    objects = {f"MD5E-s{n}--{'0' * 32}.bin": bytes([n % 251]) * n for n in (10, 3000, 5000)}
    put(store, objects)
    packs = sorted((tmp_path / "s" / "packs").glob("*.pack"))
    assert len(packs) == 2  # the pack size is reached after the 2nd key: a new pack for the 3rd
    for p in packs:
        index = PackIndex.decode((tmp_path / "s" / "index" / f"{p.stem}.json").read_bytes(), p.stem)
        assert store.trailer_of(p.stem, p.stat().st_size).entries == index.entries
    fresh = PackStore.directory(str(tmp_path / "s"))
    for key, data in objects.items():
        with fresh.open_key(key) as fh:
            assert fh.read() == data
        assert fresh.read_range(key, 2, 7) == data[2:7]


def test_a_year_of_small_keeps_counts_objects_by_bytes(tmp_path: Path) -> None:
    """Service cycles each keeping a few new small keys: small packs are merged, the store's files stay
    within 2 x ceil(bytes / pack size) + 16, and every key reads at every step."""
    pack_size = 64 << 10
    store = PackStore.directory(str(tmp_path / "s"), pack_size=pack_size)
    written: dict[str, bytes] = {}
    for cycle in range(120):
        new = [f"{cycle}/{i}".encode() * ((300 + (cycle * 10 + i) % 700) // 8) for i in range(10)]
        fresh = {f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bin": data for data in new}
        put(store, fresh)  # synced as keep does before it records a version's keys
        written.update(fresh)
        files = [p for p in (tmp_path / "s").rglob("*") if p.is_file() and p.parent.name in ("packs", "index")]
        packed = sum(p.stat().st_size for p in files if p.suffix == ".pack")
        assert len(files) <= 2 * math.ceil(packed / pack_size) + 16, (cycle, len(files))
        reader = PackStore.directory(str(tmp_path / "s"))  # another process's view: its own files only
        for key in list(written)[-25:] + list(written)[:5]:
            assert reader.read_range(key) == written[key]
    assert store.merged > 0
    reader = PackStore.directory(str(tmp_path / "s"))
    for key, data in written.items():
        with reader.open_key(key) as fh:
            assert fh.read() == data


def test_packed_store_names_settings_and_mistakes(tmp_path: Path) -> None:
    from neuromirror.errors import UserError
    from neuromirror.store.location import open_store

    s = open_store(f"pack+file://{tmp_path}/p", pack_size=2048, create=True)  # keep --to's: made when first asked
    assert isinstance(s, PackStore) and s.url == f"pack+file://{tmp_path}/p"
    assert s.identity.name.startswith("neuromirror-store-") and s.pack_size == 2048
    # the settings are the store's: an existing store keeps them, naming others is an error
    assert open_store(f"pack+file://{tmp_path}/p").identity == s.identity
    assert open_store(f"pack+file://{tmp_path}/p").pack_size == 2048  # read from the store once opened
    with pytest.raises(UserError, match="pack size is fixed"):
        _ = open_store(f"pack+file://{tmp_path}/p", pack_size=4096).identity
    for url, kw, error in (  # pack_size on another kind: tests/test_store_contract.py
        (f"pack+file://{tmp_path}/q", {"storage_class": "GLACIER"}, "^storage_class is for S3 stores"),
        ("pack+file://host/x", {}, r"pack\+file:///PATH"),
        ("pack+s3://", {}, r"pack\+s3://BUCKET"),
        (f"pack+file://{tmp_path}/r", {"pack_size": 10}, "at least 1024 bytes"),
        ("pack+s3://b/p", {"storage_class": "FROZEN"}, "one of STANDARD"),
    ):
        with pytest.raises(UserError, match=error):
            open_store(url, **kw)
    # a packed store is not a directory store, nor the other way round
    with pytest.raises(UserError, match="not a directory store|pack store|name it as one"):
        _ = open_store(str(tmp_path / "p")).identity
    _ = open_store(str(tmp_path / "plain"), create=True).identity
    with pytest.raises(UserError, match="not empty and is not a neuromirror store|not a packed store"):
        _ = open_store(f"pack+file://{tmp_path}/plain", create=True).identity


@pytest.mark.parametrize("compact_min", [3, places.COMPACT_MIN])
def test_every_key_reads_back_from_the_map_in_either_form(tmp_path, monkeypatch, compact_min: int) -> None:  # noqa: ANN001
    monkeypatch.setattr(places, "COMPACT_MIN", compact_min)
    objects = blobs(60)
    put(PackStore.directory(str(tmp_path / "s"), pack_size=4096), objects)
    assert len(list((tmp_path / "s" / "packs").glob("*.pack"))) > 3
    fresh = PackStore.directory(str(tmp_path / "s"))  # the map read from the index files only
    for key, data in objects.items():
        assert fresh.has(key) and fresh.read_range(key, 0, None) == data
    assert not fresh.has("MD5E-s1--" + "0" * 32 + ".bin")
    assert fresh.keys.all_keys() == set(objects)
    served = [e.key for pack in fresh.keys.packs() for e in fresh.keys.entries(pack)]
    assert sorted(served) == sorted(objects)  # each key served by one pack
    some = list(objects)[:5]
    assert fresh.keys.holding(some) == {fresh.where(k)[0] for k in some}


def test_a_key_in_two_packs_is_served_by_one_and_survives_either_pack_going(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A repack killed after writing its new pack and before deleting the old leaves keys in both: every
    reader agrees on one of them, whether the map was sorted since or not, and deleting either pack loses
    no key."""
    monkeypatch.setattr(places, "COMPACT_MIN", 4)
    root, other, objects = tmp_path / "s", tmp_path / "other", blobs(10)
    put(PackStore.directory(str(root), pack_size=1 << 20), objects)
    (first,) = [p.stem for p in (root / "packs").glob("*.pack")]
    # the same keys again in a second pack: a copy of the first under a new name, as a repack would write it
    put(PackStore.directory(str(other), pack_size=1 << 20), {**objects, **blobs(1, 99)})
    (second,) = [p.stem for p in (other / "packs").glob("*.pack")]
    shutil.copy(other / "packs" / f"{second}.pack", root / "packs")
    shutil.copy(other / "index" / f"{second}.json", root / "index")

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


def test_a_forgotten_key_is_gone_from_every_pack_naming_it(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(places, "COMPACT_MIN", 2)
    store, objects = PackStore.directory(str(tmp_path / "s"), pack_size=4096), blobs(12)
    put(store, objects)
    victim = list(objects)[5]
    assert store.forget_keys({victim}) == 1
    assert set(indexed(tmp_path / "s")) == set(objects) - {victim}  # named by no index file
    assert not PackStore.directory(str(tmp_path / "s")).has(victim)


class _SameHash(str):
    def __hash__(self) -> int:  # every key one string hash: the CRC beside it tells them apart
        return 42


def test_keys_of_the_same_string_hash_are_told_apart() -> None:
    p = Places(compact_min=2)
    a, b, c, d = (f"MD5E-s{n}--{x}" for n, x in zip("1234", "abcd"))
    p.add(0, [(_SameHash(a), 0, 1), (_SameHash(b), 1, 2), (_SameHash(c), 3, 3)])
    p.add(1, [(_SameHash(b), 10, 2)])
    got = p.get_many([_SameHash(k) for k in (a, b, c, d)])
    assert got == [(0, 0, 1), (1, 10, 2), (0, 3, 3), None]  # b in two packs: the higher pack id answers
    p.drop(1)
    assert p.get(_SameHash(b)) == (0, 1, 2)


def test_a_hundred_thousand_keys_hold_under_sixty_four_bytes_each() -> None:
    """The point of the map: 10^6 keys in tens of MB, not the ~300 MB a dict of tuples held."""
    keys = [f"SHA256E-s10000--{hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(100_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        p = Places()
        for pack in range(5):
            p.add(pack, ((k, i * 10_000, 10_000) for i, k in enumerate(keys[pack * 20_000 : (pack + 1) * 20_000])))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used / len(keys) < 64, used / len(keys)
    assert p.get(keys[12_345]) == (0, 12_345 * 10_000, 10_000)
    assert p.get(keys[99_999]) == (4, 19_999 * 10_000, 10_000)

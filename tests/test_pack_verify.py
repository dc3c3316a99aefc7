"""``verify --stores`` of a packed store reads a pack whole or not at all (one request, one pass), in parts by several
readers when big; a truncated pack is named by the keys it breaks; ``--fraction F`` (the service's rolling check)
re-reads a share of the packs, oldest checks first, so that two runs of 1/2 read every key and a run finds rot in
any key of a pack it reads.  (A flipped byte found and repaired in every kind: tests/test_store_kinds.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Iterator

import pytest

from helpers.keep import Dandiset, key_of, make_dandiset
from helpers.packs import flip, indexed, keys_by_pack, put
from neuromirror.store.packs.store import PackStore


def test_a_pack_read_in_parts_by_several_readers_names_the_one_rotten_key(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """One 256 MiB pack held one core where two were there: every key is checked once, from its own offset, and
    a flipped byte in a key in the middle of a run is named, and only it."""
    from neuromirror.store.packs import check

    monkeypatch.setattr(check, "PART_KEYS", 5)
    objects = {f"MD5E-s{len(b)}--{hashlib.md5(b).hexdigest()}.bin": b for b in (os.urandom(300 + n) for n in range(40))}
    put(PackStore.directory(str(tmp_path / "s"), pack_size=1 << 20), objects)
    (pack,) = (tmp_path / "s" / "packs").glob("*.pack")
    where = indexed(tmp_path / "s")
    victim = sorted(objects, key=lambda k: where[k][1])[17]  # inside the 4th of 8 runs, neither its first nor last
    flip(pack, where[victim][1] + where[victim][2] // 2)
    assert len(check._parts([(o, n, k) for k, (_, o, n) in where.items()], 8, 1)) == 8
    with closing(check.Scan(PackStore.directory(str(tmp_path / "s")), jobs=8)) as scan:
        verdicts = dict(scan.check(list(objects)))
    assert sorted(verdicts) == sorted(objects)
    assert {k for k, (v, _) in verdicts.items() if v != "good"} == {victim} and verdicts[victim][0] == "bad"


@pytest.mark.parametrize("whole", [False, True], ids=["one-source", "whole-store"])
def test_a_truncated_pack_is_found_by_verify_and_named_by_the_keys_it_breaks(dandi_archive, tmp_path, whole) -> None:  # noqa: ANN001
    """One source's copies (its packs read for the keys chosen), or the whole store (every copy: its packs read
    whole while the branches are walked, ``store.packs.check.Scan``)."""
    sizes = {"a.nwb": 10_000, "b.nwb": 12_000, "c.nwb": 14_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    assert d.run("keep", d.spec, "--to", url)[0] == 0
    where, keys = indexed(store), {p: key_of(d.ds, p, d.version) for p in sizes}
    (pack,) = {w[0] for w in where.values()}
    cut = min(where[k][1] + where[k][2] for k in keys.values()) + 10  # the first key whole, the rest cut
    os.chmod(store / "packs" / f"{pack}.pack", 0o644)
    os.truncate(store / "packs" / f"{pack}.pack", cut)
    broken = sorted(k for k in keys.values() if where[k][1] + where[k][2] > cut)
    assert len(broken) == 2

    verify = ["verify", "--stores", *([] if whole else [d.spec]), "--store", url, *(["--fraction", "1"] * whole)]
    code, out, err = d.run(*verify, "--json")
    assert code == 1, out + err
    report = json.loads(out)
    assert sorted(f["key"] for f in report["bad"] + report["missing"]) == broken  # the whole key is fine
    assert all(f["repaired"] for f in report["bad"] + report["missing"])
    assert d.run(*verify)[0] == 0
    fresh = PackStore.directory(str(store))
    for path, key in keys.items():
        assert fresh.read_range(key) == d.files[path]


@pytest.fixture(scope="module")
def packed(dandi_archive, tmp_path_factory) -> Iterator[tuple[Dandiset, Path]]:  # noqa: ANN001
    """10 files of 6-11 kB kept into a packed store of 16 KiB packs: ~2 keys a pack."""
    tmp = tmp_path_factory.mktemp("pack-fraction")
    d = make_dandiset(dandi_archive, tmp / "mirror", {f"sub-{i:02d}/f.nwb": 6_000 + 500 * i for i in range(10)})
    d.run.ok("keep", d.spec, "--to", f"pack+file://{tmp / 'packed'}", "--pack-size", "16K", "-J", "1")
    yield d, tmp / "packed"


def test_runs_of_half_the_store_read_whole_packs_and_together_every_key(packed: tuple[Dandiset, Path]) -> None:
    (d, store), url = packed, f"pack+file://{packed[1]}"
    packs = keys_by_pack(store)
    assert len(packs) >= 4, packs
    index = sqlite3.connect(d.run.root / ".neuromirror" / "index.sqlite")
    read: list[set[str]] = []
    for _ in range(2):
        before = dict(index.execute("SELECT key, checked FROM store_checks"))
        code, out, err = d.run("verify", "--stores", "--store", url, "--fraction", "0.5", "--json")
        assert code == 0, out + err
        report = json.loads(out)
        after = dict(index.execute("SELECT key, checked FROM store_checks"))
        read.append({k for k, t in after.items() if t != before.get(k)})  # the keys this run re-read
        assert 0 < report["checked"] < len(d.files) and report["checked"] == report["good"] == len(read[-1]), report
        assert all(keys <= read[-1] or not keys & read[-1] for keys in packs.values())  # each pack whole or not
    assert set().union(*packs.values()) - read[0] <= read[1]  # the second run read what the first did not


def test_a_slice_finds_rot_in_a_key_it_did_not_choose_but_whose_pack_it_read(packed: tuple[Dandiset, Path]) -> None:
    (d, store), url = packed, f"pack+file://{packed[1]}"
    d.run.ok("verify", "--stores", "--store", url)  # every copy checked now
    pack, held = next((p, keys) for p, keys in keys_by_pack(store).items() if len(keys) >= 2)
    chosen, mate = sorted(held)[:2]
    index = sqlite3.connect(d.run.root / ".neuromirror" / "index.sqlite")
    with index:  # one copy checked long ago: the one a slice of one copy chooses
        index.execute("UPDATE store_checks SET checked = 0 WHERE key = ?", (chosen,))
    _, offset, length = indexed(store)[mate]
    flip(store / "packs" / f"{pack}.pack", offset + length // 2)
    code, out, err = d.run("verify", "--stores", "--store", url, "--fraction", "0.1", "--json")
    assert code == 1, out + err
    report = json.loads(out)
    assert [b["key"] for b in report["bad"]] == [mate] and report["bad"][0]["repaired"], report
    assert report["checked"] == len(held), report  # the one pack read whole: the chosen copy and its mates
    assert d.run("verify", "--stores", "--store", url)[0] == 0  # repaired into a new pack

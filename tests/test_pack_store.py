"""Packed stores (``pack+file://``): what only a packed store does — packing keys into packs and their index
files, a pack read alone from its trailer, a truncated pack, merging small packs, prune's repack, kills inside a
pack's life, its settings.

Why: a store that writes one file per key is refused where a backup can afford to go (tape, an inode
quota, Deep Archive's price per object).  These tests keep small dandisets into a packed directory store,
count its files, really delete every S3 version of the blobs from the moto stand-in, move the mirror away,
and check that a plain ``datalad clone`` + ``datalad get`` gives the exact bytes from the packs (found by
the clone itself), that ``verify --stores`` finds a flipped byte inside a pack and repairs it into a new
pack, and that a SIGKILL at each named point of a pack's life converges on a rerun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import clone, git
from helpers.keep import key_of, lose_blobs, make_dandiset
from neuromirror.store.packs.layout import PackIndex
from neuromirror.store.packs.store import PackStore


def pack_files(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*") if p.is_file() and p.parent.name in ("packs", "index"))


def indexed(store: Path) -> dict[str, tuple[str, int, int]]:
    """key -> (pack, offset, length), read from the store's own index files as a person would."""
    out = {}
    for f in (store / "index").glob("*.json"):
        doc = json.loads(f.read_text())
        for key, offset, length, _ in doc["keys"]:
            out[key] = (doc["pack"], offset, length)
    return out


def test_keep_packs_every_key_into_one_pack_and_its_index(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """Packing: one pack and its index file, whatever the number of keys; each key one range of the pack.  (What
    every store kind owes, keep, rerun, reads after the archive's loss, is tests/test_store_kinds.py's.)"""
    sizes = {"sub-01/a.nwb": 120_000, "sub-02/b.nwb": 30_001, "sub-03/c.nwb": 7_777}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    code, out, err = d.run("keep", d.spec, "--to", f"pack+file://{store}", "--pack-size", "1M", "--json")
    assert code == 0 and json.loads(out)["store"]["kind"] == "pack", out + err
    files = pack_files(store)
    assert [p.parent.name for p in files] == ["index", "packs"], files
    where = indexed(store)
    keys = {p: key_of(d.ds, p, d.version) for p in sizes}
    assert set(where) == set(keys.values())
    pack = (store / "packs" / f"{next(iter(where.values()))[0]}.pack").read_bytes()
    for path, key in keys.items():
        _, offset, length = where[key]
        assert pack[offset : offset + length] == d.files[path]
    config = json.loads((store / ".neuromirror-store.json").read_text())
    assert (config["type"], config["pack_size"]) == ("pack", 1_000_000)
    assert "externaltype=neuromirror-pack" in git(d.ds, "show", "git-annex:remote.log")


#: verify --stores of one source's copies (its packs read for the keys chosen), or of the whole store (no SPEC,
#: every copy: its packs read whole while the branches are walked, ``store.packs.check.Scan``)
WHOLE = pytest.mark.parametrize("whole", [False, True], ids=["one-source", "whole-store"])


def _verify_args(d, url: str, whole: bool) -> list[str]:  # noqa: ANN001
    return ["verify", "--stores", *([] if whole else [d.spec]), "--store", url, *(["--fraction", "1"] if whole else [])]


def test_a_store_is_readable_with_its_own_files_only(tmp_path: Path) -> None:
    """The trailer of each pack repeats its index: a pack alone says what it holds."""
    store = PackStore.directory(str(tmp_path / "s"), pack_size=4096)
    blobs = {f"MD5E-s{n}--{'0' * 32}.bin": bytes([n % 251]) * n for n in (10, 3000, 5000)}
    for key, data in blobs.items():
        with store.receive(key) as inc:
            inc.write(data)
            assert inc.commit()
    store.sync()
    packs = sorted((tmp_path / "s" / "packs").glob("*.pack"))
    assert len(packs) == 2  # the pack size is reached after the 2nd key: a new pack for the 3rd
    for p in packs:
        index = PackIndex.decode((tmp_path / "s" / "index" / f"{p.stem}.json").read_bytes(), p.stem)
        assert store.trailer_of(p.stem, p.stat().st_size).entries == index.entries
    fresh = PackStore.directory(str(tmp_path / "s"))
    for key, data in blobs.items():
        with fresh.open_key(key) as fh:
            assert fh.read() == data
        assert fresh.read_range(key, 2, 7) == data[2:7]


def test_a_pack_read_in_parts_by_several_readers_names_the_one_rotten_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify --stores reads a big pack as runs of neighbouring keys, one reader each (one 256 MiB pack held one
    core where two were there): every key is checked once, from its own offset, and a flipped byte in a key in
    the middle of a run is named, and only it."""
    import hashlib

    from neuromirror.store.packs import check

    monkeypatch.setattr(check, "PART_KEYS", 5)
    store = PackStore.directory(str(tmp_path / "s"), pack_size=1 << 20)
    blobs = {}
    for n in range(40):
        data = os.urandom(300 + n)
        blobs[f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bin"] = data
    for key, data in blobs.items():
        with store.receive(key) as inc:
            inc.write(data)
            assert inc.commit()
    store.sync()
    (pack,) = (tmp_path / "s" / "packs").glob("*.pack")
    where = indexed(tmp_path / "s")
    order = sorted(blobs, key=lambda k: where[k][1])
    victim = order[17]  # inside the 4th of 8 runs, neither its first nor its last key
    _, offset, length = where[victim]
    os.chmod(pack, 0o644)
    data = bytearray(pack.read_bytes())
    data[offset + length // 2] ^= 0xFF
    pack.write_bytes(bytes(data))

    assert len(check._parts([(o, n, k) for k, (_, o, n) in where.items()], 8, 1)) == 8
    scan = check.Scan(PackStore.directory(str(tmp_path / "s")), jobs=8)
    try:
        verdicts = dict(scan.check(list(blobs)))
    finally:
        scan.close()
    assert sorted(verdicts) == sorted(blobs)
    assert {k for k, (v, _) in verdicts.items() if v != "good"} == {victim}
    assert verdicts[victim][0] == "bad"


@pytest.mark.parametrize("point", ["pack-write", "pack-staged", "pack-sealed", "pack-indexed"])
def test_a_kill_at_each_point_of_a_pack_converges(tmp_path: Path, point: str) -> None:
    """SIGKILL inside a pack's life: no index names bytes that are not durable; a rerun gives the same store."""
    script = f"""
import sys
from neuromirror.store.packs.store import PackStore
s = PackStore.directory({str(tmp_path / "s")!r}, pack_size=4096)
s.clean_stale()
for n in range(1, 6):
    key = "MD5E-s" + str(n * 1000) + "--" + "0" * 32
    if s.has(key):
        continue
    with s.receive(key) as inc:
        inc.write(bytes([n]) * (n * 1000))
        inc.commit()
s.sync()
"""
    env = {**os.environ, "NEUROMIRROR_CRASH_AT": point}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    # what the killed run left: every key an index names reads back whole
    s = PackStore.directory(str(tmp_path / "s"))
    for pack, offset, length in indexed(tmp_path / "s").values():
        assert (tmp_path / "s" / "packs" / f"{pack}.pack").stat().st_size >= offset + length
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    s = PackStore.directory(str(tmp_path / "s"))
    for n in range(1, 6):
        key = "MD5E-s" + str(n * 1000) + "--" + "0" * 32
        with s.open_key(key) as fh:
            assert fh.read() == bytes([n]) * (n * 1000)
    assert not [p for p in (tmp_path / "s" / "tmp").iterdir() if p.suffix == ".pack"]
    assert set(p.stem for p in (tmp_path / "s" / "packs").iterdir()) == set(
        p.stem for p in (tmp_path / "s" / "index").iterdir()
    )


def test_a_year_of_small_keeps_counts_objects_by_bytes(tmp_path: Path) -> None:
    """Service cycles each keeping a few new small keys: small packs are merged, the store's files stay
    within 2 x ceil(bytes / pack size) + 16, and every key reads at every step."""
    import hashlib
    import math

    pack_size = 64 << 10
    store = PackStore.directory(str(tmp_path / "s"), pack_size=pack_size)
    written: dict[str, bytes] = {}
    merged = 0
    for cycle in range(120):
        for i in range(10):
            n = 300 + (cycle * 10 + i) % 700
            data = f"{cycle}/{i}".encode() * (n // 8)
            key = f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bin"
            with store.receive(key) as inc:
                inc.write(data)
                inc.commit()
            written[key] = data
        store.sync()  # as keep does before it records a version's keys
        files = pack_files(tmp_path / "s")
        packed = sum(p.stat().st_size for p in files if p.suffix == ".pack")
        assert len(files) <= 2 * math.ceil(packed / pack_size) + 16, (cycle, len(files))
        reader = PackStore.directory(str(tmp_path / "s"))  # another process's view: its own files only
        for key in list(written)[-25:] + list(written)[:5]:
            assert reader.read_range(key) == written[key]
        merged = store.merged
    assert merged > 0
    reader = PackStore.directory(str(tmp_path / "s"))
    for key, data in written.items():
        with reader.open_key(key) as fh:
            assert fh.read() == data


PRUNE_SCRIPT = """
import hashlib, sys
from neuromirror.store.packs.store import PackStore
s = PackStore.directory(sys.argv[1], pack_size=8192)
s.clean_stale()
keys = {}
for i in range(12):
    data = (b"%d-" % i) * 700
    key = "MD5E-s%d--%s.bin" % (len(data), hashlib.md5(data).hexdigest())
    keys[key] = data
    if not s.has(key):
        with s.receive(key) as inc:
            inc.write(data)
            inc.commit()
s.sync()
live = set(list(keys)[::4])  # a quarter of the keys stay needed
s.prune(live)
"""


@pytest.mark.parametrize("point", ["", "repack-sealed", "repack-unindexed"])
def test_prune_drops_dead_keys_and_never_a_live_one_even_when_killed(tmp_path: Path, point: str) -> None:
    import hashlib

    where = str(tmp_path / "s")
    env = {**os.environ, "NEUROMIRROR_CRASH_AT": point} if point else dict(os.environ)
    first = subprocess.run([sys.executable, "-c", PRUNE_SCRIPT, where], env=env, capture_output=True, text=True)
    assert first.returncode == (-9 if point else 0), first.stderr
    if point:
        again = subprocess.run([sys.executable, "-c", PRUNE_SCRIPT, where], capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
    s = PackStore.directory(where)
    live = []
    for i in range(12):
        data = (b"%d-" % i) * 700
        key = f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bin"
        if i % 4 == 0:
            live.append(key)
            assert s.read_range(key) == data  # a live key always reads
    packed = sum(p.stat().st_size for p in (tmp_path / "s" / "packs").iterdir())
    assert packed < 12 * 2100 // 2  # most dead bytes are gone
    assert set(p.stem for p in (tmp_path / "s" / "packs").iterdir()) == set(
        p.stem for p in (tmp_path / "s" / "index").iterdir()
    )


@WHOLE
def test_a_truncated_pack_is_found_by_verify_and_named_by_the_keys_it_breaks(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    whole: bool,
) -> None:
    sizes = {"a.nwb": 10_000, "b.nwb": 12_000, "c.nwb": 14_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "packed"
    url = f"pack+file://{store}"
    assert d.run("keep", d.spec, "--to", url)[0] == 0
    where = indexed(store)
    keys = {p: key_of(d.ds, p, d.version) for p in sizes}
    (pack,) = {w[0] for w in where.values()}
    victim = store / "packs" / f"{pack}.pack"
    cut = min(where[k][1] + where[k][2] for k in keys.values()) + 10  # the first key whole, the rest cut
    os.chmod(victim, 0o644)
    os.truncate(victim, cut)
    broken = sorted(k for k in keys.values() if where[k][1] + where[k][2] > cut)
    assert len(broken) == 2

    code, out, err = d.run(*_verify_args(d, url, whole), "--json")
    assert code == 1, out + err
    report = json.loads(out)
    named = sorted(f["key"] for f in report["bad"] + report["missing"])
    assert named == broken  # the keys the cut breaks, named; the whole one is fine
    assert all(f["repaired"] for f in report["bad"] + report["missing"])
    assert d.run(*_verify_args(d, url, whole))[0] == 0
    fresh = PackStore.directory(str(store))
    for path, key in keys.items():
        assert fresh.read_range(key) == d.files[path]


def test_a_kept_zarr_comes_back_from_the_packs_with_get_r(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """A Zarr's chunks and a blob share a pack; every S3 version of both deleted; ``datalad get -r`` of a clone
    installs the Zarr's dataset (which records the packed store too) and gets every chunk from the pack."""
    from helpers.keep import lose_zarr

    chunks = {
        ".zgroup": b'{"zarr_format": 2}',
        "0/.zarray": b'{"chunks": [64], "zarr_format": 2}',
        "0/0": bytes(range(256)) * 3,
        "0/1": bytes(range(255, -1, -1)) * 4,
    }
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 5_000}, zarr=chunks)
    url = f"pack+file://{tmp_path / 'packed'}"
    code, out, err = d.run("keep", d.spec, "--to", url, "--json")
    assert code == 0, out + err
    assert json.loads(out)["versions"][0]["kept"] >= 3
    assert len(pack_files(tmp_path / "packed")) == 2  # the Zarr's chunks and the blob share one pack

    # verify --stores of the whole store walks the Zarr's dataset too: a rotten chunk is named by its path in
    # the version and re-kept from the archive (the Zarr's URLs, read from its branch for the repair only)
    packed = tmp_path / "packed"
    where = indexed(packed)
    (pack,) = {w[0] for w in where.values()}
    victim = packed / "packs" / f"{pack}.pack"
    data = bytearray(victim.read_bytes())
    (key,) = [k for k, (_, o, n) in where.items() if data[o : o + n] == chunks["0/0"]]
    data[where[key][1] + 1] ^= 0xFF
    os.chmod(victim, 0o644)
    victim.write_bytes(bytes(data))
    code, out, err = d.run("verify", "--stores", "--store", url, "--fraction", "1", "--json")
    assert code == 1, out + err
    report = json.loads(out)
    assert report["checked"] == len(where) and report["good"] == len(where) - 1
    assert [(b["key"], b["path"], b["repaired"]) for b in report["bad"]] == [(key, "sub-09/sample.zarr/0/0", True)]
    assert d.run("verify", "--stores", "--store", url)[0] == 0

    lose_zarr(d, "sub-09/sample.zarr")
    lose_blobs(d, ["sub-01/a.nwb"])
    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    proc = subprocess.run(["datalad", "get", "-r", "."], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "sub-01/a.nwb").read_bytes() == d.files["sub-01/a.nwb"]
    for name, data in chunks.items():
        assert (work / "sub-09/sample.zarr" / name).read_bytes() == data, name


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
    for url, kw, error in (
        (str(tmp_path / "d"), {"pack_size": 4096}, "^pack_size is for packed stores"),
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
    plain = open_store(str(tmp_path / "plain"), create=True)
    _ = plain.identity
    with pytest.raises(UserError, match="not empty and is not a neuromirror store|not a packed store"):
        _ = open_store(f"pack+file://{tmp_path}/plain", create=True).identity


def test_the_buffered_batch_of_verify_stores_reads_what_cat_file_reads(tmp_path: Path) -> None:
    """What git is asked in large batches (a Zarr's 10^4 symlinks where annex/objects.py cannot answer, a
    dataset's URL logs) goes through a ``cat-file --batch --buffer`` of its own: the same objects, in order,
    a missing one None."""
    from neuromirror.util import gitutil

    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    for i in range(300):
        (repo / f"f{i}").write_bytes(bytes([i % 256]) * (i * 37))
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "files")
    specs = [f"HEAD:f{i}" for i in range(300)] + ["HEAD:nothing-here"]
    with gitutil.CatFile(repo) as cat:
        expected = list(cat.get_many(specs))
        assert cat.get_few(specs[:5] + specs[-1:]) == expected[:5] + expected[-1:]  # the small batches' way
    assert gitutil.cat_buffered(repo, specs) == expected and expected[-1] is None and expected[7] == bytes([7]) * 259

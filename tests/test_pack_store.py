"""Packed stores (``pack+file://``, ``pack+s3://``): what only a packed store does.  Keys packed into a pack and its
index file (a store's files follow bytes, not keys), a pack read alone from its trailer, a pack checked in parts by
several readers, small packs merged, a truncated pack, a Zarr's chunks sharing a pack, the store's settings.

Why: a store that writes one file per key is refused where a backup can afford to go (tape, an inode quota, Deep
Archive's price per object).  What every kind owes (keep, reads after the loss, verify, restore, prune) is
tests/test_store_kinds.py's; a pack's kill points are tests/test_pack_kill.py's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from helpers.keep import key_of, lose_blobs, lose_zarr, make_dandiset
from helpers.packs import flip, held, indexed, put
from neuromirror.store.packs.layout import PackIndex
from neuromirror.store.packs.store import PackStore

BACKENDS = pytest.mark.parametrize("backend", ["file", "s3"])


def place(backend: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    return (
        f"pack+s3://{request.getfixturevalue('bucket')}/lab/{name}"
        if backend == "s3"
        else f"pack+file://{tmp_path / name}"
    )


@BACKENDS
def test_keep_packs_every_key_into_one_pack_and_its_index(dandi_archive, s3, tmp_path, request, backend) -> None:  # noqa: ANN001
    """12 keys kept by 3 jobs: the store's config, one index file and one pack, never a file per key; each key one
    range of the pack."""
    sizes = {f"sub-{i:02d}/f.nwb": 5_000 + 300 * i for i in range(12)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    url = place(backend, tmp_path, request, "packed")
    code, out, err = d.run("keep", d.spec, "--to", url, "--pack-size", "1M", "--json", "-J", "3")
    assert code == 0 and json.loads(out)["store"]["kind"] == "pack", out + err
    assert json.loads(out)["versions"][0]["kept"] == len(sizes)
    files = held(url, s3)
    assert sorted(n.split("/")[0] for n in files) == [".neuromirror-store.json", "index", "packs"], sorted(files)
    where, keys = indexed(files), {p: key_of(d.ds, p, d.version) for p in sizes}
    assert set(where) == set(keys.values())
    pack = files[f"packs/{next(iter(where.values()))[0]}.pack"]
    for path, key in keys.items():
        _, offset, length = where[key]
        assert pack[offset : offset + length] == d.files[path]
    config = json.loads(files[".neuromirror-store.json"])
    assert (config["type"], config["pack_size"]) == ("pack", 1_000_000)
    remote_log = subprocess.run(["git", "-C", str(d.ds), "show", "git-annex:remote.log"], capture_output=True).stdout
    assert b"externaltype=neuromirror-pack" in remote_log and (backend == "file" or b"endpoint=http" in remote_log)


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


def test_a_pack_read_in_parts_by_several_readers_names_the_one_rotten_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify --stores reads a big pack as runs of neighbouring keys, one reader each (one 256 MiB pack held one
    core where two were there): every key is checked once, from its own offset, and a flipped byte in a key in
    the middle of a run is named, and only it."""
    from neuromirror.store.packs import check

    monkeypatch.setattr(check, "PART_KEYS", 5)
    objects = {f"MD5E-s{len(b)}--{hashlib.md5(b).hexdigest()}.bin": b for b in (os.urandom(300 + n) for n in range(40))}
    put(PackStore.directory(str(tmp_path / "s"), pack_size=1 << 20), objects)
    (pack,) = (tmp_path / "s" / "packs").glob("*.pack")
    where = indexed(tmp_path / "s")
    victim = sorted(objects, key=lambda k: where[k][1])[17]  # inside the 4th of 8 runs, neither its first nor last
    flip(pack, where[victim][1] + where[victim][2] // 2)

    assert len(check._parts([(o, n, k) for k, (_, o, n) in where.items()], 8, 1)) == 8
    scan = check.Scan(PackStore.directory(str(tmp_path / "s")), jobs=8)
    try:
        verdicts = dict(scan.check(list(objects)))
    finally:
        scan.close()
    assert sorted(verdicts) == sorted(objects)
    assert {k for k, (v, _) in verdicts.items() if v != "good"} == {victim} and verdicts[victim][0] == "bad"


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


@pytest.mark.parametrize("whole", [False, True], ids=["one-source", "whole-store"])
def test_a_truncated_pack_is_found_by_verify_and_named_by_the_keys_it_breaks(dandi_archive, tmp_path, whole) -> None:  # noqa: ANN001
    """verify --stores of one source's copies (its packs read for the keys chosen), or of the whole store (every
    copy: its packs read whole while the branches are walked, ``store.packs.check.Scan``)."""
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


CHUNKS = {
    ".zgroup": b'{"zarr_format": 2}',
    "0/.zarray": b'{"chunks": [64], "zarr_format": 2}',
    "0/0": bytes(range(256)) * 3,
    "0/1": bytes(range(255, -1, -1)) * 4,
}


@BACKENDS
def test_a_kept_zarr_shares_a_pack_and_a_stranger_gets_it_with_get_r_after_the_mirror_moved_away(
    dandi_archive,
    s3,
    tmp_path,
    request,
    backend,  # noqa: ANN001
) -> None:
    """A Zarr's chunks and a blob share one pack; ``verify --stores`` of the whole store walks the Zarr's dataset
    too (a rotten chunk named by its path and re-kept from the archive); published into a RIA store, every S3
    version of both deleted and the mirror moved away, a stranger's ``datalad clone`` + ``datalad get -r``
    installs the Zarr's dataset (which records the packed store too) and gets every chunk from the pack."""
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 5_000}, zarr=CHUNKS)
    url = place(backend, tmp_path, request, "packed")
    code, out, err = d.run("keep", d.spec, "--to", url, "--json")
    assert code == 0 and json.loads(out)["versions"][0]["kept"] >= 3, out + err
    files = held(url, s3)
    where = indexed(files)
    assert len([n for n in files if n.startswith("packs/")]) == 1  # the Zarr's chunks and the blob share one pack
    (key,) = [k for k, (p, o, n) in where.items() if files[f"packs/{p}.pack"][o : o + n] == CHUNKS["0/0"]]
    pack, offset, _ = where[key]
    rotten = bytearray(files[f"packs/{pack}.pack"])
    rotten[offset + 1] ^= 0xFF
    if backend == "s3":
        bucket, prefix = url[len("pack+s3://") :].split("/", 1)
        s3.client().put_object(Bucket=bucket, Key=f"{prefix}/packs/{pack}.pack", Body=bytes(rotten))
    else:
        flip(tmp_path / "packed" / "packs" / f"{pack}.pack", offset + 1)
    code, out, err = d.run("verify", "--stores", "--store", url, "--fraction", "1", "--json")
    assert code == 1, out + err
    report = json.loads(out)
    assert report["checked"] == len(where) and report["good"] == len(where) - 1
    assert [(b["key"], b["path"], b["repaired"]) for b in report["bad"]] == [(key, "sub-09/sample.zarr/0/0", True)]
    assert d.run("verify", "--stores", "--store", url)[0] == 0

    ria = tmp_path / "ria"
    d.run.ok("publish", d.source, "--to", f"ria+file://{ria}")
    lose_zarr(d, "sub-09/sample.zarr")
    lose_blobs(d, ["sub-01/a.nwb"])
    (tmp_path / "mirror").rename(tmp_path / "gone")  # the mirror's machine is no help any more
    work, run = tmp_path / "stranger", {"capture_output": True, "text": True}
    proc = subprocess.run(["datalad", "clone", f"ria+file://{ria}#~dandi/{d.id}", str(work)], **run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["git", "-C", str(work), "checkout", "-q", d.version], check=True)
    proc = subprocess.run(["datalad", "get", "-r", "."], cwd=work, **run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "sub-01/a.nwb").read_bytes() == d.files["sub-01/a.nwb"]
    for name, data in CHUNKS.items():
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
    _ = open_store(str(tmp_path / "plain"), create=True).identity
    with pytest.raises(UserError, match="not empty and is not a neuromirror store|not a packed store"):
        _ = open_store(f"pack+file://{tmp_path}/plain", create=True).identity

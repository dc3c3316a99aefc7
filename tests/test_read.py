"""Reading a pin in place: ``neuromirror urls`` and the ``neuromirror://`` fsspec filesystem, with the real clients.

A dandiset on the stand-ins holds an HDF5 file (as NWB files are), a Zarr array and a README. A lab
lists the pin's URLs and fetches every one (each answers with its key's bytes), reads a slice of the
HDF5 file with h5py by range requests (far fewer bytes than the file), and reads the Zarr with
zarr-python at two pins around an in-place rewrite of a chunk upstream: the old pin gives the old
values. After the archive loses a kept file, its URL is the store's; an unkept lost file has none.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from helpers.keep import lose_blobs
from helpers.read import H5, OTHER, ZARR, Mirrored, zarr_files


@pytest.fixture(scope="module")
def mirrored(dandi_archive, tmp_path_factory) -> Mirrored:  # noqa: ANN001
    return Mirrored(dandi_archive, tmp_path_factory.mktemp("read") / "mirror")


def fetch(url: str) -> bytes:
    if url.startswith("file://"):
        return Path(url[len("file://") :]).read_bytes()
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def matches_key(data: bytes, key: str) -> bool:
    if key.startswith("GIT-SHA256-"):  # a file kept in git, as lock files name it
        key = key[len("GIT-") :]
    backend, _, rest = key.partition("-")
    digest = rest.split("--", 1)[1].split(".", 1)[0]
    algo = {"SHA256E": "sha256", "SHA256": "sha256", "MD5E": "md5", "MD5": "md5"}[backend]
    return f"-s{len(data)}-" in key and hashlib.new(algo, data).hexdigest() == digest


def test_urls_of_a_pin_each_serve_the_keys_exact_bytes(mirrored: Mirrored) -> None:
    rows = mirrored.urls(f"{mirrored.source}@draft")
    by_path = {r["path"]: r for r in rows}
    assert {H5, OTHER, "README.md", "dandiset.yaml"} <= set(by_path)
    zarr_objects = sorted(p for p in by_path if p.startswith(ZARR + "/"))
    assert zarr_objects == sorted(f"{ZARR}/{k}" for k in zarr_files(mirrored.new))
    for r in rows:
        assert {"path", "url", "size", "key"} <= set(r)
        if r["path"] == "dandiset.yaml":  # written by the mirror from the archive's metadata: no archive file
            assert (r["served_by"], r["url"]) == ("git", None) and r["key"].startswith("GIT-SHA256-")
            continue
        # every other file, kept in git (README.md) or annexed, by the archive's pinned URL
        assert r["served_by"] in ("archive", "git") and "versionId=" in r["url"], r
        data = fetch(r["url"])
        assert len(data) == r["size"] and matches_key(data, r["key"]), r["path"]
    assert by_path["README.md"]["served_by"] == "git" and fetch(by_path["README.md"]["url"]) == b"# read in place\n"
    assert fetch(by_path[H5]["url"]) == mirrored.h5
    # a Zarr's path lists its objects; the older pin's rewritten chunk has the older S3 version
    old = {r["path"]: r for r in mirrored.urls(f"{mirrored.source}@{mirrored.first}", ZARR)}
    new = {r["path"]: r for r in mirrored.urls(f"{mirrored.source}@draft", ZARR)}
    assert set(old) == set(new) == set(zarr_objects)
    chunk = f"{ZARR}/0.0"
    assert old[chunk]["url"] != new[chunk]["url"] and old[chunk]["key"] != new[chunk]["key"]
    assert old[f"{ZARR}/1.1"]["url"] == new[f"{ZARR}/1.1"]["url"]
    # a path inside the Zarr's subdataset names that object alone
    (one,) = mirrored.urls(f"{mirrored.source}@{mirrored.first}", chunk)
    assert one["path"] == chunk and one["url"] == old[chunk]["url"]
    # text: PATH<TAB>URL; a lock file names the same state
    code, out, err = mirrored.run("urls", f"{mirrored.source}@draft", H5)
    assert code == 0 and out == f"{H5}\t{by_path[H5]['url']}\n" and "1 file(s): 1 from the archive" in err
    lock = mirrored.root.parent / "data.lock"
    mirrored.run.ok("lock", f"{mirrored.source}@draft", "-o", str(lock))
    assert {r["path"]: r["url"] for r in mirrored.urls("--lock", str(lock), ZARR)} == {
        p: r["url"] for p, r in new.items()
    }


def test_urls_refuses_what_it_cannot_name(mirrored: Mirrored) -> None:
    code, _, err = mirrored.run("urls", f"{mirrored.source}@0123abc")
    assert code == 2 and "no version or commit '0123abc'" in err
    code, _, err = mirrored.run("urls", f"{mirrored.source}@draft", "no/such/path")
    assert code == 2 and "no file of" in err
    code, _, err = mirrored.run("urls", "dandi:999999@draft")
    assert code == 2 and "not mirrored" in err


def test_zarr_python_reads_each_pin_through_neuromirror_fsspec(mirrored: Mirrored) -> None:
    import zarr

    opts = {"root": str(mirrored.root)}
    old = zarr.open_array(f"neuromirror://dandi/{mirrored.id}@{mirrored.first}/{ZARR}", mode="r", storage_options=opts)
    new = zarr.open_array(f"neuromirror://dandi/{mirrored.id}@draft/{ZARR}", mode="r", storage_options=opts)
    np.testing.assert_array_equal(old[:], mirrored.old)
    np.testing.assert_array_equal(new[:], mirrored.new)


def test_h5py_reads_a_slice_by_range_requests(mirrored: Mirrored) -> None:
    import fsspec
    import h5py

    fs = fsspec.filesystem("neuromirror", root=str(mirrored.root))
    path = f"dandi/{mirrored.id}@draft/{H5}"
    info = fs.info(path)
    assert info["size"] == len(mirrored.h5) and info["served_by"] == "archive"
    assert [e["name"] for e in fs.ls(f"dandi/{mirrored.id}@draft/sub-01")] == [f"dandi/{mirrored.id}@draft/{H5}"]
    assert fs.cat_file(path, start=0, end=8) == mirrored.h5[:8] == b"\x89HDF\r\n\x1a\n"

    s3 = mirrored.archive.s3

    def fetched(**options) -> int:  # noqa: ANN003
        """Bytes the archive sent for a 10-value slice, read by h5py through ``fsspec.open`` with ``options``."""
        s3.log_requests()
        try:
            with fsspec.open(f"neuromirror://{path}", "rb", root=str(mirrored.root), **options) as f:
                with h5py.File(f, "r") as h5:
                    got = h5["data"][200_000:200_010]
        finally:
            s3.log_requests(False)
        np.testing.assert_array_equal(got, np.arange(200_000, 200_010, dtype="float64"))
        return s3.bytes_sent

    # what remfile-like minimal reads move: exactly what h5py asks for, no read-ahead
    minimal = fetched(cache_type="none")
    default = fetched()
    assert 0 < minimal <= default <= 4 * minimal, (minimal, default)
    assert default < len(mirrored.h5) // 20, (default, len(mirrored.h5))
    # block_size and cache_type are honoured, as storage options and as open()'s arguments
    assert fetched(cache_type="readahead", block_size=1 << 20) >= 1 << 20
    assert fetched(cache_type="bytes", block_size=2 << 20) >= 2 << 20
    with fs.open(path, "rb", block_size=1 << 20, cache_type="readahead") as f:
        assert (f.blocksize, type(f.cache).__name__) == (1 << 20, "ReadAheadCache")
    with fs.open(path, "rb") as f:
        assert (f.blocksize, type(f.cache).__name__) == (32 * 1024, "ReadAheadCache")
    with fsspec.open(f"neuromirror://{path}", "rb", root=str(mirrored.root)) as f:
        assert f.read() == mirrored.h5


def test_a_lost_file_is_read_from_the_store_and_an_unkept_one_has_no_url(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.keep import make_dandiset

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 20_000, "sub-02/b.nwb": 30_001})
    store = tmp_path / "store"
    d.run.ok("keep", d.spec, "--to", str(store), "--include", "sub-01/a.nwb")
    lose_blobs(d, ["sub-01/a.nwb", "sub-02/b.nwb"])
    code, out, err = d.run("urls", d.spec, "--json")
    assert code == 0, err
    rows = {r["path"]: r for r in json.loads(out)}
    # the archive's pinned URL is still what the dataset records for both: a loss is not visible without asking
    kept, lost = rows["sub-01/a.nwb"], rows["sub-02/b.nwb"]
    assert kept["served_by"] == lost["served_by"] == "archive"
    code, out, err = d.run("urls", d.spec, "--json", "--check")
    assert code == 1, out + err
    rows = {r["path"]: r for r in json.loads(out)}
    kept, lost = rows["sub-01/a.nwb"], rows["sub-02/b.nwb"]
    assert kept["served_by"] == "store" and kept["url"].startswith("file://")
    assert fetch(kept["url"]) == d.files["sub-01/a.nwb"]
    assert lost["served_by"] == "none" and lost["url"] is None and "no longer serves" in lost["why"]
    assert "sub-02/b.nwb" in err and lost["key"] in err


def test_boss_chunks_are_not_streamable_and_say_why(tmp_path: Path) -> None:
    """A BOSS chunk's only URL is a cutout the BOSS can rewrite: no URL is given, and the reason is the BOSS's."""
    from neuromirror.read.urls import _choose
    from neuromirror.sources.boss import ARCHIVE

    f = _choose("img.ome.zarr/0/0/0/0", "SHA256E-s8--ab", 8, ["neuromirror+boss+http://h/c?chunk=0"], {}, {}, tmp_path)
    assert (f.url, f.served_by, f.why) == (None, "none", ARCHIVE.special_remote[1])

"""The mirror's own readers read a kept copy from a packed store and from a plain S3 store, as a lab would.

Why: a store a bucket-based backup can use (``s3://``, ``pack+s3://``) or one a tape or inode quota can
take (``pack+file://``, ``pack+s3://``) is worth little if ``neuromirror://``, the view and ``urls`` cannot
read it once the archive lost the bytes (``neuromirror://`` said "no store of the lab's holds it" of a file
an S3 store kept).  A dandiset (three files and a Zarr) is mirrored from the stand-in archive and kept
into three stores: ``sub-01`` into a packed directory, ``sub-02`` and the Zarr into a packed prefix of the
lab's moto bucket, ``sub-03`` into a plain ``s3://`` prefix of the same bucket (no public URL: read with the
process's endpoint and credentials).  Readers open the files while the archive serves; then every S3
version of the blobs and the Zarr's objects is deleted from the archive's bucket, and the readers read on
through ``neuromirror://`` (fsspec), the view's WebDAV (webdav4, a real ``neuromirror serve`` process) and
``/zarrs/`` (zarr-python), and ``urls --json`` names each store copy.  The lab bucket's requests are
counted from the moto server's own log: at most two per key.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import requests

from helpers.keep import ACCESS_KEY, SECRET_KEY, Dandiset, lose_blobs, lose_zarr, make_dandiset
from helpers.read import view_server, zarr_files
from helpers.service import ENV

FILES = {"sub-01/a.nwb": 300_000, "sub-02/b.nwb": 200_003, "sub-03/c.nwb": 150_001}
PACKED_HERE, PACKED_S3, PLAIN_S3 = FILES
ZARR = "sub-09/sample.zarr"
VALUES = np.arange(16, dtype="int32").reshape(4, 4) * 7


class World:
    def __init__(self, archive, s3, tmp: Path, env: pytest.MonkeyPatch) -> None:  # noqa: ANN001
        self.s3, self.bucket = s3, f"lab-packs-{uuid.uuid4().hex[:10]}"
        s3.client().create_bucket(Bucket=self.bucket)
        s3.buckets.append(self.bucket)
        settings = {
            "NEUROMIRROR_STORE_ENDPOINT": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        for name, value in settings.items():
            env.setenv(name, value)
            env.setitem(ENV, name, value)  # the view's process too
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "NEUROMIRROR_STORE_REGION", "NEUROMIRROR_STORE_PUBLIC_URL"):
            env.delenv(name, raising=False)
            env.delitem(ENV, name, raising=False)
        self.chunks = zarr_files(VALUES)
        self.d: Dandiset = make_dandiset(archive, tmp / "mirror", FILES, zarr=self.chunks)
        self.stores = {
            PACKED_HERE: f"pack+file://{tmp / 'packed'}",
            PACKED_S3: f"pack+s3://{self.bucket}/packed",
            PLAIN_S3: f"s3://{self.bucket}/plain",
        }
        for path, store in self.stores.items():
            more = ["--include", f"{ZARR}/*"] if path == PACKED_S3 else []
            size = ["--pack-size", "1M"] if store.startswith("pack+") else []
            self.d.run.ok("keep", self.d.spec, "--to", store, "--include", path, *more, *size)
        self.lost = False

    @property
    def root(self) -> Path:
        return self.d.run.root

    def pin(self) -> str:
        return f"dandi/{self.d.id}@{self.d.version}"

    def lose(self) -> None:
        """What garbage collection and the lifecycle rule do: every S3 version of the blobs and chunks, gone."""
        if not self.lost:
            self.lost = True
            lose_blobs(self.d, list(FILES))
            lose_zarr(self.d, ZARR)

    def lab_requests(self, log: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(m, p) for m, p in log if p.startswith(f"/{self.bucket}/") or p.startswith(f"/{self.bucket}?")]


@pytest.fixture(scope="module")
def world(dandi_archive, s3, tmp_path_factory) -> Iterator[World]:  # noqa: ANN001
    with pytest.MonkeyPatch.context() as env:
        yield World(dandi_archive, s3, tmp_path_factory.mktemp("pack-read"), env)


def test_neuromirror_fs_reads_on_from_every_store_after_the_archive_lost_the_bytes(world: World) -> None:
    import fsspec
    import zarr

    assert not world.lost, "this test opens the files while the archive still serves them"
    opts = {"root": str(world.root)}
    fs = fsspec.filesystem("neuromirror", skip_instance_cache=True, **opts)
    opened = {path: fs.open(f"{world.pin()}/{path}", "rb", cache_type="none") for path in FILES}
    arr = zarr.open_array(f"neuromirror://{world.pin()}/{ZARR}", mode="r", storage_options=opts)
    for path, f in opened.items():
        assert f.read(1000) == world.d.files[path][:1000]  # the archive's bytes
    np.testing.assert_array_equal(arr[0:2, 0:2], VALUES[0:2, 0:2])

    world.lose()  # after the readers started: their files' URLs die under them

    for path, f in opened.items():
        f.seek(100_000)
        assert f.read(40_000) == world.d.files[path][100_000:140_000], path  # the store's copy
        f.close()
    np.testing.assert_array_equal(arr[:], VALUES)  # chunk 0.0 read again from the packed S3 store, the rest too

    # a reader started now: every file whole, and a range of each; at most two lab-bucket requests per key
    fresh = fsspec.filesystem("neuromirror", skip_instance_cache=True, **opts)
    log = world.s3.log_requests()
    try:
        for path, data in world.d.files.items():
            assert fresh.cat_file(f"{world.pin()}/{path}") == data, path
            assert fresh.cat_file(f"{world.pin()}/{path}", start=5, end=4_005) == data[5:4_005], path
            assert fresh.info(f"{world.pin()}/{path}")["served_by"] == "store"
    finally:
        world.s3.log_requests(False)
    # the two files kept in the bucket, read twice each: one ranged GET per read, and the packed store's index
    # files read once by this filesystem, which holds the stores it opened (its listing and its one index file)
    got = world.lab_requests(log)
    index = [p for _, p in got if "/packed/index/" in p or "prefix=packed%2Findex%2F" in p]
    assert [m for m, _ in got] == ["GET"] * 6 and len(index) == 2, got
    info = fresh.info(f"{world.pin()}/{PLAIN_S3}")
    assert info["url"].startswith(f"s3://{world.bucket}/plain/"), info


def test_the_views_webdav_and_zarrs_routes_stream_every_stores_copy(world: World) -> None:
    import zarr
    from webdav4.fsspec import WebdavFileSystem

    world.lose()
    z = world.d.archive.asset_at(world.d.id, ZARR, world.d.version).zarr
    with view_server(world.root) as base:
        dav = WebdavFileSystem(base + "dav")
        pin = f"dandi/{world.d.id}/{world.d.version}"
        for path, data in world.d.files.items():
            assert dav.info(f"{pin}/{path}")["size"] == len(data)
            assert dav.cat_file(f"{pin}/{path}") == data, path
            assert dav.cat_file(f"{pin}/{path}", start=70_000, end=70_100) == data[70_000:70_100], path
        # one GET of the view, one request to the store (its index files were read once, above)
        log = world.s3.log_requests()
        try:
            for path in (PACKED_S3, PLAIN_S3):
                r = requests.get(f"{base}dav/{pin}/{path}", headers={"Range": "bytes=1000-1999"}, timeout=30)
                assert (r.status_code, r.content) == (206, world.d.files[path][1000:2000]), path
        finally:
            world.s3.log_requests(False)
        assert [m for m, _ in world.lab_requests(log)] == ["GET", "GET"], world.lab_requests(log)
        np.testing.assert_array_equal(zarr.open_array(f"{base}dav/{pin}/{ZARR}", mode="r")[:], VALUES)

        manifests = f"{base}zarr-manifests/{z.zarr_id[:3]}/{z.zarr_id[3:6]}/{z.zarr_id}/"
        (state,) = requests.get(manifests, timeout=30).json()["files"]
        zarrs = f"{base}zarrs/{z.zarr_id[:3]}/{z.zarr_id[3:6]}/{z.zarr_id}/{state[: -len('.json')]}.zarr"
        r = requests.get(f"{zarrs}/0.0", headers={"Range": "bytes=2-9"}, timeout=30)
        assert (r.status_code, r.content) == (206, world.chunks["0.0"][2:10])
        np.testing.assert_array_equal(zarr.open_array(zarrs, mode="r")[:], VALUES)


def test_urls_names_each_store_copy_with_its_byte_range(world: World) -> None:
    import boto3

    world.lose()
    rows = {r["path"]: r for r in world.d.run.json("urls", world.d.spec, "--check")}
    again = {r["path"]: r for r in world.d.run.json("urls", world.d.spec)}  # the loss --check found, remembered
    for path in world.d.files:
        for got in (rows[path], again[path]):
            assert got["served_by"] == "store", got
        assert again[path]["url"] == rows[path]["url"]

    # a packed directory store: the pack's file, the key's bytes named in the fragment and in "range"
    here = rows[PACKED_HERE]
    pack, _, fragment = here["url"].partition("#")
    assert pack.startswith(f"file://{world.stores[PACKED_HERE][len('pack+file://') :]}/packs/") and pack.endswith(
        ".pack"
    )
    offset, length = here["range"]
    assert fragment == f"bytes={offset}-{offset + length - 1}" and length == FILES[PACKED_HERE]
    with open(pack[len("file://") :], "rb") as fh:
        fh.seek(offset)
        assert fh.read(length) == world.d.files[PACKED_HERE]

    # a packed S3 store without a public URL: its pack's s3:// object, read with the lab's credentials
    client = boto3.client(
        "s3",
        endpoint_url=world.s3.endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    packed = rows[PACKED_S3]
    obj, _, _ = packed["url"].partition("#")
    assert obj.startswith(f"s3://{world.bucket}/packed/packs/"), packed
    offset, length = packed["range"]
    name = obj[len(f"s3://{world.bucket}/") :]
    body = client.get_object(Bucket=world.bucket, Key=name, Range=f"bytes={offset}-{offset + length - 1}")["Body"]
    assert body.read() == world.d.files[PACKED_S3]

    # a plain S3 store without a public URL: the object itself, the whole of it (no range)
    plain = rows[PLAIN_S3]
    assert plain["url"] == f"s3://{world.bucket}/plain/{plain['key']}" and "range" not in plain
    assert client.get_object(Bucket=world.bucket, Key=f"plain/{plain['key']}")["Body"].read() == world.d.files[PLAIN_S3]

    text = world.d.run.ok("urls", world.d.spec)
    lines = dict(line.split("\t", 1) for line in text.splitlines())
    assert lines[PACKED_HERE] == here["url"] and lines[PLAIN_S3] == plain["url"]

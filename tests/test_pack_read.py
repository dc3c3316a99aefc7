"""The mirror's readers of a bucket's stores, counted: one GET a read, a packed store's index read once, not once a
key; and a Zarr kept into a packed store read on by ``neuromirror://``, the view's WebDAV and its ``/zarrs/``.

Why: a read from a store in a bucket is the lab's bill and its latency.  A dandiset (two files and a Zarr) is kept
into the lab's moto bucket: one file and the Zarr into a packed prefix, the other into a plain ``s3://`` prefix (no
public URL: read with the process's endpoint and credentials); the archive loses every S3 version of them, and
the lab bucket's requests are counted from the moto server's own log.  (Every kind's reads after the loss, whole
and by range, ``urls`` and the view's WebDAV: tests/test_store_kinds.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import requests

from helpers.keep import lab_bucket, lose_blobs, lose_zarr, make_dandiset
from helpers.read import view_server, zarr_files

FILES = {"sub-02/b.nwb": 200_003, "sub-03/c.nwb": 150_001}
PACKED, PLAIN = FILES
ZARR = "sub-09/sample.zarr"
VALUES = np.arange(16, dtype="int32").reshape(4, 4) * 7


class World:
    def __init__(self, archive, s3, tmp: Path, bucket: str) -> None:  # noqa: ANN001
        self.s3, self.bucket, self.chunks = s3, bucket, zarr_files(VALUES)
        self.d = d = make_dandiset(archive, tmp / "mirror", FILES, zarr=self.chunks)
        d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/packed", "--include", PACKED, "--include", f"{ZARR}/*")
        d.run.ok("keep", d.spec, "--to", f"s3://{bucket}/plain", "--include", PLAIN)
        self.pin, self.lost = f"dandi/{d.id}@{d.version}", False

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            lose_blobs(self.d, list(FILES))
            lose_zarr(self.d, ZARR)

    def lab_requests(self, log: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(m, p) for m, p in log if p.startswith(f"/{self.bucket}/") or p.startswith(f"/{self.bucket}?")]


@pytest.fixture(scope="module")
def world(dandi_archive, s3, tmp_path_factory) -> Iterator[World]:  # noqa: ANN001
    with lab_bucket(s3) as bucket:
        yield World(dandi_archive, s3, tmp_path_factory.mktemp("pack-read"), bucket)


def test_neuromirror_fs_costs_a_get_a_read_and_a_zarr_reads_on_from_the_packs(world: World) -> None:
    import fsspec
    import zarr

    assert not world.lost, "this test opens the Zarr while the archive still serves it"
    opts = {"root": str(world.d.run.root)}
    arr = zarr.open_array(f"neuromirror://{world.pin}/{ZARR}", mode="r", storage_options=opts)
    np.testing.assert_array_equal(arr[0:2, 0:2], VALUES[0:2, 0:2])
    world.lose()  # after the reader started: its chunks' URLs die under it
    np.testing.assert_array_equal(arr[:], VALUES)  # chunk 0.0 read again from the packed S3 store, the rest too

    fresh = fsspec.filesystem("neuromirror", skip_instance_cache=True, **opts)
    log = world.s3.log_requests()
    try:
        for path, data in world.d.files.items():
            assert fresh.cat_file(f"{world.pin}/{path}") == data, path
            assert fresh.cat_file(f"{world.pin}/{path}", start=5, end=4_005) == data[5:4_005], path
    finally:
        world.s3.log_requests(False)
    # each file read twice: one ranged GET per read, and the packed store's index files read once by this
    # filesystem, which holds the stores it opened (its listing and its one index file)
    got = world.lab_requests(log)
    index = [p for _, p in got if "/packed/index/" in p or "prefix=packed%2Findex%2F" in p]
    assert [m for m, _ in got] == ["GET"] * 6 and len(index) == 2, got
    info = fresh.info(f"{world.pin}/{PLAIN}")
    assert info["url"].startswith(f"s3://{world.bucket}/plain/"), info


def test_the_views_range_request_costs_one_store_get_and_its_zarr_routes_read_the_packs(world: World) -> None:
    import zarr
    from webdav4.fsspec import WebdavFileSystem

    world.lose()
    z = world.d.archive.asset_at(world.d.id, ZARR, world.d.version).zarr
    with view_server(world.d.run.root) as base:
        pin = f"dandi/{world.d.id}/{world.d.version}"
        for path, data in world.d.files.items():  # the packed store's index files read once, here
            assert WebdavFileSystem(base + "dav").cat_file(f"{pin}/{path}") == data, path
        log = world.s3.log_requests()  # then one GET of the view, one request to the store
        try:
            for path in FILES:
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

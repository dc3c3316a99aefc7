"""A large Zarr is listed by several clients at once, by key range (issue 40), and the result is
exactly the one-client listing: every current object with its versionId, nothing deleted, nothing
twice, whatever the ranges' edges cut (objects beside directories of the same name start, files
at the root, a deleted object, an overwritten one)."""

from __future__ import annotations

import threading

import pytest

from neuromirror.sources import s3listing
from neuromirror.sources.dandi import zarr_listing as zl

BUCKET = "nm-zarr-split"
PREFIX = "zarr/0d5b9be5-e626-4f6a-96da-b6b602954899/"


def objects() -> dict[str, bytes]:
    files = {".zgroup": b"{}", ".zattrs": b"{}", "0/.zarray": b"{}", "0/1.x": b"edge", "labels/.zgroup": b"{}"}
    for z in range(12):
        for y in range(9):
            files[f"0/{z}/{y}"] = f"{z}.{y}".encode()
    for y in range(7):
        files[f"1/0/{y}"] = f"1.{y}".encode()
    return files


@pytest.fixture(scope="module")
def zarr(s3):  # noqa: ANN001, ANN201
    s3.create_bucket(BUCKET, versioned=True, public=True)
    for key, data in objects().items():
        s3.put(BUCKET, PREFIX + key, data)
    s3.put(BUCKET, PREFIX + "0/3/3", b"overwritten")  # a second version: the latest is listed
    s3.put(BUCKET, PREFIX + "0/gone", b"deleted")
    s3.client().delete_object(Bucket=BUCKET, Key=PREFIX + "0/gone")  # a delete marker: not listed
    return s3.url(BUCKET, PREFIX)


def test_split_listing_is_the_one_client_listing(zarr, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("NEUROMIRROR_S3_ENDPOINT", zarr.split(f"/{BUCKET}/", 1)[0])
    one = sorted(zl.list_s3(zarr), key=lambda o: o.rel)
    assert {o.rel for o in one} == set(objects()) and len(one) == len(objects())
    assert {o.rel: o for o in one}["0/3/3"].size == len(b"overwritten")
    monkeypatch.setattr(zl, "SPLIT_MIN", 10)
    monkeypatch.setattr(zl, "LIST_CLIENTS", 3)
    monkeypatch.setattr(zl, "PAGE", 10)  # pages of the count: 12 ranges asked for
    threads: set[str] = set()
    pages = s3listing.paginate_versions

    def seen(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        threads.add(threading.current_thread().name)
        yield from pages(*args, **kwargs)

    monkeypatch.setattr(s3listing, "paginate_versions", seen)
    split = sorted(zl.list_s3(zarr, expected=len(objects())), key=lambda o: o.rel)
    assert split == one
    assert len(threads) > 1, threads  # listed by several clients, not one


def test_key_ranges_cover_every_key_once_in_order(zarr, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("NEUROMIRROR_S3_ENDPOINT", zarr.split(f"/{BUCKET}/", 1)[0])
    endpoint, bucket, prefix = zl._s3_location(zarr)
    from neuromirror.sources.dandi.unsigned_s3 import UnsignedS3

    ranges = zl.key_ranges(UnsignedS3(endpoint), bucket, prefix, 6)
    assert len(ranges) > 2 and ranges[0][0] is None and ranges[-1][1] is None
    keys = sorted(PREFIX + k for k in objects())
    for key in keys:  # each key falls in at least one range
        assert any((a is None or key > a) and (b is None or key < b) for a, b in ranges), key
    assert [b for _, b in ranges[:-1]] == sorted(b for _, b in ranges[:-1] if b)

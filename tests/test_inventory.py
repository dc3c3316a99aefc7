"""An archive bucket's S3 Inventory (issue 75), read back as the bucket's versions: the stand-in writes one
from moto's actual bucket state in AWS's layout, the reader streams it file by file, MD5-checked."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from neuromirror.inventory import InventoryError, open_inventory
from neuromirror.standins.s3_inventory import bucket_inventory, directory_put, version_rows, write_inventory
from neuromirror.util.dates import parse_iso

DAY1 = datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc)
DAY2 = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def archive(s3: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A versioned archive bucket (overwrites, a deletion, awkward keys, a multipart object) and a private
    bucket its inventory is delivered to; the reader's credentials in the environment."""
    source, dest = f"arch-{uuid.uuid4().hex[:8]}", f"inv-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(source)
    s3.create_bucket(dest, versioned=False, public=False)
    c = s3.client()
    c.put_object(Bucket=source, Key="blobs/abc/def/0001", Body=b"first")
    c.put_object(Bucket=source, Key="blobs/abc/def/0001", Body=b"second, longer")
    c.put_object(Bucket=source, Key="blobs/abc/def/gone", Body=b"deleted later")
    c.delete_object(Bucket=source, Key="blobs/abc/def/gone")
    c.put_object(Bucket=source, Key="zarr/z1/a b+c/ü%.json", Body=b"{}")
    up = c.create_multipart_upload(Bucket=source, Key="zarr/z1/0/0")
    part = c.upload_part(Bucket=source, Key="zarr/z1/0/0", UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 100)
    c.complete_multipart_upload(
        Bucket=source,
        Key="zarr/z1/0/0",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    return source, dest


def moto_state(s3: Any, bucket: str) -> set[tuple]:
    """(key, versionId, latest, delete marker, size, ETag, multipart) of every version, as moto lists them."""
    out = set()
    for page in s3.client().get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            etag = v["ETag"].strip('"')
            out.add((v["Key"], v["VersionId"], v["IsLatest"], False, v["Size"], etag, "-" in etag))
        for m in page.get("DeleteMarkers", []):
            out.add((m["Key"], m["VersionId"], m["IsLatest"], True, None, None, False))
    return out


def as_tuples(rows: Any) -> set[tuple]:
    return {(r.key, r.version_id, r.is_latest, r.is_delete_marker, r.size, r.etag, r.multipart) for r in rows}


def test_an_inventory_written_from_moto_reads_back_as_its_versions(s3: Any, archive: tuple[str, str]) -> None:
    source, dest = archive
    bucket_inventory(s3.client(), source, dest, when=DAY1)
    s3.client().put_object(Bucket=source, Key="blobs/abc/def/new", Body=b"after day 1")
    written = bucket_inventory(s3.client(), source, dest, when=DAY2, rows_per_file=2)
    assert written.rows == 7 and len(written.files) == 4  # 6 versions and a delete marker, 2 a file

    url = f"s3://{dest}/inventory/{source}/daily"
    inv = open_inventory(url, endpoint=s3.endpoint_url)  # the newest date
    assert inv.date == "2026-11-28T01-00Z" and inv.manifest.source_bucket == source
    rows = list(inv.rows())
    assert as_tuples(rows) == moto_state(s3, source)
    assert {r.key for r in rows} >= {"zarr/z1/a b+c/ü%.json"}
    assert all(r.last_modified is not None and r.last_modified.tzinfo for r in rows)
    assert [r for r in rows if r.multipart] == [r for r in rows if r.key == "zarr/z1/0/0"]

    older = open_inventory(url, "2026-11-27", endpoint=s3.endpoint_url)
    assert older.date == "2026-11-27T01-00Z"
    assert "blobs/abc/def/new" not in {r.key for r in older.rows()}
    assert {r.key for r in inv.rows(["zarr/"])} == {"zarr/z1/a b+c/ü%.json", "zarr/z1/0/0"}
    # the date's manifest.json named directly reads the same
    assert as_tuples(
        open_inventory(f"s3://{dest}/{written.manifest_key}", endpoint=s3.endpoint_url).rows()
    ) == as_tuples(rows)


def test_a_multi_file_inventory_streams_one_file_at_a_time(s3: Any, archive: tuple[str, str]) -> None:
    source, dest = archive
    written = bucket_inventory(s3.client(), source, dest, when=DAY1, rows_per_file=1)
    inv = open_inventory(f"s3://{dest}/inventory/{source}/daily", endpoint=s3.endpoint_url)
    log = s3.log_requests()
    try:
        rows = inv.rows()
        first = next(rows)
        fetched = [path for method, path in log if method == "GET" and "/data/" in path]
        assert len(fetched) == 1, fetched  # the first row came before any other data file was asked for
        rest = list(rows)
        fetched = [path for method, path in log if method == "GET" and "/data/" in path]
    finally:
        s3.log_requests(False)
    assert len(fetched) == len(written.files) == 1 + len(rest)
    assert as_tuples([first, *rest]) == moto_state(s3, source)


def test_the_pins_fields_are_the_rows_typed_as_text(s3: Any, archive: tuple[str, str], tmp_path: Path) -> None:
    """The pins' loader reads each data file through ``pin_fields`` (no row object, the time kept as its text):
    the same versions as ``rows``, keys decoded alike, and a bad record refused in one line naming its line."""
    source, dest = archive
    bucket_inventory(s3.client(), source, dest, when=DAY1, rows_per_file=3)
    inv = open_inventory(f"s3://{dest}/inventory/{source}/daily", endpoint=s3.endpoint_url)
    typed = {
        (r.key, r.version_id, r.is_latest, r.is_delete_marker, r.size, r.etag, r.last_modified)
        for r in inv.rows(["zarr/", "blobs/"])
    }
    fields = [f for file in inv.files for f in inv.pin_fields(file, ["zarr/", "blobs/"])]
    assert {(*f[:6], parse_iso(f[6])) for f in fields} == typed and len(fields) == len(typed) == 6
    assert [f for f in fields if f[3]] == [f for f in fields if f[0] == "blobs/abc/def/gone" and f[2]]
    assert {f[0] for file in inv.files for f in inv.pin_fields(file, ["zarr/"])} == {
        "zarr/z1/a b+c/ü%.json",
        "zarr/z1/0/0",
    }

    line = f"{source},zarr%2Fz1%2Fbad,v1,true,false,twelve,2026-11-27T01:00:00.000Z,abc,false"
    written = write_inventory(
        iter([line.split(",")]), directory_put(tmp_path), source_bucket=source, dest=dest, when=DAY2
    )
    bad = open_inventory(str(tmp_path / written.prefix))
    for read in (lambda: list(bad.rows()), lambda: list(bad.pin_fields(bad.files[0], ["zarr/"]))):
        with pytest.raises(InventoryError, match=r"line 1: invalid literal for int\(\) .*'twelve'") as refused:
            read()
        assert "\n" not in str(refused.value)


def test_a_corrupted_data_file_is_refused_whole(s3: Any, archive: tuple[str, str], tmp_path: Path) -> None:
    source, dest = archive
    written = write_inventory(
        version_rows(s3.client(), source),
        directory_put(tmp_path),
        source_bucket=source,
        dest=dest,
        when=DAY1,
        rows_per_file=3,
    )
    local = tmp_path / written.prefix
    assert as_tuples(open_inventory(str(local)).rows()) == moto_state(s3, source)
    manifest = local / written.date / "manifest.json"
    assert as_tuples(open_inventory(str(manifest)).rows()) == moto_state(s3, source)

    second = tmp_path / written.files[1]
    data = bytearray(second.read_bytes())
    data[len(data) // 2] ^= 0x01
    second.write_bytes(bytes(data))
    rows = open_inventory(str(local)).rows()
    first_file = [next(rows) for _ in range(3)]  # the first file is whole
    assert len(first_file) == 3
    with pytest.raises(InventoryError, match=r"MD5 [0-9a-f]{32} is not the manifest's .*refused"):
        next(rows)  # not one row of the corrupted file

    # the same in the bucket: a data file replaced under its key
    on_s3 = bucket_inventory(s3.client(), source, dest, when=DAY2)
    s3.client().put_object(Bucket=dest, Key=on_s3.files[0], Body=gzip.compress(b'"x","y"\n'))
    with pytest.raises(InventoryError) as refused:
        list(open_inventory(f"s3://{dest}/inventory/{source}/daily", endpoint=s3.endpoint_url).rows())
    assert "refused" in str(refused.value) and "\n" not in str(refused.value)


def test_what_cannot_be_read_is_said_in_one_line(s3: Any, archive: tuple[str, str], tmp_path: Path) -> None:
    source, dest = archive
    written = write_inventory(
        version_rows(s3.client(), source), directory_put(tmp_path), source_bucket=source, dest=dest, when=DAY1
    )
    manifest = tmp_path / written.manifest_key
    doc = json.loads(manifest.read_text())
    (manifest.parent / "manifest.checksum").unlink()  # an edited manifest: its checksum would refuse it first
    manifest.write_text(json.dumps({**doc, "fileFormat": "Parquet"}))
    with pytest.raises(InventoryError, match="fileFormat Parquet is not read here"):
        open_inventory(str(manifest))
    with pytest.raises(InventoryError, match="no inventory dated 2026-01-01"):
        open_inventory(str(tmp_path / written.prefix), "2026-01-01")
    with pytest.raises(InventoryError, match="neither YYYY-MM-DD nor"):
        open_inventory(str(tmp_path / written.prefix), "yesterday")
    with pytest.raises(InventoryError, match="no inventory date"):
        open_inventory(f"s3://{dest}/inventory", endpoint=s3.endpoint_url)
    with pytest.raises(InventoryError, match="no such bucket"):
        open_inventory(f"s3://no-such-{dest}/inventory", endpoint=s3.endpoint_url)


def test_the_bench_reads_a_synthetic_inventory_of_the_archive_shape(tmp_path: Path) -> None:
    """``scripts/bench --scenarios inventory-read`` at a toy size: every row read, in a process of its own,
    rows/s and peak RSS judged against the targets."""
    from argparse import Namespace

    from neuromirror.bench.scenarios.lost.inventory_read import bench_inventory_read, synthetic_rows

    (row,) = bench_inventory_read(Namespace(inventory_rows=5000, keep=False), tmp_path)
    assert row["rows"] == 5000 and row["rows_right"] and row["files"] == 1
    assert {t["what"] for t in row["targets"]} == {
        "inventory-read: S3 Inventory rows read per CPU second",
        "inventory-read: peak RSS of the reader (MB)",
    }
    shape = list(synthetic_rows(100))
    assert sum(r[4] == "true" for r in shape) == 2 and sum(r[1].startswith("blobs/") for r in shape) == 5

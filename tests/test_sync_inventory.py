"""``sync --inventory``: a cold start of a DANDI dandiset pinned from the archive bucket's S3 Inventory (issue 75).

Two blobs and a Zarr on the DANDI stand-in; the stand-in's bucket's inventory is written from moto's own
ListObjectVersions.  ``sync --inventory`` pins every blob (one behind a delete marker to its noncurrent
version) and lists the Zarr from it: moto's request log shows no ListObjectVersions and no HEAD of a blob,
and every URL ``urls`` gives carries the versionId moto has for its key.  A later date's inventory in which one Zarr object changed rewrites one pin.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from helpers.inventory import deliver_inventories, listings, logged
from neuromirror.standins.s3_inventory import bucket_inventory

T0 = datetime(2026, 2, 1, tzinfo=timezone.utc)


def current_versions(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    out = {}
    for page in s3.client().get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        out.update({v["Key"]: v["VersionId"] for v in page.get("Versions", []) if v["IsLatest"]})
    return out


def test_sync_from_the_inventory_asks_no_listing_and_no_head(
    cli: Any, dandi_archive: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, s3 = dandi_archive, dandi_archive.s3
    tag = uuid.uuid4().hex
    ident = a.create_dandiset(name="inventory cold start", created=T0)
    a.put_asset(ident, "one.nwb", f"one {tag}".encode() * 40, when=T0)
    a.put_asset(ident, "two.nwb", f"two {tag}".encode() * 40, when=T0)
    files = {
        ".zattrs": b"{}",
        ".zgroup": b'{"zarr_format": 2}',
        "0/.zarray": b'{"shape": [9]}',
        "0/0.0": tag.encode() * 9,
    }
    a.add_zarr_asset(ident, "img.zarr", files, when=T0)
    # a blob whose object the archive deleted while its asset is still listed: only a noncurrent version holds it
    a.put_asset(ident, "gone.nwb", f"gone {tag}".encode() * 40, when=T0)
    gone = a.blob_key(a.asset_at(ident, "gone.nwb").blob.blob_id)
    (held,) = s3.client().list_object_versions(Bucket=a.bucket, Prefix=gone)["Versions"]
    a.delete_blob_object(a.asset_at(ident, "gone.nwb").blob.blob_id)

    dest, url = deliver_inventories(s3, a.bucket, monkeypatch, datetime.now(timezone.utc) - timedelta(hours=2))

    code, out, log = logged(cli, s3, "sync", f"dandi:{ident}", "--inventory", url)
    assert code == 0 and "S3 Inventory of s3://" in out, out
    heads = [p for m, p in log if m == "HEAD" and "/blobs/" in p]
    assert listings(log, a.bucket) == [] and heads == [], (listings(log, a.bucket), heads)

    moto = {**current_versions(s3, a.bucket, ""), gone: held["VersionId"]}
    got = cli.json("urls", f"dandi:{ident}", "one.nwb", "two.nwb", "gone.nwb", "img.zarr")
    pinned = {}
    for f in got:
        u = f["url"]
        key = unquote(urlsplit(u).path).split(f"/{a.bucket}/", 1)[1]
        pinned[key] = parse_qs(urlsplit(u).query)["versionId"][0]
    assert len(pinned) == 3 + len(files)
    assert all(moto[k] == v for k, v in pinned.items()), (pinned, moto)
    # recorded as a noncurrent pin, as a HEAD and a listing would have found it
    audited = cli.json("audit", f"dandi:{ident}")
    assert [(f["kind"], f["path"]) for f in audited["findings"]] == [("noncurrent-only", "gone.nwb")], audited

    # a later date: one Zarr chunk rewritten in place; the pins file changes by that row only
    zarr_key = next(k for k in pinned if k.endswith("/0/0.0"))
    a.modify_zarr(zarr_key.split("/")[1], {"0/0.0": b"rewritten " + tag.encode()}, when=T0 + timedelta(days=1))
    bucket_inventory(s3.client(), a.bucket, dest, when=datetime.now(timezone.utc))
    code, out, log = logged(cli, s3, "sync", f"dandi:{ident}", "--inventory", url)
    assert code == 0 and "1 pin(s) new or changed" in out and listings(log, a.bucket) == [], out
    now = cli.json("urls", f"dandi:{ident}", "img.zarr/0/0.0")
    vid = parse_qs(urlsplit(now[0]["url"]).query)["versionId"][0]
    assert vid == current_versions(s3, a.bucket, zarr_key)[zarr_key] != pinned[zarr_key]
    pins = sqlite3.connect(cli.root / ".neuromirror" / "inventory-pins.sqlite")
    assert pins.execute("SELECT version_id FROM pins WHERE key = ?", [zarr_key]).fetchone() == (vid,)

    # changed after the inventory's date: its listing misses the archive's checksum, the Zarr is listed again
    a.modify_zarr(zarr_key.split("/")[1], {"0/0.0": b"again " + tag.encode()}, when=T0 + timedelta(days=2))
    code, out, log = logged(cli, s3, "sync", f"dandi:{ident}", "--inventory", url)
    assert code == 0 and len(listings(log, a.bucket)) == 1, (out, listings(log, a.bucket))
    assert "already loaded, nothing read" in out, out  # the same date again: its rows are not read twice
    now = cli.json("urls", f"dandi:{ident}", "img.zarr/0/0.0")
    newest = current_versions(s3, a.bucket, zarr_key)[zarr_key]
    assert parse_qs(urlsplit(now[0]["url"]).query)["versionId"][0] == newest != vid

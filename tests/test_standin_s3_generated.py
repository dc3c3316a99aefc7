"""The generated S3 stand-in (``standins/s3_generated``) against the real clients: boto3, requests, the sync, git-annex.

A bucket computed from a description must be, to every client, a bucket: listed in
S3's key order across pages, every listed ETag the MD5 of what a GET of the object
returns, and an asset of it mirrored by ``neuromirror sync`` and retrieved with
``datalad get`` / ``git annex get``.  The retrieval checks work whether a store is
a directory of the asset's dataset or a subdataset of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from neuromirror.standins.s3_generated import (
    GeneratedAsset,
    GeneratedBucket,
    GeneratedS3,
    GeneratedStore,
    aind_asset,
    chunk_bytes,
)
from neuromirror.standins.s3_generated_keys import version_id, walk

ASSET = "SmartSPIM_123456_2024-01-01_00-00-00"
STORES, OBJECTS = 2, 2500
BUCKET = "aind-generated"
LOOPBACK = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "annex.security.allowed-ip-addresses",
    "GIT_CONFIG_VALUE_0": "all",
}


def utf8_sorted(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


@pytest.fixture(scope="module")
def asset() -> GeneratedAsset:
    return aind_asset(ASSET, stores=STORES, objects=OBJECTS)


@pytest.fixture(scope="module")
def server(asset: GeneratedAsset) -> Iterator[GeneratedS3]:
    with GeneratedS3(GeneratedBucket(BUCKET, [asset])) as s3:
        yield s3


def client(s3: GeneratedS3, signed: bool = False) -> Any:
    """boto3 as the AIND source makes it: path-style, unsigned unless ``signed`` (dummy credentials)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    cfg: dict[str, Any] = {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}}
    creds: dict[str, str] = {}
    if signed:
        creds = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "not-checked"}
    else:
        cfg["signature_version"] = UNSIGNED
    return boto3.session.Session().client(
        "s3", endpoint_url=s3.endpoint_url, region_name="us-west-2", config=Config(**cfg), **creds
    )


def listed_versions(s3: GeneratedS3, **kw: Any) -> tuple[list[dict], list[str], int]:
    """Every version and common prefix boto3's paginator gives, and the number of pages."""
    versions: list[dict] = []
    prefixes: list[str] = []
    pages = 0
    for page in client(s3).get_paginator("list_object_versions").paginate(Bucket=BUCKET, **kw):
        pages += 1
        versions += page.get("Versions") or []
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes") or []]
    return versions, prefixes, pages


# --------------------------------------------------------------------------- the key space


def test_generated_keys_are_in_s3_order_and_found_by_key() -> None:
    """Names chosen so that sorting by name alone would be wrong ('x.zarr.json' < 'x.zarr/'; '-' < '.'; é)."""
    a = GeneratedAsset(
        "a",
        {"x.zarr.json": b"{}", "x.json": b"{}", "z.json": b"{}", "\u00e9t\u00e9.json": b"{}"},
        (GeneratedStore("x.zarr", 1205), GeneratedStore("x-y.zarr", 2), GeneratedStore("\u00e9.zarr", 4)),
    )
    b = GeneratedBucket("b", [a, GeneratedAsset("a-b", {"data_description.json": b"{}"})])
    keys = [b[i] for i in range(len(b))]
    assert len(keys) == a.objects + 1 == len(set(keys))
    assert keys == utf8_sorted(keys)
    assert all(b.find(k) == i for i, k in enumerate(keys))
    assert b.find("a/x.zarr/0/0001/205") is None and b.find("a/x.zarr/") is None
    top, more = walk(b, 0, "a/", "/", 1000)
    assert not more
    assert [e if isinstance(e, str) else e[0] for e in top] == [
        "a/x-y.zarr/",
        "a/x.json",
        "a/x.zarr.json",
        "a/x.zarr/",
        "a/z.json",
        "a/\u00e9.zarr/",
        "a/\u00e9t\u00e9.json",
    ]


# --------------------------------------------------------------------------- boto3 and plain HTTP


def test_boto3_lists_every_object_in_key_order_across_pages(server: GeneratedS3, asset: GeneratedAsset) -> None:
    versions, _, pages = listed_versions(server, Prefix=f"{ASSET}/")
    keys = [v["Key"] for v in versions]
    assert len(keys) == STORES * OBJECTS + 2 == len(set(keys))
    assert pages == -(-len(keys) // 1000) > 1
    assert keys == utf8_sorted(keys)
    assert all(v["IsLatest"] and v["VersionId"] == version_id(v["Key"]) for v in versions)
    assert {v["LastModified"] for v in versions} == {server.bucket.modified}
    v2 = [
        c["Key"]
        for page in client(server).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{ASSET}/")
        for c in page.get("Contents") or []
    ]
    assert v2 == keys
    assert server.counts()["list-object-versions"] >= pages and server.cpu_seconds() > 0


def test_delimiter_lists_assets_and_stores(server: GeneratedS3, asset: GeneratedAsset) -> None:
    """ListObjectsV2 with '/' (how the source lists assets), one entry per page: continuation tokens."""
    c = client(server)
    top = c.list_objects_v2(Bucket=BUCKET, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == [f"{ASSET}/"] and "Contents" not in top
    pages = list(
        c.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"{ASSET}/", Delimiter="/", PaginationConfig={"PageSize": 1}
        )
    )
    assert len(pages) == STORES + 2
    stores = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes") or []]
    files = [o["Key"] for page in pages for o in page.get("Contents") or []]
    assert stores == [f"{ASSET}/{s.name}/" for s in asset.stores]
    assert files == [f"{ASSET}/{name}" for name in sorted(asset.sidecars)]
    _, prefixes, _ = listed_versions(server, Prefix=f"{ASSET}/", Delimiter="/", MaxKeys=1)
    assert prefixes == stores
    assert c.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"


def test_every_listed_etag_is_the_md5_of_the_get(server: GeneratedS3) -> None:
    """Each object GET through its pinned path-style URL (the URL git-annex gets): the listed bytes.

    Plain ``http.client`` on one kept-alive connection: ~0.4 ms a GET, 5x less than ``requests``.
    """
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    versions, _, _ = listed_versions(server, Prefix=f"{ASSET}/")
    base = urlsplit(server.endpoint_url)
    conn = HTTPConnection(base.hostname or "127.0.0.1", base.port)
    bad = []
    try:
        for v in versions:
            url = urlsplit(server.url(v["Key"]))
            conn.request("GET", f"{url.path}?{url.query}")
            r = conn.getresponse()
            body = r.read()
            ok = r.status == 200 and r.getheader("x-amz-version-id") == v["VersionId"] and len(body) == v["Size"]
            if not ok or hashlib.md5(body).hexdigest() != v["ETag"].strip('"'):
                bad.append(v["Key"])
    finally:
        conn.close()
    assert bad == [] and len(versions) == STORES * OBJECTS + 2


@pytest.mark.parametrize("signed", [False, True])
def test_boto3_head_get_range_and_errors(server: GeneratedS3, asset: GeneratedAsset, signed: bool) -> None:
    from botocore.exceptions import ClientError

    c = client(server, signed)
    key = f"{ASSET}/{asset.stores[1].name}/0/0001/234"
    data = chunk_bytes(key)
    head = c.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == len(data) and head["VersionId"] == version_id(key)
    assert head["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert head["LastModified"] == server.bucket.modified
    assert c.get_object(Bucket=BUCKET, Key=key, VersionId=version_id(key))["Body"].read() == data
    assert c.get_object(Bucket=BUCKET, Key=key, IfMatch=head["ETag"])["Body"].read() == data
    part = c.get_object(Bucket=BUCKET, Key=key, Range="bytes=3-9")
    assert part["Body"].read() == data[3:10] and part["ContentRange"] == f"bytes 3-9/{len(data)}"
    sidecar = c.get_object(Bucket=BUCKET, Key=f"{ASSET}/data_description.json")["Body"].read()
    assert sidecar == asset.sidecars["data_description.json"] and json.loads(sidecar)["name"] == ASSET
    for kw, code in (
        ({"Key": f"{ASSET}/nothing"}, "NoSuchKey"),
        ({"Key": key, "VersionId": "0" * 32}, "NoSuchVersion"),
        ({"Key": key, "IfMatch": '"' + "0" * 32 + '"'}, "PreconditionFailed"),
    ):
        with pytest.raises(ClientError) as err:
            c.get_object(Bucket=BUCKET, **kw)
        assert err.value.response["Error"]["Code"] == code
    with pytest.raises(ClientError) as err:
        c.list_objects_v2(Bucket="no-such-bucket")
    assert err.value.response["Error"]["Code"] == "NoSuchBucket"


# --------------------------------------------------------------------------- mirrored with the real tools


def sync(root: Path, server: GeneratedS3, layout: str) -> dict:
    """``neuromirror sync aind:ASSET --bucket B --s3-endpoint URL`` in this process (the stand-in runs here).

    ``layout`` ``files`` keeps the stores' objects files of the asset's dataset (the layout
    from before stores were subdatasets); ``stores`` is the default.
    """
    from neuromirror.cli import main
    from neuromirror.sources.aind.zarrs import LAYOUT_ENV

    args = ["--root", str(root), "sync", f"aind:{ASSET}", "--bucket", BUCKET, "--s3-endpoint", server.endpoint_url]
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("NEUROMIRROR_")}
    if layout == "files":
        os.environ[LAYOUT_ENV] = "files"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args, "--json", "-J1"])
    finally:
        os.environ.pop(LAYOUT_ENV, None)
        os.environ.update(saved)
    assert code == 0, out.getvalue() + err.getvalue()
    report = json.loads(out.getvalue())
    return report[0] if isinstance(report, list) else report


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **LOOPBACK})
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def holding_repo(ds: Path, rel: str) -> Path:
    """The repository whose tree holds ``rel``: the asset's dataset, or a store's subdataset (installed if needed)."""
    run(["datalad", "get", "-n", "-r", rel.split("/", 1)[0]], ds)  # installs a store subdataset; else nothing
    for parent in (ds / rel).parents:
        if (parent / ".git").exists():
            return parent
        if parent == ds:
            break
    return ds


@pytest.mark.parametrize("layout", ["stores", "files"])
def test_sync_mirrors_the_generated_asset_and_gets_its_bytes(
    server: GeneratedS3, asset: GeneratedAsset, tmp_path: Path, layout: str
) -> None:
    root = tmp_path / "mirror"
    report = sync(root, server, layout)
    assert report["outcome"] == "ok", report
    ds = root / "aind" / ASSET
    gitlinks = [ln for ln in run(["git", "ls-files", "-s"], ds).splitlines() if ln.startswith("160000 ")]
    assert len(gitlinks) == (STORES if layout == "stores" else 0), gitlinks
    assert (ds / "data_description.json").read_bytes() == asset.sidecars["data_description.json"]
    zattrs = f"{ASSET}/{asset.stores[0].name}/.zattrs"
    assert (ds / asset.stores[0].name / ".zattrs").read_bytes() == server.bucket.item(server.bucket.find(zattrs) or 0)[
        1
    ]

    # git annex get, in the repository holding the object, on the mirror host (by key: a store's
    # chunks are not checked out there, dataset/sparse.py)
    rel = f"{asset.stores[1].name}/0/0002/042"
    repo = holding_repo(ds, rel)
    key = run(["git", "cat-file", "-p", f"HEAD:{(ds / rel).relative_to(repo)}"], repo).rsplit("/", 1)[-1]
    run(["git", "annex", "get", "--key", key], repo)
    assert (repo / run(["git", "annex", "contentlocation", key], repo).strip()).read_bytes() == chunk_bytes(
        f"{ASSET}/{rel}"
    )

    # datalad clone of the asset's dataset, then datalad get of an object of a store
    clone = tmp_path / "clone"
    subprocess.run(["datalad", "clone", str(ds), str(clone)], check=True, capture_output=True)
    rel = f"{asset.stores[0].name}/0/0000/007"
    run(["datalad", "get", "-r", rel], clone)
    assert (clone / rel).read_bytes() == chunk_bytes(f"{ASSET}/{rel}")

    # the listing is the same on every request: nothing changed
    assert sync(root, server, layout)["outcome"] == "unchanged"

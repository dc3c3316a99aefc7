"""The S3 and DANDI stand-ins, exercised with the REAL dandi client, boto3 and requests.

Why these tests: neuromirror's DANDI source, its tests, the demo and the benchmarks all
rely on the stand-ins answering like the real archive.  Everything here goes over
loopback sockets; nothing is mocked but the archive itself.
"""

from __future__ import annotations

import os

# before dandi is imported: no etelemetry network check, no on-disk cache
os.environ["DANDI_NO_ET"] = "1"
os.environ["DANDI_CACHE"] = "ignore"

import hashlib
import re
import time
from datetime import datetime, timezone
from typing import Iterator

import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from dandi.dandiapi import DandiAPIClient, RemoteZarrAsset
from dandi.exceptions import NotFoundError
from dandi.utils import is_page2_url

from neuromirror.standins import DandiStandIn, FaultPlan, S3StandIn

TOKEN = "owner-token-0123456789"
OTHER_TOKEN = "someone-elses-token"
UTC = timezone.utc


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_standin() -> Iterator[S3StandIn]:
    """This module's own S3 server (conftest's session ``s3`` shares moto's backend;
    bucket names here are prefixed nm-test- so the two never collide)."""
    with S3StandIn() as s:
        yield s


@pytest.fixture(scope="module")
def archive(s3_standin: S3StandIn) -> Iterator[DandiStandIn]:
    with DandiStandIn(s3_standin, bucket="nm-test-dandiarchive", api_token=TOKEN, other_tokens=[OTHER_TOKEN]) as a:
        yield a


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    if "archive" not in request.fixturenames:
        yield
        return
    archive = request.getfixturevalue("archive")
    archive.faults.reset()
    yield
    archive.faults.reset()


@pytest.fixture(scope="module")
def client(archive: DandiStandIn) -> Iterator[DandiAPIClient]:
    with DandiAPIClient(api_url=archive.api_url) as c:
        yield c


@pytest.fixture(scope="module")
def owner_client(archive: DandiStandIn) -> Iterator[DandiAPIClient]:
    with DandiAPIClient(api_url=archive.api_url, token=TOKEN) as c:
        yield c


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_url_of(md: dict, api_url: str) -> str:
    """The contentUrl not under the API URL (how dandi's as_readable() picks it)."""
    (url,) = [u for u in md["contentUrl"] if not u.lower().startswith(api_url.lower())]
    return url


# ---------------------------------------------------------------------------
# S3 stand-in
# ---------------------------------------------------------------------------


def test_s3_anonymous_reads_and_versions(s3_standin: S3StandIn) -> None:
    bucket = "nm-test-s3-versions"
    s3_standin.create_bucket(bucket)
    v1 = s3_standin.put(bucket, "dir/obj.bin", b"first")
    url = s3_standin.url(bucket, "dir/obj.bin")

    r = requests.get(url)
    assert r.status_code == 200 and r.content == b"first"
    h = requests.head(url)
    assert h.status_code == 200
    assert h.headers["x-amz-version-id"] == v1

    anon = s3_standin.anonymous_client()
    assert anon.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == b"first"
    assert anon.head_object(Bucket=bucket, Key="dir/obj.bin")["VersionId"] == v1
    # a fresh boto3 client configured like a public-data reader works too
    import boto3

    fresh = boto3.client(
        "s3",
        endpoint_url=s3_standin.endpoint_url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED),
    )
    assert fresh.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == b"first"

    s3_standin.put(bucket, "dir/obj.bin", b"second")
    assert requests.get(url).content == b"second"
    assert requests.get(s3_standin.url(bucket, "dir/obj.bin", v1)).content == b"first"

    s3_standin.client().delete_object(Bucket=bucket, Key="dir/obj.bin")  # delete marker
    assert requests.get(url).status_code == 404
    r = requests.get(s3_standin.url(bucket, "dir/obj.bin", v1))
    assert r.status_code == 200 and r.content == b"first"
    assert anon.get_object(Bucket=bucket, Key="dir/obj.bin", VersionId=v1)["Body"].read() == b"first"
    versions = anon.list_object_versions(Bucket=bucket)
    assert len(versions["Versions"]) == 2 and len(versions["DeleteMarkers"]) == 1


def test_s3_private_bucket_needs_presigning(s3_standin: S3StandIn) -> None:
    s3_standin.create_bucket("nm-test-s3-private", public=False)
    s3_standin.put("nm-test-s3-private", "k", b"secret")
    assert requests.get(s3_standin.url("nm-test-s3-private", "k")).status_code == 403
    r = requests.get(s3_standin.presigned_url("nm-test-s3-private", "k"))
    assert r.status_code == 200 and r.content == b"secret"


def test_s3_backend_is_process_wide_but_stop_cleans_up(s3_standin: S3StandIn) -> None:
    with S3StandIn() as other:
        assert other.endpoint_url != s3_standin.endpoint_url
        other.create_bucket("nm-test-s3-other")
        names = {b["Name"] for b in s3_standin.client().list_buckets()["Buckets"]}
        assert "nm-test-s3-other" in names  # moto's backend is shared per process
    names = {b["Name"] for b in s3_standin.client().list_buckets()["Buckets"]}
    assert "nm-test-s3-other" not in names


# ---------------------------------------------------------------------------
# DANDI stand-in with the real client
# ---------------------------------------------------------------------------


def test_server_info_satisfies_client(archive: DandiStandIn, client: DandiAPIClient) -> None:
    info = requests.get(f"{archive.root_url}/server-info").json()
    assert info["services"]["api"]["url"] == archive.api_url
    assert {"version", "cli-minimal-version", "cli-bad-versions", "schema_version"} <= info.keys()
    assert requests.get(f"{archive.api_url}/info/").json() == info
    assert client.dandi_instance.api == archive.api_url
    assert client.dandi_instance.name == f"127.0.0.1:{archive.port}"


def test_dandisets_listing_detail_and_404(archive: DandiStandIn, client: DandiAPIClient) -> None:
    ds = archive.create_dandiset(name="Listing test")
    archive.put_asset(ds, "file.txt", b"x")
    hidden = archive.create_dandiset(name="Secret", embargoed=True)

    ids = [d.identifier for d in client.get_dandisets()]
    assert ds in ids and hidden not in ids

    rd = client.get_dandiset(ds, "draft", lazy=False)
    assert rd.version_id == "draft"
    assert rd.embargo_status.value == "OPEN"
    assert rd.contact_person == "Doe, Jane"
    assert rd.most_recent_published_version is None
    assert rd.draft_version.asset_count == 1 and rd.draft_version.size == 1
    assert [str(v) for v in rd.get_versions()] == ["draft"]

    raw = rd.get_raw_metadata()
    assert raw["identifier"] == f"DANDI:{ds}"
    assert raw["id"] == f"DANDI:{ds}/draft"
    assert raw["name"] == "Listing test"
    assert raw["license"] == ["spdx:CC-BY-4.0"]
    assert raw["contributor"][0]["includeInCitation"] is True
    assert raw["citation"].startswith("Doe, Jane (")
    assert "doi" not in raw

    r = requests.get(f"{archive.api_url}/dandisets/999999/")
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}
    with pytest.raises(NotFoundError):
        client.get_dandiset("999999", lazy=False)


def test_assets_metadata_digests_and_downloads(
    archive: DandiStandIn, client: DandiAPIClient, s3_standin: S3StandIn
) -> None:
    ds = archive.create_dandiset()
    contents = {
        "sub-01/sub-01_ses-1.nwb": b"nwb-bytes" * 100,
        "dataset_description.json": b'{"a": 1}',
        "../evil": b"evil",  # hostile paths are served verbatim: the client must cope
        "/abs": b"abs",
        ".git/config": b"[core]",
    }
    for path, data in contents.items():
        archive.put_asset(ds, path, data)

    rd = client.get_dandiset(ds, "draft")
    assets = {a.path: a for a in rd.get_assets()}
    assert set(assets) == set(contents)

    for path, data in contents.items():
        a = assets[path]
        md = a.get_raw_metadata()
        assert md["id"] == f"dandiasset:{a.identifier}"
        assert md["identifier"] == a.identifier
        assert md["path"] == path
        assert md["contentSize"] == len(data) == a.size
        assert md["schemaKey"] == "Asset"
        assert md["access"][0]["status"] == "dandi:OpenAccess"
        assert a.get_raw_digest("dandi:sha2-256") == sha256(data)
        assert re.fullmatch(r"[0-9a-f]{32}-\d+", a.get_raw_digest())  # dandi-etag
        assert md["contentUrl"][0] == f"{archive.api_url}/assets/{a.identifier}/download/"
        url = s3_url_of(md, client.api_url)
        assert url == a.get_content_url(regex=re.escape(s3_standin.endpoint_url))
        assert "versionId" not in url
        r = requests.get(url)
        assert r.status_code == 200 and sha256(r.content) == sha256(data)
        assert requests.head(url).headers["x-amz-version-id"]
        # the API download route redirects to a presigned S3 URL
        r = requests.get(a.download_url, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"].startswith(s3_standin.endpoint_url)
        assert requests.get(a.download_url).content == data
        assert client.get_asset(a.identifier).path == path

    nwb = assets["sub-01/sub-01_ses-1.nwb"].get_raw_metadata()
    assert nwb["encodingFormat"] == "application/x-nwb"
    assert assets["dataset_description.json"].get_raw_metadata()["encodingFormat"] == "application/json"

    # one pass with metadata, as a mirror does
    rows = list(client.paginate(f"/dandisets/{ds}/versions/draft/assets/", params={"metadata": "1", "order": "path"}))
    assert [r["path"] for r in rows] == sorted(contents)
    for row in rows:
        assert row["metadata"]["digest"]["dandi:sha2-256"] == sha256(contents[row["path"]])
        assert row["blob"] and row["zarr"] is None
    plain = list(client.paginate(f"/dandisets/{ds}/versions/draft/assets/"))
    assert "metadata" not in plain[0]


def test_replacing_content_gives_new_asset_and_old_version_survives_blob_delete(
    archive: DandiStandIn, client: DandiAPIClient, s3_standin: S3StandIn
) -> None:
    ds = archive.create_dandiset()
    old_id = archive.put_asset(ds, "data.bin", b"version one")
    rd = client.get_dandiset(ds, "draft")
    old = rd.get_asset(old_id)
    old_url = s3_url_of(old.get_raw_metadata(), client.api_url)
    version_id = requests.head(old_url).headers["x-amz-version-id"]

    new_id = archive.put_asset(ds, "data.bin", b"version two")
    assert new_id != old_id
    listing = {a.path: a.identifier for a in rd.get_assets()}
    assert listing == {"data.bin": new_id}
    assert client.get_asset(old_id).path == "data.bin"  # old assets stay reachable by id
    with pytest.raises(NotFoundError):
        rd.get_asset(old_id)  # ... but are no longer in the draft

    # same content -> same blob (dedup by sha256)
    copy_id = archive.put_asset(ds, "copy.bin", b"version two")
    assert archive.asset(copy_id).blob is archive.asset(new_id).blob

    archive.delete_blob_object(archive.asset(old_id).blob.blob_id)
    assert requests.get(old_url).status_code == 404
    r = requests.get(old_url, params={"versionId": version_id})
    assert r.status_code == 200 and r.content == b"version one"


def test_sha256_pending_then_finalized(archive: DandiStandIn, client: DandiAPIClient) -> None:
    ds = archive.create_dandiset()
    aid = archive.put_asset(ds, "big.nwb", b"slow to hash", sha256_pending=True)
    rd = client.get_dandiset(ds, "draft")
    a = rd.get_asset(aid)
    assert set(a.get_raw_metadata()["digest"]) == {"dandi:dandi-etag"}
    with pytest.raises(NotFoundError):
        a.get_raw_digest("dandi:sha2-256")

    archive.finalize_sha256(ds, "big.nwb")
    b = rd.get_asset(aid)
    assert b.get_raw_digest("dandi:sha2-256") == sha256(b"slow to hash")
    assert (b.identifier, b.modified) == (a.identifier, a.modified)


def test_upload_false_has_no_s3_object_until_created(
    archive: DandiStandIn, client: DandiAPIClient, s3_standin: S3StandIn
) -> None:
    ds = archive.create_dandiset()
    aid = archive.put_asset(ds, "synthetic.nwb", size=12345, upload=False)
    md = client.get_dandiset(ds, "draft").get_asset(aid).get_raw_metadata()
    assert md["contentSize"] == 12345
    assert re.fullmatch(r"[0-9a-f]{64}", md["digest"]["dandi:sha2-256"])
    url = s3_url_of(md, client.api_url)
    assert requests.head(url).status_code == 404
    blob = archive.asset(aid).blob
    s3_standin.put(blob.bucket, archive.blob_key(blob.blob_id), b"\0" * 12345)
    assert requests.head(url).status_code == 200


def test_publish_freezes_the_asset_list(archive: DandiStandIn, client: DandiAPIClient) -> None:
    before = datetime(2024, 1, 1, tzinfo=UTC)
    ds = archive.create_dandiset(name="Publish test", created=before)
    a = archive.put_asset(ds, "a.txt", b"a1", when=before)
    b = archive.put_asset(ds, "b.txt", b"b1", when=before)
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    v1 = archive.publish(ds, when=when)
    assert v1 == "0.240102.0304"
    draft = client.get_dandiset(ds, "draft", lazy=False)
    assert draft.draft_version.status.value == "Published"

    a2 = archive.put_asset(ds, "a.txt", b"a2", when=when)
    archive.delete_asset(ds, "b.txt", when=when)
    c = archive.put_asset(ds, "c.txt", b"c1", when=when)
    v2 = archive.publish(ds, when=when)  # same minute: bumped
    assert v2 == "0.240102.0305"

    rd = client.get_dandiset(ds)  # most recent published version
    assert rd.version_id == v2
    versions = [str(v) for v in rd.get_versions()]
    assert versions == ["draft", v1, v2]

    pub1 = client.get_dandiset(ds, v1)
    assert {x.path: x.identifier for x in pub1.get_assets()} == {"a.txt": a, "b.txt": b}
    assert {x.path: x.identifier for x in rd.get_assets()} == {"a.txt": a2, "c.txt": c}
    dr = client.get_dandiset(ds, "draft", lazy=False)
    assert {x.path: x.identifier for x in dr.get_assets()} == {"a.txt": a2, "c.txt": c}
    assert dr.draft_version.status.value == "Published"

    raw = pub1.get_raw_metadata()
    assert raw["version"] == v1 and raw["id"] == f"DANDI:{ds}/{v1}"
    assert raw["doi"] == f"10.80507/dandi.{ds}/{v1}"
    assert f"https://doi.org/10.80507/dandi.{ds}/{v1}" in raw["citation"]
    assert raw["assetsSummary"]["numberOfFiles"] == 2
    assert raw["datePublished"].startswith("2024-01-02T03:04:05")

    # publishing stamps the assets (as the archive's publish_asset does)
    pa = pub1.get_asset(a)
    assert pa.modified == when
    assert pa.get_raw_metadata()["datePublished"].startswith("2024-01-02")

    archive.put_asset(ds, "d.txt", b"d")
    assert client.get_dandiset(ds, "draft", lazy=False).draft_version.status.value == "Valid"


def test_publish_through_the_api(archive: DandiStandIn, owner_client: DandiAPIClient) -> None:
    ds = archive.create_dandiset()
    archive.put_asset(ds, "x.txt", b"x")
    published = owner_client.get_dandiset(ds, "draft").publish(max_time=10)
    assert re.fullmatch(r"0\.\d{6}\.\d{4}", published.version_id)
    assert archive.versions(ds) == [published.version_id, "draft"]
    r = requests.post(f"{archive.api_url}/dandisets/{ds}/versions/draft/publish/")
    assert r.status_code == 401


def test_embargoed_dandiset_needs_the_token(archive: DandiStandIn, s3_standin: S3StandIn) -> None:
    ds = archive.create_dandiset(name="Embargoed", embargoed=True)
    aid = archive.put_asset(ds, "secret.nwb", b"top secret")
    api = archive.api_url

    anon = DandiAPIClient(api_url=api)
    with pytest.raises(requests.HTTPError) as exc:
        anon.get_dandiset(ds, lazy=False)
    assert exc.value.response is not None and exc.value.response.status_code == 401
    for path in (
        f"/dandisets/{ds}/",
        f"/dandisets/{ds}/versions/draft/assets/",
        f"/dandisets/{ds}/versions/draft/assets/{aid}/",
        f"/assets/{aid}/",
        f"/assets/{aid}/download/",
    ):
        assert requests.get(api + path, allow_redirects=False).status_code == 401, path
        r = requests.get(api + path, headers={"Authorization": f"token {OTHER_TOKEN}"})
        assert r.status_code == 403, path
    r = requests.get(f"{api}/dandisets/", headers={"Authorization": "token wrong"})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}
    with pytest.raises(requests.HTTPError):
        DandiAPIClient(api_url=api, token="wrong")
    with pytest.raises(requests.HTTPError):
        list(anon.get_dandisets(embargoed=True))

    with DandiAPIClient(api_url=api, token=TOKEN) as authed:
        rd = authed.get_dandiset(ds, "draft", lazy=False)
        assert rd.embargo_status.value == "EMBARGOED"
        assert ds in [d.identifier for d in authed.get_dandisets(embargoed=True)]
        (asset,) = list(rd.get_assets())
        md = asset.get_raw_metadata()
        assert md["access"][0]["status"] == "dandi:EmbargoedAccess"
        private_url = s3_url_of(md, api)
        assert f"/{archive.embargo_bucket}/" in private_url
        assert requests.get(private_url).status_code == 403  # private bucket
        data = b"".join(asset.get_download_file_iter()())  # redirect to a presigned URL
        assert data == b"top secret"

    archive.set_embargoed(ds, False)
    rd = anon.get_dandiset(ds, "draft", lazy=False)
    assert rd.embargo_status.value == "OPEN"
    (asset,) = list(rd.get_assets())
    assert asset.identifier == aid
    public_url = s3_url_of(asset.get_raw_metadata(), api)
    assert f"/{archive.bucket}/" in public_url
    assert requests.get(public_url).content == b"top secret"
    anon.session.close()


def test_zarr_asset_listing_checksum_and_download(
    archive: DandiStandIn, client: DandiAPIClient, s3_standin: S3StandIn
) -> None:
    from zarr_checksum import compute_zarr_checksum
    from zarr_checksum.generators import S3ClientOptions, yield_files_s3

    files = {
        ".zattrs": b"{}",
        ".zgroup": b'{"zarr_format": 2}',
        "arr/.zarray": b'{"chunks": [2, 2]}',
        "arr/0.0": bytes(range(256)),
        "arr/0.1": b"\x01" * 100,
    }
    ds = archive.create_dandiset()
    aid = archive.add_zarr_asset(ds, "sample.zarr", files)
    rd = client.get_dandiset(ds, "draft")
    a = rd.get_asset(aid)
    assert isinstance(a, RemoteZarrAsset)
    zid = a.zarr
    assert a.size == sum(len(v) for v in files.values())

    opts = S3ClientOptions(
        endpoint_url=s3_standin.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        use_ssl=False,
    )
    expected = compute_zarr_checksum(yield_files_s3(archive.bucket, f"zarr/{zid}/", opts)).digest
    assert a.get_raw_digest() == expected
    assert expected.endswith(f"-{len(files)}--{a.size}")

    entries = {str(e): e for e in a.iterfiles()}
    assert set(entries) == set(files)
    for key, e in entries.items():
        assert e.size == len(files[key])
        assert e.digest.value == hashlib.md5(files[key]).hexdigest()
    assert {str(e) for e in a.iterfiles(prefix="arr/")} == {"arr/.zarray", "arr/0.0", "arr/0.1"}
    entry = a.get_entry_by_path("arr/0.0")
    assert b"".join(entry.get_download_file_iter()()) == files["arr/0.0"]

    # cursor paging: next is an "after" URL, walked sequentially by the client
    page = requests.get(f"{archive.api_url}/zarr/{zid}/files/", params={"limit": 2}).json()
    assert len(page["results"]) == 2 and "after=" in page["next"]
    seen = [r["Key"] for r in page["results"]]
    while page["next"]:
        page = requests.get(page["next"]).json()
        seen += [r["Key"] for r in page["results"]]
    assert seen == sorted(files)

    md = a.get_raw_metadata()
    assert md["encodingFormat"] == "application/x-zarr"
    zurl = s3_url_of(md, client.api_url)
    assert zurl.endswith(f"/zarr/{zid}/")
    assert requests.get(zurl + "arr/0.1").content == files["arr/0.1"]
    info = requests.get(f"{archive.api_url}/zarr/{zid}/").json()
    assert info["checksum"] == expected and info["file_count"] == len(files)

    archive.corrupt_zarr_checksum(aid)
    assert rd.get_asset(aid).get_raw_digest() != expected
    assert list(rd.get_assets())[0].identifier == aid

    r = requests.get(f"{archive.api_url}/assets/{aid}/download/", allow_redirects=False)
    assert r.status_code == 400


def test_zarr_list_of_a_dandiset(archive: DandiStandIn) -> None:
    """``GET /api/zarr/?dandiset=ID`` as dandi-archive's ``ZarrViewSet.list``: paged with a count on
    every page, in creation order, only visible dandisets; a Zarr changed in place shows its new checksum."""
    ds, other = archive.create_dandiset(), archive.create_dandiset(embargoed=True)
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    aids = [archive.add_zarr_asset(ds, f"z{i}.zarr", {".zgroup": b"{}", "0": b"%d" % i}, when=when) for i in range(3)]
    archive.add_zarr_asset(other, "o.zarr", {".zgroup": b"{}"}, when=when)
    zids = [archive.asset(a).zarr.zarr_id for a in aids]

    def listed(**params: str) -> list[dict]:
        page = requests.get(f"{archive.api_url}/zarr/", params={"dandiset": ds, "page_size": "2", **params}).json()
        assert page["count"] == 3
        return page["results"]

    first, second = listed(), listed(page="2")
    assert [z["zarr_id"] for z in first + second] == zids
    z0 = first[0]
    assert set(z0) == {"name", "dandiset", "zarr_id", "status", "checksum", "file_count", "size", "upload_type"}
    assert (z0["name"], z0["dandiset"], z0["status"], z0["file_count"]) == ("z0.zarr", ds, "Complete", 2)
    assert z0["upload_type"] == "singlepart"  # every Zarr before dandi-archive PR #2869
    assert z0["checksum"] == archive.asset(aids[0]).zarr.reported_checksum
    past = requests.get(f"{archive.api_url}/zarr/", params={"dandiset": ds, "page_size": "2", "page": "3"})
    assert past.status_code == 404 and past.json() == {"detail": "Invalid page."}
    assert requests.get(f"{archive.api_url}/zarr/", params={"dandiset": "x"}).status_code == 400

    archive.modify_zarr(zids[1], put={"1": b"new"}, when=when)
    assert listed()[1]["checksum"] == archive.asset(aids[1]).zarr.reported_checksum != first[1]["checksum"]
    assert requests.get(f"{archive.api_url}/zarr/", params={"dandiset": other}).json()["count"] == 0
    auth = {"Authorization": f"token {TOKEN}"}
    assert requests.get(f"{archive.api_url}/zarr/", params={"dandiset": other}, headers=auth).json()["count"] == 1


def test_asset_filters_orders_and_paths(archive: DandiStandIn, client: DandiAPIClient) -> None:
    ds = archive.create_dandiset()
    paths = ["sub-01/a.nwb", "sub-01/b.nwb", "sub-02/a.nwb", "Sub-03/x.json", "README.md"]
    for i, p in enumerate(paths):
        archive.put_asset(ds, p, p.encode(), when=datetime(2024, 1, 1, 0, i, tzinfo=UTC))
    rd = client.get_dandiset(ds, "draft")
    assert [a.path for a in rd.get_assets()] == paths  # default order: created
    assert [a.path for a in rd.get_assets(order="path")] == sorted(paths)
    assert [a.path for a in rd.get_assets(order="-path")] == sorted(paths, reverse=True)
    assert [a.path for a in rd.get_assets(order="-created")] == paths[::-1]
    assert {a.path for a in rd.get_assets_with_path_prefix("sub-01/")} == {"sub-01/a.nwb", "sub-01/b.nwb"}
    assert len(list(rd.get_assets_with_path_prefix("SUB-0"))) == 4  # istartswith
    assert [a.path for a in rd.get_assets_by_glob("*.json")] == ["Sub-03/x.json"]
    assert rd.get_asset_by_path("sub-02/a.nwb").path == "sub-02/a.nwb"

    r = requests.get(f"{archive.api_url}/dandisets/{ds}/versions/draft/assets/paths/").json()
    assert [x["path"] for x in r["results"]] == ["README.md", "Sub-03", "sub-01", "sub-02"]
    assert r["results"][2]["aggregate_files"] == 2 and r["results"][0]["asset"]["asset_id"]


def test_parallel_pagination(archive: DandiStandIn, client: DandiAPIClient) -> None:
    ds = archive.create_dandiset()
    ids = archive.add_synthetic_assets(ds, 250)
    url = f"{archive.api_url}/dandisets/{ds}/versions/draft/assets/"

    first = requests.get(url, params={"page_size": 100, "order": "path"})
    page1 = first.json()
    assert page1["count"] == 250 and page1["previous"] is None
    assert is_page2_url(first.url, page1["next"])
    page2 = requests.get(page1["next"]).json()
    assert page2["count"] is None and len(page2["results"]) == 100
    page4 = requests.get(url, params={"page_size": 100, "page": 4}).json()
    assert page4["results"] == [] and page4["next"] is None

    archive.reset_request_log()
    got = [a["asset_id"] for a in client.paginate(url, page_size=100, params={"order": "path"})]
    assert sorted(got) == sorted(ids)
    pages = [p for m, p in archive.request_log if p.startswith(f"/api/dandisets/{ds}/versions/draft/assets/")]
    assert len(pages) == 3
    assert sum("page=2" in p for p in pages) == 1 and sum("page=3" in p for p in pages) == 1

    archive.reset_request_log()
    client.get_dandiset(ds, lazy=False)
    assert archive.request_count == 1


def test_fault_503_and_reset_are_retried_by_the_client(archive: DandiStandIn, client: DandiAPIClient) -> None:
    ds = archive.create_dandiset()
    archive.faults.retry_after = 0
    archive.faults.fail_next(1, "503")
    t0 = time.monotonic()
    assert client.get_dandiset(ds, lazy=False).identifier == ds
    assert archive.faults.injected == [("GET", f"/api/dandisets/{ds}/", "503")]
    archive.faults.fail_next(1, "reset")
    assert client.get_dandiset(ds, lazy=False).identifier == ds
    assert [k for _, _, k in archive.faults.injected] == ["503", "reset"]
    assert time.monotonic() - t0 < 10


def test_fault_kinds_on_the_wire(archive: DandiStandIn) -> None:
    url = f"{archive.api_url}/dandisets/"
    plan = archive.faults
    plan.retry_after = 7
    plan.timeout_seconds = 0.2
    plan.fail_next(1, "500")
    assert requests.get(url).status_code == 500
    plan.fail_next(1, "429")
    r = requests.get(url)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    plan.fail_next(1, "truncated")
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url)
    for kind in ("reset", "timeout"):
        plan.fail_next(1, kind)
        with pytest.raises(requests.ConnectionError):
            requests.get(url)
    assert requests.get(url).status_code == 200
    # server-info never faults (the client fetches it once, without retries)
    plan.set_rate(1.0, ("500",))
    assert requests.get(f"{archive.root_url}/server-info").status_code == 200
    assert requests.get(url).status_code == 500


def test_page_faults_repeat_and_skip(archive: DandiStandIn, client: DandiAPIClient) -> None:
    ds = archive.create_dandiset()
    archive.add_synthetic_assets(ds, 250)
    url = f"/dandisets/{ds}/versions/draft/assets/"

    archive.faults.set_only_paths(r"[?&]page=3(&|$)")
    archive.faults.set_rate(1.0, ("repeat-page",))
    got = [a["asset_id"] for a in client.paginate(url, page_size=100)]
    assert len(got) == 300 and len(set(got)) == 200  # page 3 answered with page 2

    archive.faults.reset()
    archive.faults.set_only_paths(r"[?&]page=2(&|$)")
    archive.faults.set_rate(1.0, ("skip-page",))
    got = [a["asset_id"] for a in client.paginate(url, page_size=100)]
    assert len(got) == 200 and len(set(got)) == 150  # page 2 answered with page 3


def test_fault_plan_is_deterministic() -> None:
    def draws(seed: int) -> list:
        plan = FaultPlan(rate=0.3, seed=seed)
        return [plan.pick("GET", f"/p/{i % 7}", paginated=True) for i in range(300)]

    a, b = draws(1), draws(1)
    assert a == b and a != draws(2)
    n = sum(k is not None for k in a)
    assert 40 < n < 140
    plan = FaultPlan()
    plan.fail_next(1, "skip-page")
    assert plan.pick("GET", "/x") is None  # page faults wait for a paginated request
    assert plan.pick("GET", "/x", paginated=True) == "skip-page"


def test_hundred_thousand_assets_list_fast(s3_standin: S3StandIn) -> None:
    with DandiStandIn(s3_standin, bucket="nm-test-dandi-big") as big:
        ds = big.create_dandiset()
        # CPU seconds of this process (the stand-in's threads and the client), not wall time: a loaded
        # machine stretched the wall 10x (1.05 s of CPU took 10.06 s beside a busy suite), not the work
        t0 = time.process_time()
        big.add_synthetic_assets(ds, 100_000)
        t1 = time.process_time()
        with DandiAPIClient(api_url=big.api_url) as c:
            n = sum(1 for _ in c.paginate(f"/dandisets/{ds}/versions/draft/assets/", page_size=1000))
        t2 = time.process_time()
        assert n == 100_000
        assert t1 - t0 < 10 and t2 - t1 < 15, (t1 - t0, t2 - t1)
        first = next(iter(big.dandiset(ds).draft.assets))
        assert first == "sub-00000/sub-00000_obj-0000000.nwb"
        assert big.asset_at(ds, first).size == 1024

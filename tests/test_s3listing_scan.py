"""A ListObjectVersions page is read by regular expressions (issue 40: ElementTree's tree of eight
elements per version was the largest share of a cold Zarr-heavy sync's CPU), and reads exactly as
ElementTree reads it: the answers the S3 stand-in (moto) really sends, and hand-written answers with
what XML allows in text (entities, character references, a key that is not URL-encoded).  What
the scanner cannot vouch for — a page cut short, CDATA, prefixed or attributed elements — goes to
ElementTree, which asks again for a cut page as before."""

from __future__ import annotations

import pytest
import requests

from neuromirror.sources import s3listing
from neuromirror.sources.dandi.unsigned_s3 import UnsignedS3

BUCKET = "nm-listing-scan"
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
VERSION = (
    "<Version><Key>zarr/a%20b/0.0</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest>"
    "<LastModified>2025-06-01T00:00:00.000Z</LastModified><ETag>&quot;0123abcd&quot;</ETag><Size>12</Size>"
    "<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Version>"
)
MARKER = (
    "<DeleteMarker><Key>zarr/gone%26x</Key><VersionId>v3</VersionId><IsLatest>true</IsLatest>"
    "<LastModified>2025-06-01T00:00:01Z</LastModified></DeleteMarker>"
)
PREFIXES = "<CommonPrefixes><Prefix>zarr/0/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>zarr/1%2F/</Prefix></CommonPrefixes>"


def answer(inner: str, encoding: str = "<EncodingType>url</EncodingType>", truncated: bool = True) -> bytes:
    head = f"<Name>b</Name><Prefix>zarr/</Prefix><KeyMarker></KeyMarker><MaxKeys>1000</MaxKeys>{encoding}"
    more = "<NextKeyMarker>zarr%2Fx%26y</NextKeyMarker><NextVersionIdMarker>v2</NextVersionIdMarker>"
    flag = f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{more if truncated else ''}"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListVersionsResult {NS}>{head}{flag}{inner}</ListVersionsResult>\n'
    ).encode()


def both_ways(body: bytes) -> tuple[tuple, tuple]:
    """What _parse gives of ``body`` scanned, and what it gives read by ElementTree."""
    found: list[str] = []
    scanned = (*s3listing._parse(body, found), found)
    original = s3listing._scan
    try:
        s3listing._scan = lambda body: None  # type: ignore[assignment] # the ElementTree path alone
        found_et: list[str] = []
        by_tree = (*s3listing._parse(body, found_et), found_et)
    finally:
        s3listing._scan = original  # type: ignore[assignment]
    return scanned, by_tree


@pytest.mark.parametrize(
    "body",
    [
        answer(VERSION * 3 + MARKER + VERSION),
        answer(VERSION + MARKER + PREFIXES),
        answer(""),
        answer(PREFIXES, truncated=False),
        answer(VERSION.replace("&quot;", "&#34;").replace("a%20b", "&#x263A;\u00e9&amp;&lt;"), encoding=""),
        answer(VERSION.replace("<Size>12</Size>", "<Size>12</Size>\r\n  "), truncated=False),
    ],
    ids=["versions-and-marker", "prefixes", "empty", "prefixes-only", "entities-unencoded", "whitespace"],
)
def test_a_page_scans_as_elementtree_reads_it(body: bytes) -> None:
    assert s3listing._scan(body) is not None  # the fast path read it
    scanned, by_tree = both_ways(body)
    assert scanned == by_tree
    assert scanned[0] or scanned[1] or scanned[2] or scanned[4]  # it read something


@pytest.mark.parametrize(
    "body",
    [
        answer(VERSION)[:-30],  # cut short: ElementTree raises, and the page is asked for again
        answer(VERSION.replace("<Version>", '<Version a="1">')),
        answer("<![CDATA[x]]>" + VERSION),
        answer("<!-- c -->" + VERSION),
        answer(VERSION).replace(b"<Version>", b"<s3:Version>").replace(b"</Version>", b"</s3:Version>"),
        answer("<Version/>" + VERSION),
    ],
    ids=["cut-short", "attribute", "cdata", "comment", "prefixed", "empty-element"],
)
def test_an_unusual_page_goes_to_elementtree(body: bytes) -> None:
    assert s3listing._scan(body) is None


def test_the_s3_standins_answers_scan_as_elementtree_reads_them(s3) -> None:  # noqa: ANN001
    """Real answers: a versioned bucket with overwritten and deleted objects, odd names, paged."""
    s3.create_bucket(BUCKET, versioned=True, public=True)
    names = ["zarr/z/.zgroup", "zarr/z/0/0.0", "zarr/z/a b&c/<d>", "zarr/z/é/ü", "zarr/z/q?x=1", "zarr/z/%41"]
    for i, name in enumerate(names):
        s3.put(BUCKET, name, f"{i}".encode())
    s3.put(BUCKET, "zarr/z/0/0.0", b"again")
    s3.put(BUCKET, "zarr/z/gone", b"x")
    s3.client().delete_object(Bucket=BUCKET, Key="zarr/z/gone")
    client = UnsignedS3(s3.endpoint_url)
    pages = 0
    for params in (
        {"Bucket": BUCKET, "Prefix": "zarr/z/", "EncodingType": "url", "MaxKeys": 3},
        {"Bucket": BUCKET, "Prefix": "zarr/z/", "MaxKeys": 1000},
        {"Bucket": BUCKET, "Prefix": "zarr/z/", "Delimiter": "/", "EncodingType": "url"},
    ):
        while True:
            body = requests.get(client.generate_presigned_url("list_object_versions", Params=params)).content
            assert s3listing._scan(body) is not None
            scanned, by_tree = both_ways(body)
            assert scanned == by_tree
            pages += 1
            if scanned[2] is None:
                break
            params = {**params, "KeyMarker": scanned[2], "VersionIdMarker": scanned[3]}
    assert pages >= 5
    listed = {
        v["Key"]
        for page in s3listing.paginate_versions(client, Bucket=BUCKET, Prefix="zarr/z/")
        for v in page["Versions"]
    }
    assert listed == {*names, "zarr/z/gone"}


#: a version as S3 writes one (the owner after the storage class, a checksum algorithm) and as moto does
S3_VERSION = VERSION.replace(
    "<Size>12</Size><Owner><ID>x</ID><DisplayName>y</DisplayName></Owner><StorageClass>STANDARD</StorageClass>",
    "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>12</Size><StorageClass>STANDARD</StorageClass>"
    "<Owner><ID>x</ID></Owner>",
)
BARE_VERSION = VERSION.replace("<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>", "").replace(
    "<StorageClass>STANDARD</StorageClass>", ""
)


@pytest.mark.parametrize(
    "body, by_block",
    [
        (answer(VERSION * 3), True),
        (answer(S3_VERSION + VERSION), True),
        (answer(BARE_VERSION + VERSION.replace("STANDARD", "")), True),  # no storage class, an empty one
        (answer(VERSION.replace("a%20b", "&#x263A;&amp;\r\n").replace("v1", "&lt;v1"), encoding=""), True),
        (answer(VERSION + PREFIXES), True),
        (answer(VERSION + MARKER), False),  # a delete marker: the element scan reads the page
        (answer(VERSION + VERSION.replace("<Size>", "\n<Size>")), False),  # one version written otherwise
        (answer(VERSION.replace("<IsLatest>true", "<IsLatest>TRUE")), False),
    ],
    ids=["moto", "s3-order", "storage-class", "entities", "prefixes", "marker", "whitespace", "odd-latest"],
)
def test_a_page_of_versions_reads_one_match_a_version_as_elementtree_reads_it(body: bytes, by_block: bool) -> None:
    """A Zarr's page (versions only, in the order S3 and moto write them) is read by one match per
    version; a page any of whose versions differs goes to the element scan; both as ElementTree."""
    assert (s3listing._blocks(body) is not None) is by_block
    scanned, by_tree = both_ways(body)
    assert scanned == by_tree and scanned[0]

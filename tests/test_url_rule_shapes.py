"""The URL rule reads a URL's promise from its shape, once per object of 10^6-object listings; its
case-blind, end-anchored patterns are tried only when the URL's end can match (issue 40), and
give what the patterns alone give: any case, a trailing slash, Unicode case folding as ``re.I``
folds (``ſ`` is an ``s``), a query or fragment after the path, a Zarr object's API route."""

from __future__ import annotations

import pytest

from neuromirror.sources.urlrule import Stability, admissible, stability

ASSET = "0123abcd-0123-0123-0123-0123456789ab"
BLOB = "abcdef01-2345-6789-abcd-ef0123456789"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://api.example/api/assets/{ASSET}/download/", Stability.IMMUTABLE),
        (f"https://api.example/api/ASSETS/{ASSET.upper()}/DOWNLOAD", Stability.IMMUTABLE),
        (f"https://api.example/api/dandisets/000001/versions/draft/assets/{ASSET}/download/#x", Stability.IMMUTABLE),
        (f"https://bucket.s3.amazonaws.com/blobs/abc/def/{BLOB}", Stability.IMMUTABLE),
        (f"https://bucket.s3.amazonaws.com/BLOBS/ABC/DEF/{BLOB.upper()}?x=1", Stability.IMMUTABLE),
        (f"https://bucket.s3.amazonaws.com/blob\u017f/abc/def/{BLOB}", Stability.IMMUTABLE),  # re.I folds ſ to s
        (f"https://bucket.s3.amazonaws.com/blobs/abc/def/{BLOB}/more", Stability.MUTABLE),
        (f"https://api.example/api/assets/{ASSET}/downloads/", Stability.MUTABLE),
        ("https://api.example/api/zarr/z/files/?prefix=0/0/download&download=true", Stability.MUTABLE),
        ("https://bucket.s3.amazonaws.com/zarr/z/0/0?versionId=3HL4kqtJ", Stability.PINNED),
        ("https://bucket.s3.amazonaws.com/zarr/z/0/0?versionId=null", Stability.MUTABLE),
    ],
)
def test_a_urls_shape_says_what_it_promises(url: str, expected: Stability) -> None:
    assert stability(url) is expected


def test_a_zarr_objects_pinned_url_stands_alone() -> None:
    s3 = "https://bucket.s3.amazonaws.com/zarr/z/0/0?versionId=v1"
    api = "https://api.example/api/zarr/z/files/?prefix=0/0&download=true"
    assert admissible((s3, api)) == ((s3,), False)
    assert admissible((api,)) == ((api,), True)


def test_a_zarrs_entries_carry_the_rules_own_count_of_unpinned_objects() -> None:
    """The count ``object_entries`` keeps while the rule chooses URLs is the count of entries with
    no stable URL (what ``mirror_zarr`` recounted before, issue 40): versioned objects are pinned,
    unversioned ones and every object of an embargoed Zarr are not."""
    from neuromirror.sources import urlrule
    from neuromirror.sources.dandi import zarr_listing as zl
    from neuromirror.sources.dandi.client import DandiAPI

    api = DandiAPI("000001", api_url="http://127.0.0.1:9/api")
    objs = [
        zl.ZObject(".zgroup", 2, "0" * 32, "v1", None),
        zl.ZObject("0/0.0", 8, "1" * 32, "v2", None),
        zl.ZObject("0/0.1", 8, "2" * 32, None, None),
        zl.ZObject("0/a b", 8, "3" * 32, "v+/=", None),
    ]
    base = "http://127.0.0.1:9/bucket/zarr/z/"
    for embargoed, expected in ((False, 1), (True, 4)):
        made = zl.object_entries(api, "z", objs, base, embargoed, urlrule.admissible)
        recount = sum(1 for e in made.entries if not any(urlrule.is_stable(u) for u in e.urls))
        assert made.unpinned == recount == expected
    urls = {e.path: e.urls for e in zl.object_entries(api, "z", objs, base, False, urlrule.admissible).entries}
    assert urls["0/a b"] == (base + "0/a%20b?versionId=v%2B%2F%3D",)

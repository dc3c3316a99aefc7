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

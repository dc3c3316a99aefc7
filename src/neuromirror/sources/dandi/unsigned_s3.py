"""Anonymous S3 requests of a Zarr's versioned listing, without boto3.

A Zarr's objects are listed with unsigned ``ListObjectVersions`` requests
(:func:`neuromirror.sources.s3listing.paginate_versions`, which fetches and parses the
pages itself and asks its client only for each page's URL and its retry settings).  An
unsigned request's "presigned" URL is just the URL: boto3 built it for 0.3-0.5 s of CPU
per process — importing boto3 and reading its S3 service model — the largest part of a
resync in which 2 Zarrs of 20,000 changed.  :class:`UnsignedS3` builds the same URLs
(tests/test_dandi_zarr_scale.py compares them with boto3's), for AWS's standard
partition (virtual-hosted, path-style for bucket names that cannot be host names) and
for an explicit endpoint (path-style, as stand-ins and S3-compatible stores want).
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, Optional
from urllib.parse import quote

#: the query names of ListObjectVersions' parameters (boto3's, in the order given)
_QUERY = {
    "Prefix": "prefix",
    "Delimiter": "delimiter",
    "EncodingType": "encoding-type",
    "KeyMarker": "key-marker",
    "VersionIdMarker": "version-id-marker",
    "MaxKeys": "max-keys",
}
#: a bucket name that can be a host name under TLS (no dots: the certificate covers one label)
_HOST_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
#: what s3listing reads of a client's configuration: attempts per page, timeouts (s)
RETRIES = {"max_attempts": 8, "mode": "standard"}


class UnsignedS3:
    """What :func:`~neuromirror.sources.s3listing.paginate_versions` asks of an S3 client, for anonymous reads."""

    def __init__(self, endpoint: Optional[str], region: str = "us-east-1") -> None:
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.region = region
        self.meta = SimpleNamespace(config=SimpleNamespace(retries=RETRIES, connect_timeout=60, read_timeout=120))

    def generate_presigned_url(self, ClientMethod: str, Params: dict[str, Any], ExpiresIn: int = 3600) -> str:  # noqa: N803 (boto's names)
        """The URL of an unsigned request (``ExpiresIn`` means nothing without a signature)."""
        if ClientMethod != "list_object_versions":
            raise ValueError(f"UnsignedS3 lists object versions only, not {ClientMethod}")
        query = "".join(
            f"&{_QUERY[name]}={quote(str(value), safe='-_.~')}"
            for name, value in Params.items()
            if name != "Bucket" and value is not None
        )
        if "EncodingType" not in Params:
            query += "&encoding-type=url"  # as botocore adds it
        return f"{self._bucket_url(Params['Bucket'])}?versions{query}"

    def _bucket_url(self, bucket: str) -> str:
        if self.endpoint:
            return f"{self.endpoint}/{bucket}"
        host = "s3.amazonaws.com" if self.region == "us-east-1" else f"s3.{self.region}.amazonaws.com"
        if _HOST_LABEL.fullmatch(bucket):
            return f"https://{bucket}.{host}/"
        return f"https://{host}/{bucket}"

"""S3 object URLs recognised by what they are, not by what they are not.

An archive hands out several URLs for one thing (DANDI's ``contentUrl`` lists
its own download route and the S3 URL).  Taking "the one that is not under the
API URL I was given" for the S3 URL breaks as soon as the API is spelled
differently (``localhost`` for ``127.0.0.1``, a trailing slash, another port):
the archive's download route is then "pinned" with a ``versionId`` that belongs
to the object it redirects to.  So a URL is an S3 object URL when

* its host has one of AWS's S3 shapes — virtual-hosted
  (``bucket.s3.amazonaws.com``, ``bucket.s3.us-west-2.amazonaws.com``,
  ``bucket.s3-us-west-2.amazonaws.com``, dualstack) or path-style
  (``s3.amazonaws.com/bucket/key`` and its regional forms); or
* it is on an S3 endpoint in use (``--s3-endpoint``, ``NEUROMIRROR_S3_ENDPOINT``:
  a stand-in, MinIO), path-style ``ENDPOINT/bucket/key``; or
* ``archive_key`` says its path is a key of the archive's own bucket layout
  (DANDI: ``blobs/<3>/<3>/<uuid>``, ``zarr/<uuid>/...``), path-style or
  virtual-hosted on any host — how deployments and stand-ins of an archive serve
  it from hosts nobody can list in advance.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Optional
from urllib.parse import quote, unquote, urlsplit

#: <bucket>.s3[.-]<region>?[.dualstack]?.amazonaws.com[.cn]
_AWS_VIRTUAL = re.compile(
    r"^(?P<bucket>.+?)\.s3(?:[.-](?:dualstack\.)?[a-z0-9-]+)?(?:\.dualstack\.[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?$"
)
#: s3.amazonaws.com, s3.<region>.amazonaws.com, s3-<region>.amazonaws.com, s3.dualstack.<region>...
_AWS_PATH = re.compile(r"^s3(?:[.-](?:dualstack\.)?[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?$")


#: what ``quote`` leaves as it is: most keys and version ids, spared the call (10^6 of them a sync)
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~/-]*\Z")
_UNRESERVED_NO_SLASH = re.compile(r"[A-Za-z0-9_.~-]*\Z")


def quote_key(key: str) -> str:
    """An object key (or a path under a key prefix) as an S3 URL's path writes it: ``quote(key, safe="/~")``."""
    return key if _UNRESERVED.match(key) else quote(key, safe="/~")


def quote_version(version_id: str) -> str:
    """A versionId as a ``?versionId=`` query writes it: ``quote(version_id, safe="")``."""
    return version_id if _UNRESERVED_NO_SLASH.match(version_id) else quote(version_id, safe="")


@dataclass(frozen=True)
class S3Location:
    """Where an object URL points: ``endpoint`` None means AWS (virtual-hosted URLs)."""

    endpoint: Optional[str]
    bucket: str
    key: str


def endpoints_in_use(extra: Iterable[Optional[str]] = ()) -> tuple[str, ...]:
    """The configured S3 endpoints (``NEUROMIRROR_S3_ENDPOINT`` and any given), normalised."""
    found = [*extra, os.environ.get("NEUROMIRROR_S3_ENDPOINT")]
    return tuple(dict.fromkeys(_origin(e) for e in found if e))


def _origin(url: str) -> str:
    u = urlsplit(url.strip())
    return f"{u.scheme.lower()}://{(u.netloc or '').lower()}"


def locate(
    url: str, endpoints: Iterable[str] = (), archive_key: Optional[Callable[[str], bool]] = None
) -> Optional[S3Location]:
    """The S3 location of ``url``, or None when it is not an S3 object URL (see the module)."""
    if not isinstance(url, str):
        return None
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return None
    host = u.hostname.lower()
    path = unquote(u.path)
    m = _AWS_VIRTUAL.match(host)
    if m:
        return S3Location(None, m.group("bucket"), path.lstrip("/"))
    if _AWS_PATH.match(host):
        return _path_style(None, path)
    origin = f"{u.scheme}://{u.netloc.lower()}"
    if origin in {_origin(e) for e in endpoints}:
        return _path_style(origin, path)
    if archive_key is not None:
        bucket, _, key = path.lstrip("/").partition("/")
        if key and archive_key(key):  # path-style on an unlisted host
            return S3Location(origin, bucket, key)
        key = path.lstrip("/")
        if "." in host and archive_key(key):  # virtual-hosted: bucket.host/key
            bucket, _, rest = u.netloc.partition(".")
            return S3Location(f"{u.scheme}://{rest}", bucket, key)
    return None


def _path_style(endpoint: Optional[str], path: str) -> Optional[S3Location]:
    bucket, _, key = path.lstrip("/").partition("/")
    return S3Location(endpoint, bucket, key) if bucket else None


class Locator:
    """:func:`locate` for many URLs at once (``restore`` over 10^6 files): what a URL's host is (AWS
    virtual-hosted, path-style, an endpoint in use, any other) is worked out once per scheme and host,
    then each URL costs a split of its path.  Gives what :func:`locate` gives, for every URL."""

    def __init__(self, endpoints: Iterable[str] = (), archive_key: Optional[Callable[[str], bool]] = None):
        self._endpoints = tuple(dict.fromkeys(_origin(e) for e in endpoints))
        self._rule = archive_key
        #: "scheme://netloc" -> (kind, bucket or origin, netloc, host)
        self._hosts: dict[str, tuple[str, str, str, str]] = {}

    def __call__(self, url: str) -> Optional[S3Location]:
        i = url.find("://") if isinstance(url, str) else -1
        j = url.find("/", i + 3) if i > 0 else -1
        head = url[:j] if j > 0 else ""
        if not head or any(c in head for c in "?#@\\"):
            return locate(url, self._endpoints, self._rule)  # an unusual shape: the general way
        kind = self._hosts.get(head)
        if kind is None:
            kind = self._hosts[head] = self._classify(head)
        what, at, netloc, host = kind
        if what == "none":
            return None
        path = unquote(url[j:].split("#", 1)[0].split("?", 1)[0])
        if what == "virtual":
            return S3Location(None, at, path.lstrip("/"))
        if what == "path":
            return _path_style(at or None, path)
        return self._by_rule(at, netloc, host, path) if self._rule is not None else None

    def _by_rule(self, origin: str, netloc: str, host: str, path: str) -> Optional[S3Location]:
        """An unlisted host's URL located by the archive's key rule (as :func:`locate` does): path-style
        when the path past a bucket is an archive key, else virtual-hosted when the whole path is one.
        Asked only for such hosts: AWS's and the endpoints in use cost no call."""
        assert self._rule is not None
        bucket, _, key = path.lstrip("/").partition("/")
        if key and self._rule(key):
            return S3Location(origin, bucket, key)
        key = path.lstrip("/")
        if "." in host and self._rule(key):
            bucket, _, rest = netloc.partition(".")
            return S3Location(f"{origin.split('://', 1)[0]}://{rest}", bucket, key)
        return None

    def _classify(self, head: str) -> tuple[str, str, str, str]:
        u = urlsplit(head + "/")
        if u.scheme not in ("http", "https") or not u.hostname:
            return ("none", "", "", "")
        host = u.hostname.lower()
        m = _AWS_VIRTUAL.match(host)
        if m:
            return ("virtual", m.group("bucket"), u.netloc, host)
        if _AWS_PATH.match(host):
            return ("path", "", u.netloc, host)
        origin = f"{u.scheme}://{u.netloc.lower()}"
        if origin in self._endpoints:
            return ("path", origin, u.netloc, host)
        return ("other", origin, u.netloc, host)

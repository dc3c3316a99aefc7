"""A small real S3 endpoint on loopback serving one *generated* bucket (:mod:`.s3_generated_keys`).

Why a server of its own and not moto: a bucket of 4 x 10^6 objects would take moto
gigabytes and many minutes to fill; this one holds a description and computes every
answer, so its memory does not grow with the bucket.  Listing pages are made on the
fly, in key order, from their marker; nothing is rendered ahead.

It speaks exactly the S3 REST calls the AIND source (``sources/aind``, ``sources/s3listing``)
makes with boto3 and that git-annex makes through an object's URL, path-style
(``<endpoint>/<bucket>/<key>``):

* ``GET /<bucket>?versions`` - ListObjectVersions: ``prefix``, ``key-marker`` /
  ``version-id-marker``, ``max-keys`` (at most 1,000), ``delimiter``, ``encoding-type=url``;
* ``GET /<bucket>?list-type=2`` - ListObjectsV2: ``prefix``, ``delimiter``,
  ``continuation-token``, ``start-after``, ``max-keys``, ``encoding-type=url``;
* ``GET /<bucket>?versioning`` (Enabled), ``HEAD /<bucket>``, ``GET /`` (ListBuckets);
* ``HEAD`` / ``GET /<bucket>/<key>`` with or without ``versionId``, with ``Range: bytes=...``
  and ``If-Match`` / ``If-None-Match``: ETag (MD5 of the bytes), Content-Length,
  Last-Modified, ``x-amz-version-id``.

Access is anonymous; signed requests (an ``Authorization`` header, presigned query
parameters) are accepted and their signatures not checked.  Every object has one version,
whose id is a function of its key.  Writes are refused (the bucket is read-only).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections import Counter
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Sequence, Union
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from neuromirror.standins.s3_generated_keys import (
    GeneratedAsset,
    GeneratedBucket,
    GeneratedStore,
    aind_asset,
    chunk_bytes,
    resume_index,
    version_id,
    walk,
)
from neuromirror.standins.threaded import ThreadServed

__all__ = ["GeneratedAsset", "GeneratedBucket", "GeneratedS3", "GeneratedStore", "aind_asset", "chunk_bytes"]

MAX_KEYS = 1000
_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: characters that neither URL-encoding (``quote(safe="/")``) nor XML escaping change
_PLAIN_RE = re.compile(r"[A-Za-z0-9_.~/-]*\Z")


class _Answer(Exception):
    """An S3 error answer: status, code, message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _text(value: str, url: bool) -> str:
    """A key or prefix in a listing: URL-encoded when the client asked (boto3 always does), else XML-escaped."""
    if _PLAIN_RE.match(value):
        return value  # the same either way (and the usual case: ~1/3 of the cost of a version otherwise)
    return quote(value, safe="/") if url else escape(value)


def _etag(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- listings


def _version_xml(key: str, data: bytes, stamp: str, url: bool) -> str:
    return (
        f"<Version><Key>{_text(key, url)}</Key><VersionId>{version_id(key)}</VersionId><IsLatest>true</IsLatest>"
        f"<LastModified>{stamp}</LastModified><ETag>&quot;{_etag(data)}&quot;</ETag><Size>{len(data)}</Size>"
        "<StorageClass>STANDARD</StorageClass></Version>"
    )


def _contents_xml(key: str, data: bytes, stamp: str, url: bool) -> str:
    return (
        f"<Contents><Key>{_text(key, url)}</Key><LastModified>{stamp}</LastModified>"
        f"<ETag>&quot;{_etag(data)}&quot;</ETag><Size>{len(data)}</Size><StorageClass>STANDARD</StorageClass></Contents>"
    )


def _common_xml(entries: Sequence[Union[tuple[str, bytes], str]], url: bool) -> str:
    return "".join(
        f"<CommonPrefixes><Prefix>{_text(e, url)}</Prefix></CommonPrefixes>" for e in entries if isinstance(e, str)
    )


def _max_keys(q: dict[str, str]) -> int:
    try:
        n = int(q.get("max-keys") or MAX_KEYS)
    except ValueError:
        raise _Answer(400, "InvalidArgument", "max-keys is not a number") from None
    return max(0, min(n, MAX_KEYS))


def list_versions(bucket: GeneratedBucket, q: dict[str, str]) -> str:
    """ListObjectVersions: one page, made from its key marker (each key has exactly one version)."""
    prefix, delim, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("key-marker", "")
    url, limit, stamp = q.get("encoding-type") == "url", _max_keys(q), _stamp(bucket)
    entries, more = walk(bucket, resume_index(bucket, marker, delim), prefix, delim, limit)
    head = [f"<Name>{escape(bucket.name)}</Name><Prefix>{_text(prefix, url)}</Prefix>"]
    head.append(
        f"<KeyMarker>{_text(marker, url)}</KeyMarker><VersionIdMarker>{escape(q.get('version-id-marker', ''))}</VersionIdMarker>"
    )
    head.append(f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{'true' if more else 'false'}</IsTruncated>")
    if delim:
        head.append(f"<Delimiter>{_text(delim, url)}</Delimiter>")
    if url:
        head.append("<EncodingType>url</EncodingType>")
    if more and entries:
        last = entries[-1]
        nxt = last if isinstance(last, str) else last[0]
        head.append(f"<NextKeyMarker>{_text(nxt, url)}</NextKeyMarker>")
        if not isinstance(last, str):
            head.append(f"<NextVersionIdMarker>{version_id(nxt)}</NextVersionIdMarker>")
    body = "".join(_version_xml(e[0], e[1], stamp, url) for e in entries if not isinstance(e, str))
    return f"<ListVersionsResult {_NS}>{''.join(head)}{body}{_common_xml(entries, url)}</ListVersionsResult>"


def list_v2(bucket: GeneratedBucket, q: dict[str, str]) -> str:
    """ListObjectsV2: one page; the continuation token is the last entry, base64 (opaque to clients)."""
    prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
    url, limit, stamp = q.get("encoding-type") == "url", _max_keys(q), _stamp(bucket)
    token = q.get("continuation-token")
    if token is not None:
        try:
            marker = base64.urlsafe_b64decode(token.encode()).decode("utf-8")
        except ValueError:
            raise _Answer(400, "InvalidArgument", "The continuation token provided is incorrect") from None
    else:
        marker = q.get("start-after", "")
    entries, more = walk(bucket, resume_index(bucket, marker, delim), prefix, delim, limit)
    head = [f"<Name>{escape(bucket.name)}</Name><Prefix>{_text(prefix, url)}</Prefix><MaxKeys>{limit}</MaxKeys>"]
    head.append(f"<KeyCount>{len(entries)}</KeyCount><IsTruncated>{'true' if more else 'false'}</IsTruncated>")
    if delim:
        head.append(f"<Delimiter>{_text(delim, url)}</Delimiter>")
    if url:
        head.append("<EncodingType>url</EncodingType>")
    if token is not None:
        head.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    elif q.get("start-after"):
        head.append(f"<StartAfter>{_text(marker, url)}</StartAfter>")
    if more and entries:
        last = entries[-1]
        nxt = last if isinstance(last, str) else last[0]
        head.append(f"<NextContinuationToken>{base64.urlsafe_b64encode(nxt.encode()).decode()}</NextContinuationToken>")
    body = "".join(_contents_xml(e[0], e[1], stamp, url) for e in entries if not isinstance(e, str))
    return f"<ListBucketResult {_NS}>{''.join(head)}{body}{_common_xml(entries, url)}</ListBucketResult>"


def _stamp(bucket: GeneratedBucket) -> str:
    return bucket.modified.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --------------------------------------------------------------------------- the HTTP handler


class _Handler(BaseHTTPRequestHandler):
    """One connection (HTTP/1.1, kept alive); answers from ``server.bucket``."""

    protocol_version = "HTTP/1.1"
    #: headers and body are two writes: with Nagle on, each kept-alive answer waits ~40 ms for an ACK
    disable_nagle_algorithm = True
    server: _Server
    timeout = 120  # an idle kept-alive connection's thread ends

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        """Silent: a benchmark sends millions of requests."""

    def handle_one_request(self) -> None:
        """One request, its thread's CPU counted: what the stand-in takes from the cores a benchmark shares."""
        t = time.thread_time()
        try:
            super().handle_one_request()
        finally:
            with self.server.lock:
                self.server.cpu += time.thread_time() - t

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def _refuse(self) -> None:
        self._discard_body()
        self._error(_Answer(405, "MethodNotAllowed", "this generated bucket is read-only"), body=True)

    do_PUT = do_POST = do_DELETE = _refuse  # noqa: N815

    def _discard_body(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def _serve(self, body: bool) -> None:
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        bucket_name, _, key = unquote(parts.path).lstrip("/").partition("/")
        try:
            if not bucket_name:
                self._count("list-buckets")
                return self._xml(
                    f"<ListAllMyBucketsResult {_NS}><Buckets><Bucket><Name>{escape(self.server.bucket.name)}</Name>"
                    f"<CreationDate>{_stamp(self.server.bucket)}</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>",
                    body,
                )
            if bucket_name != self.server.bucket.name:
                raise _Answer(404, "NoSuchBucket", "The specified bucket does not exist")
            if key:
                return self._object(key, q, body)
            return self._bucket(q, body)
        except _Answer as answer:
            self._error(answer, body)

    def _bucket(self, q: dict[str, str], body: bool) -> None:
        b = self.server.bucket
        if not body:
            self._count("head-bucket")
            return self._send(200, b"", {"x-amz-bucket-region": "us-west-2"}, body)
        if "versions" in q:
            self._count("list-object-versions")
            return self._xml(list_versions(b, q), body)
        if q.get("list-type") == "2":
            self._count("list-objects-v2")
            return self._xml(list_v2(b, q), body)
        if "versioning" in q:
            self._count("get-bucket-versioning")
            return self._xml(f"<VersioningConfiguration {_NS}><Status>Enabled</Status></VersioningConfiguration>", body)
        raise _Answer(501, "NotImplemented", f"this stand-in does not answer {self.path.split('?', 1)[-1]!r}")

    def _object(self, key: str, q: dict[str, str], body: bool) -> None:
        self._count("get" if body else "head")
        b = self.server.bucket
        i = b.find(key)
        if i is None:
            raise _Answer(404, "NoSuchKey", "The specified key does not exist.")
        vid = version_id(key)
        if q.get("versionId") not in (None, vid):
            raise _Answer(404, "NoSuchVersion", "The specified version does not exist.")
        data = b.item(i)[1]
        etag = f'"{_etag(data)}"'
        match, none_match = self.headers.get("If-Match"), self.headers.get("If-None-Match")
        if match is not None and etag.strip('"') not in {m.strip().strip('"') for m in match.split(",")} | {"*"}:
            raise _Answer(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
        headers = {
            "ETag": etag,
            "Last-Modified": format_datetime(b.modified, usegmt=True),
            "x-amz-version-id": vid,
            "Accept-Ranges": "bytes",
            "Content-Type": "binary/octet-stream",
        }
        if none_match is not None and etag.strip('"') in {m.strip().strip('"') for m in none_match.split(",")}:
            return self._send(304, b"", headers, False)
        status, part = self._range(data, headers)
        self._send(status, part, headers, body)

    def _range(self, data: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """The bytes a ``Range: bytes=a-b`` header asks for (one range; others get the whole object)."""
        m = _RANGE_RE.match(self.headers.get("Range") or "")
        if not m or m.groups() == ("", ""):
            return 200, data
        first, last = m.groups()
        n = len(data)
        start, end = (n - min(int(last), n), n - 1) if not first else (int(first), min(int(last or n - 1), n - 1))
        if start >= n or start > end:
            headers["Content-Range"] = f"bytes */{n}"
            raise _Answer(416, "InvalidRange", "The requested range is not satisfiable")
        headers["Content-Range"] = f"bytes {start}-{end}/{n}"
        return 206, data[start : end + 1]

    def _xml(self, text: str, body: bool) -> None:
        data = b'<?xml version="1.0" encoding="UTF-8"?>\n' + text.encode("utf-8")
        self._send(200, data, {"Content-Type": "application/xml"}, body)

    def _error(self, a: _Answer, body: bool) -> None:
        xml = f"<Error><Code>{a.code}</Code><Message>{escape(a.message)}</Message><Resource>{escape(self.path)}</Resource></Error>"
        self._send(a.status, xml.encode(), {"Content-Type": "application/xml", "x-amz-error-code": a.code}, body)

    def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("x-amz-request-id", "GENERATED")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body and status != 304:
            self.wfile.write(data)

    def _count(self, what: str) -> None:
        with self.server.lock:
            self.server.counts[what] += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], bucket: GeneratedBucket):
        super().__init__(address, _Handler)
        self.bucket = bucket
        self.counts: Counter = Counter()
        self.cpu = 0.0  # seconds of CPU spent answering, summed over the handler threads
        self.lock = threading.Lock()


class GeneratedS3(ThreadServed):
    """The server: ``with GeneratedS3(bucket) as s3: s3.endpoint_url``; requests counted per kind."""

    _server: Optional[_Server]

    def __init__(self, bucket: GeneratedBucket, host: str = "127.0.0.1", port: int = 0):
        self.bucket = bucket
        self._address = (host, port)

    def _bind(self) -> _Server:
        """Listening once bound: requests queue until the loop takes them."""
        return _Server(self._address, self.bucket)

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the generated S3 stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, key: str, pinned: bool = True) -> str:
        """The object's path-style URL, as the mirror registers it for git-annex."""
        base = f"{self.endpoint_url}/{self.bucket.name}/{quote(key, safe='/~')}"
        return f"{base}?versionId={version_id(key)}" if pinned else base

    def counts(self, reset: bool = False) -> dict[str, int]:
        """Requests answered so far, per kind (``get``, ``head``, ``list-object-versions``...)."""
        assert self._server is not None
        with self._server.lock:
            out = dict(self._server.counts)
            if reset:
                self._server.counts.clear()
        return out

    def cpu_seconds(self, reset: bool = False) -> float:
        """CPU the server's threads spent answering (parsing, generating, sending) so far."""
        assert self._server is not None
        with self._server.lock:
            out = self._server.cpu
            if reset:
                self._server.cpu = 0.0
        return out

"""S3 ``ListObjectVersions`` pages without botocore's response parser.

botocore turns each page of 1,000 versions into Python through its generic,
model-driven XML parser: ~0.25 ms of CPU per version, i.e. 250 s for a 10^6-object
Zarr or AIND asset on one core — more than the whole mirror should take (issue 13:
5,000 objects/s end to end).  Here boto3 still decides *what* to request (it
presigns each page's URL: endpoint, addressing style, credentials or none), and the
page is fetched with urllib3 (:func:`_pool`) and read by :func:`_scan`: one pass of
one C regular expression over the body, a dict per version (4-5 us per version, where
``xml.etree.ElementTree`` building a tree of 8 elements per version and the walk of it
took ~6, with each LastModified parsed again: together the largest share of a cold
Zarr-heavy sync's CPU, issue 40).  A page of versions only, each written in the order S3 and
moto write them (a Zarr's page), is read by one match per version instead (:func:`_blocks`,
~3 us a version).  An answer the scanner cannot vouch for (cut short, CDATA, comments,
prefixed or attributed elements) is read with ElementTree, as before.  The pages have the shape botocore gives
(``Versions`` / ``DeleteMarkers`` with ``Key``, ``VersionId``, ``IsLatest``,
``ETag``, ``Size``, ``LastModified``, ``StorageClass``), so callers change one line.
An error answer is raised as botocore's ``ClientError`` with the server's code, as
the paginator would; 5xx answers, dropped connections and bodies cut short are
retried.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any, Iterator, Optional
from urllib.parse import unquote

from neuromirror.network import pacing
from neuromirror.util.dates import parse_iso

ATTEMPTS = 8
#: listing requests in flight to one endpoint at most (Zarr jobs x listing clients); the controller may allow fewer
LISTING_CEILING = 32
#: ... and when the endpoint is far (see :class:`neuromirror.network.pacing.Pace`)
LISTING_MOST = 128
_pools: Optional[Any] = None
_pools_lock = threading.Lock()


def _pool(url: str) -> Any:
    """The pool manager for a page's URL: urllib3 directly (:mod:`neuromirror.network.pools`,
    through the environment's proxy as ``requests`` went), shared by the listing threads.

    A small Zarr is one page, so a request's own cost is most of its listing: ``requests``
    spent ~1 ms of CPU a request (a cold sync of 20,000 Zarrs of 20 objects: a third of its Zarr
    listing time, issue 40).  Certificates are checked against ``certifi``'s bundle, as
    ``requests`` checks them.
    """
    global _pools
    if _pools is None:
        with _pools_lock:
            if _pools is None:
                import certifi
                import urllib3

                from neuromirror.network.pools import Pools

                # redirects followed (S3 answers 301/307 across regions), nothing retried here: _page retries
                retries = urllib3.Retry(
                    total=None, connect=0, read=0, redirect=5, status=0, other=0, raise_on_status=False
                )
                # 4 Zarr jobs x 4 listing clients at most at once: every connection kept
                _pools = Pools(32, retries=retries, ca_certs=certifi.where())
    return _pools.manager(url)


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _time(text: Optional[str]) -> Optional[datetime]:
    return parse_iso(text, strict=True)


#: a namespace prefix on an element (``<s3:Version>``): looked for where the answer starts, as a
#: server that writes prefixes writes them from its first element on
_PREFIXED = re.compile(rb"<[A-Za-z_][\w.-]*:[A-Za-z_]")
#: one pass over a page: a version or delete marker opened, one closed, or a leaf element and its
#: text (text holds no "<" in well-formed XML); a version with attributes is found by ``_ODD_OPEN``
_ITEM = re.compile(rb"<(Version|DeleteMarker)>|</(?:Version|DeleteMarker)>|<([A-Za-z]+)>([^<]*)</\2>")
_ODD_OPEN = re.compile(rb"<(?:Version|DeleteMarker)[\s/]")
_PREFIX = re.compile(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>")
#: a whole version in the order S3 and moto write its elements (optional checksum algorithms,
#: owner and storage class): one match and one tuple per version where :data:`_ITEM` takes eight
_BLOCK = re.compile(
    rb"<Version><Key>([^<]*)</Key><VersionId>([^<]*)</VersionId><IsLatest>(true|false)</IsLatest>"
    rb"<LastModified>([^<]*)</LastModified><ETag>([^<]*)</ETag>(?:<ChecksumAlgorithm>[^<]*</ChecksumAlgorithm>)*"
    rb"<Size>([0-9]+)</Size>(?:<Owner>(?:<ID>[^<]*</ID>)?(?:<DisplayName>[^<]*</DisplayName>)?</Owner>)?"
    rb"(<StorageClass>[^<]*</StorageClass>)?"
    rb"(?:<Owner>(?:<ID>[^<]*</ID>)?(?:<DisplayName>[^<]*</DisplayName>)?</Owner>)?</Version>"
)
_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
#: S3 objects written together share their LastModified: parsed once each (bounded)
_times: dict[str, Optional[datetime]] = {}


def _entity(m: re.Match) -> str:
    ref = m.group(1)
    if ref[0] != "#":
        return _NAMED[ref]
    return chr(int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:]))


def _text(raw: bytes) -> str:
    """An element's text as XML defines it: UTF-8, entities and character references resolved,
    line ends normalised (as ElementTree gives it)."""
    text = raw.decode("utf-8")
    if "&" not in text and "\r" not in text:
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _ENTITY.sub(_entity, text) if "&" in text else text


def _cached_time(text: Optional[str]) -> Optional[datetime]:
    got = _times.get(text) if text else None
    if got is None and text:
        if len(_times) > 4096:
            _times.clear()
        got = _times[text] = _time(text)
    return got


def _scan(body: bytes) -> Optional[tuple[list[dict], list[dict], dict[str, str], list[str]]]:
    """(versions, delete markers, the answer's own leaf fields, common prefixes) of a listing
    answer, read in one pass of a regular expression (~4 us a version, ElementTree and the walk of
    its tree ~6); None when the answer is not of the plain shape S3, moto and other S3 servers
    write (then :func:`_parse` reads it with ElementTree)."""
    if not body[-64:].rstrip().endswith(b"</ListVersionsResult>"):
        return None  # cut short: ElementTree says so, and the page is asked for again
    if b"<!" in body or _PREFIXED.search(body, 0, 2048):
        return None  # CDATA, a comment or a prefixed element: ElementTree reads them
    blocks = _blocks(body)
    if blocks is not None:
        return blocks
    items = _items(body)
    if items is None or _ODD_OPEN.search(body):
        return None  # a version left open, or one with attributes the pattern did not take
    versions, markers, top = items
    return versions, markers, top, [_text(raw) for raw in _PREFIX.findall(body)]


def _items(body: bytes) -> Optional[tuple[list[dict], list[dict], dict[str, str]]]:
    """(versions, delete markers, the answer's own leaf fields) of a listing answer, one
    :data:`_ITEM` match per element (the loop of :func:`_scan`, on its own for its length);
    None when a version or delete marker is left open."""
    versions: list[dict] = []
    markers: list[dict] = []
    top: dict[str, str] = {}
    rec: Optional[dict] = None
    for block, name, raw in _ITEM.findall(body):
        if block:
            rec = {"Key": ""}
            (versions if block == b"Version" else markers).append(rec)
        elif not name:
            rec = None  # closed: what follows is the answer's own again
        elif rec is None:
            top[name.decode()] = _text(raw)
        elif name == b"Key":
            rec["Key"] = _text(raw)
        elif name == b"VersionId":
            rec["VersionId"] = _text(raw)
        elif name == b"IsLatest":
            rec["IsLatest"] = raw.strip() == b"true"
        elif name == b"LastModified":
            rec["LastModified"] = _cached_time(raw.decode())
        elif name == b"ETag":
            rec["ETag"] = _text(raw)
        elif name == b"Size":
            rec["Size"] = int(raw or 0)
        elif name == b"StorageClass":
            rec["StorageClass"] = _text(raw)
    if rec is not None:
        return None
    return versions, markers, top


def _top_fields(body: bytes, any_version: bool) -> dict[str, str]:
    """The answer's own leaf fields (IsTruncated, the next markers...): those before the first
    version and after the last, read once a page, not per version."""
    first, last = body.find(b"<Version>"), body.rfind(b"</Version>")
    top: dict[str, str] = {}
    for part in (body[:first], body[last:]) if any_version else (body,):
        for block, name, raw in _ITEM.findall(part):
            if name and not block:
                top[name.decode()] = _text(raw)
    return top


def _blocks(body: bytes) -> Optional[tuple[list[dict], list[dict], dict[str, str], list[str]]]:
    """:func:`_scan`'s answer for a page of versions only, each written as :data:`_BLOCK` expects
    (a Zarr's listing): one match per version; None when any version is written otherwise."""
    if b"<DeleteMarker" in body:
        return None
    found = _BLOCK.findall(body)
    opened = body.count(b"<Version")  # <Version>, <VersionId>, <VersionIdMarker>, or one with attributes
    if len(found) != body.count(b"<Version>") or opened != len(found) + body.count(b"<VersionId"):
        return None  # a version written otherwise, or with attributes
    top = _top_fields(body, bool(found))
    versions: list[dict] = []
    add = versions.append
    for key, vid, latest, modified, etag, size, storage in found:
        rec = {
            "Key": _text(key),
            "VersionId": _text(vid) or None,
            "IsLatest": latest == b"true",
            "LastModified": _cached_time(modified.decode()),
            "ETag": _text(etag) or None,
            "Size": int(size),
        }
        if storage:
            rec["StorageClass"] = _text(storage[14:-15]) or None  # an empty element: None, as ElementTree says
        add(rec)
    prefixes = [_text(raw) for raw in _PREFIX.findall(body)] if b"<CommonPrefixes>" in body else []
    return versions, [], top, prefixes


def _record(el: Any) -> dict:
    rec: dict[str, Any] = {}
    for child in el:
        name = _strip_ns(child.tag)
        text = child.text
        if name == "Key":
            rec["Key"] = text or ""
        elif name == "Size":
            rec["Size"] = int(text or 0)
        elif name == "IsLatest":
            rec["IsLatest"] = (text or "").strip() == "true"
        elif name == "LastModified":
            rec["LastModified"] = _time(text)
        elif name in ("VersionId", "ETag", "StorageClass"):
            rec[name] = text
    return rec


def _error(status: int, body: bytes, op: str = "ListObjectVersions") -> Exception:
    from botocore.exceptions import ClientError

    code, message = str(status), ""
    try:
        root = ET.fromstring(body)
        for child in root:
            if _strip_ns(child.tag) == "Code":
                code = child.text or code
            elif _strip_ns(child.tag) == "Message":
                message = child.text or ""
    except ET.ParseError:
        message = body[:200].decode(errors="replace")
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, op)  # botocore's own error, with what the body said (no request id to give)


def _page(
    client: Any, params: dict, prefixes: Optional[list[str]] = None
) -> tuple[list[dict], list[dict], Optional[str], Optional[str]]:
    """One page, through the endpoint's pace (:func:`neuromirror.network.pacing.call`), retried as the
    client's configuration says (``retries.max_attempts``): a 429 or 5xx, no answer, or a body cut short.

    Transport failures are raised as botocore's exceptions (``EndpointConnectionError``,
    ``ConnectTimeoutError``, ``ReadTimeoutError``), as the paginator would raise them.
    """
    import urllib3
    from urllib3.exceptions import HTTPError

    url = client.generate_presigned_url("list_object_versions", Params=params, ExpiresIn=3600)
    cfg = client.meta.config
    attempts = max(1, int((getattr(cfg, "retries", None) or {}).get("max_attempts") or ATTEMPTS))
    timeout = urllib3.Timeout(
        connect=getattr(cfg, "connect_timeout", None) or 60, read=getattr(cfg, "read_timeout", None) or 120
    )

    def send() -> tuple[Any, Any]:
        r = _pool(url).request("GET", url, timeout=timeout)
        return r, _parse(r.data, prefixes) if r.status == 200 else None  # a body cut short: ParseError, again

    try:
        r, parsed = pacing.call(
            url,
            send,
            lambda answer: answer[0].status,
            lambda answer: answer[0].headers.get("Retry-After"),
            transient=(HTTPError, OSError, ET.ParseError),
            retried=_RETRIED,
            ceiling=LISTING_CEILING,  # shared with the pins' HEADs: one endpoint, one pace
            most=LISTING_MOST,
            tries=attempts,
            round_trip=False,
        )
    except pacing.GaveUp as exc:
        raise _given_up(exc.cause, url.split("?", 1)[0]) from None
    if r.status != 200:
        raise _error(r.status, r.data)
    return parsed


#: answers a page is asked again after (any 5xx, as botocore's standard mode; and 429)
_RETRIED = frozenset({429, *range(500, 600)})


def _given_up(cause: Any, endpoint: str) -> BaseException:
    """The last failure of a page given up on, as botocore would raise it."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
    from urllib3.exceptions import ConnectTimeoutError as ConnectTimeout
    from urllib3.exceptions import MaxRetryError, NewConnectionError
    from urllib3.exceptions import ReadTimeoutError as ReadTimeout

    if isinstance(cause, tuple):  # the last answer: a 429 or 5xx, with what its body said
        return _error(cause[0].status, cause[0].data)
    if isinstance(cause, ET.ParseError):
        return cause
    reason = cause.reason if isinstance(cause, MaxRetryError) else cause
    # urllib3's NewConnectionError (refused) is a ConnectTimeoutError too: requests told them apart so
    if isinstance(reason, ConnectTimeout) and not isinstance(reason, NewConnectionError):
        return ConnectTimeoutError(endpoint_url=endpoint)
    if isinstance(reason, ReadTimeout):
        return ReadTimeoutError(endpoint_url=endpoint)
    return EndpointConnectionError(endpoint_url=endpoint)  # refused, reset, a body cut short by the connection


def _parse_tree(
    body: bytes, prefixes: Optional[list[str]]
) -> tuple[list[dict], list[dict], bool, bool, Optional[str], Optional[str]]:
    """What :func:`_parse` needs of an answer, read with ElementTree (any well-formed XML)."""
    root = ET.fromstring(body)
    versions: list[dict] = []
    markers: list[dict] = []
    truncated = encoded = False
    next_key = next_vid = None
    for el in root:
        name = _strip_ns(el.tag)
        if name == "Version":
            versions.append(_record(el))
        elif name == "DeleteMarker":
            markers.append(_record(el))
        elif name == "IsTruncated":
            truncated = (el.text or "").strip() == "true"
        elif name == "EncodingType":
            encoded = (el.text or "").strip() == "url"
        elif name == "NextKeyMarker":
            next_key = el.text
        elif name == "NextVersionIdMarker":
            next_vid = el.text
        elif name == "CommonPrefixes" and prefixes is not None:
            prefixes += [c.text or "" for c in el if _strip_ns(c.tag) == "Prefix"]
    return versions, markers, truncated, encoded, next_key, next_vid


def _parse(
    body: bytes, prefixes: Optional[list[str]] = None
) -> tuple[list[dict], list[dict], Optional[str], Optional[str]]:
    """(versions, delete markers, next key marker, next version id marker) of one page; with
    ``prefixes`` (a listing with a delimiter), its ``CommonPrefixes`` appended there.

    Keys are URL-decoded only when the answer says it encoded them (``EncodingType``):
    a server that ignores ``encoding-type=url`` sends them as they are.
    """
    scanned = _scan(body)
    if scanned is not None:
        versions, markers, top, found = scanned
        if prefixes is not None:
            prefixes += found
        truncated = top.get("IsTruncated", "").strip() == "true"
        encoded = top.get("EncodingType", "").strip() == "url"
        next_key, next_vid = top.get("NextKeyMarker"), top.get("NextVersionIdMarker")
    else:
        versions, markers, truncated, encoded, next_key, next_vid = _parse_tree(body, prefixes)
    if encoded:
        for rec in versions:
            rec["Key"] = unquote(rec["Key"])
        for rec in markers:
            rec["Key"] = unquote(rec["Key"])
        next_key = unquote(next_key) if next_key else next_key
        if prefixes is not None:
            prefixes[:] = [unquote(p) for p in prefixes]
    if not truncated:
        return versions, markers, None, None
    if not next_key:
        raise ET.ParseError("truncated listing without NextKeyMarker")
    return versions, markers, next_key, next_vid


def paginate_versions(
    client: Any,
    *,
    Bucket: str,  # noqa: N803 (boto's names)
    Prefix: str = "",  # noqa: N803
    KeyMarker: Optional[str] = None,  # noqa: N803
) -> Iterator[dict]:
    """The pages of ``list_object_versions`` as boto3's paginator yields them (the fields above),
    from the first key after ``KeyMarker`` if given (one range of a listing split by key).

    A client that cannot presign (a test double, another S3 library's shim) is asked
    through its own paginator.
    """
    start = {"KeyMarker": KeyMarker} if KeyMarker else {}
    if not hasattr(client, "generate_presigned_url"):
        yield from client.get_paginator("list_object_versions").paginate(Bucket=Bucket, Prefix=Prefix, **start)
        return
    params: dict[str, Any] = {"Bucket": Bucket, "Prefix": Prefix, "EncodingType": "url", **start}
    while True:
        versions, markers, next_key, next_vid = _page(client, params)
        yield {"Versions": versions, "DeleteMarkers": markers}
        if next_key is None:
            return
        params = {**params, "KeyMarker": next_key}
        if next_vid:
            params["VersionIdMarker"] = next_vid
        else:
            params.pop("VersionIdMarker", None)


def common_prefixes(client: Any, bucket: str, prefix: str) -> list[str]:
    """The "directories" right under ``prefix`` (one page of a listing with ``Delimiter='/'``; a
    first page is enough where they only split a listing, :func:`neuromirror.sources.dandi.
    zarr_listing.list_s3`)."""
    if not hasattr(client, "generate_presigned_url"):
        page = client.list_object_versions(Bucket=bucket, Prefix=prefix, Delimiter="/")
        return [p["Prefix"] for p in page.get("CommonPrefixes") or []]
    found: list[str] = []
    _page(client, {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/", "EncodingType": "url"}, found)
    return found

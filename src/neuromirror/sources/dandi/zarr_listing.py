"""A DANDI Zarr asset's objects as the archive has them: listed, summed up, made entries.

A Zarr asset is a tree of objects under ``zarr/<zarr_id>/`` in the archive's bucket,
changed in place (same asset and zarr id), with a tree checksum
``dandi:dandi-zarr-checksum`` (package ``zarr_checksum``) over the objects' MD5s.  Here:
the listing — a versioned S3 listing (``list_object_versions``, anonymous) under the
asset's S3 URL, or the API's ``/zarr/{id}/files/`` when the bucket cannot be listed
(embargoed Zarrs: with the key) — the checksum of what was listed, and every object as an
annexed file: an ``MD5E`` key from its ETag, URLs ``<S3 URL>?versionId=`` and the API's
``files/?prefix=&download=true`` (embargoed: only ``neuromirror+dandi:`` + the latter, see
:mod:`.embargo`).  Nothing is downloaded.  Which of those URLs are registered is the URL
rule's to say: the caller hands it in (``admissible``, :mod:`neuromirror.sources.urlrule`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from datetime import datetime
from typing import Any, Callable, Iterable, NamedTuple, Optional, Sequence

from neuromirror.annex.keys import guess_part_size, md5e_key, mpetag_key, url_key
from neuromirror.network import pacing
from neuromirror.network.failures import is_unreachable
from neuromirror.records import MD5, MPETAG, VERIFY_ON_GET, AnnexEntry, Refusal
from neuromirror.sources import inventory_pins, s3urls
from neuromirror.sources.dandi import embargo
from neuromirror.sources.dandi.client import DandiAPI
from neuromirror.sources.dandi.unsigned_s3 import UnsignedS3
from neuromirror.util.dates import parse_iso as _parse_time
from neuromirror.util.paths import check_path

log = logging.getLogger("neuromirror.dandi")

CHECKSUM_FIELD = "dandi:dandi-zarr-checksum"
CHECKSUM_RE = re.compile(r"^[0-9a-f]{32}-\d+--\d+$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART_RE = re.compile(r"[0-9a-f]{32}-([1-9][0-9]{0,4})")
API_PAGE = 1000
#: the listings that give each object's S3 versionId (a ListObjectVersions of the bucket, or its S3 Inventory)
VERSIONED = ("s3-versions", "s3-inventory")
#: the URL rule: (the URLs to register, whether none is stable) of an object's candidate URLs
Admissible = Callable[[Iterable[str]], tuple[tuple[str, ...], bool]]


class ZObject(NamedTuple):
    """One object of a listing (a tuple: 10^6 of them are made per large Zarr, at a third of a
    frozen dataclass's cost)."""

    rel: str  # path inside the Zarr
    size: int
    etag: str  # MD5 of the content for single-part uploads
    version_id: Optional[str]
    modified: Optional[datetime]


def checksum_in(md: Any) -> Any:
    """The Zarr checksum an asset's metadata states (whatever it is; the caller checks it)."""
    digest = md.get("digest") if isinstance(md, dict) else None
    return digest.get(CHECKSUM_FIELD) if isinstance(digest, dict) else None


def _s3_location(base: str) -> tuple[Optional[str], str, str]:
    """(endpoint URL or None for AWS, bucket, key prefix) of a Zarr's S3 URL (path- or virtual-hosted style)."""
    loc = s3urls.locate(base, s3urls.endpoints_in_use(), archive_key=is_archive_key)
    if loc is None:
        raise ValueError(f"not an S3 URL: {base}")
    return loc.endpoint, loc.bucket, loc.key


#: the DANDI bucket's layout: blobs/<3>/<3>/<blob uuid>, zarr/<zarr id>/<object>
_ARCHIVE_KEY = re.compile(r"^(?:blobs/([0-9a-f]{3})/([0-9a-f]{3})/\1\2[0-9a-f-]{30}|zarr/[^/]+/.*)$")


def is_archive_key(key: str) -> bool:
    """Whether an S3 key has the shape of a DANDI blob or Zarr object (see :mod:`neuromirror.sources.s3urls`)."""
    return bool(_ARCHIVE_KEY.match(key))


#: concurrent listing clients for one large Zarr (by key range): its cold rate is the archive's, not
#: one connection's (issue 40).  1 lists every Zarr with one client, as before.
LIST_CLIENTS = max(1, int(os.environ.get("NEUROMIRROR_ZARR_LIST_CLIENTS", "4")))
#: a Zarr of fewer objects (as its checksum says) is listed by one client: its pages are few, and
#: the Zarr jobs already list several Zarrs at once (NEUROMIRROR_ZARR_WORKERS)
SPLIT_MIN = int(os.environ.get("NEUROMIRROR_ZARR_SPLIT_MIN", "20000"))
#: ... and from this many when the archive is far (network.pacing.far: its pages are round trips; a smaller
#: Zarr's few pages are listed while other worker processes commit)
FAR_SPLIT_MIN = 10_000
PAGE = 1000


def expected_objects(checksum: Optional[str]) -> Optional[int]:
    """The object count a Zarr checksum (``md5-COUNT--SIZE``) states."""
    if not checksum or not CHECKSUM_RE.match(checksum):
        return None
    return int(checksum.split("-", 2)[1])


def list_s3(base: str, expected: Optional[int] = None) -> list[ZObject]:
    """Every current object under the Zarr's S3 prefix, with its VersionId (anonymous requests).

    A Zarr of ``expected`` >= :data:`SPLIT_MIN` objects is listed in key ranges by
    :data:`LIST_CLIENTS` threads, each its own connection (:func:`key_ranges`).
    """
    endpoint, bucket, prefix = _s3_location(base)
    if not prefix.endswith("/"):
        prefix += "/"
    client = UnsignedS3(endpoint, os.environ.get("NEUROMIRROR_DANDI_S3_REGION", "us-east-1"))
    ranges: list[tuple[Optional[str], Optional[str]]] = [(None, None)]
    # a far archive: each page of a Zarr listed by one client is a round trip after the last
    split_min = min(SPLIT_MIN, FAR_SPLIT_MIN) if pacing.far(endpoint) else SPLIT_MIN
    if expected and expected >= split_min and LIST_CLIENTS > 1:
        ranges = key_ranges(client, bucket, prefix, min(4 * LIST_CLIENTS, -(-expected // PAGE)))
    latest: dict[str, ZObject] = {}
    deleted: set[str] = set()  # keys whose latest version is a delete marker
    if len(ranges) == 1:
        _list_range(client, bucket, prefix, None, None, latest, deleted)
    else:
        from concurrent.futures import ThreadPoolExecutor

        parts: list[tuple[dict[str, ZObject], set[str]]] = [({}, set()) for _ in ranges]
        with ThreadPoolExecutor(min(LIST_CLIENTS, len(ranges)), thread_name_prefix="zarr-list") as pool:
            for f in [
                pool.submit(_list_range, client, bucket, prefix, a, b, *part) for (a, b), part in zip(ranges, parts)
            ]:
                f.result()
        for got, gone in parts:  # ranges overlap by a key or two at their edges: the same records
            latest.update(got)
            deleted |= gone
    return [o for k, o in latest.items() if k not in deleted]


def key_ranges(client: Any, bucket: str, prefix: str, n: int) -> list[tuple[Optional[str], Optional[str]]]:
    """About ``n`` key ranges ``(after, before)`` that together cover every key under ``prefix``.

    Bounds are the Zarr's "directories" (one delimiter listing of its root, and of its first
    directories when the root has too few): range i lists from just before directory b_i
    (``KeyMarker`` = b_i less its ``/``) up to b_{i+1}.  Any sorted subset of keys would do: a key
    is in the range of the last bound not after it, and the edges overlap harmlessly.
    """
    from neuromirror.sources.s3listing import common_prefixes

    if n < 2:
        return [(None, None)]
    bounds = common_prefixes(client, bucket, prefix)
    if len(bounds) < n and bounds:  # the next level's, asked at once: each is a round trip to a far archive
        from concurrent.futures import ThreadPoolExecutor

        dirs = list(bounds)[:8]
        with ThreadPoolExecutor(len(dirs), thread_name_prefix="zarr-split") as pool:
            for found in pool.map(lambda d: common_prefixes(client, bucket, d), dirs):
                bounds += found
    bounds = sorted(set(bounds))
    if not bounds:
        return [(None, None)]
    step = max(1, len(bounds) // n)
    cut = bounds[step::step][: n - 1] if len(bounds) > 1 else bounds
    edges: list[Optional[str]] = [None, *cut, None]
    return [(a[:-1] if a else None, b) for a, b in zip(edges, edges[1:])]


def _list_range(
    client: Any,
    bucket: str,
    prefix: str,
    after: Optional[str],
    before: Optional[str],
    latest: dict[str, ZObject],
    deleted: set[str],
) -> None:
    """The versions of keys in (``after``, ``before``) under ``prefix`` into ``latest`` / ``deleted``,
    and those of the first key at or after ``before``: a server may start the next range past
    it (moto skips the first key after a ``KeyMarker`` that names no object; S3 does not)."""
    from neuromirror.sources.s3listing import paginate_versions  # botocore's parser: 25x the CPU

    n = len(prefix)
    edge: Optional[str] = None  # the first key at or after ``before``: listed here too

    def wanted(key: str) -> bool:
        nonlocal edge
        if before is None or key < before:
            return True
        if edge is None:
            edge = key
        return key == edge

    for page in paginate_versions(client, Bucket=bucket, Prefix=prefix, KeyMarker=after):
        _take_page(page, n, wanted, latest, deleted)
        if edge is not None and _past(page, edge):
            return  # past the edge key: the next range has the rest


def _take_page(
    page: dict, n: int, wanted: Callable[[str], bool], latest: dict[str, ZObject], deleted: set[str]
) -> None:
    """A page of the versions listing into ``latest`` (each wanted key's current version, named
    relative to the Zarr: ``n`` characters of prefix cut) and ``deleted`` (keys behind a delete marker)."""
    for v in page.get("Versions", []) or []:
        key = v["Key"]
        if wanted(key) and v.get("IsLatest") and len(key) > n:
            vid = v.get("VersionId")
            latest[key] = ZObject(
                key[n:],
                int(v.get("Size") or 0),
                str(v.get("ETag") or "").strip('"').lower(),
                vid if vid and vid != "null" else None,
                v.get("LastModified"),
            )
    for dm in page.get("DeleteMarkers", []) or []:
        if wanted(dm["Key"]) and dm.get("IsLatest"):
            deleted.add(dm["Key"])


def _past(page: dict, edge: str) -> bool:
    """Whether the page went past the range's edge key (once per page, not per key)."""
    keys = [r["Key"] for r in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])]
    return bool(keys) and max(keys) > edge


def list_api(source: DandiAPI, zarr_id: str) -> list[ZObject]:
    """Every object of the Zarr as the API lists it (cursor paged; the client sends the key if any)."""
    out: list[ZObject] = []
    url: Optional[str] = f"/zarr/{zarr_id}/files/"
    params: Optional[dict] = {"limit": API_PAGE}
    while url:
        page = source.get_json(url, params)
        params = None
        for f in page.get("results") or []:
            out.append(
                ZObject(
                    str(f["Key"]),
                    int(f.get("Size") or 0),
                    str(f.get("ETag") or "").strip('"').lower(),
                    None,
                    _parse_time(f.get("LastModified")),
                )
            )
        url = page.get("next")
    return out


def list_inventory(s3_base: str) -> Optional[list[ZObject]]:
    """The Zarr's objects as the archive's S3 Inventory lists them (``sync --inventory``), or None."""
    _, bucket, prefix = _s3_location(s3_base)
    found = inventory_pins.zarr_objects(bucket, prefix if prefix.endswith("/") else prefix + "/")
    if found is None:
        return None
    return [ZObject(rel, size, etag, vid, _parse_time(when)) for rel, size, etag, vid, when in found]


def list_zarr(
    source: DandiAPI,
    zarr_id: str,
    s3_base: Optional[str],
    embargoed: bool,
    checksum: Optional[str] = None,
    inventory: bool = True,
) -> tuple[list[ZObject], str]:
    """The Zarr's objects and how they were listed (``checksum``, if known, sizes the S3 listing); from the
    archive's S3 Inventory when the sync reads one and ``inventory`` (a second listing asks the bucket)."""
    if s3_base and not embargoed and inventory:
        listed = list_inventory(s3_base)
        if listed is not None:
            return listed, "s3-inventory"
    if s3_base and not embargoed:
        try:
            return list_s3(s3_base, expected_objects(checksum)), "s3-versions"
        except Exception as exc:  # a bucket that cannot be listed anonymously: the API lists it too
            if is_unreachable(exc):  # not an answer: the API's listing would pin nothing; held, asked again
                raise
            log.info("DANDI:%s: Zarr %s: S3 listing failed (%s); using the API", source.identifier, zarr_id, exc)
    return list_api(source, zarr_id), "api"


_MEMBER = '{"digest":%s,"name":%s,"size":%d}'
#: what json.dumps writes between quotes as it is: printable ASCII but the quote and the backslash
_JSON_PLAIN = re.compile(r"[ !#-\[\]-~]*")


def _json_string(s: str) -> str:
    """``json.dumps(s)`` (ASCII, escapes as json writes them), formatted directly for plain names."""
    return f'"{s}"' if _JSON_PLAIN.fullmatch(s) else json.dumps(s)


def checksum_of(entries: Iterable[tuple[str, int, str]]) -> str:
    """The dandi-zarr-checksum of (path, size, md5/etag) leaves.

    The algorithm of ``zarr_checksum.tree.ZarrChecksumTree`` (each directory: the
    MD5 of the compact JSON ``{"directories": [...], "files": [...]}`` of its
    children's ``{"digest", "name", "size"}``, sorted by name; its digest
    ``<md5>-<count>--<size>``), written over plain tuples: the package's dataclasses
    and ``asdict`` cost ~150 us per object, most of a Zarr's CPU budget at
    5,000 objects/s.  tests/test_dandi_zarr_scale.py checks it against the package.
    """
    # directory -> (files, subdirectories), each a list of (name, digest, size, count)
    dirs: dict[str, tuple[list, list]] = {"": ([], [])}
    for rel, size, etag in entries:
        d, _, name = rel.rpartition("/")
        node = dirs.get(d)
        if node is None:
            node = dirs[d] = ([], [])
        node[0].append((name, etag, size, 1))
    for d in list(dirs):
        while d:
            d = d.rpartition("/")[0]
            if d in dirs:
                break
            dirs[d] = ([], [])

    def digest(files: list, subdirs: list) -> tuple[str, int, int]:
        files.sort(key=lambda t: t[0])
        subdirs.sort(key=lambda t: t[0])
        # json.dumps(manifest, separators=(",", ":")) of {"directories": [...], "files": [...]}, each
        # {"digest", "name", "size"}, written by formatting (json's encoder took ~1 us an object)
        text = '{"directories":[%s],"files":[%s]}' % (
            ",".join([_MEMBER % (_json_string(g), _json_string(n), s) for n, g, s, _ in subdirs]),
            ",".join([_MEMBER % (_json_string(g), _json_string(n), s) for n, g, s, _ in files]),
        )
        md5 = hashlib.md5(text.encode("utf-8")).hexdigest()
        count = len(files) + sum(c for *_, c in subdirs)
        size = sum(s for _, _, s, _ in files) + sum(s for _, _, s, _ in subdirs)
        return f"{md5}-{count}--{size}", count, size

    for d in sorted((d for d in dirs if d), key=lambda d: -d.count("/")):  # deepest first
        g, count, size = digest(*dirs.pop(d))
        parent, _, name = d.rpartition("/")
        dirs[parent][1].append((name, g, size, count))
    return digest(*dirs[""])[0]


class ObjectEntries(NamedTuple):
    """A listing's objects as annexed files (:func:`object_entries`)."""

    entries: list[AnnexEntry]
    leaves: list[tuple[str, int, str]]  # (path, size, md5/etag): what the checksum is computed from
    refused: list[Refusal]
    unpinned: int  # entries none of whose URLs the URL rule calls stable (its own verdict, kept)


def object_entries(
    source: DandiAPI,
    zarr_id: str,
    objs: list[ZObject],
    s3_base: Optional[str],
    embargoed: bool,
    admissible: Admissible,
) -> ObjectEntries:
    """Annexed files for the objects (refusing unsafe paths), the leaves the checksum is computed
    from, and how many have no stable URL (as ``admissible`` said while choosing their URLs)."""
    entries: list[AnnexEntry] = []
    leaves: list[tuple[str, int, str]] = []
    refused: list[Refusal] = []
    unpinned = 0
    clashes = _files_that_are_directories(objs)
    base = _s3_prefix(s3_base)
    api_base = f"{source.api_url}/zarr/{zarr_id}/files/?prefix="
    for o in sorted(objs, key=lambda o: o.rel):
        reason = check_path(o.rel)
        if reason is None and clashes and _under_a_file(o.rel, clashes):  # usually no clashes: no call
            reason = "a file and a directory of the same name"
        if reason is not None:
            refused.append(Refusal(o.rel, reason))
            continue
        # the API's route redirects to the *current* object: registered only where no
        # pinned URL exists (the URL rule: never a mutable URL beside a pinned one)
        rel = s3urls.quote_key(o.rel)
        api = f"{api_base}{rel}&download=true"
        if embargoed:
            urls, unstable = admissible((embargo.key_url(api),))  # one URL: kept, its verdict given
        else:
            s3 = base + rel if base else None
            if s3 and o.version_id:
                s3 += "?versionId=" + s3urls.quote_version(o.version_id)
            urls, unstable = admissible((s3, api) if s3 else (api,))
        unpinned += unstable
        key, kind, ck = _keyed(o, urls)
        entries.append(AnnexEntry(o.rel, key, o.size, urls, kind, ck, f"{zarr_id}/{o.rel}"))
        leaves.append((o.rel, o.size, o.etag))
    return ObjectEntries(entries, leaves, refused, unpinned)


def _keyed(o: ZObject, urls: Sequence[str]) -> tuple[str, str, Optional[str]]:
    """(key, checksum kind, checksum) of a Zarr object: an MD5E key of a single-part ETag (its MD5); an XMPETAG
    key of a multipart one (a multipart Zarr's chunk: the ETag and the part size that makes it, which git-annex's
    external backend ``git-annex-backend-XMPETAG`` checks); a VURL key where no part size makes the ETag's count
    of parts (git-annex learns the checksum on first get)."""
    if _MD5_RE.match(o.etag):
        return md5e_key(o.etag, o.size, o.rel), MD5, o.etag
    part = _multipart_part_size(o)
    if part is not None:
        return mpetag_key(o.etag, o.size, part), MPETAG, o.etag.lower()
    return url_key(urls[0], o.size), VERIFY_ON_GET, None


def _multipart_part_size(o: ZObject) -> Optional[int]:
    m = _MULTIPART_RE.fullmatch(o.etag.lower())
    return guess_part_size(o.size, int(m.group(1))) if m else None


def _s3_prefix(s3_base: Optional[str]) -> str:
    """The Zarr's S3 URL without a query, ending in ``/`` (objects' URLs are it and their key); "" if none."""
    base = (s3_base or "").split("?", 1)[0]
    if base and not base.endswith("/"):
        base += "/"
    return base


def _under_a_file(rel: str, clashes: set[str]) -> bool:
    """Whether one of ``rel``'s directories is also an object's path (a clash in ``clashes``)."""
    parts = rel.split("/")
    return any("/".join(parts[:i]) in clashes for i in range(1, len(parts)))


def _files_that_are_directories(objs: list[ZObject]) -> set[str]:
    """The objects' paths that are also a directory of another object's path (usually none)."""
    names = {o.rel for o in objs}
    dirs: set[str] = set()
    for rel in names:
        d = rel.rpartition("/")[0]
        while d and d not in dirs:
            dirs.add(d)
            d = d.rpartition("/")[0]
    return names & dirs


def fresh_checksum(source: DandiAPI, asset_id: Optional[str]) -> Optional[str]:
    if not asset_id:
        return None
    try:
        md = source.asset_metadata(asset_id)
        digest = md.get("digest") if isinstance(md, dict) else None
        ck = digest.get(CHECKSUM_FIELD) if isinstance(digest, dict) else None
        return ck if isinstance(ck, str) else None
    except Exception:
        return None

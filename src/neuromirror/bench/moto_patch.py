"""What is done to the S3 stand-in (moto, in this process only) so that the bench measures neuromirror, not moto.

moto's ListObjectVersions deep-copies and sorts every version in the bucket for every page
(O(N^2): 45 s for 10^4 objects), so it is replaced by an equivalent that bisects a sorted
key list; its answer is written as XML directly instead of through moto's model-driven
serializer (~0.3 ms per version: 300 s of CPU for 10^6 Zarr objects); and S3 HEADs are
counted per key, to check that no blob is ever asked twice; and every key's value lies in one
file on disk (:class:`Slab`) instead of a ``SpooledTemporaryFile`` in memory each: a Zarr of 10^6
objects of 10 kB held ~14 GB in moto.  Nothing the sync asks is answered differently.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import tempfile
import threading
from collections import Counter
from typing import Any, Optional
from xml.sax.saxutils import escape


class Counters:
    """HEAD requests answered by moto, per S3 key, and ListObjectVersions pages per bucket (installed on the
    backend class)."""

    def __init__(self) -> None:
        self.heads: Counter = Counter()
        self.listings: Counter = Counter()
        self.lock = threading.Lock()

    def reset(self) -> Counter:
        with self.lock:
            old, self.heads = self.heads, Counter()
        return old


_sorted_names: dict[int, tuple[int, list[str]]] = {}


def invalidate_listing_cache() -> None:
    _sorted_names.clear()


def _version_xml(v: Any, latest: bool) -> str:
    # a version's element, rendered once per version and state (moto's keys do not change once
    # put; a newer version only changes which of the two is sent): the stand-in's CPU is spent
    # on the cores the sync is measured on, where S3's would not be
    cache = v.__dict__.get("_neuromirror_xml")
    if cache is None:
        cache = v.__dict__["_neuromirror_xml"] = {}
    got = cache.get(latest)
    if got is None:
        got = cache[latest] = (
            f"<Version><Key>{escape(v.name)}</Key><VersionId>{v.version_id or 'null'}</VersionId>"
            f"<IsLatest>{'true' if latest else 'false'}</IsLatest>"
            f"<LastModified>{v.last_modified_ISO8601}</LastModified><ETag>{escape(v.etag)}</ETag>"
            f"<Size>{v.size}</Size><StorageClass>{v.storage_class}</StorageClass></Version>"
        )
    return got


def render_ahead(bucket: str) -> int:
    """Every version's element of ``bucket`` rendered now, at set-up: S3 spends none of the mirror's
    CPU on a listing, so neither does the stand-in while a sync is measured (nor the boto3 reference,
    which would otherwise find the elements the sync's listing rendered).  The versions rendered."""
    from moto.core.utils import unix_time_millis

    be = moto_bucket_backend(bucket)
    n = 0
    for name in be.get_bucket(bucket).keys.keys():
        versions = sorted(
            be.get_bucket(bucket).keys.getlist(name, []), key=lambda v: -unix_time_millis(v.last_modified)
        )
        for j, v in enumerate(versions):
            if hasattr(v, "storage_class"):  # a version, not a delete marker
                _version_xml(v, j == 0)
                n += 1
    return n


class _Listed:
    """A version as the listing renders it; ``is_latest`` set without copying the key."""

    __slots__ = ("_v", "is_latest")

    def __init__(self, v: Any, latest: bool):
        self._v = v
        self.is_latest = latest

    def __getattr__(self, name: str) -> Any:
        return getattr(self._v, name)


def _with_delimiter(backend: Any, bucket_name: str, prefix: str, key_marker: Optional[str]) -> tuple:
    """A listing with ``Delimiter='/'`` (a large Zarr's directories, :func:`neuromirror.sources.
    s3listing.common_prefixes`): moto's own deep-copies the bucket (30 s at 60,000 keys); here
    each directory is skipped by bisection.  One page, however long (the sync reads the first)."""
    from moto.core.utils import unix_time_millis
    from moto.s3.models import FakeKey

    bucket = backend.get_bucket(bucket_name)
    names = sorted(bucket.keys.keys())
    i = bisect.bisect_right(names, key_marker) if key_marker else bisect.bisect_left(names, prefix)
    versions: list = []
    markers: list = []
    prefixes: list[str] = []
    while i < len(names):
        name = names[i]
        if not name.startswith(prefix):
            break
        cut = name.find("/", len(prefix))
        if cut >= 0:
            prefixes.append(name[: cut + 1])
            i = bisect.bisect_left(names, name[: cut + 1] + "\U0010ffff")
            continue
        ordered = sorted(bucket.keys.getlist(name, []), key=lambda v: -unix_time_millis(v.last_modified))
        for j, v in enumerate(ordered):
            (versions if isinstance(v, FakeKey) else markers).append(_Listed(v, j == 0))
        i += 1
    return versions, prefixes, markers, None, None


def _sorted_keys(bucket: Any) -> list[str]:
    """The bucket's key names, sorted: kept between pages while the bucket's number of keys is the same."""
    cached = _sorted_names.get(id(bucket))
    if cached is None or cached[0] != len(bucket.keys):
        cached = (len(bucket.keys), sorted(bucket.keys.keys()))
        _sorted_names[id(bucket)] = cached
    return cached[1]


def _versions_page(
    backend: Any,
    bucket_name: str,
    key_marker: Optional[str],
    max_keys: int,
    prefix: str,
    version_id_marker: Optional[str],
) -> tuple:
    """A page of ``ListObjectVersions`` without a delimiter, as moto's backend answers it
    (versions, common prefixes, delete markers, next key marker, next version id marker),
    found by bisecting the sorted key names instead of copying and sorting the bucket."""
    from moto.core.utils import unix_time_millis
    from moto.s3.models import FakeKey

    bucket = backend.get_bucket(bucket_name)
    names = _sorted_keys(bucket)
    i = bisect.bisect_left(names, max(prefix, key_marker or ""))
    versions: list = []
    markers: list = []
    last: Any = None  # the last version listed (moto's FakeKey or FakeDeleteMarker)
    skipping = bool(key_marker)
    while i < len(names):
        name = names[i]
        i += 1
        if not name.startswith(prefix):
            if name > prefix:
                break
            continue
        ordered = bucket.keys.getlist(name, [])
        if len(ordered) > 1:  # newest first; most keys have one version
            ordered = sorted(ordered, key=lambda v: -unix_time_millis(v.last_modified))
        for j, v in enumerate(ordered):
            if skipping:
                if name == key_marker:
                    if version_id_marker and v.version_id == version_id_marker:
                        skipping = False
                    continue
                skipping = False
            if len(versions) + len(markers) >= max_keys:
                return versions, [], markers, last.name, last.version_id
            (versions if isinstance(v, FakeKey) else markers).append(_Listed(v, j == 0))
            last = v
    return versions, [], markers, None, None


def _render_versions(response: Any) -> Any:
    """moto's ListObjectVersions answer, written as XML directly (no delimiter: the sync's case).

    moto renders it through its model-driven serializer, ~0.3 ms per version:
    at 10^6 Zarr objects 300 s of the bench process's CPU, on the cores the sync
    is measured on.  Same elements, same values; keys are sent unencoded (no
    ``EncodingType`` in the answer, as moto's own answer has none).
    """
    q = response.querystring
    key_marker = q.get("key-marker", [None])[0]
    vid_marker = q.get("version-id-marker", [None])[0]
    max_keys = int(q.get("max-keys", [1000])[0])
    prefix = response._get_querystring(response.request, response.uri).get("prefix", [""])[0]
    versions, _, markers, next_key, next_vid = response.backend.list_object_versions(
        response.bucket_name,
        delimiter=None,
        key_marker=key_marker,
        max_keys=max_keys,
        prefix=prefix,
        version_id_marker=vid_marker,
    )
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
        f"<Name>{escape(response.bucket_name)}</Name><Prefix>{escape(prefix or '')}</Prefix>"
        f"<KeyMarker>{escape(key_marker or '')}</KeyMarker><VersionIdMarker>{escape(vid_marker or '')}</VersionIdMarker>"
        f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if next_key is not None else 'false'}</IsTruncated>",
    ]
    if next_key is not None:
        out.append(
            f"<NextKeyMarker>{escape(next_key)}</NextKeyMarker>"
            f"<NextVersionIdMarker>{escape(next_vid or '')}</NextVersionIdMarker>"
        )
    for k in versions:
        out.append(_version_xml(k._v, getattr(k, "is_latest", False)))
    for m in markers:
        out.append(
            f"<DeleteMarker><Key>{escape(m.name)}</Key><VersionId>{m.version_id}</VersionId>"
            f"<IsLatest>{'true' if getattr(m, 'is_latest', False) else 'false'}</IsLatest>"
            f"<LastModified>{m.last_modified_ISO8601}</LastModified></DeleteMarker>"
        )
    out.append("</ListVersionsResult>")
    return 200, {"Content-Type": "application/xml"}, "".join(out)


def patch_moto(counters: Counters) -> None:
    """Make moto's versioned listing O(page) instead of O(bucket), and count HEADs per key."""
    from moto.s3.models import S3Backend

    if getattr(S3Backend, "_neuromirror_bench", False):
        return
    original_list = S3Backend.list_object_versions
    original_head = S3Backend.head_object

    def list_object_versions(
        self: Any,
        bucket_name: str,
        delimiter: Optional[str] = None,
        key_marker: Optional[str] = None,
        max_keys: Optional[int] = 1000,
        prefix: str = "",
        version_id_marker: Optional[str] = None,
    ) -> tuple:
        with counters.lock:
            counters.listings[bucket_name] += 1
        if delimiter and max_keys is not None and delimiter == "/":
            return _with_delimiter(self, bucket_name, prefix or "", key_marker)
        if delimiter or max_keys is None:
            return original_list(
                self,
                bucket_name,
                delimiter=delimiter,
                key_marker=key_marker,
                max_keys=max_keys,
                prefix=prefix,
                version_id_marker=version_id_marker,
            )
        return _versions_page(self, bucket_name, key_marker, max_keys, prefix or "", version_id_marker)

    def head_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        with counters.lock:
            counters.heads[key_name] += 1
        return original_head(self, bucket_name, key_name, *args, **kwargs)

    from moto.s3.responses import S3Response

    original_render = S3Response.list_object_versions

    def render_versions(self: Any) -> Any:
        """:func:`_render_versions`, but moto's own answer for a listing with a delimiter."""
        if self.querystring.get("delimiter", [None])[0]:
            return original_render(self)
        return _render_versions(self)

    # moto's classes patched in place for the rest of this process: their types do not foresee it
    response_cls: Any = S3Response
    backend_cls: Any = S3Backend
    response_cls.list_object_versions = render_versions
    backend_cls.list_object_versions = list_object_versions
    backend_cls.head_object = head_object
    backend_cls._neuromirror_bench = True


class Slab:
    """Every moto key's bytes appended to one unlinked file; a key keeps only where its bytes lie.

    Why: moto keeps each value in a ``SpooledTemporaryFile``, in memory below 5 MB, so the bench's
    stand-in held 13.9 KB per 10 kB object and a 10^6-object Zarr did not fit the machine.  Bytes
    never move or change once written (a new value is new bytes), so readers need no lock; the
    page cache keeps what is read often.  Space of overwritten or deleted keys is not reused."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="neuromirror-bench-moto-")
        self.fd = self._file.fileno()
        self.end = 0
        self.lock = threading.Lock()

    def put(self, data: bytes) -> SlabValue:
        with self.lock:
            offset, self.end = self.end, self.end + len(data)
        view, at = memoryview(data), offset
        while view:
            n = os.pwrite(self.fd, view, at)
            view, at = view[n:], at + n
        return SlabValue(offset, len(data))

    def get(self, where: SlabValue) -> bytes:
        out = os.pread(self.fd, where.length, where.offset)
        while len(out) < where.length:  # a short read: the rest
            more = os.pread(self.fd, where.length - len(out), where.offset + len(out))
            if not more:
                raise OSError(f"moto slab: {where.length} bytes at {where.offset} not there")
            out += more
        return out


class SlabValue:
    """Where a key's bytes lie in the :class:`Slab`: what ``FakeKey._value_buffer`` holds instead of a file."""

    __slots__ = ("offset", "length")

    def __init__(self, offset: int, length: int) -> None:
        self.offset, self.length = offset, length

    def close(self) -> None:  # FakeKey.dispose closes its buffer; the slab's bytes stay until the process ends
        pass


def slab_values(slab: Slab) -> None:
    """Make every moto key of this process keep its value in ``slab`` (its getter, setter and ETag)."""
    from moto.s3.models import FakeKey

    if getattr(FakeKey, "_neuromirror_slab", None) is not None:
        return
    original: Any = FakeKey.value

    def get_value(self: Any) -> bytes:
        where = self.__dict__.get("_value_buffer")
        if isinstance(where, SlabValue):
            return slab.get(where)
        return bytes(original.fget(self))

    def set_value(self: Any, new: Any) -> None:
        if isinstance(new, str):
            new = new.encode("utf-8")
        self._value_buffer = slab.put(bytes(new))  # the SpooledTemporaryFile made by __init__ is dropped
        self.contentsize = len(new)

    def etag(self: Any) -> str:
        if self._etag is None:
            self._etag = hashlib.md5(self.value).hexdigest()
        return f'"{self._etag}"'

    key_cls: Any = FakeKey  # moto's class patched in place for the rest of this process
    key_cls.value = property(get_value, set_value)
    key_cls.etag = property(etag)
    key_cls._neuromirror_slab = slab


def moto_bucket_backend(bucket: str) -> Any:
    from moto.s3.models import s3_backends

    for account in list(s3_backends.keys()):
        for region in list(s3_backends[account].keys()):
            be = s3_backends[account][region]
            if bucket in be.buckets:
                return be
    raise KeyError(bucket)

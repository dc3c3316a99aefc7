"""What S3 holds where a pin pointed, or where its bytes may be now: object versions with their sizes and ETags.

Asked without reading any object's bytes: a group of keys under one folder is listed
(``ListObjectVersions`` of the folder, :func:`neuromirror.sources.s3listing.paginate_versions`, 1,000
versions a request), a key alone is asked with a ``HEAD``; a bucket that no longer exists holds nothing.
A pin (a key's ``?versionId=`` URL) is alive when its version is among the object's versions
(not a delete marker).  The client is unsigned without credentials in the environment
(:func:`neuromirror.store.s3_client.make_client`): the archives' buckets are public.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from neuromirror.errors import Unavailable
from neuromirror.sources.s3urls import S3Location
from neuromirror.util.text import one_line

#: keys under one folder from which the folder is listed rather than each key asked with a HEAD
LIST_AT = 8
#: what S3 answers for a bucket, key or version that is not there (the pin is dead, the place empty)
MISSING = {"NoSuchBucket", "NoSuchKey", "NoSuchVersion", "404", "400", "405", "MethodNotAllowed"}
#: what S3 answers when it will not say (a private bucket or object): no proof either way
REFUSED = {"AccessDenied", "403", "AllAccessDisabled"}


@dataclass(frozen=True)
class Seen:
    """One version of an object, as a listing or a HEAD gives it."""

    version_id: str
    size: int
    etag: str  # without its quotes
    latest: bool = True
    sha256: Optional[str] = None  # hex: the SHA-256 checksum S3 keeps for it (HEAD with checksum mode)


def _seen(d: dict, latest: bool) -> Seen:
    return Seen(
        str(d.get("VersionId") or "null"),
        int(d.get("Size", d.get("ContentLength")) or 0),
        str(d.get("ETag") or "").strip('"').lower(),
        bool(d.get("IsLatest", latest)),
    )


class Buckets:
    """One run's view of S3: a client per endpoint, the versions each place holds (asked once), the
    requests sent and the object bytes read (none, unless a key's checksum can only be had by reading)."""

    def __init__(self, jobs: int = 8) -> None:
        self.jobs = max(1, jobs)
        self._clients: dict[Optional[str], Any] = {}
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes_read = 0

    def client(self, endpoint: Optional[str]) -> Any:
        with self._lock:
            c = self._clients.get(endpoint)
            if c is None:
                from neuromirror.store.s3_client import default_region, make_client

                c = self._clients[endpoint] = make_client(endpoint, default_region())
            return c

    def versions(self, places: Iterable[S3Location], *, heads: bool = True) -> dict[S3Location, list[Seen]]:
        """Every version of each place's object, the newest first (empty: no object there, or no bucket).
        A place S3 would not say anything of (403) is left out; ``heads=False``: so is every place no listing
        covered (the caller asks those itself)."""
        groups: dict[tuple[Optional[str], str, str], list[S3Location]] = {}
        for p in dict.fromkeys(places):
            groups.setdefault((p.endpoint, p.bucket, posixpath.dirname(p.key)), []).append(p)
        out: dict[S3Location, list[Seen]] = {}
        singles: list[S3Location] = []
        for (endpoint, bucket, folder), members in groups.items():
            listed = self._listed(endpoint, bucket, folder, members) if len(members) >= LIST_AT else None
            if listed is None:
                singles += members
            else:
                out.update(listed)
        if heads:
            out.update(
                (p, got) for p, got in zip(singles, self._heads([(p, None) for p in singles])) if got is not None
            )
        return out

    def _heads(self, asks: list[tuple[S3Location, Optional[str]]]) -> list[Optional[list[Seen]]]:
        if not asks:
            return []
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="repin-head") as pool:
            return list(pool.map(lambda a: self._head(*a), asks))

    def _listed(
        self, endpoint: Optional[str], bucket: str, folder: str, members: list[S3Location]
    ) -> Optional[dict[S3Location, list[Seen]]]:
        """The members' versions from one listing of their folder; None when S3 will not list it (a HEAD each)."""
        from neuromirror.sources.s3listing import paginate_versions
        from neuromirror.store.s3_client import boto_errors, error_code

        wanted = {p.key: p for p in members}
        out: dict[S3Location, list[Seen]] = {p: [] for p in members}
        try:
            for page in paginate_versions(self.client(endpoint), Bucket=bucket, Prefix=folder + "/" if folder else ""):
                self.requests += 1
                for v in page.get("Versions") or []:
                    if v.get("Key") in wanted:
                        out[wanted[v["Key"]]].append(_seen(v, False))
        except boto_errors() as exc:
            code = error_code(exc)
            if code in MISSING:
                return out
            if code in REFUSED:
                return None
            raise Unavailable(
                f"S3 at {endpoint or 'AWS'}: listing s3://{bucket}/{folder}: {one_line(exc, 200)}"
            ) from None
        return out

    def _head(self, place: S3Location, version_id: Optional[str] = None) -> Optional[list[Seen]]:
        """The object's current version (or ``version_id``), by a HEAD: [] when there is none, None when S3
        will not say (403)."""
        from neuromirror.store.s3_client import boto_errors, error_code

        extra = {"VersionId": version_id} if version_id else {}
        try:
            self.requests += 1
            head = self.client(place.endpoint).head_object(Bucket=place.bucket, Key=place.key, **extra)
        except boto_errors() as exc:
            code = error_code(exc)
            if code in MISSING:
                return []
            if code in REFUSED:
                return None
            where = f"s3://{place.bucket}/{place.key}"
            raise Unavailable(f"S3 at {place.endpoint or 'AWS'}: HEAD {where}: {one_line(exc, 200)}") from None
        return [_seen({**head, "VersionId": head.get("VersionId") or version_id}, True)]

    def alive(self, pins: Iterable[tuple[S3Location, str]]) -> set[tuple[S3Location, str]]:
        """The pins (place, versionId) whose version S3 still holds, or of which it will not say (a 403 is no
        proof of loss): a listing where a folder holds several, else a HEAD of the version."""
        pins = list(dict.fromkeys(pins))
        held = self.versions((p for p, _ in pins), heads=False)
        out = {(p, v) for p, v in pins if p in held and any(s.version_id == v for s in held[p])}
        todo = [(p, v) for p, v in pins if p not in held]
        out.update(pv for pv, got in zip(todo, self._heads(list(todo))) if got is None or got)
        return out

    def sha256(self, place: S3Location, version_id: str) -> Optional[str]:
        """The SHA-256 checksum S3 keeps for a version (hex), None when it keeps none (or will not say): a HEAD."""
        from neuromirror.store.s3_client import boto_errors

        self.requests += 1
        try:
            head = self.client(place.endpoint).head_object(
                Bucket=place.bucket, Key=place.key, VersionId=version_id, ChecksumMode="ENABLED"
            )
        except boto_errors():
            return None
        got = head.get("ChecksumSHA256")
        return base64.b64decode(got).hex() if got and "-" not in got else None

    def read_digest(self, place: S3Location, version_id: str, algorithm: str) -> str:
        """A version's bytes read and hashed (the last way, when no listing or checksum can say)."""
        from neuromirror.store.s3_client import boto_errors

        self.requests += 1
        h = hashlib.new(algorithm)
        try:
            body = self.client(place.endpoint).get_object(Bucket=place.bucket, Key=place.key, VersionId=version_id)
            for chunk in iter(lambda: body["Body"].read(1 << 20), b""):
                h.update(chunk)
                with self._lock:
                    self.bytes_read += len(chunk)
        except boto_errors() as exc:
            where = f"s3://{place.bucket}/{place.key}?versionId={version_id}"
            raise Unavailable(f"S3 at {place.endpoint or 'AWS'}: reading {where}: {one_line(exc, 200)}") from None
        return h.hexdigest()

"""The three ways ``repin`` looks for a dead pin's bytes, first found first taken.

1. **moved**: the same key (or the same key relative to ``--from-prefix``, under ``--prefix`` in
   ``--bucket``): an object copied to another bucket or prefix, or uploaded again in place, has a new
   versionId.  Every version there is judged by its size and ETag (:mod:`.match`), a SHA-256 key by the
   checksum S3 keeps where it keeps one, and only then by reading its bytes.
2. **content-addressed**: the key ``--manifest`` names for the old path, taken when the manifest's
   digest is the key's checksum and S3's size (and ETag) agree.
3. **asset-record**: the archive's own record of the file (its ``refind`` in :mod:`neuromirror.archives`:
   DANDI's asset at the same path with the same ``dandi:sha2-256``), its S3 object asked for its size
   and versionId.

An object at the path holding other bytes is never taken: it is said (``differs``) when no way found
the key's bytes, and the old URL stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from neuromirror import archives
from neuromirror.restore.objects import ArchiveObject, locator_for
from neuromirror.restore.repin.manifest import Manifest
from neuromirror.restore.repin.match import DIFFERS, READ, SAME, UNKNOWN, checksum_of, judge
from neuromirror.restore.repin.s3 import Buckets, Seen
from neuromirror.sources.s3urls import S3Location, quote_key, quote_version
from neuromirror.util.text import one_line

MOVED, CONTENT, RECORD = "moved", "content-addressed", "asset-record"


@dataclass
class Where:
    """Where to look for moved objects: ``bucket`` (None: the pin's), ``prefix`` put before the key
    once ``from_prefix`` is taken off it; a content-addressed layout's manifest."""

    bucket: Optional[str] = None
    prefix: str = ""
    from_prefix: str = ""
    manifest: Optional[Manifest] = None

    def moved(self, place: S3Location) -> S3Location:
        key = place.key[len(self.from_prefix) :] if place.key.startswith(self.from_prefix) else place.key
        return S3Location(place.endpoint, self.bucket or place.bucket, self.prefix + key)


@dataclass
class Dead:
    """A pinned key none of whose pins serves: the file it was found as, its dead pins, what was found."""

    obj: ArchiveObject
    urls: tuple[str, ...]  # every URL the key's log holds
    pins: list[tuple[str, S3Location, str, bool]]  # (URL, place, versionId, claimed by a special remote)
    md5: Optional[str] = None  # the bytes' MD5 where the dataset's git holds them
    found: Optional[tuple[str, str, str]] = None  # (new URL, how, evidence)
    differs: str = ""
    unsure: str = ""
    tried: list[str] = field(default_factory=list)

    @property
    def place(self) -> S3Location:
        return self.pins[0][1]


def new_url(old_url: str, old: S3Location, place: S3Location, version_id: Optional[str]) -> str:
    """The pinned URL of ``place`` in the shape of ``old_url`` (its endpoint, path-style or virtual-hosted)."""
    base = old_url.split("?", 1)[0]
    if (place.bucket, place.key) != (old.bucket, old.key):
        if old.endpoint:
            base = f"{old.endpoint.rstrip('/')}/{place.bucket}/{quote_key(place.key)}"
        else:
            scheme, _, rest = base.partition("://")
            host = rest.split("/", 1)[0]
            if host.startswith(old.bucket + "."):
                base = f"{scheme}://{place.bucket}{host[len(old.bucket) :]}/{quote_key(place.key)}"
            else:
                base = f"{scheme}://{host}/{place.bucket}/{quote_key(place.key)}"
    if not version_id or version_id == "null":
        return base
    return f"{base}?versionId={quote_version(version_id)}"


def at_moved(dead: list[Dead], where: Where, s3: Buckets) -> None:
    """Way 1 for a batch of dead keys: their moved places asked together (a listing a folder)."""
    places = {id(d): where.moved(d.place) for d in dead}
    held = s3.versions(places.values())
    for d in dead:
        _at(d, places[id(d)], held.get(places[id(d)], []), s3)


def _at(d: Dead, place: S3Location, versions: list[Seen], s3: Buckets) -> None:
    """``d``'s bytes among the versions at ``place``: the first that holds them taken, others said."""
    d.tried.append(f"s3://{place.bucket}/{place.key}")
    for seen in versions:
        verdict, why = _judged(d, place, seen, s3)
        if verdict == SAME:
            d.found = (new_url(d.pins[0][0], d.place, place, seen.version_id), MOVED, why)
            return
        if verdict == DIFFERS and not d.differs:
            d.differs = f"s3://{place.bucket}/{place.key} (version {seen.version_id}) holds other bytes: {why}"
        elif verdict == UNKNOWN:
            d.unsure = f"s3://{place.bucket}/{place.key}: {why}"


def _judged(d: Dead, place: S3Location, seen: Seen, s3: Buckets) -> tuple[str, str]:
    """A version judged as ``d``'s bytes: by size and ETag, then S3's SHA-256 checksum, then its bytes."""
    verdict, why = judge(d.obj.key, seen, d.md5)
    if verdict != READ:
        return verdict, why
    algorithm, digest = ("md5", d.md5) if d.md5 else checksum_of(d.obj.key)
    if algorithm == "sha256":
        kept = s3.sha256(place, seen.version_id)
        if kept:
            return judge(d.obj.key, Seen(seen.version_id, seen.size, seen.etag, seen.latest, kept))
    got = s3.read_digest(place, seen.version_id, algorithm)
    if got == digest:
        return SAME, f"size {seen.size}; its bytes read: {algorithm} = the key's"
    return DIFFERS, f"its bytes read: {algorithm} {got[:16]}…, the key's is {digest[:16]}…"


def elsewhere(d: Dead, where: Where, s3: Buckets) -> None:
    """Ways 2 and 3 for one key way 1 did not find."""
    if where.manifest is not None and d.found is None:
        _by_manifest(d, where.manifest, s3)
    if d.found is None:
        _by_record(d, s3)


def _by_manifest(d: Dead, manifest: Manifest, s3: Buckets) -> None:
    entry = manifest.at(d.place.key)
    if entry is None:
        return
    algorithm, digest = ("md5", d.md5) if d.md5 else checksum_of(d.obj.key)
    place = S3Location(d.place.endpoint, entry.bucket or d.place.bucket, entry.key)
    d.tried.append(f"s3://{place.bucket}/{place.key} (manifest)")
    if not digest or entry.digest.get(algorithm) != digest:
        return
    for seen in s3.versions([place]).get(place, [])[:1]:
        verdict, why = judge(d.obj.key, seen, d.md5)
        if verdict == DIFFERS:
            d.differs = d.differs or f"s3://{place.bucket}/{place.key} holds other bytes: {why}"
            return
        said = f"the manifest's {algorithm} = the key's; {why}"
        d.found = (new_url(d.pins[0][0], d.place, place, seen.version_id), CONTENT, said)


def _by_record(d: Dead, s3: Buckets) -> None:
    archive = archives.of_source(d.obj.source)
    algorithm, digest = checksum_of(d.obj.key)
    if archive is None or archive.refind is None or algorithm != "sha256":
        return
    try:
        got = archive.refind(d.obj.source, d.obj.path, d.urls, digest)
    except Exception as exc:  # noqa: BLE001 - the archive's API did not answer: this key is not found, said why
        d.tried.append(f"the archive's record ({one_line(exc, 200)})")
        return
    if got is None:
        return
    url, why = got
    place = locator_for(d.obj.source)(url)
    if place is None:
        return
    d.tried.append(f"{url} (the archive's record)")
    for seen in s3.versions([place]).get(place, [])[:1]:
        verdict, said = judge(d.obj.key, seen)
        if verdict == DIFFERS:
            d.differs = d.differs or f"{url} holds other bytes: {said}"
            return
        pinned = new_url(url, place, place, seen.version_id)
        d.found = (pinned, RECORD, f"{why}; size {seen.size}")

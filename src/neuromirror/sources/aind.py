"""AIND open data: S3 assets as snapshots, through boto3 (anonymous by default).

An *asset* is a top-level prefix of the bucket (``ecephys_123456_2022-12-12_05-06-07/``);
each becomes its own dataset ``aind/<name>``.  One sync lists the asset once
(paginated, spooled to a temporary file, so 10^6 objects never sit in memory),
compares a digest of the listing with the one recorded at the last sync, and —
only when something changed — yields one ``snapshot`` dated by the newest
LastModified and labelled by it (``2026-11-21T10-00-00Z``, also the tag).

Keys, without downloading anything:

* single-part ETag = MD5 of the content -> ``MD5E-s<size>--<md5>`` (verified on get);
* multipart ETag (``<hex>-<parts>``) is no content hash -> a VURL key, whose
  checksum git-annex records on first download and checks afterwards; with
  ``--hash`` (or ``--hash-threshold``) such objects are streamed once and get
  ``SHA256E`` keys instead (cached per object version, so never hashed twice).

Only sidecar JSON (data_description.json, subject.json, ...) and other small
text files are downloaded: they go into git, and the key fields of
data_description.json / subject.json go into the index (``versions.meta``).

URLs carry ``?versionId=`` whenever S3 gives the object a version id, so what
was mirrored stays retrievable after an overwrite or delete upstream; in an
unversioned bucket they are plain and the version says ``pinned_upstream: false``.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import logging
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from neuromirror.annex.keys import md5e_key, sha256e_key, url_key
from neuromirror.records import (
    MD5,
    SHA256,
    VERIFY_ON_GET,
    AnnexEntry,
    Entry,
    GitEntry,
    ProgressCallback,
    Refusal,
    Snapshot,
    SourceState,
)
from neuromirror.sources.aind_listing import Listing as _Listing
from neuromirror.sources.aind_listing import Obj as _Obj
from neuromirror.sources.aind_listing import PageStream
from neuromirror.sources.aind_listing import etag_of as _etag
from neuromirror.sources.aind_listing import version_id_of as _version_id
from neuromirror.sources.aind_s3 import (  # the S3 side; parse_size, S3Settings, s3_client... are used through this module too
    DEFAULT_BUCKET,
    DEFAULT_REGION,
    WORKERS,
    AindError,
    S3Settings,
    _is_denied_or_unsupported,
    _load_text,
    _s3_gist,
    fetch_object,
    hash_object,
    s3_client,
)
from neuromirror.spec import Spec
from neuromirror.util.paths import check_path

log = logging.getLogger("neuromirror.aind")


#: metadata files at an asset's root (aind-data-schema); always fetched when small enough
SIDECARS = (
    "data_description.json",
    "subject.json",
    "procedures.json",
    "processing.json",
    "rig.json",
    "instrument.json",
    "acquisition.json",
    "session.json",
    "quality_control.json",
    "metadata.nd.json",
)
#: a root-level JSON file up to this size goes into git
SIDECAR_MAX_BYTES = 4 << 20
#: other small text (anywhere in the asset, Zarr metadata included) up to this size goes into git
TEXT_MAX_BYTES = 256 << 10
TEXT_EXTENSIONS = {".json", ".jsonld", ".yaml", ".yml", ".txt", ".md", ".rst", ".csv", ".tsv", ".log", ".xml"}
TEXT_NAMES = {"README", "LICENSE", "CHANGES", "CITATION", ".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"}
#: at most this many root-level JSON files are read before the snapshot is yielded (for its metadata)
MAX_EAGER_SIDECARS = 64

SHA_NAMESPACE = "aind-sha256"
#: version ids learned by HEAD (when the versioned listing is not allowed), per listed object version
VERSION_NAMESPACE = "aind-version-id"
BATCH = 500

_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_STAMP = "%Y-%m-%dT%H-%M-%SZ"
_DT = r"(?P<date>\d{4}-\d{2}-\d{2})_(?P<time>\d{2}-\d{2}-\d{2})"
_DERIVED_RE = re.compile(r"^(?P<source>.+_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})_(?P<label>.+?)_" + _DT + r"$")
_RAW_RE = re.compile(r"^(?P<platform>[A-Za-z0-9-]+)_(?P<subject>[A-Za-z0-9-]+)_" + _DT + r"$")
_RAW_NEW_RE = re.compile(r"^(?P<subject>[A-Za-z0-9-]+)_" + _DT + r"$")


def parse_asset_name(name: str) -> dict:
    """What an AIND asset name says: platform, subject, acquisition date/time, derived-from."""
    out: dict[str, Any] = {}
    m = _DERIVED_RE.match(name)
    if m:
        out["derived_from"] = m.group("source")
        out["process_label"] = m.group("label")
        raw = m.group("source")
        while True:  # a derived asset of a derived asset: walk down to the raw one
            m2 = _DERIVED_RE.match(raw)
            if not m2:
                break
            raw = m2.group("source")
        out["raw_asset"] = raw
        base = parse_asset_name(raw) if raw != name else {}
        for k in ("platform", "subject_id", "acquisition_date", "acquisition_time"):
            if k in base:
                out[k] = base[k]
        return out
    m = _RAW_RE.match(name) or _RAW_NEW_RE.match(name)
    if m:
        if "platform" in m.groupdict():
            out["platform"] = m.group("platform")
        out["subject_id"] = m.group("subject")
        out["acquisition_date"] = m.group("date")
        out["acquisition_time"] = m.group("time").replace("-", ":")
    return out


def _abbreviations(value: Any) -> list[str]:
    """Modality abbreviations from every schema generation (string, dict, list of either)."""
    out: list[str] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
        elif isinstance(item, dict):
            v = item.get("abbreviation") or item.get("name")
            if isinstance(v, str) and v.strip():
                out.append(v.strip())
    return out


def asset_meta(name: str, sidecars: dict[str, bytes]) -> dict:
    """The index fields of an asset: from data_description.json / subject.json, else from its name."""
    from_name = parse_asset_name(name)

    def load(fname: str) -> dict:
        raw = sidecars.get(fname)
        if not raw:
            return {}
        try:
            obj = json.loads(raw)
        except ValueError:
            log.warning("AIND %s: %s is not valid JSON", name, fname)
            return {}
        return obj if isinstance(obj, dict) else {}

    dd = load("data_description.json")
    subj = load("subject.json")
    meta: dict[str, Any] = {"name": name}
    if isinstance(dd.get("name"), str) and dd["name"] != name:
        meta["described_name"] = dd["name"]
    subject = dd.get("subject_id") or subj.get("subject_id") or from_name.get("subject_id")
    meta["subject_id"] = str(subject) if subject not in (None, "") else None
    mods = _abbreviations(dd.get("modalities")) or _abbreviations(dd.get("modality"))
    if not mods and from_name.get("platform"):
        mods = [from_name["platform"]]
    mods = [m.lower() for m in mods]
    meta["modalities"] = mods
    meta["modality"] = ",".join(mods) or None
    ctime = dd.get("creation_time")
    cdate = dd.get("creation_date")
    if isinstance(ctime, str) and "T" not in ctime and isinstance(cdate, str):
        ctime = f"{cdate}T{ctime}"  # aind-data-schema < 0.10 split date and time
    elif not ctime and isinstance(cdate, str):
        ctime = cdate
    if not ctime and from_name.get("acquisition_date") and "derived_from" not in from_name:
        ctime = f"{from_name['acquisition_date']}T{from_name['acquisition_time']}"
    meta["creation_time"] = str(ctime) if ctime else None
    level = dd.get("data_level")
    if isinstance(level, str):
        level = level.lower().replace(" data", "").strip()
    meta["data_level"] = level or ("derived" if "derived_from" in from_name else ("raw" if from_name else None))
    project = dd.get("project_name") or dd.get("project")
    meta["project_name"] = str(project) if project else None
    inst = dd.get("institution")
    if isinstance(inst, dict):
        inst = inst.get("abbreviation") or inst.get("name")
    if isinstance(inst, str) and inst:
        meta["institution"] = inst
    acq = from_name.get("acquisition_date")
    if not acq and meta["creation_time"] and meta["data_level"] == "raw":
        acq = meta["creation_time"][:10]
    meta["acquisition_date"] = acq
    src = dd.get("source_data")
    source_data = [str(s) for s in src] if isinstance(src, list) else ([str(src)] if src else [])
    meta["source_data"] = source_data
    derived = from_name.get("derived_from")
    if not derived and len(source_data) == 1:
        derived = posixpath.basename(source_data[0].rstrip("/"))
    meta["derived_from"] = derived
    meta["raw_asset"] = from_name.get("raw_asset") or (derived if derived else None)
    return meta


# --------------------------------------------------------------------------- listing


def _label_key(label: str) -> tuple[str, int]:
    base, sep, n = label.rpartition("-")
    if sep and n.isdigit() and base.endswith("Z"):
        return base, int(n)
    return label, 0


def next_label(newest: datetime, labels: set[str]) -> str:
    """The newest LastModified as a sortable label; ``-2``, ``-3``... if that would not be new."""
    label = newest.astimezone(timezone.utc).strftime(_STAMP)
    if not labels:
        return label
    last = max(labels, key=_label_key)
    base, n = _label_key(last)
    if label > base:
        return label
    return f"{base}-{max(n, 1) + 1}"


def is_text(rel: str, size: int) -> bool:
    if size > TEXT_MAX_BYTES:
        return False
    name = rel[rel.rfind("/") + 1 :]
    stem, ext = posixpath.splitext(name)
    return name in TEXT_NAMES or ext.lower() in TEXT_EXTENSIONS or (ext == "" and stem.upper() in TEXT_NAMES)


def remote_id_for(path: str, key: Optional[str], urls: tuple[str, ...]) -> Optional[str]:
    """``<S3 key>@<versionId>`` (or the bare S3 key) from an object URL (used by reindex)."""
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https"):
            continue
        segs = parts.path.lstrip("/")
        if ".s3." in parts.netloc and parts.netloc.endswith("amazonaws.com") and not parts.netloc.startswith("s3."):
            s3key = segs  # virtual-hosted: bucket in the host name
        else:
            s3key = segs.split("/", 1)[1] if "/" in segs else ""
        if not s3key:
            continue
        s3key = unquote(s3key)
        vid = parse_qs(parts.query).get("versionId")
        return f"{s3key}@{vid[0]}" if vid else s3key
    return None


class AindSource:
    archive = "aind"
    reserved: tuple[str, ...] = ()

    def __init__(self, name: str, settings: Optional[S3Settings] = None, *, client: Any = None):
        self.name = name
        self.settings = settings or S3Settings()
        self._client = client
        self.id = f"aind:{name}"
        self.remote_id = name
        self.relpath = f"aind/{name}"
        self.asset_prefix = f"{self.settings.prefix}{name}/"

    def describe(self) -> str:
        return f"AIND asset {self.name} mirrored from s3://{self.settings.bucket}/{self.asset_prefix}"

    def prepare_dataset(self, path: Path) -> dict[str, str]:
        return {}

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else s3_client(self.settings)

    # -- listing ----------------------------------------------------------
    def _list(self, progress: Optional[ProgressCallback], state: Optional[SourceState] = None) -> _Listing:
        listing = _Listing()
        try:
            try:
                self._list_versions(listing, progress)
            except AindError as exc:
                if not getattr(exc, "fallback", False):
                    raise
                listing.close()
                listing = _Listing()
                log.info("%s: versioned listing not allowed, listing latest objects and asking HEAD", self.id)
                self._list_latest(listing, progress, state)
        except BaseException:
            listing.close()
            raise
        return listing

    def _note(self, listing: _Listing, o: _Obj) -> None:
        rel = o.key[len(self.asset_prefix) :]
        if (
            "/" not in rel
            and rel.endswith(".json")
            and o.size <= SIDECAR_MAX_BYTES
            and check_path(rel) is None
            and (rel in SIDECARS or len(listing.sidecars) < MAX_EAGER_SIDECARS)
        ):
            listing.sidecars.append(o)

    def _list_versions(
        self,
        listing: _Listing,
        progress: Optional[ProgressCallback],
        sink: Optional[Callable[[list[_Obj]], None]] = None,
    ) -> None:
        """ListObjectVersions: gives version ids and delete markers in one pass (needs ListBucketVersions).

        ``sink`` receives each page's current objects (the first sync's page stream)."""
        s = self.settings
        from neuromirror.sources.s3listing import (
            paginate_versions,  # the pages botocore's paginator gives, at 1/25 of its CPU
        )

        pages = paginate_versions(self.client, Bucket=s.bucket, Prefix=self.asset_prefix)
        try:
            for page in pages:
                objs = []
                for v in page.get("Versions") or []:
                    if not v.get("IsLatest"):
                        continue
                    o = _Obj(
                        v["Key"],
                        _version_id(v.get("VersionId")),
                        _etag(v.get("ETag")),
                        int(v.get("Size") or 0),
                        v["LastModified"],
                        v.get("StorageClass"),
                    )
                    listing.add(o)
                    self._note(listing, o)
                    objs.append(o)
                for d in page.get("DeleteMarkers") or []:
                    if d.get("IsLatest"):
                        listing.seen(d.get("LastModified"))  # a deletion is a change, dated
                listing.versioned_listing = True
                if sink is not None:
                    sink(objs)
                if progress:
                    progress("listing", listing.count, None)
        except Exception as exc:
            if _is_denied_or_unsupported(exc) and listing.count == 0:
                err = _s3_gist(exc, s, f"listing versions of {self.name}")
                err.fallback = True  # type: ignore[attr-defined]
                raise err from None
            raise _s3_gist(exc, s, f"listing {self.name}") from None

    def _list_latest(
        self, listing: _Listing, progress: Optional[ProgressCallback], state: Optional[SourceState] = None
    ) -> None:
        """ListObjectsV2 + HEAD for the version id (only if the bucket turns out to be versioned).

        A version id learned once is cached per (key, ETag, LastModified), so later
        syncs HEAD only new or changed objects.  Whether the bucket is versioned is
        decided by the first object HEAD is asked about.
        """
        s = self.settings
        versioned: Optional[bool] = None
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=s.bucket, Prefix=self.asset_prefix)
            with ThreadPoolExecutor(WORKERS) as pool:
                for page in pages:
                    objs = [
                        _Obj(
                            c["Key"],
                            None,
                            _etag(c.get("ETag")),
                            int(c.get("Size") or 0),
                            c["LastModified"],
                            c.get("StorageClass"),
                        )
                        for c in page.get("Contents") or []
                    ]
                    misses: list[int] = []
                    for i, o in enumerate(objs):
                        cached = state.cache_get(VERSION_NAMESPACE, self._version_key(o)) if state is not None else None
                        if cached is None:
                            misses.append(i)
                        else:
                            o.version_id = _version_id(cached)
                    heads: list[_Obj] = []
                    if misses and versioned is None:
                        heads.append(self._head(objs[misses[0]]))
                        versioned = heads[0].version_id is not None
                    if misses and versioned:
                        heads += pool.map(self._head, [objs[i] for i in misses[len(heads) :]])
                        for i, h in zip(misses, heads):
                            if state is not None and h.etag == objs[i].etag:
                                state.cache_put(VERSION_NAMESPACE, self._version_key(objs[i]), h.version_id or "null")
                            objs[i] = h  # changed since the listing: HEAD's record is the consistent one
                    for o in objs:
                        listing.add(o)
                        self._note(listing, o)
                    if progress:
                        progress("listing", listing.count, None)
        except AindError:
            raise
        except Exception as exc:
            raise _s3_gist(exc, s, f"listing {self.name}") from None

    def _version_key(self, o: _Obj) -> str:
        return f"{self.settings.bucket}/{o.key}#{o.etag}@{o.modified.isoformat()}"

    def _head(self, o: _Obj) -> _Obj:
        try:
            r = self.client.head_object(Bucket=self.settings.bucket, Key=o.key)
        except Exception as exc:
            raise _s3_gist(exc, self.settings, f"HEAD {o.key}") from None
        return _Obj(
            o.key,
            _version_id(r.get("VersionId")),
            _etag(r.get("ETag")),
            int(r.get("ContentLength") or 0),
            r.get("LastModified") or o.modified,
            o.storage_class,
        )

    # -- snapshots ---------------------------------------------------------
    def snapshots(self, state: SourceState, progress: Optional[ProgressCallback] = None) -> Iterator[Snapshot]:
        self._check_origin(state)
        labels = state.labels()
        if not labels:
            first = self._first_snapshot(state, progress)
            if first is not None:
                yield first
                return
        listing = self._list(progress, state)
        handed_over = False  # once the entries generator has the spool, it closes it
        try:
            if labels:
                last = max(labels, key=_label_key)
                if _stamp_digest(state.last_remote_modified(last)) == self._final_digest(listing):
                    return
            elif listing.count == 0:
                raise self._no_asset()
            sidecars = self._read_sidecars(listing.sidecars)
            snap = Snapshot(label="", kind="snapshot", entries=[], date=datetime.now(timezone.utc), message="")
            self._describe(snap, listing, sidecars, labels)
            snap.entries = self._entries(listing, listing, sidecars, snap, state, progress)
            handed_over = True
            yield snap
        finally:
            if not handed_over:
                listing.close()

    def _first_snapshot(self, state: SourceState, progress: Optional[ProgressCallback]) -> Optional[Snapshot]:
        """The asset's first snapshot, its entries taken while the listing goes on (:mod:`.aind_listing`).

        Yielded once the first objects are listed (a mistyped asset creates nothing);
        label, date and metadata are filled in when the listing is complete, before
        the entries end.  None when the versioned listing is not allowed: then the
        listing comes first, as for later syncs.
        """
        listing = _Listing(keep=False)
        # one progress bar, the consumer's ("objects"): the listing thread reports nothing
        stream = PageStream(lambda sink: self._list_versions(listing, None, sink), name=f"listing {self.id}")
        pages = iter(stream)
        head: list[_Obj] = []
        try:
            for page in pages:
                if page:
                    head = page
                    break
            if not head:
                raise self._no_asset()
        except BaseException as exc:
            stream.close()
            listing.close()
            if isinstance(exc, AindError) and getattr(exc, "fallback", False):
                return None
            raise
        snap = Snapshot(label="", kind="snapshot", entries=[], date=datetime.now(timezone.utc), message="")
        sidecars: dict[str, bytes] = {}

        def objects() -> Iterator[_Obj]:
            yield from head
            for page in pages:
                yield from page

        def entries() -> Iterator[Entry]:
            try:
                yield from self._entries(objects(), listing, sidecars, snap, state, progress)
                self._describe(snap, listing, sidecars, set())
            finally:
                stream.close()

        snap.entries = entries()
        return snap

    def _no_asset(self) -> AindError:
        return AindError(f"AIND {self.settings.where}: no asset {self.name!r} (no object under {self.asset_prefix})")

    def _final_digest(self, listing: _Listing) -> str:
        """The listing's digest, with the settings that change what a sync makes of it."""
        digest = listing.digest.copy()
        digest.update(f"policy {self.settings.policy}\n".encode())
        return digest.hexdigest()[:32]

    def _describe(self, snap: Snapshot, listing: _Listing, sidecars: dict[str, bytes], labels: set[str]) -> None:
        """Label, date, metadata and messages of ``snap``, from the whole listing."""
        s = self.settings
        digest = self._final_digest(listing)
        newest = listing.newest or datetime.now(timezone.utc)
        label = next_label(newest, labels)
        meta = asset_meta(self.name, sidecars)
        pinned = listing.count > 0 and listing.unpinned == 0
        meta.update(
            {
                "bucket": s.bucket,
                "prefix": self.asset_prefix,
                "pinned_upstream": pinned,
                "objects": listing.count,
                "bytes": listing.bytes,
            }
        )
        snap.label = snap.tag = label
        snap.date = newest
        snap.message = f"AIND {self.name} snapshot {label}"
        snap.tag_message = self._tag_message(label, meta, listing)
        snap.remote_modified = f"{newest.astimezone(timezone.utc).isoformat()} n={listing.count} digest={digest}"
        snap.meta = meta
        if listing.count and not pinned:
            what = (
                "not versioned"
                if listing.unpinned == listing.count
                else f"not versioned for {listing.unpinned} of {listing.count} objects"
            )
            warning = (
                f"s3://{s.bucket}/{self.asset_prefix}: bucket {what}: plain URLs, not pinned upstream "
                "(an overwrite or delete upstream makes the old content unretrievable)"
            )
            log.info("%s: %s", self.id, warning)  # the sync report carries it to the user
            snap.warnings.append(warning)

    def _check_origin(self, state: SourceState) -> None:
        """Refuse to mix two buckets/prefixes in one dataset (the id is only the asset name)."""
        head = getattr(state, "head_version", None)
        if not isinstance(head, dict) or not head.get("meta"):
            return
        try:
            meta = json.loads(head["meta"]) if isinstance(head["meta"], str) else dict(head["meta"])
        except (TypeError, ValueError):
            return
        was = (meta.get("bucket"), meta.get("prefix"))
        if was[0] and (was[0], was[1] or self.asset_prefix) != (self.settings.bucket, self.asset_prefix):
            raise AindError(
                f"{self.id} was mirrored from s3://{was[0]}/{was[1] or ''}, not s3://{self.settings.bucket}/"
                f"{self.asset_prefix}: use another --root for another bucket or prefix"
            )

    def _tag_message(self, label: str, meta: dict, listing: _Listing) -> str:
        lines = [f"AIND {self.name} snapshot {label}", ""]
        for k in ("subject_id", "modality", "creation_time", "data_level", "project_name", "derived_from"):
            if meta.get(k):
                lines.append(f"{k}: {meta[k]}")
        lines.append(f"objects: {listing.count}, bytes: {listing.bytes}")
        lines.append(f"pinned upstream: {'yes (versionId URLs)' if meta['pinned_upstream'] else 'no (plain URLs)'}")
        lines.append(f"Source: s3://{self.settings.bucket}/{self.asset_prefix}")
        return "\n".join(lines) + "\n"

    def _read_sidecars(self, objs: list[_Obj]) -> dict[str, bytes]:
        s = self.settings
        out: dict[str, bytes] = {}
        if not objs:
            return out
        with ThreadPoolExecutor(min(WORKERS, len(objs))) as pool:
            datas = pool.map(lambda o: fetch_object(s, o.key, o.version_id, o.etag, SIDECAR_MAX_BYTES), objs)
            for o, data in zip(objs, datas):
                out[o.key[len(self.asset_prefix) :]] = data
        return out

    # -- entries -------------------------------------------------------------
    def _entries(
        self,
        objects: Iterable[_Obj],
        listing: _Listing,
        sidecars: dict[str, bytes],
        snap: Snapshot,
        state: SourceState,
        progress: Optional[ProgressCallback],
    ) -> Iterator[Entry]:
        """Entries of ``objects`` in batches; sidecars the listing has noted since the last batch are read first."""
        batch: list[_Obj] = []
        done = 0
        total = listing.count if listing.keep else None  # a listing still going on has no total yet
        with ThreadPoolExecutor(WORKERS) as pool, closing(listing):

            def flush() -> Iterator[Entry]:
                nonlocal batch, done
                if len(sidecars) < len(listing.sidecars):
                    sidecars.update(self._read_sidecars(listing.sidecars[len(sidecars) :]))
                yield from self._resolve(batch, sidecars, snap, state, pool)
                done += len(batch)
                batch = []
                if progress:
                    progress("objects", done, total)

            for o in objects:
                batch.append(o)
                if len(batch) >= BATCH:
                    yield from flush()
            if batch:
                yield from flush()

    def _cache_key(self, o: _Obj) -> str:
        return f"{self.settings.bucket}/{o.key}@{o.version_id or ''}#{o.etag}:{o.size}"

    def _resolve(
        self,
        batch: list[_Obj],
        sidecars: dict[str, bytes],
        snap: Snapshot,
        state: SourceState,
        pool: ThreadPoolExecutor,
    ) -> Iterator[Entry]:
        s = self.settings
        plan: list[tuple[_Obj, str, str]] = []  # (object, relative path, how)
        fetch: list[_Obj] = []
        hashing: list[_Obj] = []
        known: dict[str, str] = {}
        for o in batch:
            rel = o.key[len(self.asset_prefix) :]
            if rel.endswith("/") and o.size == 0:
                continue  # a "folder" placeholder object, not a file
            reason = "S3 key ends with '/' but has content" if rel.endswith("/") else check_path(rel, self.reserved)
            if reason:
                snap.refused.append(Refusal(rel, f"{reason} (S3 key {o.key!r})"))
                log.info("%s: refusing S3 key %r: %s", self.id, o.key, reason)
                continue
            if rel in sidecars:
                plan.append((o, rel, "sidecar"))
                continue
            md5 = o.etag.lower() if _MD5_RE.match(o.etag.lower()) else None
            if is_text(rel, o.size):
                how = "text"
            elif md5:
                how = "md5"
            elif s.wants_hash(o.size):
                how = "sha256"
            else:
                how = "vurl"
            if how in ("text", "sha256"):
                cached = state.cache_get(SHA_NAMESPACE, self._cache_key(o))
                if cached:
                    known[o.key] = cached
                elif how == "text":
                    fetch.append(o)
                else:
                    hashing.append(o)
            plan.append((o, rel, how))
        contents: dict[str, bytes] = {}
        if fetch:
            for o, data in zip(fetch, pool.map(lambda o: fetch_object(s, o.key, o.version_id, o.etag, o.size), fetch)):
                contents[o.key] = data
                known[o.key] = hashlib.sha256(data).hexdigest()
                state.cache_put(SHA_NAMESPACE, self._cache_key(o), known[o.key])
        if hashing:
            for o, sha in zip(
                hashing, pool.map(lambda o: hash_object(s, o.key, o.version_id, o.etag, o.size), hashing)
            ):
                known[o.key] = sha
                state.cache_put(SHA_NAMESPACE, self._cache_key(o), sha)
        for o, rel, how in plan:
            remote_id = f"{o.key}@{o.version_id}" if o.version_id else o.key
            if how == "sidecar":
                yield GitEntry(rel, sidecars[rel], remote_id)
                continue
            if how == "text":
                if o.key in contents:
                    yield GitEntry(rel, contents[o.key], remote_id)
                else:
                    yield GitEntry(
                        rel,
                        None,
                        remote_id,
                        known[o.key],
                        o.size,
                        functools.partial(_load_text, s, o.key, o.version_id, o.etag, o.size),
                    )
                continue
            url = s.object_url(o.key, o.version_id)
            if how == "md5":
                md5 = o.etag.lower()
                yield AnnexEntry(rel, md5e_key(md5, o.size, rel), o.size, (url,), MD5, md5, remote_id)
            elif how == "sha256":
                sha = known[o.key]
                yield AnnexEntry(rel, sha256e_key(sha, o.size, rel), o.size, (url,), SHA256, sha, remote_id)
            else:
                # pinned URLs name one immutable version; a plain URL may be overwritten, so the
                # ETag joins the key's name: new content upstream -> a new key, never a failed check
                seed = url if o.version_id else f"{url}#etag={o.etag}"
                yield AnnexEntry(rel, url_key(seed, o.size), o.size, (url,), VERIFY_ON_GET, None, remote_id)


def _stamp_digest(stamp: Optional[str]) -> Optional[str]:
    if not stamp:
        return None
    for part in stamp.split():
        if part.startswith("digest="):
            return part[len("digest=") :]
    return None


# --------------------------------------------------------------------------- CLI plumbing


def add_options(group: Any) -> None:
    def add(*flags: str, **kw: Any) -> None:
        taken = getattr(group, "_option_string_actions", {})
        if any(f in taken for f in flags):  # another source already defined it: keep theirs
            log.debug("aind: option %s already defined", flags[0])
            return
        group.add_argument(*flags, **kw)

    add("--bucket", default=None, help=f"AIND: S3 bucket (env NEUROMIRROR_AIND_BUCKET; default {DEFAULT_BUCKET})")
    add(
        "--prefix",
        default=None,
        help="AIND: key prefix above the assets, e.g. ephys-compression/ in aind-benchmark-data "
        "(env NEUROMIRROR_AIND_PREFIX; default: the bucket's top level)",
    )
    add(
        "--s3-endpoint",
        default=None,
        metavar="URL",
        help="AIND: S3 endpoint URL (env NEUROMIRROR_S3_ENDPOINT; default AWS)",
    )
    add("--s3-region", default=None, help=f"AIND: S3 region (env NEUROMIRROR_S3_REGION; default {DEFAULT_REGION})")
    add(
        "--s3-signed",
        action="store_true",
        default=None,
        help="AIND: sign S3 requests with the usual AWS credentials (env NEUROMIRROR_S3_SIGNED=1; default anonymous)",
    )
    add(
        "--hash",
        action="store_true",
        default=None,
        help="AIND: download and hash multipart objects (SHA256E keys) instead of VURL keys (env NEUROMIRROR_AIND_HASH=1)",
    )
    add(
        "--hash-threshold",
        default=None,
        metavar="SIZE",
        help="AIND: hash multipart objects up to SIZE (e.g. 500MB, 1GiB); larger ones get VURL keys "
        "(env NEUROMIRROR_AIND_HASH_THRESHOLD; default 0 = none)",
    )


def expand(spec: Spec, options: dict) -> Iterator[AindSource]:
    try:
        settings = S3Settings.from_options(options)
    except ValueError as exc:
        raise AindError(f"AIND options: {exc}") from None
    if not spec.is_glob:
        yield AindSource(spec.name, settings)
        return
    for name in list_assets(settings, spec.name):
        yield AindSource(name, settings)


def list_assets(settings: S3Settings, pattern: str = "*") -> Iterator[str]:
    """Asset names (top-level prefixes under ``settings.prefix``) matching a glob, sorted."""
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    client = s3_client(settings)
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=settings.bucket, Prefix=settings.prefix + literal, Delimiter="/"
        )
        for page in pages:
            for cp in page.get("CommonPrefixes") or []:
                name = cp["Prefix"][len(settings.prefix) :].rstrip("/")
                if name and fnmatch.fnmatchcase(name, pattern) and check_path(name) is None:
                    yield name
    except Exception as exc:
        raise _s3_gist(exc, settings, f"listing assets matching {pattern!r}") from None

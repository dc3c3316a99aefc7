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
import logging
import re
from concurrent.futures import Executor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from neuromirror.records import Entry, ProgressCallback, Snapshot, SourceState, VersionKind
from neuromirror.sources.aind.entries import entries_of
from neuromirror.sources.aind.listing import Listing, Obj, PageStream, list_asset, list_versions
from neuromirror.sources.aind.metadata import asset_meta, read_sidecars
from neuromirror.sources.aind.options import S3Settings, add_options
from neuromirror.sources.aind.s3 import AindError, _s3_gist, s3_client
from neuromirror.sources.aind.zarrs import settle
from neuromirror.sources.base import Listed, Source
from neuromirror.spec import Spec
from neuromirror.util.paths import check_path

#: what the tool calls (``neuromirror.sources``, reindex): the source, its options, the archive's id of a file
__all__ = ["AindSource", "add_options", "expand", "listed", "remote_id_for"]

log = logging.getLogger("neuromirror.aind")

_STAMP = "%Y-%m-%dT%H-%M-%SZ"


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
    """One asset, a top-level prefix of the bucket: the dataset ``aind/<name>``."""

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
        #: the asset's dataset (set by ``prepare_dataset``): its Zarr stores' datasets go inside it
        self.dataset_path: Optional[Path] = None
        #: set under ``--dask``: each store's commit becomes a task of the cluster (see :mod:`.zarrs`)
        self.zarr_executor: Optional[Executor] = None

    def describe(self) -> str:
        return f"AIND asset {self.name} mirrored from s3://{self.settings.bucket}/{self.asset_prefix}"

    def prepare_dataset(self, path: Path) -> dict[str, str]:
        self.dataset_path = path
        return {}

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else s3_client(self.settings)

    # -- snapshots ---------------------------------------------------------
    def snapshots(self, state: SourceState, progress: Optional[ProgressCallback] = None) -> Iterator[Snapshot]:
        self._check_origin(state)
        labels = state.labels()
        if not labels:
            first = self._first_snapshot(state, progress)
            if first is not None:
                yield first
                settle(first)  # asked for the next one: this one is committed
                return
        listing = list_asset(self, progress, state)
        handed_over = False  # once the entries generator has the spool, it closes it
        try:
            if labels:
                last = max(labels, key=_label_key)
                if _stamp_digest(state.last_remote_modified(last)) == self._final_digest(listing):
                    return
            elif listing.count == 0:
                raise self._no_asset()
            sidecars = read_sidecars(self.settings, self.asset_prefix, listing.sidecars)
            snap = Snapshot(
                label="", kind=VersionKind.SNAPSHOT, entries=[], date=datetime.now(timezone.utc), message=""
            )
            self._describe(snap, listing, sidecars, labels)
            snap.entries = entries_of(self, listing, listing, sidecars, snap, state, progress)
            handed_over = True
            yield snap
            settle(snap)
        finally:
            if not handed_over:
                listing.close()

    def _first_snapshot(self, state: SourceState, progress: Optional[ProgressCallback]) -> Optional[Snapshot]:
        """The asset's first snapshot, its entries taken while the listing goes on (:mod:`.listing`).

        Yielded once the first objects are listed (a mistyped asset creates nothing);
        label, date and metadata are filled in when the listing is complete, before
        the entries end.  None when the versioned listing is not allowed: then the
        listing comes first, as for later syncs.
        """
        listing = Listing(keep=False)
        # one progress bar, the consumer's ("objects"): the listing thread reports nothing
        stream = PageStream(lambda sink: list_versions(self, listing, None, sink), name=f"listing {self.id}")
        pages = iter(stream)
        head: list[Obj] = []
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
        snap = Snapshot(label="", kind=VersionKind.SNAPSHOT, entries=[], date=datetime.now(timezone.utc), message="")
        sidecars: dict[str, bytes] = {}

        def objects() -> Iterator[Obj]:
            yield from head
            for page in pages:
                yield from page

        def entries() -> Iterator[Entry]:
            try:
                yield from entries_of(self, objects(), listing, sidecars, snap, state, progress)
                self._describe(snap, listing, sidecars, set())
            finally:
                stream.close()

        snap.entries = entries()
        return snap

    def _no_asset(self) -> AindError:
        return AindError(f"AIND {self.settings.where}: no asset {self.name!r} (no object under {self.asset_prefix})")

    def _final_digest(self, listing: Listing) -> str:
        """The listing's digest, with the settings that change what a sync makes of it."""
        digest = listing.digest.copy()
        digest.update(f"policy {self.settings.policy}\n".encode())
        return digest.hexdigest()[:32]

    def _describe(self, snap: Snapshot, listing: Listing, sidecars: dict[str, bytes], labels: set[str]) -> None:
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
        meta = state.recorded_meta()
        was = (meta.get("bucket"), meta.get("prefix"))
        if was[0] and (was[0], was[1] or self.asset_prefix) != (self.settings.bucket, self.asset_prefix):
            raise AindError(
                f"{self.id} was mirrored from s3://{was[0]}/{was[1] or ''}, not s3://{self.settings.bucket}/"
                f"{self.asset_prefix}: mirror another bucket or prefix into another root"
            )

    def _tag_message(self, label: str, meta: dict, listing: Listing) -> str:
        lines = [f"AIND {self.name} snapshot {label}", ""]
        for k in ("subject_id", "modality", "creation_time", "data_level", "project_name", "derived_from"):
            if meta.get(k):
                lines.append(f"{k}: {meta[k]}")
        lines.append(f"objects: {listing.count}, bytes: {listing.bytes}")
        lines.append(f"pinned upstream: {'yes (versionId URLs)' if meta['pinned_upstream'] else 'no (plain URLs)'}")
        lines.append(f"Source: s3://{self.settings.bucket}/{self.asset_prefix}")
        return "\n".join(lines) + "\n"


def _stamp_digest(stamp: Optional[str]) -> Optional[str]:
    if not stamp:
        return None
    for part in stamp.split():
        if part.startswith("digest="):
            return part[len("digest=") :]
    return None


def expand(spec: Spec, options: dict) -> Iterator[Source]:
    try:
        settings = S3Settings.from_options(options)
    except ValueError as exc:
        raise AindError(f"AIND options: {exc}") from None
    if not spec.is_glob:
        yield AindSource(spec.name, settings)
        return
    for name in list_assets(settings, spec.name):
        yield AindSource(name, settings)


def listed(spec: Spec, options: dict) -> Iterator[Listed]:
    """The assets a SPEC names, for the quiet hour: an asset is immutable by the bucket's own rule
    (written once, under a new name), so the listing's word on it is only that it exists; a name not
    seen before is new.  The service's rolling re-check asks the old ones again now and then."""
    for source in expand(spec, options):
        yield Listed(source, "listed" if spec.is_glob else None)


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

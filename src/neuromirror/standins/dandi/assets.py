"""Changing the archive's assets: put, replace or delete one, its blob and its sha256, Zarrs and their files
(each Zarr state's manifest published: :mod:`.zarr_manifests`).

Why these rules matter: a mirror reads an asset's identity from them.  Assets are
immutable (new content at a path is a new asset_id), a blob is deduplicated by sha256
and shared, an embargoed dandiset's bytes go to the private bucket, and a Zarr changes
in place (same asset_id, new checksum).

Benchmarks add many assets with :meth:`DandiStandIn.add_synthetic_assets` (or
``put_asset(..., upload=False)``): metadata only, fake-but-valid sha256/etag, no
S3 object, so a HEAD or GET of their S3 URL answers 404 until the benchmark uploads
an object to :meth:`DandiStandIn.blob_key` itself.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Optional

from neuromirror.standins.dandi.formats import (
    ASSET_COMPUTED_FIELDS,
    SCHEMA_VERSION,
    aware,
    dandi_etag,
    dumps,
    encoding_format,
    etag_part_spans,
    etag_parts,
    multipart_etag,
    pseudo_bytes,
    uuid4s,
    zarr_part_spans,
)
from neuromirror.standins.dandi.model import AssetRecord, BlobRecord, DandisetRecord, ZarrFile, ZarrRecord
from neuromirror.standins.dandi.zarr_manifests import ZarrManifests


class AssetChanges(ZarrManifests):
    """The Python API for assets, blobs and Zarrs (thread-safe; before or after ``start``)."""

    def put_asset(
        self,
        dandiset_id: str,
        path: str,
        content: Optional[bytes] = None,
        *,
        size: Optional[int] = None,
        sha256_pending: bool = False,
        upload: bool = True,
        when: Optional[datetime] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> str:
        """Add (or replace) the draft's asset at ``path``; return the NEW asset_id.

        The blob is deduplicated by sha256 (same content -> same blob_id) and uploaded
        to ``blobs/{u[0:3]}/{u[3:6]}/{u}`` in the public bucket, or the embargo bucket
        for an embargoed dandiset.  ``content=None`` with ``upload=True`` uploads
        ``size`` (default 64) deterministic pseudo-random bytes.  ``upload=False``
        stores nothing in S3: the asset has the given ``size`` and a fake-but-valid
        sha256/etag (or the real ones if ``content`` is given) and its S3 URL answers
        404 until someone puts an object at :meth:`blob_key`.  ``sha256_pending``
        leaves ``dandi:sha2-256`` out of the digest until :meth:`finalize_sha256`.
        ``path`` is not validated.  ``metadata`` is merged into the asset's metadata.
        """
        t = aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            seq = self._next_seq()
            if content is None and upload:
                content = pseudo_bytes(f"{ds.identifier}\0{path}\0{seq}", 64 if size is None else size)
            if content is not None:
                size = len(content)
                sha = hashlib.sha256(content).hexdigest()
                etag = dandi_etag(content)
            else:
                if size is None:
                    raise ValueError("size is required when content is None and upload=False")
                sha, etag = self._fake_digests(f"{ds.identifier}\0{path}\0{seq}", size)
            embargoed = ds.embargo_status != "OPEN"
            blob, new_blob = self._get_or_make_blob(sha, etag, size, embargoed, t, content if upload else None)
            if new_blob:
                blob.sha256_ready = not sha256_pending
            elif not sha256_pending and not blob.sha256_ready:
                # the same bytes arrive again with their digest known: it is known for all
                blob.sha256_ready = True
                blob.rev += 1
            md = self._asset_user_metadata(path, size, t, metadata)
            asset = AssetRecord(
                asset_id=str(uuid.uuid4()),
                dandiset_id=ds.identifier,
                path=path,
                created=t,
                modified=t,
                metadata=md,
                seq=seq,
                blob=blob,
            )
            self._add_to_draft(ds, asset, t)
            return asset.asset_id

    @staticmethod
    def _fake_digests(seed: str, size: int) -> tuple[str, str]:
        sha = hashlib.sha256(f"synthetic\0{seed}".encode()).hexdigest()
        etag = f"{hashlib.md5(sha.encode()).hexdigest()}-{etag_parts(size)}"
        return sha, etag

    def _get_or_make_blob(
        self,
        sha: str,
        etag: str,
        size: int,
        embargoed: bool,
        when: datetime,
        content: Optional[bytes],
    ) -> tuple[BlobRecord, bool]:
        """The blob with this sha256 (uploading it if it lacks bytes) or a new one; is-new flag."""
        for b in self._blobs_by_sha.get(sha, []):
            # a public blob serves embargoed dandisets too; not the other way round
            if b.size == size and (not b.embargoed or embargoed):
                if content is not None and not b.uploaded:
                    self._upload_blob(b, content)
                return b, False
        blob = BlobRecord(
            blob_id=str(uuid.uuid4()),
            sha256=sha,
            etag=etag,
            size=size,
            bucket=self.embargo_bucket if embargoed else self.bucket,
            embargoed=embargoed,
            created=when,
        )
        if content is not None:
            self._upload_blob(blob, content)
        self._blobs[blob.blob_id] = blob
        self._blobs_by_sha.setdefault(sha, []).append(blob)
        return blob, True

    def _upload_blob(self, blob: BlobRecord, content: bytes) -> None:
        self._ensure_buckets()
        # a multipart upload, as the archive's clients make it: the S3 ETag is then the dandi-etag
        blob.version_id = self.s3.put_parts(blob.bucket, blob.key, content, etag_part_spans(len(content)))
        blob.uploaded = True
        blob.rev += 1

    @staticmethod
    def _asset_user_metadata(
        path: str, size: int, when: datetime, extra: Optional[Mapping[str, Any]]
    ) -> dict[str, Any]:
        md: dict[str, Any] = {
            "schemaKey": "Asset",
            "schemaVersion": SCHEMA_VERSION,
            "encodingFormat": encoding_format(path),
            "dateModified": when.isoformat(),
            "blobDateModified": when.isoformat(),
        }
        if extra:
            md.update({k: copy.deepcopy(v) for k, v in extra.items() if k not in ASSET_COMPUTED_FIELDS})
        return md

    def _add_to_draft(self, ds: DandisetRecord, asset: AssetRecord, when: datetime) -> None:
        self._assets[asset.asset_id] = asset
        ds.draft.assets[asset.path] = asset
        ds.draft.touch(when)

    def add_synthetic_assets(
        self,
        dandiset_id: str,
        n: int,
        *,
        prefix: str = "sub-",
        size: int = 1024,
        per_dir: int = 100,
        ext: str = ".nwb",
        when: Optional[datetime] = None,
        step: Optional[timedelta] = None,
    ) -> list[str]:
        """Add ``n`` metadata-only assets fast (no S3 upload); return their asset_ids.

        Paths look like ``sub-00003/sub-00003_obj-0000312.nwb`` (``per_dir`` per
        folder); each asset gets its own fake blob (sha256/etag valid in form only).
        ``step``: the j-th asset is ``modified`` at ``when + j * step``, as uploads one after
        the other are (none: all at ``when``, as one transaction's).
        """
        t = aware(when)
        parts = etag_parts(size)
        enc = encoding_format(f"x{ext}")
        iso = t.isoformat()
        user_md = {
            "schemaKey": "Asset",
            "schemaVersion": SCHEMA_VERSION,
            "encodingFormat": enc,
            "dateModified": iso,
            "blobDateModified": iso,
        }
        user_json = (0, dumps(user_md))  # identical for all: render once
        uuids = uuid4s(2 * n)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            embargoed = ds.embargo_status != "OPEN"
            bucket = self.embargo_bucket if embargoed else self.bucket
            ids: list[str] = []
            base = len(ds.draft.assets)
            draft_assets = ds.draft.assets
            for j, i in enumerate(range(base, base + n)):
                d = i // per_dir
                path = f"{prefix}{d:05d}/{prefix}{d:05d}_obj-{i:07d}{ext}"
                self._seq += 1
                seq = self._seq
                sha = hashlib.sha256(f"synthetic\0{ds.identifier}\0{path}\0{seq}".encode()).hexdigest()
                blob = BlobRecord(
                    blob_id=uuids[2 * j],
                    sha256=sha,
                    etag=f"{sha[:32]}-{parts}",
                    size=size,
                    bucket=bucket,
                    embargoed=embargoed,
                    created=t,
                )
                self._blobs[blob.blob_id] = blob
                self._blobs_by_sha[sha] = [blob]
                asset = AssetRecord(
                    asset_id=uuids[2 * j + 1],
                    dandiset_id=ds.identifier,
                    path=path,
                    created=t + j * step if step else t,
                    modified=t + j * step if step else t,
                    metadata=user_md,  # shared: records are treated as read-only
                    seq=seq,
                    blob=blob,
                    path_lower=path.lower(),
                    _user_json=user_json,
                )
                self._assets[asset.asset_id] = asset
                draft_assets[path] = asset
                ids.append(asset.asset_id)
            ds.draft.touch(t + max(0, n - 1) * step if step else t)
            return ids

    def delete_asset(self, dandiset_id: str, path: str, *, when: Optional[datetime] = None, touch: bool = True) -> None:
        """Remove the asset at ``path`` from the draft (the asset and blob stay reachable by id).

        ``touch=False``: the draft's ``modified`` stays as it was, as the archive leaves it on some
        deletions (dandi-archive #1871); its asset count and size move all the same."""
        with self._lock:
            ds = self._get_ds(dandiset_id)
            if path not in ds.draft.assets:
                raise KeyError(f"no asset at {path!r} in {ds.identifier}/draft")
            del ds.draft.assets[path]
            if touch:
                ds.draft.touch(aware(when))
            else:
                ds.draft.rev += 1  # the listings change, not the version's modified

    def finalize_sha256(self, dandiset_id: str, path: str) -> None:
        """Make the sha256 of the draft asset at ``path`` visible (asset_id/modified unchanged)."""
        with self._lock:
            a = self._get_ds(dandiset_id).draft.assets[path]
            if a.blob is None:
                raise ValueError("zarr assets have no sha256")
            if not a.blob.sha256_ready:
                a.blob.sha256_ready = True
                a.blob.rev += 1

    def reupload_asset(self, dandiset_id: str, path: str, *, when: Optional[datetime] = None) -> str:
        """The draft's blob asset at ``path`` uploaded again as a NEW blob (a new uuid and S3 object, the same
        bytes and digest) and the old blob's object purged, every version: the archive re-keying a file (``repin``'s
        asset-record case).  Published versions keep their asset record; the new asset_id is returned."""
        t = aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            old = ds.draft.assets[path]
            b = old.blob
            if b is None:
                raise ValueError("zarr assets have no blob")
            data = self.s3.client().get_object(Bucket=b.bucket, Key=b.key, VersionId=b.version_id)["Body"].read()
            blob = BlobRecord(str(uuid.uuid4()), b.sha256, b.etag, b.size, b.bucket, b.embargoed, t)
            blob.sha256_ready = b.sha256_ready
            self._upload_blob(blob, data)
            self._blobs[blob.blob_id] = blob
            self._blobs_by_sha[b.sha256] = [blob]
            c = self.s3.client()
            for v in c.list_object_versions(Bucket=b.bucket, Prefix=b.key).get("Versions", []):
                c.delete_object(Bucket=b.bucket, Key=v["Key"], VersionId=v["VersionId"])
            md = copy.deepcopy(old.metadata)
            asset = AssetRecord(str(uuid.uuid4()), ds.identifier, path, t, t, md, self._next_seq(), blob=blob)
            self._add_to_draft(ds, asset, t)
            return asset.asset_id

    def delete_blob_object(self, blob_id: str) -> None:
        """Delete the blob's current S3 object (a delete marker: old versions survive)."""
        with self._lock:
            b = self._blobs[blob_id]
            bucket, key = b.bucket, b.key
        self.s3.client().delete_object(Bucket=bucket, Key=key)

    # -- zarr ----------------------------------------------------------------
    def add_zarr_asset(
        self,
        dandiset_id: str,
        path: str,
        files: Mapping[str, bytes],
        *,
        when: Optional[datetime] = None,
        upload_type: str = "singlepart",
        part_size: int = 0,
    ) -> str:
        """Upload ``files`` (relative path -> bytes) as a new zarr; add it at ``path``.

        Objects go to ``zarr/<zarr_id>/<relpath>``; the digest is the
        dandi-zarr-checksum computed with ``zarr_checksum`` from per-file md5s,
        or, for ``upload_type="multipart"``, from their multipart ETags: each chunk
        goes up in a real multipart upload, in parts of ``part_size`` bytes (0:
        DANDI's rule, as its blobs').  Returns the new asset_id.
        """
        t = aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            self._ensure_buckets()
            embargoed = ds.embargo_status != "OPEN"
            z = ZarrRecord(
                zarr_id=str(uuid.uuid4()),
                dandiset_id=ds.identifier,
                name=path,
                bucket=self.embargo_bucket if embargoed else self.bucket,
                created=t,
                modified=t,
                upload_type=upload_type,
                part_size=part_size,
            )
            self._put_zarr_files(z, files, t)
            z.recompute()
            self._publish_manifest(z)
            self._zarrs[z.zarr_id] = z
            asset = AssetRecord(
                asset_id=str(uuid.uuid4()),
                dandiset_id=ds.identifier,
                path=path,
                created=t,
                modified=t,
                metadata=self._asset_user_metadata(path, z.size, t, {"encodingFormat": "application/x-zarr"}),
                seq=self._next_seq(),
                zarr=z,
            )
            self._add_to_draft(ds, asset, t)
            return asset.asset_id

    def _put_zarr_files(self, z: ZarrRecord, files: Mapping[str, bytes], when: datetime) -> None:
        lm = when.replace(microsecond=0)
        for rel, data in files.items():
            rel = rel.lstrip("/")
            if z.upload_type == "multipart":
                spans = zarr_part_spans(len(data), z.part_size)
                vid = self.s3.put_parts(z.bucket, f"zarr/{z.zarr_id}/{rel}", data, spans)
                etag = multipart_etag(data, spans)
            else:
                vid = self.s3.put(z.bucket, f"zarr/{z.zarr_id}/{rel}", data)
                etag = hashlib.md5(data).hexdigest()
            z.files[rel] = ZarrFile(size=len(data), md5=etag, last_modified=lm, version_id=vid)

    def modify_zarr(
        self,
        zarr_id: str,
        put: Optional[Mapping[str, bytes]] = None,
        delete: Iterable[str] = (),
        *,
        when: Optional[datetime] = None,
    ) -> None:
        """Change a zarr's files in place (same zarr_id and asset_id; checksum changes)."""
        t = aware(when)
        with self._lock:
            z = self._zarrs[zarr_id]
            if put:
                self._put_zarr_files(z, put, t)
            c = self.s3.client()
            for rel in delete:
                rel = rel.lstrip("/")
                if rel in z.files:
                    c.delete_object(Bucket=z.bucket, Key=f"zarr/{z.zarr_id}/{rel}")
                    del z.files[rel]
            z.recompute()
            self._publish_manifest(z)
            z.modified = t
            z.rev += 1
            self._ingested(z, t)

    def _ingested(self, z: ZarrRecord, when: datetime) -> None:
        """A Zarr ingest saves the draft assets of the Zarr: their ``modified`` moves (dandi-archive PR
        #2720), the draft's does not (its listings change)."""
        ds = self._dandisets[z.dandiset_id]
        for a in ds.draft.assets.values():
            if a.zarr is z and when > a.modified:
                a.modified = when
                a.rev += 1
                ds.draft.rev += 1

    def override_metadata(self, asset_id: str, raw: Optional[bytes]) -> None:
        """Serve ``raw`` (any bytes, e.g. JSON of the wrong type) as this asset's metadata.

        A hostile or broken archive for tests: the mirror must refuse the item and go on.
        ``None`` restores the computed metadata.
        """
        with self._lock:
            if raw is None:
                self._metadata_overrides.pop(asset_id, None)
            else:
                self._metadata_overrides[asset_id] = raw
            self._assets[asset_id].rev += 1

    def corrupt_zarr_checksum(self, asset_id: str) -> None:
        """Make the API report a wrong dandi-zarr-checksum for this zarr asset (test hook)."""
        with self._lock:
            z = self._assets[asset_id].zarr
            if z is None:
                raise ValueError("not a zarr asset")
            z.corrupted = True
            z.rev += 1

"""Changing the archive's dandisets: create one, edit its draft metadata, embargo or open it, publish.

Why here and not in the routes: tests and benchmarks script the archive's history
through this Python API (the stand-in's REST API is read-only but for ``publish``),
and each change must leave the records as dandi-archive's own tasks would: publishing
stamps the draft's assets, unembargoing moves bytes to the public bucket.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any, Mapping, Optional

from neuromirror.standins.dandi.formats import DOI_PREFIX, EMBARGO_STATUSES, SCHEMA_VERSION, aware, now
from neuromirror.standins.dandi.model import AssetRecord, DandisetRecord, VersionRecord
from neuromirror.standins.dandi.render import Rendering


class DandisetChanges(Rendering):
    """The Python API for dandisets and versions (thread-safe; before or after ``start``)."""

    def create_dandiset(
        self,
        identifier: Optional[str] = None,
        *,
        name: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        embargoed: bool = False,
        created: Optional[datetime] = None,
    ) -> str:
        """Create a dandiset with an empty draft; return its 6-digit identifier.

        Without ``identifier`` the next free number after the highest one is used
        (000001 first).  ``metadata`` is merged over a minimal valid-looking default
        (one contact person who is also an author, CC-BY-4.0).
        """
        when = aware(created)
        with self._lock:
            if identifier is None:
                n = max((int(i) for i in [*self._dandisets, *self._deleted_ids]), default=0) + 1
                ds_id = f"{n:06d}"
            else:
                ds_id = self._norm_id(identifier)
            if ds_id in self._dandisets:
                raise ValueError(f"dandiset {ds_id} exists")
            md: dict[str, Any] = {
                "schemaKey": "Dandiset",
                "schemaVersion": SCHEMA_VERSION,
                "name": name or f"Stand-in dandiset {ds_id}",
                "description": f"Dandiset {ds_id} served by neuromirror's DANDI stand-in.",
                "contributor": [
                    {
                        "name": "Doe, Jane",
                        "email": "jane.doe@example.org",
                        "roleName": ["dcite:ContactPerson", "dcite:Author"],
                        "includeInCitation": True,
                        "schemaKey": "Person",
                    }
                ],
                "license": ["spdx:CC-BY-4.0"],
                "keywords": ["stand-in"],
                "ethicsApproval": [],
                "wasGeneratedBy": [],
            }
            if metadata:
                md.update(copy.deepcopy(dict(metadata)))
            if name:
                md["name"] = name
            draft = VersionRecord(
                pk=self._next_pk(),
                dandiset_id=ds_id,
                version="draft",
                name=str(md["name"]),
                created=when,
                modified=when,
                metadata=md,
            )
            ds = DandisetRecord(
                identifier=ds_id,
                created=when,
                modified=when,
                embargo_status="EMBARGOED" if embargoed else "OPEN",
                draft=draft,
            )
            if embargoed:
                ds.embargo_end_date = (when + timedelta(days=730)).date().isoformat()
            self._dandisets[ds_id] = ds
            return ds_id

    def set_metadata(
        self,
        dandiset_id: str,
        metadata: Mapping[str, Any],
        *,
        merge: bool = True,
        when: Optional[datetime] = None,
    ) -> None:
        """Change the draft's metadata (merged top-level, or replaced); bumps draft modified."""
        t = aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            new = copy.deepcopy(dict(metadata))
            if merge:
                md = dict(ds.draft.metadata)
                md.update(new)
            else:
                md = new
                md.setdefault("schemaKey", "Dandiset")
                md.setdefault("schemaVersion", SCHEMA_VERSION)
            ds.draft.metadata = md
            if "name" in md:
                ds.draft.name = str(md["name"])
            ds.draft.touch(t)

    def delete_dandiset(self, dandiset_id: str) -> None:
        """The archive deletes a dandiset (its API then answers 404 "No such Dandiset"); blobs stay in S3.  Its id
        is never given again (the archive's never are)."""
        with self._lock:
            ident = self._get_ds(dandiset_id).identifier
            del self._dandisets[ident]
            self._deleted_ids.add(ident)

    def set_embargo_status(self, dandiset_id: str, status: str) -> None:
        """Set OPEN / EMBARGOED / UNEMBARGOING without moving any data."""
        if status not in EMBARGO_STATUSES:
            raise ValueError(f"embargo status must be one of {EMBARGO_STATUSES}")
        with self._lock:
            ds = self._get_ds(dandiset_id)
            ds.embargo_status = status
            ds.modified = max(ds.modified, now())
            if status != "OPEN" and ds.embargo_end_date is None:
                ds.embargo_end_date = (now() + timedelta(days=730)).date().isoformat()
            for a in self._dandiset_assets(ds):
                a.rev += 1  # access metadata changes

    def set_embargoed(self, dandiset_id: str, embargoed: bool) -> None:
        """Embargo (new uploads go to the private bucket) or unembargo a dandiset.

        Unembargoing copies every embargoed blob and zarr file of the dandiset to the
        public bucket (same key) and marks it public, as the archive's unembargo task
        does (there by removing an object tag).  Embargoing an open dandiset, which
        the real archive does not allow, only changes access control and where new
        uploads go.
        """
        with self._lock:
            ds = self._get_ds(dandiset_id)
            if embargoed:
                self.set_embargo_status(dandiset_id, "EMBARGOED")
                return
            self._ensure_buckets()
            c = self.s3.client()
            for a in self._dandiset_assets(ds):
                if a.blob is not None and a.blob.embargoed:
                    b = a.blob
                    if b.uploaded:
                        r = c.copy_object(
                            Bucket=self.bucket,
                            Key=b.key,
                            CopySource={"Bucket": b.bucket, "Key": b.key},
                        )
                        b.version_id = r.get("VersionId")
                    b.bucket = self.bucket
                    b.embargoed = False
                    b.rev += 1
                if a.zarr is not None and a.zarr.bucket != self.bucket:
                    z = a.zarr
                    for rel, f in z.files.items():
                        key = f"zarr/{z.zarr_id}/{rel}"
                        r = c.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": z.bucket, "Key": key})
                        f.version_id = r.get("VersionId")
                    z.bucket = self.bucket
                    z.rev += 1
            ds.embargo_end_date = None
            self.set_embargo_status(dandiset_id, "OPEN")

    def _dandiset_assets(self, ds: DandisetRecord) -> list[AssetRecord]:
        seen: dict[str, AssetRecord] = {}
        for ver in [ds.draft, *ds.published]:
            for a in ver.assets.values():
                seen[a.asset_id] = a
        for a in self._assets.values():
            if a.dandiset_id == ds.identifier:
                seen.setdefault(a.asset_id, a)
        return list(seen.values())

    def publish(self, dandiset_id: str, *, when: Optional[datetime] = None) -> str:
        """Publish the draft as ``0.YYMMDD.HHMM`` (next free minute); return the version.

        Freezes the draft's asset map and rendered metadata (doi
        ``10.80507/dandi.<id>/<version>``, citation, assetsSummary, datePublished).
        Embargoed dandisets cannot be published (ValueError), as on the archive.
        """
        t = aware(when)
        with self._lock:
            ds = self._get_ds(dandiset_id)
            if ds.embargo_status != "OPEN":
                raise ValueError(f"dandiset {ds.identifier} is embargoed; it cannot be published")
            existing = {v.version for v in ds.published}
            vt = t
            while (version := vt.strftime("0.%y%m%d.%H%M")) in existing:
                vt += timedelta(minutes=1)
            published_by = self._published_by(t)
            for a in ds.draft.assets.values():
                if not a.published:
                    # like publish_asset(): metadata gains publishedBy/datePublished, and
                    # saving the row bumps the asset's `modified`
                    a.metadata = {
                        **a.metadata,
                        "publishedBy": published_by,
                        "datePublished": t.isoformat(),
                    }
                    a.published = True
                    a.published_at = t
                    a.modified = t
                    a.rev += 1
            ver = VersionRecord(
                pk=self._next_pk(),
                dandiset_id=ds.identifier,
                version=version,
                name=ds.draft.name,
                created=t,
                modified=t,
                metadata={},
                assets=dict(ds.draft.assets),
                status="Valid",
                doi=f"{DOI_PREFIX}/dandi.{ds.identifier}/{version}",
            )
            md = self._render_version_metadata(ds, ver, source=ds.draft.metadata)
            md["datePublished"] = t.isoformat()
            md["publishedBy"] = published_by
            ver.metadata = md
            ds.published.append(ver)
            ds.draft.modified = max(ds.draft.modified, t)
            ds.draft.rev += 1
            ds.draft.status = "Published"
            return version

    @staticmethod
    def _published_by(when: datetime) -> dict[str, Any]:
        return {
            "id": f"urn:uuid:{uuid.uuid4()}",
            "name": "DANDI publish",
            "startDate": when.isoformat(),
            "endDate": when.isoformat(),
            "wasAssociatedWith": [
                {
                    "id": f"urn:uuid:{uuid.uuid4()}",
                    "identifier": "RRID:SCR_017571",
                    "name": "DANDI API",
                    "version": "0.1.0",
                    "schemaKey": "Software",
                }
            ],
            "schemaKey": "PublishActivity",
        }

"""The archive's Zarr manifests: one per Zarr state, published in its bucket as dandi-archive designs it.

Why: ``audit --recheck`` compares the archive's manifest of each Zarr state the mirror recorded with
what the mirror listed (issue 59, dandi-archive#2536: manifests that drift from the API).  The design
(dandi-archive ``doc/design/zarr-manifests.md``) has the archive write one whenever it computes a
Zarr's checksum, at ``zarr-manifest/{id[0:3]}/{id[3:6]}/{id}/{checksum}.json`` in its bucket,
world-readable unless the Zarr is embargoed; so the stand-in writes it, in the Zarr's own bucket,
each time a Zarr is added or changed, from the objects it holds (their S3 versionId, time, size and
MD5 ETag).  The document is the shared format (:mod:`neuromirror.util.zarr_manifest`), not a copy.

Test hooks make an archive wrong on purpose: :meth:`ZarrManifests.drift_manifest` republishes a
manifest whose entries disagree with the objects, :meth:`ZarrManifests.withhold_manifest` removes
one (a Zarr the archive publishes no manifest for).
"""

from __future__ import annotations

import io
from typing import Iterable, Mapping, Optional

from neuromirror.standins.dandi.model import ZarrRecord
from neuromirror.standins.dandi.state import ArchiveState
from neuromirror.util.zarr_manifest import ManifestEntry, write_document

PREFIX = "zarr-manifest"


def manifest_key(zarr_id: str, checksum: str) -> str:
    """The S3 key of a Zarr state's manifest in the archive's bucket (the design's layout)."""
    return f"{PREFIX}/{zarr_id[:3]}/{zarr_id[3:6]}/{zarr_id}/{checksum}.json"


def _entries(z: ZarrRecord) -> list[ManifestEntry]:
    return [ManifestEntry(rel, f.version_id or "null", f.last_modified, f.size, f.md5) for rel, f in z.files.items()]


class ZarrManifests(ArchiveState):
    """Publishing the manifest of each Zarr state (``publish_zarr_manifests`` False: none, as an archive
    that does not publish them)."""

    publish_zarr_manifests = True

    def _publish_manifest(self, z: ZarrRecord, entries: Optional[list[ManifestEntry]] = None) -> None:
        """The manifest of ``z`` as it is now (or of ``entries``: a drifted one) put in its bucket."""
        if not self.publish_zarr_manifests or not z.checksum:
            return
        body = io.StringIO()
        write_document(body, _entries(z) if entries is None else entries, z.checksum)
        self.s3.put(
            z.bucket, manifest_key(z.zarr_id, z.checksum), body.getvalue().encode(), ContentType="application/json"
        )

    def drift_manifest(
        self,
        zarr_id: str,
        *,
        resize: Mapping[str, int] = {},
        etag: Mapping[str, str] = {},
        version: Mapping[str, str] = {},
        drop: Iterable[str] = (),
        extra: Mapping[str, int] = {},
    ) -> None:
        """Republish the current state's manifest wrong: paths given another size, ETag or versionId,
        paths left out, and ``extra`` paths (with a size) no object of the Zarr has."""
        with self._lock:
            z = self._zarrs[zarr_id]
            gone = set(drop)
            rows = []
            for e in _entries(z):
                if e.path not in gone:
                    rows.append(
                        e._replace(
                            size=resize.get(e.path, e.size),
                            etag=etag.get(e.path, e.etag),
                            version_id=version.get(e.path, e.version_id),
                        )
                    )
            when = max(f.last_modified for f in z.files.values())
            rows += [ManifestEntry(p, "null", when, n, "0" * 32) for p, n in extra.items()]
            self._publish_manifest(z, rows)

    def withhold_manifest(self, zarr_id: str) -> None:
        """The current state's manifest removed from the bucket, every S3 version of it: never published."""
        with self._lock:
            z = self._zarrs[zarr_id]
            key = manifest_key(z.zarr_id, z.checksum)
        c = self.s3.client()
        listed = c.list_object_versions(Bucket=z.bucket, Prefix=key)
        for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
            c.delete_object(Bucket=z.bucket, Key=key, VersionId=v["VersionId"])

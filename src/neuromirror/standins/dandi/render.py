"""The archive's answers as JSON: asset items and metadata, versions, dandisets, the server info.

Why apart from the routes: the same renderings serve several routes (an asset's
metadata alone, in ``/info`` and in a listing with ``metadata=1``) and publishing
freezes the rendered version metadata, so they are the archive's serializers, not
any one view's.

Per-request work is kept small: each asset caches its JSON list item and its full
metadata as bytes, each version caches its sorted/filtered asset lists, and a page
is a ``b",".join`` of cached fragments (100,000 assets list at page_size 1000 in
about a second).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Mapping

from neuromirror.standins.dandi.formats import ALLOWED_SCHEMAS, DOI_PREFIX, SCHEMA_VERSION, drf_dt, dumps
from neuromirror.standins.dandi.model import AssetRecord, DandisetRecord, VersionRecord
from neuromirror.standins.dandi.state import ArchiveState


class Rendering(ArchiveState):
    """The serializers: records to the JSON dandi-archive answers with (cached where it counts)."""

    def _asset_item(self, a: AssetRecord) -> bytes:
        """The asset's list item JSON (AssetSerializer without metadata), cached."""
        key = (a.rev, a.backing_rev)
        if a._item is None or a._item[0] != key:
            blob = f'"{a.blob.blob_id}"' if a.blob is not None else "null"
            zarr = f'"{a.zarr.zarr_id}"' if a.zarr is not None else "null"
            path = json.dumps(a.path, ensure_ascii=False)
            a._item = (
                key,
                (
                    f'{{"asset_id":"{a.asset_id}","blob":{blob},"zarr":{zarr},"path":{path},'
                    f'"size":{a.size},"created":"{drf_dt(a.created)}",'
                    f'"modified":"{drf_dt(a.modified)}"}}'
                ).encode(),
            )
        return a._item[1]

    def _access_json(self, a: AssetRecord) -> str:
        if not self._is_embargoed_asset(a):
            return '[{"schemaKey":"AccessRequirements","status":"dandi:OpenAccess"}]'
        access: dict[str, Any] = {
            "schemaKey": "AccessRequirements",
            "status": "dandi:EmbargoedAccess",
        }
        ds = self._dandisets.get(a.dandiset_id)
        if ds is not None and ds.embargo_end_date:
            access["embargoedUntil"] = ds.embargo_end_date
        return json.dumps([access])

    def _asset_metadata(self, a: AssetRecord) -> bytes:
        """Full asset metadata (``Asset.full_metadata``) as JSON bytes, cached.

        Assembled from the cached JSON of the user part plus the computed fields
        formatted directly (all of them are hex, uuids, numbers or quoted URLs), which
        is several times faster than ``json.dumps`` of the merged dict for 100k assets.
        """
        override = self._metadata_overrides.get(a.asset_id)
        if override is not None:
            return override
        key = (a.rev, a.backing_rev, self._epoch)
        if a._meta is None or a._meta[0] != key:
            if a._user_json is None or a._user_json[0] != a.rev:
                a._user_json = (a.rev, dumps(a.metadata))
            user = a._user_json[1]
            if a.blob is not None:
                b = a.blob
                digest = f'{{"dandi:dandi-etag":"{b.etag}"'
                if b.sha256_ready:
                    digest += f',"dandi:sha2-256":"{b.sha256}"'
                digest += "}"
            else:
                assert a.zarr is not None
                digest = f'{{"dandi:dandi-zarr-checksum":"{a.zarr.reported_checksum}"}}'
            schema = a.metadata.get("schemaVersion", SCHEMA_VERSION)
            computed = (
                f'"id":"dandiasset:{a.asset_id}","access":{self._access_json(a)},'
                f'"path":{json.dumps(a.path, ensure_ascii=False)},"identifier":"{a.asset_id}",'
                f'"contentUrl":[{json.dumps(f"{self.api_url}/assets/{a.asset_id}/download/")},'
                f"{json.dumps(self._s3_url(a))}],"
                f'"contentSize":{a.size},"digest":{digest},'
                f'"@context":{json.dumps(f"https://raw.githubusercontent.com/dandi/schema/master/releases/{schema}/context.json")}}}'
            ).encode()
            sep = b"," if len(user) > 2 else b""
            a._meta = (key, user[:-1] + sep + computed)
        return a._meta[1]

    def _asset_item_with_metadata(self, a: AssetRecord) -> bytes:
        item = self._asset_item(a)
        return item[:-1] + b',"metadata":' + self._asset_metadata(a) + b"}"

    @staticmethod
    def _contact_person(md: Mapping[str, Any]) -> str:
        contributors = md.get("contributor")
        if isinstance(contributors, list):
            for c in contributors:
                if isinstance(c, dict):
                    roles = c.get("roleName")
                    if c.get("name") is not None and roles and "dcite:ContactPerson" in roles:
                        return str(c["name"])
        return ""

    @staticmethod
    def _citation(md: Mapping[str, Any], year: int) -> str:
        name = str(md.get("name", "")).rstrip(".")
        url = f"https://doi.org/{md['doi']}" if "doi" in md else md.get("url", "")
        version = md.get("version", "")
        cites = [
            c["name"]
            for c in md.get("contributor", []) or []
            if isinstance(c, dict) and c.get("includeInCitation") and c.get("name")
        ]
        if cites:
            return f"{'; '.join(cites)} ({year}) {name} (Version {version}) [Data set]. DANDI Archive. {url}"
        return f"{name} ({year}). (Version {version}) [Data set]. DANDI Archive. {url}"

    def _render_version_metadata(
        self, ds: DandisetRecord, ver: VersionRecord, *, source: Mapping[str, Any]
    ) -> dict[str, Any]:
        access: dict[str, Any] = {
            "schemaKey": "AccessRequirements",
            "status": "dandi:OpenAccess" if ds.embargo_status == "OPEN" else "dandi:EmbargoedAccess",
        }
        if ds.embargo_end_date:
            access["embargoedUntil"] = ds.embargo_end_date
        md: dict[str, Any] = copy.deepcopy(dict(source))
        md.update(
            {
                "@context": "https://raw.githubusercontent.com/dandi/schema/master/releases/"
                f"{md.get('schemaVersion', SCHEMA_VERSION)}/context.json",
                "name": ver.name,
                "identifier": f"DANDI:{ds.identifier}",
                "version": ver.version,
                "id": f"DANDI:{ds.identifier}/{ver.version}",
                "repository": self.webui_url,
                "url": f"{self.webui_url}/dandiset/{ds.identifier}/{ver.version}",
                "dateCreated": ds.created.isoformat(),
                "access": [access],
            }
        )
        md["assetsSummary"] = {
            "schemaKey": "AssetsSummary",
            "numberOfBytes": ver.size,
            "numberOfFiles": ver.asset_count,
        }
        if ver.doi:
            md["doi"] = ver.doi
        md["citation"] = self._citation(md, ver.created.year)
        return md

    def _version_metadata(self, ds: DandisetRecord, ver: VersionRecord) -> dict[str, Any]:
        if ver.version == "draft":
            return self._render_version_metadata(ds, ver, source=ver.metadata)
        return ver.metadata

    def _dandiset_brief(self, ds: DandisetRecord) -> dict[str, Any]:
        return {
            "identifier": ds.identifier,
            "created": drf_dt(ds.created),
            "modified": drf_dt(ds.modified),
            "contact_person": self._contact_person(self._version_metadata(ds, ds.latest())),
            "embargo_status": ds.embargo_status,
            "star_count": 0,
            "is_starred": False,
        }

    def _version_short(self, ver: VersionRecord) -> dict[str, Any]:
        return {
            "version": ver.version,
            "name": ver.name,
            "asset_count": ver.asset_count,
            "size": ver.size,
            "status": ver.status,
            "created": drf_dt(ver.created),
            "modified": drf_dt(ver.modified),
        }

    def _version_full(self, ds: DandisetRecord, ver: VersionRecord, *, with_dandiset: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": ver.version,
            "name": ver.name,
            "asset_count": ver.asset_count,
            "active_uploads": 0,
            "size": ver.size,
            "status": ver.status,
            "created": drf_dt(ver.created),
            "modified": drf_dt(ver.modified),
        }
        if with_dandiset:
            d["dandiset"] = self._dandiset_brief(ds)
        d["release_notes"] = ver.metadata.get("releaseNotes", "") if ver.version != "draft" else ""
        return d

    def _dandiset_detail(self, ds: DandisetRecord) -> dict[str, Any]:
        d = self._dandiset_brief(ds)
        d["most_recent_published_version"] = (
            self._version_full(ds, ds.published[-1], with_dandiset=False) if ds.published else None
        )
        d["draft_version"] = self._version_full(ds, ds.draft, with_dandiset=False)
        return d

    def _dandiset_list_item(self, ds: DandisetRecord) -> dict[str, Any]:
        d = self._dandiset_brief(ds)
        d["most_recent_published_version"] = self._version_short(ds.published[-1]) if ds.published else None
        d["draft_version"] = self._version_short(ds.draft)
        return d

    def _info(self) -> dict[str, Any]:
        return {
            "instance_config": {
                "instance_name": "DANDI",
                "instance_identifier": "RRID:SCR_017571",
                "instance_url": self.webui_url,
                "doi_prefix": DOI_PREFIX,
                "licenses": ["spdx:CC0-1.0", "spdx:CC-BY-4.0"],
            },
            "schema_version": SCHEMA_VERSION,
            "schema_url": f"{self.api_url}/schemas/?model=Dandiset",
            "allowed_schema_versions": list(ALLOWED_SCHEMAS),
            "version": self.server_version,
            "cli-minimal-version": "0.60.0",
            "cli-requires-python": ">=3.10",
            "cli-bad-versions": [],
            "services": {
                "api": {"url": self.api_url},
                "webui": {"url": self.webui_url},
                "jupyterhub": {"url": f"{self.root_url}/hub"},
            },
        }

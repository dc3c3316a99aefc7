"""The ``/zarr/`` route's JSON documents: the Zarrs recorded, a Zarr's states, a state's manifest (the
versioned-Zarr design's per-version manifest: path -> the S3 object recorded, and its pinned URL)."""

from __future__ import annotations

from typing import Callable, Optional
from urllib.parse import quote

from neuromirror.read.view_tree import Tree
from neuromirror.read.zarr_versions.replies import Reply, as_json, shard
from neuromirror.util.dates import iso_z

#: the route's root, as the design names it
ROUTE = "/zarr"
_FIELDS = ("versionId", "lastModified", "size", "ETag")


class Documents:
    """The route's documents over the view's tree; :class:`~.route.ZarrVersions` names a state (``_names``)."""

    tree: Tree
    public: Callable[[str], bool]

    def _names(self, zarr_id: str, checksum: Optional[str] = None, commit: Optional[str] = None) -> tuple:
        raise NotImplementedError

    def _zarrs(self, base: str) -> Reply:
        """Every Zarr the mirror recorded a state of (its manifests' directories), each by its versions' URL."""
        index = self.tree.manifests.index
        ids = [
            zarr_id
            for p1 in (index([]) or {}).get("directories", [])
            for p2 in (index([p1]) or {}).get("directories", [])
            for zarr_id in (index([p1, p2]) or {}).get("directories", [])
        ]
        return as_json({"zarrs": [{"zarrId": z, "url": f"{base}{ROUTE}/{quote(z)}/"} for z in ids]})

    def _versions(self, zarr_id: str, base: str) -> Reply:
        """The Zarr's states the mirror recorded, oldest first: each by checksum and commit, its root's URL."""
        got = self.tree.manifests.dated_node(shard(zarr_id))
        dates = got[3] if got else {}
        names = sorted(dates, key=lambda n: (dates[n], n)) if got else []
        rows = []
        for name in names:
            checksum = name[: -len(".zarr")]
            _, commit = self._names(zarr_id, checksum=checksum)
            url = f"{base}{ROUTE}/{quote(zarr_id)}/{checksum}/"
            rows.append({"version": checksum, "commit": commit, "recorded": iso_z(dates[name]), "url": url})
        return as_json({"zarrId": zarr_id, "versions": rows})

    def _manifest(self, zarr_id: str, checksum: str, prefix: str, base: str) -> Reply:
        """The design's per-version manifest (of the files under ``prefix``): path -> the S3 object recorded."""
        doc = self.tree.manifests.state(zarr_id, checksum) or {}
        entries = {
            f.path: {**dict(zip(_FIELDS, row)), "url": f.url if f.url and self.public(f.url) else None}
            for row, f in self.tree.manifests.rows(zarr_id, checksum, prefix)
        }
        _, commit = self._names(zarr_id, checksum=checksum)
        sharded = "/".join(shard(zarr_id))
        return as_json(
            {
                "zarrId": zarr_id,
                "version": checksum,
                "zarrChecksum": checksum,
                "commit": commit,
                "path": prefix,
                "url": f"{base}{ROUTE}/{quote(zarr_id)}/{checksum}/{quote(prefix)}",
                "zarrManifest": f"{base}/zarr-manifests/{quote(sharded)}/{checksum}.json",
                "statistics": doc.get("statistics", {}),
                "fields": [*_FIELDS, "url"],
                "entries": entries,
            }
        )

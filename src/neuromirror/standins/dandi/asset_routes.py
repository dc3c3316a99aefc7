"""The REST routes of assets and Zarrs: listings, paths, metadata, download redirects, Zarr files.

Why these answer as they do: the asset listing is what a mirror walks for 10^5 assets
(lazy pagination, cached per version and order), the download routes redirect to a
presigned S3 URL a mirror must not store, and the Zarr ``files`` listing is cursor
paged; each follows dandi-archive's views (``asset.py``, ``zarr/views``).
"""

from __future__ import annotations

import bisect
import re
from pathlib import PurePosixPath
from typing import Any, Callable, Optional

from neuromirror.standins.dandi.access import Access
from neuromirror.standins.dandi.formats import ASSET_ORDERS, dumps
from neuromirror.standins.dandi.model import AssetRecord, VersionRecord, ZarrRecord
from neuromirror.standins.dandi.protocol import ApiError, Req, Resp, not_found, paginate
from neuromirror.standins.dandi.render import Rendering

#: an order's field -> the sort key (ties broken by creation sequence, as the archive's ids do)
_SORT_KEYS: dict[str, Callable[[AssetRecord], Any]] = {
    "path": lambda a: a.path,
    "modified": lambda a: (a.modified, a.seq),
    "created": lambda a: (a.created, a.seq),
}


def _narrowed(
    ver: VersionRecord, items: list[AssetRecord], path: str, glob: Optional[str], zarr_only: bool
) -> list[AssetRecord]:
    """``items`` narrowed as the archive's filters do: ``path`` exact (else a case-blind prefix),
    Zarr assets only, a case-blind ``glob`` of ``*``."""
    if path:
        exact = ver.assets.get(path)
        if exact is not None:
            items = [exact]
        else:
            lp = path.lower()
            items = [a for a in items if a.path_lower.startswith(lp)]
    if zarr_only:
        items = [a for a in items if a.zarr is not None]
    if glob is not None:
        rx = re.compile("^" + re.escape(glob).replace("\\*", ".*") + "$", re.IGNORECASE)
        items = [a for a in items if rx.match(a.path)]
    return items


class AssetRoutes(Rendering, Access):
    """Route handlers ``_r_*`` for ``.../assets/...``, ``/api/assets/...`` and ``/api/zarr/...``."""

    def _filtered_assets(
        self, ver: VersionRecord, order: str, path: str, glob: Optional[str], zarr_only: bool
    ) -> list[AssetRecord]:
        """The version's assets in ``order``, narrowed by path, glob and Zarr-ness; cached per version
        revision (a mirror walks the same listing page by page)."""
        key = (order, path, glob, zarr_only)
        hit = ver._lists.get(key)
        if hit is not None and hit[0] == ver.rev:
            return hit[1]
        base_key = (order, "", None, False)
        items = _narrowed(ver, self._ordered_assets(ver, order), path, glob, zarr_only)
        if len(ver._lists) > 64:
            ver._lists = {base_key: ver._lists[base_key]}
        ver._lists[key] = (ver.rev, items)
        return items

    def _ordered_assets(self, ver: VersionRecord, order: str) -> list[AssetRecord]:
        """Every asset of the version in ``order`` (a field, ``-`` first for descending), cached per revision."""
        base_key = (order, "", None, False)
        base_hit = ver._lists.get(base_key)
        if base_hit is not None and base_hit[0] == ver.rev:
            return base_hit[1]
        items = sorted(ver.assets.values(), key=_SORT_KEYS.get(order.lstrip("-"), _SORT_KEYS["created"]))
        if order.startswith("-"):
            items.reverse()
        ver._lists = {k: v for k, v in ver._lists.items() if v[0] == ver.rev}
        ver._lists[base_key] = (ver.rev, items)
        return items

    def _r_assets(self, req: Req, ds: str, v: str) -> Resp:
        _, ver = self._ver_for(req, ds, v)
        order = req.query.get("order") or "created"
        if order not in ASSET_ORDERS:
            order = "created"
        with_md = req.flag("metadata", False)
        zarr_only = req.flag("zarr", False)
        items = self._filtered_assets(ver, order, req.query.get("path", ""), req.query.get("glob"), zarr_only)
        render = self._asset_item_with_metadata if with_md else self._asset_item
        return paginate(req, items, render, lazy_count=True)

    def _r_paths(self, req: Req, ds: str, v: str) -> Resp:
        _, ver = self._ver_for(req, ds, v)
        prefix = req.query.get("path_prefix", "")
        folders: dict[str, list[int]] = {}
        files: dict[str, AssetRecord] = {}
        for a in ver.assets.values():
            if not a.path.startswith(prefix):
                continue
            rest = a.path[len(prefix) :]
            head, sep, _ = rest.partition("/")
            if sep:
                agg = folders.setdefault(prefix + head, [0, 0])
                agg[0] += 1
                agg[1] += a.size
            else:
                files[a.path] = a
        if prefix and not folders and not files:
            raise not_found("Specified path not found.")
        rows: list[dict[str, Any]] = []
        for p, (n, s) in folders.items():
            rows.append({"path": p, "version": ver.pk, "aggregate_files": n, "aggregate_size": s, "asset": None})
        for p, a in files.items():
            rows.append(
                {
                    "path": p,
                    "version": ver.pk,
                    "aggregate_files": 1,
                    "aggregate_size": a.size,
                    "asset": {"asset_id": a.asset_id, "url": self._s3_url(a)},
                }
            )
        rows.sort(key=lambda r: r["path"])
        return paginate(req, rows, dumps, lazy_count=False)

    def _r_nested_asset(self, req: Req, ds: str, v: str, aid: str) -> Resp:
        return Resp(200, self._asset_metadata(self._nested(req, ds, v, aid)))

    def _r_nested_asset_info(self, req: Req, ds: str, v: str, aid: str) -> Resp:
        return Resp(200, self._asset_item_with_metadata(self._nested(req, ds, v, aid)))

    def _r_nested_download(self, req: Req, ds: str, v: str, aid: str) -> Resp:
        return self._download(self._nested(req, ds, v, aid))

    def _r_asset(self, req: Req, aid: str) -> Resp:
        return Resp(200, self._asset_metadata(self._top_asset(req, aid)))

    def _r_asset_info(self, req: Req, aid: str) -> Resp:
        return Resp(200, self._asset_item_with_metadata(self._top_asset(req, aid)))

    def _r_asset_download(self, req: Req, aid: str) -> Resp:
        return self._download(self._top_asset(req, aid))

    def _download(self, a: AssetRecord) -> Resp:
        if a.blob is None:
            raise ApiError(
                400,
                "Unable to provide download link for zarr assets. Please browse the zarr files directly to do so.",
            )
        name = PurePosixPath(a.path).name.replace('"', "")
        url = self.s3.presigned_url(
            a.blob.bucket,
            a.blob.key,
            params={"ResponseContentDisposition": f'attachment; filename="{name}"'},
        )
        return Resp(302, b"", [("Location", url)], content_type="text/html; charset=utf-8")

    def _zarr_json(self, z: ZarrRecord) -> dict[str, Any]:
        return {
            "name": z.name,
            "dandiset": z.dandiset_id,
            "zarr_id": z.zarr_id,
            "status": "Complete",
            "checksum": z.reported_checksum,
            "file_count": z.file_count,
            "size": z.size,
            "upload_type": z.upload_type,
        }

    def _zarrs_in_order(self, dandiset_id: Optional[str] = None) -> list[ZarrRecord]:
        """The Zarr archives (of one dandiset) in the archive's list order (``created``), sorted once per new Zarr.

        A dandiset of 20,000 Zarrs is listed in 20 pages: sorting and filtering them all
        again for each page (~0.15 s) made the stand-in, not the mirror, the slow side of
        a resync.
        """
        hit = self._zarr_order
        if hit is None or hit[0] != len(self._zarrs):
            # stable: Zarrs created at the same time stay in the order they were made (as the
            # archive's timestamps, which differ by microseconds, would have them)
            ordered = sorted(self._zarrs.values(), key=lambda z: z.created)
            hit = self._zarr_order = (len(self._zarrs), {None: ordered})
        lists = hit[1]
        if dandiset_id not in lists:
            lists[dandiset_id] = [z for z in lists[None] if z.dandiset_id == dandiset_id]
        return lists[dandiset_id]

    def _zarr_item(self, z: ZarrRecord) -> bytes:
        if z._item is None or z._item[0] != z.rev:
            z._item = (z.rev, dumps(self._zarr_json(z)))
        return z._item[1]

    def _r_zarrs(self, req: Req) -> Resp:
        visible = {i: self._visible(req, ds) for i, ds in self._dandisets.items()}  # as get_visible_dandisets
        if "dandiset" in req.query:
            try:
                want = self._norm_id(req.query["dandiset"])
            except ValueError:
                raise ApiError(400, {"dandiset": ["A valid Dandiset identifier is required."]}) from None
            zs = self._zarrs_in_order(want) if visible.get(want) else []
        else:
            zs = [z for z in self._zarrs_in_order() if visible.get(z.dandiset_id)]
        if "name" in req.query:
            zs = [z for z in zs if z.name == req.query["name"]]
        return paginate(req, zs, self._zarr_item, lazy_count=False)

    def _r_zarr(self, req: Req, zid: str) -> Resp:
        return Resp(200, dumps(self._zarr_json(self._zarr_for(req, zid))))

    def _r_zarr_files(self, req: Req, zid: str) -> Resp:
        z = self._zarr_for(req, zid)
        raw_prefix = req.query.get("prefix", "").lstrip("/")
        if any(seg == ".." for seg in raw_prefix.replace("\\", "/").split("/")):
            raise ApiError(400, {"prefix": ['Zarr path cannot contain ".." components.']})
        prefix = raw_prefix.rstrip("/")
        after = req.query.get("after", "").lstrip("/").rstrip("/")
        try:
            limit = int(req.query.get("limit", "1000") or "1000")
        except ValueError:
            raise ApiError(400, {"limit": ["A valid integer is required."]}) from None
        if not 0 <= limit <= 1000:
            raise ApiError(400, {"limit": ["Ensure this value is between 0 and 1000."]})
        if req.method == "HEAD" or req.flag("download", False):
            url = self.s3.presigned_url(z.bucket, f"zarr/{z.zarr_id}/{raw_prefix}")
            return Resp(302, b"", [("Location", url)], content_type="text/html; charset=utf-8")
        keys = z.sorted_keys()
        i = bisect.bisect_left(keys, prefix)
        if after:
            i = max(i, bisect.bisect_right(keys, after))
        results: list[dict[str, Any]] = []
        truncated = False
        while i < len(keys) and keys[i].startswith(prefix):
            if len(results) >= limit:
                truncated = True
                break
            f = z.files[keys[i]]
            results.append({"Key": keys[i], "LastModified": str(f.last_modified), "ETag": f.md5, "Size": f.size})
            i += 1
        nxt = req.url_with(after=results[-1]["Key"]) if truncated and results else None
        return Resp(200, dumps({"next": nxt, "results": results}))

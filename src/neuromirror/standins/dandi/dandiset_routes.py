"""The REST routes of the archive and its dandisets: server info, token, dandisets, versions, publish.

Why these answer as they do: ``dandi`` reads the server info before anything else,
lists dandisets with DRF's filters and ordering, and reads a version's metadata and
``/info``; the answers follow dandi-archive's views (``dandiapi/api/views``) so that
the unmodified client, and hence the mirror, meet what they meet in production.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from neuromirror.standins.dandi.access import Access
from neuromirror.standins.dandi.dandisets import DandisetChanges
from neuromirror.standins.dandi.formats import dumps
from neuromirror.standins.dandi.model import DandisetRecord
from neuromirror.standins.dandi.protocol import FORBIDDEN, NOT_AUTHENTICATED, ApiError, Req, Resp, paginate

#: the list's ``ordering`` fields (``-`` first: descending); another leaves the creation order
_ORDER_KEYS: dict[str, Callable[[DandisetRecord], Any]] = {
    "id": lambda d: d.identifier,
    "name": lambda d: d.latest().name,
    "modified": lambda d: d.latest().modified,
    "size": lambda d: d.latest().size,
    "stars": lambda d: 0,
}


def _filtered(
    req: Req, items: list[DandisetRecord], show_draft: bool, show_empty: bool, show_embargoed: bool
) -> list[DandisetRecord]:
    """The visible dandisets the list's filters keep (``user=me``, ``draft``, ``empty``, ``embargoed``)."""
    if req.query.get("user") == "me":
        items = items if req.user == "owner" else []
    if not show_draft:
        items = [d for d in items if d.published]
    if not show_empty:
        items = [d for d in items if d.latest().asset_count > 0]
    if not show_embargoed:
        items = [d for d in items if d.embargo_status == "OPEN"]
    return items


def _ordered(items: list[DandisetRecord], ordering: str) -> list[DandisetRecord]:
    """The dandisets in the list's ``ordering``, as DRF's OrderingFilter sorts them."""
    key = _ORDER_KEYS.get(ordering.lstrip("-"))
    return sorted(items, key=key, reverse=ordering.startswith("-")) if key is not None else items


class DandisetRoutes(DandisetChanges, Access):
    """Route handlers ``_r_*`` for ``/server-info``, ``/api/info``, ``/api/auth/token`` and ``/api/dandisets/...``."""

    def _r_info(self, req: Req) -> Resp:
        return Resp(200, dumps(self._info()))

    def _r_auth_token(self, req: Req) -> Resp:
        if req.user is None:
            raise ApiError(401, NOT_AUTHENTICATED, [("WWW-Authenticate", "Token")])
        token = self.api_token if req.user == "owner" and self.api_token else "stand-in-token"
        return Resp(200, dumps(token))

    def _r_dandisets(self, req: Req) -> Resp:
        shown = (req.flag("draft", True), req.flag("empty", True))  # read first: a bad value is a 400 first
        show_embargoed = req.flag("embargoed", False)
        if show_embargoed and req.user is None and self.api_token is not None:
            raise ApiError(
                401,
                "Authentication credentials must be provided when attempting to access embargoed dandisets",
            )
        items = sorted(self._dandisets.values(), key=lambda d: (d.created, d.identifier))
        items = _filtered(req, [d for d in items if self._visible(req, d)], *shown, show_embargoed)
        search = req.query.get("search", "").replace("\x00", "").strip()
        if search:
            items = self._searched(items, search.lower().split())
        items = _ordered(items, req.query.get("ordering") or "")
        return paginate(req, items, lambda d: dumps(self._dandiset_list_item(d)), lazy_count=False)

    def _searched(self, items: list[DandisetRecord], words: list[str]) -> list[DandisetRecord]:
        """The dandisets whose versions' metadata hold every word (case-blind), as the archive's search."""

        def hay(d: DandisetRecord) -> str:
            mds = [self._version_metadata(d, v) for v in [d.draft, *d.published]]
            return json.dumps(mds).lower()

        return [d for d in items if all(w in hay(d) for w in words)]

    def _r_dandiset(self, req: Req, ds: str) -> Resp:
        return Resp(200, dumps(self._dandiset_detail(self._ds_for(req, ds))))

    def _r_versions(self, req: Req, ds: str) -> Resp:
        d = self._ds_for(req, ds)
        versions = sorted([d.draft, *d.published], key=lambda v: (v.created, v.pk))
        if req.query.get("order") == "-created":
            versions.reverse()
        return paginate(req, versions, lambda v: dumps(self._version_full(d, v)), lazy_count=False)

    def _r_version_metadata(self, req: Req, ds: str, v: str) -> Resp:
        d, ver = self._ver_for(req, ds, v)
        return Resp(200, dumps(self._version_metadata(d, ver)))

    def _r_version_info(self, req: Req, ds: str, v: str) -> Resp:
        d, ver = self._ver_for(req, ds, v)
        info = self._version_full(d, ver)
        md = self._version_metadata(d, ver)
        info.update(
            {
                "asset_validation_errors": [],
                "version_validation_errors": [],
                "metadata": md,
                "contact_person": self._contact_person(md),
            }
        )
        return Resp(200, dumps(info))

    def _r_publish(self, req: Req, ds: str, v: str) -> Resp:
        if self.api_token is not None:
            if req.user is None:
                raise ApiError(401, NOT_AUTHENTICATED, [("WWW-Authenticate", "Token")])
            if req.user != "owner":
                raise ApiError(403, FORBIDDEN)
        d, _ = self._ver_for(req, ds, v)
        if v != "draft":
            raise ApiError(405, "Only draft versions can be published")
        if d.embargo_status != "OPEN":
            raise ApiError(400, "Dandiset is embargoed")
        self.publish(d.identifier)
        return Resp(202, b"")

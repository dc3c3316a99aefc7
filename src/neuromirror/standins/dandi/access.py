"""Who may read what: DRF token authentication and the embargo's 401/403, per dandiset, asset and Zarr.

Why in one place: the real archive refuses an *invalid* token on every route, public or
not, and answers 401 to the anonymous and 403 to a valid non-owner on embargoed
data; a mirror's handling of credentials is only tested if every route refuses alike.
The lookups here find a request's dandiset, version, asset or Zarr and check access
on the way.
"""

from __future__ import annotations

from typing import Optional

from neuromirror.standins.dandi.model import AssetRecord, DandisetRecord, VersionRecord, ZarrRecord
from neuromirror.standins.dandi.protocol import FORBIDDEN, NOT_AUTHENTICATED, ApiError, Req, not_found
from neuromirror.standins.dandi.state import ArchiveState


class Access(ArchiveState):
    """Authentication and the lookups of the routes, refusing what the caller may not see."""

    def _authenticate(self, header: Optional[str]) -> Optional[str]:
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0].lower() != "token":
            return None  # other schemes are not ours (DRF: next authenticator)
        if len(parts) != 2:
            raise ApiError(401, "Invalid token header. No credentials provided.", [("WWW-Authenticate", "Token")])
        key = parts[1]
        if self.api_token is None or key == self.api_token:
            return "owner"
        if key in self.other_tokens:
            return "other"
        raise ApiError(401, "Invalid token.", [("WWW-Authenticate", "Token")])

    def _check_access(self, req: Req, embargoed: bool) -> None:
        if not embargoed or self.api_token is None:
            return
        if req.user is None:
            raise ApiError(401, NOT_AUTHENTICATED, [("WWW-Authenticate", "Token")])
        if req.user != "owner":
            raise ApiError(403, FORBIDDEN)

    def _ds_for(self, req: Req, ds_id: str) -> DandisetRecord:
        ds = self._dandisets.get(ds_id)
        if ds is None:
            raise not_found()
        self._check_access(req, ds.embargo_status != "OPEN")
        return ds

    def _ver_for(self, req: Req, ds_id: str, v: str) -> tuple[DandisetRecord, VersionRecord]:
        ds = self._ds_for(req, ds_id)
        ver = ds.version(v)
        if ver is None:
            raise not_found()
        return ds, ver

    def _visible(self, req: Req, ds: DandisetRecord) -> bool:
        return ds.embargo_status == "OPEN" or self.api_token is None or req.user == "owner"

    def _nested(self, req: Req, ds: str, v: str, aid: str) -> AssetRecord:
        _, ver = self._ver_for(req, ds, v)
        a = self._assets.get(aid)
        if a is None or ver.assets.get(a.path) is not a:
            raise not_found()
        return a

    def _top_asset(self, req: Req, aid: str) -> AssetRecord:
        a = self._assets.get(aid)
        if a is None:
            raise not_found()
        self._check_access(req, self._is_embargoed_asset(a))
        return a

    def _zarr_for(self, req: Req, zid: str) -> ZarrRecord:
        z = self._zarrs.get(zid)
        if z is None:
            raise not_found()
        ds = self._dandisets.get(z.dandiset_id)
        self._check_access(req, ds is not None and ds.embargo_status != "OPEN")
        return z

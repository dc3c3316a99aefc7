"""The DANDI REST API's vocabulary: a request, an answer, an error, a route, a page of a list.

Why apart from the routes: every route speaks Django REST framework's conventions the
same way (``{"detail": ...}`` errors, boolean query flags, absolute ``next`` URLs
with sorted query parameters, ``count``/``next``/``previous``/``results`` pages), and
a client that trips on one of them trips on all.  Nothing here knows the archive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

from neuromirror.standins.dandi.formats import dumps
from neuromirror.standins.faults import shifted_page

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


@dataclass
class Resp:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


class ApiError(Exception):
    def __init__(self, status: int, detail: Any, headers: Sequence[tuple[str, str]] = ()):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = list(headers)

    def response(self) -> Resp:
        body = dumps({"detail": self.detail} if isinstance(self.detail, str) else self.detail)
        return Resp(self.status, body, self.headers)


def not_found(detail: str = "Not found.") -> ApiError:
    return ApiError(404, detail)


NOT_AUTHENTICATED = "Authentication credentials were not provided."
FORBIDDEN = "You do not have permission to perform this action."


@dataclass
class Req:
    method: str
    raw_path: str  # path + query as received (percent-encoded)
    path: str  # decoded path
    query: dict[str, str]
    host: str
    user: Optional[str]  # None (anonymous), "owner" or "other"
    body: bytes
    fault: Optional[str] = None

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.query.get(name)
        if v is None or v == "":
            return default
        lv = v.lower()
        if lv in _TRUE:
            return True
        if lv in _FALSE:
            return False
        raise ApiError(400, {name: ["Must be a valid boolean."]})

    def url_with(self, **changes: Optional[str]) -> str:
        """This request's absolute URL with query params replaced/removed (DRF style: sorted)."""
        split = urlsplit(self.raw_path)
        params: dict[str, list[str]] = {}
        for k, v in parse_qsl(split.query, keep_blank_values=True):
            params.setdefault(k, []).append(v)
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = [value]
        query = urlencode(sorted(params.items()), doseq=True)
        return f"http://{self.host}{split.path}" + (f"?{query}" if query else "")


@dataclass
class Route:
    methods: frozenset[str]
    regex: re.Pattern[str]
    fn: Callable[..., Resp]
    paginated: bool = False
    faultable: bool = True


#: the parts of the routes' URLs: a dandiset, a version, an asset, a Zarr
DS = r"(?P<ds>\d{6})"
VER = r"(?P<v>draft|0\.\d{6}\.\d{4})"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
AID = rf"(?P<aid>{UUID})"
ZID = rf"(?P<zid>{UUID})"
VPATH = rf"/api/dandisets/{DS}/versions/{VER}"


def page_params(req: Req) -> tuple[int, int]:
    raw_page = req.query.get("page", "1") or "1"
    try:
        page = int(raw_page)
    except ValueError:
        raise not_found("Invalid page.") from None
    if page < 1:
        raise not_found("Invalid page.")
    size = 100
    raw_size = req.query.get("page_size")
    if raw_size:
        try:
            s = int(raw_size)
            if s > 0:
                size = min(s, 1000)
        except ValueError:
            pass
    return page, size


def paginate(
    req: Req,
    items: Sequence[Any],
    render: Callable[[Any], bytes],
    *,
    lazy_count: bool,
) -> Resp:
    """One page of ``items``; ``lazy_count``: the asset lists' way (``count`` on page 1 only, empty past the end)."""
    page, size = page_params(req)
    total = len(items)
    if not lazy_count and page > 1 and (page - 1) * size >= total:
        raise not_found("Invalid page.")
    src = shifted_page(req.fault, page)
    chunk = items[(src - 1) * size : src * size]
    nxt = req.url_with(page=str(page + 1)) if total > page * size else None
    prev = None
    if page > 1:
        prev = req.url_with(page=None) if page == 2 else req.url_with(page=str(page - 1))
    count = total if (not lazy_count or page == 1) else None
    body = b"".join(
        [
            b'{"count":',
            dumps(count),
            b',"next":',
            dumps(nxt),
            b',"previous":',
            dumps(prev),
            b',"results":[',
            b",".join(render(x) for x in chunk),
            b"]}",
        ]
    )
    return Resp(200, body)

"""The BOSS API's vocabulary: its routes, its error answers and codes, and the log of requests.

Why apart from the answers: intern tells errors apart by the BOSS's JSON shapes and
codes (``bosscore.error``), and tests assert on what the client asked
(:class:`LoggedRequest`), so the routes, the errors and the log are the contract
between the stand-in and its callers.  Nothing here knows the data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from neuromirror.standins.boss.model import Channel

# bosscore.error.ErrorCodes values used here.
INVALID_URL = 1000
INVALID_CUTOUT_ARGS = 1001
TYPE_ERROR = 1002
INVALID_POST_ARGUMENT = 1003
REQUEST_TOO_LARGE = 2000
DATATYPE_NOT_SUPPORTED = 2003
MISSING_PERMISSION = 3001
RESOURCE_NOT_FOUND = 4000


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the stand-in saw it, for assertions on client behaviour."""

    method: str
    path: str  # path with query string, as sent
    route: str  # e.g. "collection_list", "channel", "cutout", "unknown"
    auth: str  # "token", "anonymous" or "invalid"
    status: int  # 0 if no status line was sent (e.g. a fault dropped the connection)
    response_bytes: int  # the Content-Length announced
    fault: str | None = None  # the FaultPlan kind injected, if any


class ApiError(Exception):
    """An error answer: raised inside request handling, turned into JSON."""

    def __init__(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None):
        super().__init__(body)
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


def boss_error(status: int, code: int, message: str) -> ApiError:
    """bosscore.error.BossHTTPError's JSON shape."""
    return ApiError(status, {"status": status, "code": code, "message": message})


def not_found(name: str) -> ApiError:
    return boss_error(404, RESOURCE_NOT_FOUND, f"{name} does not exist.")


def require_read(chan: Channel, authed: bool) -> None:
    # bosscore.request.BossRequest.check_permissions' answer
    if not (authed or chan.public):
        raise boss_error(403, MISSING_PERMISSION, "This user does not have the required permissions")


_ID = r"[\w-]+"
_RANGE = r"\d+:\d+"
#: (route name, path pattern), tried in order; the name is what the request log records
ROUTES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern))
    for name, pattern in [
        # intern lists collections with "/v1/collection//"
        ("collection_list", r"^/v1/collection/{0,2}$"),
        ("collection", rf"^/v1/collection/(?P<collection>{_ID})/?$"),
        ("experiment_list", rf"^/v1/collection/(?P<collection>{_ID})/experiment/?$"),
        ("experiment", rf"^/v1/collection/(?P<collection>{_ID})/experiment/(?P<experiment>{_ID})/?$"),
        ("channel_list", rf"^/v1/collection/(?P<collection>{_ID})/experiment/(?P<experiment>{_ID})/channel/?$"),
        (
            "channel",
            rf"^/v1/collection/(?P<collection>{_ID})/experiment/(?P<experiment>{_ID})"
            rf"/channel/(?P<channel>{_ID})/?$",
        ),
        ("coord_list", r"^/v1/coord/?$"),
        ("coord", rf"^/v1/coord/(?P<coord>{_ID})/?$"),
        ("downsample", rf"^/v1/downsample/(?P<collection>{_ID})/(?P<experiment>{_ID})/(?P<channel>{_ID})/?$"),
        (
            "cutout",
            rf"^/v1/cutout/(?P<collection>{_ID})/(?P<experiment>{_ID})/(?P<channel>{_ID})"
            rf"/(?P<resolution>\d+)/(?P<x>{_RANGE})/(?P<y>{_RANGE})/(?P<z>{_RANGE})(?:/(?P<t>{_RANGE}))?/?$",
        ),
        (
            "meta",
            rf"^/v1/meta/(?P<collection>{_ID})(?:/(?P<experiment>{_ID})(?:/(?P<channel>{_ID}))?)?/?$",
        ),
    ]
]

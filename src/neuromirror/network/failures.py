"""Which failures are the network's (or an archive's load), not an archive's answer.

Why: after its retries, a request can end with no answer, throttled, or with a body cut short; an item
that met such a failure is held at its last state and asked again by the next sync
(:mod:`neuromirror.sources.dandi.held`), never refused, never listed another way that pins less (a
Zarr's S3 listing falling back to the API's, whose URLs carry no ``versionId``).  An answer (403, 404,
a malformed page) is the archive's and is treated as such by the caller.
"""

from __future__ import annotations

from neuromirror.network import pacing


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is the network's or the archive's load (no answer, throttled, a body cut short)."""
    import xml.etree.ElementTree as ET

    import requests
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    transient = (
        pacing.GaveUp,
        EndpointConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
        ConnectionClosedError,
        ET.ParseError,
        requests.ConnectionError,
        requests.Timeout,
    )
    if isinstance(exc, transient):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in pacing.RETRIED or exc.response.get("Error", {}).get("Code") in _THROTTLE_CODES
    return False


#: S3's error codes for "not now" (a listing that ends with one after its retries is held, not refused)
_THROTTLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"})

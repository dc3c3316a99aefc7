"""Reaching AIND's S3: the boto3 client, errors told in one line, and the few objects a sync reads
(sidecars, small text, objects hashed with ``--hash``)."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, Optional

from neuromirror.errors import Unavailable
from neuromirror.sources.aind.options import S3Settings

WORKERS = 16
CHUNK = 8 << 20


class AindError(Unavailable, RuntimeError):
    """S3 could not be read; the message names the bucket/asset and the cause."""

    #: the versioned listing is not allowed here: list the latest objects and ask HEAD instead
    fallback: bool = False


_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


def s3_client(settings: S3Settings) -> Any:
    """A boto3 S3 client (unsigned unless ``signed``), shared per endpoint/region/signing."""
    ident = (settings.endpoint, settings.region, settings.signed)
    with _clients_lock:
        client = _clients.get(ident)
        if client is None:
            import boto3
            from botocore import UNSIGNED

            from neuromirror.network.ceiling import hook_boto
            from neuromirror.network.identity import botocore_config

            cfg: dict[str, Any] = {
                # adaptive: botocore's client-side rate limit after throttling answers (the version listing's
                # pages go through neuromirror.network.pacing; this client's HEADs and GETs through this)
                "retries": {
                    "max_attempts": int(os.environ.get("NEUROMIRROR_S3_MAX_ATTEMPTS") or 6),
                    "mode": "adaptive",
                },
                "max_pool_connections": WORKERS * 2,
                "connect_timeout": 20,
                "read_timeout": 120,
            }
            if not settings.signed:
                cfg["signature_version"] = UNSIGNED
            if settings.endpoint:
                cfg["s3"] = {"addressing_style": "path"}
            client = boto3.session.Session().client(
                "s3", endpoint_url=settings.endpoint, region_name=settings.region, config=botocore_config(**cfg)
            )
            hook_boto(client)  # the operator's ceiling holds for its every attempt (network.ceiling)
            _clients[ident] = client
        return client


def _s3_gist(exc: BaseException, settings: S3Settings, what: str) -> AindError:
    """One clear line for a boto3/botocore failure."""
    resp = getattr(exc, "response", None)
    error: dict[str, Any] = resp.get("Error", {}) if isinstance(resp, dict) else {}
    code = str(error.get("Code", ""))
    name = type(exc).__name__
    if code in ("NoSuchBucket",):
        msg = f"bucket {settings.bucket!r} does not exist"
    elif code in ("AccessDenied", "403", "AllAccessDisabled"):
        how = "signed" if settings.signed else "anonymous (unsigned)"
        msg = f"{how} access denied" + ("" if settings.signed else " (private bucket? try s3_signed: signed requests)")
    elif name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
        msg = f"S3 endpoint {settings.endpoint or 'AWS ' + settings.region} is unreachable"
    elif code:
        msg = f"{code}: {error.get('Message') or ''}".strip(": ")
    else:
        text = str(exc).strip().splitlines()
        msg = text[0][:300] if text else name
    return AindError(f"AIND {settings.where}: {what}: {msg}")


def _is_denied_or_unsupported(exc: BaseException) -> bool:
    resp = getattr(exc, "response", None)
    code = str(resp.get("Error", {}).get("Code", "")) if isinstance(resp, dict) else ""
    return code in ("AccessDenied", "403", "NotImplemented", "501", "MethodNotAllowed", "405")


def fetch_object(
    settings: S3Settings, key: str, version_id: Optional[str], etag: Optional[str], max_bytes: Optional[int] = None
) -> bytes:
    """The bytes of one (small) object version; refuses to read past ``max_bytes``."""
    params: dict[str, Any] = {"Bucket": settings.bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    elif etag:
        params["IfMatch"] = etag
    try:
        r = s3_client(settings).get_object(**params)
        body = r["Body"]
        data = body.read(max_bytes + 1) if max_bytes is not None else body.read()
        body.close()
    except Exception as exc:
        raise _s3_gist(exc, settings, f"downloading {key}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise AindError(f"AIND {settings.where}: {key} is larger than {max_bytes} bytes")
    return data


def hash_object(settings: S3Settings, key: str, version_id: Optional[str], etag: Optional[str], size: int) -> str:
    """sha256 of an object version, streamed in chunks (never whole in memory)."""
    params: dict[str, Any] = {"Bucket": settings.bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    elif etag:
        params["IfMatch"] = etag  # an overwrite while we read fails instead of mixing versions
    h = hashlib.sha256()
    n = 0
    try:
        body = s3_client(settings).get_object(**params)["Body"]
        for chunk in body.iter_chunks(CHUNK):
            h.update(chunk)
            n += len(chunk)
        body.close()
    except Exception as exc:
        raise _s3_gist(exc, settings, f"hashing {key}") from None
    if n != size:
        raise AindError(f"AIND {settings.where}: {key}: read {n} bytes, the listing said {size}")
    return h.hexdigest()


def _load_text(settings: S3Settings, key: str, version_id: Optional[str], etag: Optional[str], size: int) -> bytes:
    """GitEntry loader (module level, hence picklable)."""
    return fetch_object(settings, key, version_id, etag, max(size, 0))

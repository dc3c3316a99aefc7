"""AIND's S3 side: where the bucket is and how to reach it (settings, the boto3 client, errors told in
one line), and the few objects a sync reads (sidecars, small text, objects hashed with ``--hash``)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote

DEFAULT_BUCKET = "aind-open-data"
DEFAULT_REGION = "us-west-2"
WORKERS = 16
CHUNK = 8 << 20
#: what ``quote`` leaves as it is: most keys and version ids, spared the call (10^6 of them a sync)
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~/-]*\Z")
_UNRESERVED_NO_SLASH = re.compile(r"[A-Za-z0-9_.~-]*\Z")


class AindError(RuntimeError):
    """S3 could not be read; the message names the bucket/asset and the cause."""


# --------------------------------------------------------------------------- settings


def parse_size(value: object) -> int:
    """``1048576``, ``"1MiB"``, ``"500 MB"``, ``"2G"`` -> bytes (0 for empty/None)."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)B?\s*", str(value), re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {value!r} (e.g. 500MB, 1GiB, 1048576)")
    n, unit, binary = float(m.group(1)), m.group(2).upper(), m.group(3)
    base = 1024 if binary or unit == "" else 1000
    return int(n * base ** ("KMGTP".index(unit) + 1 if unit else 0))


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class S3Settings:
    bucket: str = DEFAULT_BUCKET
    endpoint: Optional[str] = None  # None = AWS
    region: str = DEFAULT_REGION
    prefix: str = ""  # "" or "some/path/" (always ends with "/")
    signed: bool = False
    hash_all: bool = False  # hash every multipart object (SHA256E)
    hash_threshold: int = 0  # hash multipart objects up to this size

    @classmethod
    def from_options(cls, options: dict) -> S3Settings:
        def opt(name: str, env: str, default: Any = None) -> Any:
            v = options.get(name)
            if v is None or v == "":
                v = os.environ.get(env)
            return default if v is None or v == "" else v

        prefix = str(opt("prefix", "NEUROMIRROR_AIND_PREFIX", "")).strip("/")
        hash_opt = options.get("hash")
        hash_all = bool(hash_opt) if hash_opt is not None else _truthy(os.environ.get("NEUROMIRROR_AIND_HASH", ""))
        threshold = options.get("hash_threshold")
        if threshold is None or threshold == "":
            threshold = os.environ.get("NEUROMIRROR_AIND_HASH_THRESHOLD")
        signed_opt = options.get("s3_signed")
        return cls(
            bucket=str(opt("bucket", "NEUROMIRROR_AIND_BUCKET", DEFAULT_BUCKET)),
            endpoint=(str(opt("s3_endpoint", "NEUROMIRROR_S3_ENDPOINT", "")) or None),
            region=str(opt("s3_region", "NEUROMIRROR_S3_REGION", DEFAULT_REGION)),
            prefix=prefix + "/" if prefix else "",
            signed=bool(signed_opt) if signed_opt is not None else _truthy(os.environ.get("NEUROMIRROR_S3_SIGNED", "")),
            hash_all=hash_all,
            hash_threshold=parse_size(threshold),
        )

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint}" if self.endpoint else "")

    def wants_hash(self, size: int) -> bool:
        return self.hash_all or (self.hash_threshold > 0 and size <= self.hash_threshold)

    @property
    def policy(self) -> str:
        """The part of the settings that changes which keys are made (in the listing digest)."""
        return "hash=all" if self.hash_all else f"hash<={self.hash_threshold}"

    def object_url(self, key: str, version_id: Optional[str]) -> str:
        """Path-style for custom endpoints, virtual-hosted for AWS; pinned when versioned."""
        qkey = key if _UNRESERVED.match(key) else quote(key, safe="/~")
        if self.endpoint:
            base = f"{self.endpoint.rstrip('/')}/{self.bucket}/{qkey}"
        elif "." in self.bucket or self.bucket.lower() != self.bucket:
            base = f"https://s3.{self.region}.amazonaws.com/{self.bucket}/{qkey}"
        else:
            base = f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{qkey}"
        if not version_id:
            return base
        return (
            f"{base}?versionId={version_id if _UNRESERVED_NO_SLASH.match(version_id) else quote(version_id, safe='')}"
        )


# --------------------------------------------------------------------------- S3 access

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
            from botocore.config import Config

            cfg: dict[str, Any] = {
                "retries": {
                    "max_attempts": int(os.environ.get("NEUROMIRROR_S3_MAX_ATTEMPTS") or 6),
                    "mode": "standard",
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
                "s3", endpoint_url=settings.endpoint, region_name=settings.region, config=Config(**cfg)
            )
            _clients[ident] = client
        return client


def _s3_gist(exc: BaseException, settings: S3Settings, what: str) -> AindError:
    """One clear line for a boto3/botocore failure."""
    code = ""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        code = str(resp.get("Error", {}).get("Code", ""))
    name = type(exc).__name__
    if code in ("NoSuchBucket",):
        msg = f"bucket {settings.bucket!r} does not exist"
    elif code in ("AccessDenied", "403", "AllAccessDisabled"):
        how = "signed" if settings.signed else "anonymous (unsigned)"
        msg = f"{how} access denied" + ("" if settings.signed else " (private bucket? try --s3-signed)")
    elif name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
        msg = f"S3 endpoint {settings.endpoint or 'AWS ' + settings.region} is unreachable"
    elif code:
        msg = f"{code}: {resp.get('Error', {}).get('Message') or ''}".strip(": ")  # type: ignore[union-attr]
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


# --------------------------------------------------------------------------- names and metadata

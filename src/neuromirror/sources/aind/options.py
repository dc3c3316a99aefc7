"""Where an AIND bucket is and what a sync makes of its objects: the ``sync`` options and their parsing.

The same settings come from the command line, the environment and a mirror
definition's ``options``; :class:`S3Settings` is where they all end up.  It also
knows an object's URL, since the URL depends on the same settings (endpoint,
region, bucket name) and nothing else.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

from neuromirror.sources.s3urls import quote_key, quote_version
from neuromirror.util.sizes import parse_size

log = logging.getLogger("neuromirror.aind")

DEFAULT_BUCKET = "aind-open-data"
DEFAULT_REGION = "us-west-2"


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
        qkey = quote_key(key)
        if self.endpoint:
            base = f"{self.endpoint.rstrip('/')}/{self.bucket}/{qkey}"
        elif "." in self.bucket or self.bucket.lower() != self.bucket:
            base = f"https://s3.{self.region}.amazonaws.com/{self.bucket}/{qkey}"
        else:
            base = f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{qkey}"
        if not version_id:
            return base
        return f"{base}?versionId={quote_version(version_id)}"


# --------------------------------------------------------------------------- CLI plumbing


def add_options(group: Any) -> None:
    def add(*flags: str, **kw: Any) -> None:
        taken = getattr(group, "_option_string_actions", {})
        if any(f in taken for f in flags):  # another source already defined it: keep theirs
            log.debug("aind: option %s already defined", flags[0])
            return
        group.add_argument(*flags, **kw)

    add("--bucket", default=None, help=f"AIND: S3 bucket (env NEUROMIRROR_AIND_BUCKET; default {DEFAULT_BUCKET})")
    add(
        "--prefix",
        default=None,
        help="AIND: key prefix above the assets, e.g. ephys-compression/ in aind-benchmark-data "
        "(env NEUROMIRROR_AIND_PREFIX; default: the bucket's top level)",
    )
    add(
        "--s3-endpoint",
        default=None,
        metavar="URL",
        help="AIND: S3 endpoint URL (env NEUROMIRROR_S3_ENDPOINT; default AWS)",
    )
    add("--s3-region", default=None, help=f"AIND: S3 region (env NEUROMIRROR_S3_REGION; default {DEFAULT_REGION})")
    add(
        "--s3-signed",
        action="store_true",
        default=None,
        help="AIND: sign S3 requests with the usual AWS credentials (env NEUROMIRROR_S3_SIGNED=1; default anonymous)",
    )
    add(
        "--hash",
        action="store_true",
        default=None,
        help="AIND: download and hash multipart objects (SHA256E keys) instead of VURL keys (env NEUROMIRROR_AIND_HASH=1)",
    )
    add(
        "--hash-threshold",
        default=None,
        metavar="SIZE",
        help="AIND: hash multipart objects up to SIZE (e.g. 500MB, 1GiB); larger ones get VURL keys "
        "(env NEUROMIRROR_AIND_HASH_THRESHOLD; default 0 = none)",
    )

"""Where an inventory is: a bucket (``s3://BUCKET/PREFIX``) or a directory of the same layout, and which date.

An inventory's destination holds, under ``<destination-prefix>/<source-bucket>/<config-id>/``, one
folder per date (``YYYY-MM-DDTHH-MMZ``: when S3 began the scan) with its ``manifest.json`` and
``manifest.checksum``, the data files under ``data/``, and ``hive/`` for Athena.  A URL names that
prefix (the newest date whose manifest is there, or the date asked for: ``2026-11-28`` or
``2026-11-28T01-00Z``), or one date's ``manifest.json`` itself.  A local directory is read the same way
(a copy of the prefix: the files' keys are found below it by their trailing path).

The bucket is read with boto3 (signed when the environment has credentials, else anonymously), its
endpoint the one given, else boto3's own (``AWS_ENDPOINT_URL_S3``), its every request named by
:func:`neuromirror.network.identity.botocore_config` and held to the operator's ceiling.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any, Optional, Union

from neuromirror.inventory.rows import InventoryError

#: one inventory date's folder name
DATE_DIR = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z")
#: what ``--inventory-date`` takes: a day, or a date folder's whole name
DATE_ARG = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}-\d{2}Z)?")
CHUNK = 1 << 20


class S3Place:
    """A destination bucket read through boto3."""

    def __init__(self, bucket: str, endpoint: Optional[str] = None) -> None:
        self.bucket = bucket
        self.client = _client(endpoint)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def read(self, key: str) -> Optional[bytes]:
        """A small object's bytes (a manifest), or None when there is no such key."""
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except _boto_errors() as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._error(exc, key) from None

    def dates(self, prefix: str) -> list[str]:
        """The date folders under ``prefix`` (no slash at its end), oldest first."""
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{prefix}/" if prefix else "", Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"].rstrip("/").rpartition("/")[2]
                    if DATE_DIR.fullmatch(name):
                        found.append(name)
        except _boto_errors() as exc:
            raise self._error(exc, prefix) from None
        return sorted(found)

    def fetch(self, key: str, md5: str, size: int, tmp: Path) -> Path:
        """The data file ``key`` copied into ``tmp``, its size and MD5 checked on the way."""
        path = tmp / "data"
        digest = hashlib.md5()
        got = 0
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with open(path, "wb") as out:
                for chunk in iter(lambda: body.read(CHUNK), b""):
                    digest.update(chunk)
                    got += len(chunk)
                    out.write(chunk)
        except _boto_errors() as exc:
            raise self._error(exc, key) from None
        _check(self.url(key), digest.hexdigest(), got, md5, size)
        return path

    def _error(self, exc: BaseException, key: str) -> InventoryError:
        code = _code(exc)
        if code in ("NoSuchBucket",):
            return InventoryError(f"s3://{self.bucket}: no such bucket")
        if code in ("NoSuchKey", "404"):
            return InventoryError(f"{self.url(key)}: no such object (the manifest names a file the bucket lacks)")
        if code in ("AccessDenied", "403"):
            return InventoryError(
                f"{self.url(key)}: access denied (an inventory's bucket is private: give credentials)"
            )
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return InventoryError(f"{self.url(key)}: {first[:300]}")


class LocalPlace:
    """A directory holding a copy of an inventory's prefix (its date folders and ``data/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def url(self, key: str) -> str:
        return str(self.root / key)

    def read(self, key: str) -> Optional[bytes]:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def dates(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            raise InventoryError(f"{base}: no such directory")
        return sorted(p.name for p in base.iterdir() if DATE_DIR.fullmatch(p.name) and p.is_dir())

    def local(self, key: str) -> Path:
        """The file a manifest's ``key`` (a key of the destination bucket) is below the root: the longest
        tail of the key that exists there."""
        parts = key.split("/")
        for i in range(len(parts)):
            path = self.root.joinpath(*parts[i:])
            if path.is_file():
                return path
        raise InventoryError(f"{self.root}: no file for the manifest's {key} below it")

    def fetch(self, key: str, md5: str, size: int, tmp: Path) -> Path:
        """The data file for ``key``, in place, its size and MD5 checked first."""
        path = self.local(key)
        digest = hashlib.md5()
        got = 0
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
                got += len(chunk)
        _check(str(path), digest.hexdigest(), got, md5, size)
        return path


Place = Union[S3Place, LocalPlace]


def _check(where: str, digest: str, got: int, md5: str, size: int) -> None:
    if got != size:
        raise InventoryError(f"{where}: {got} bytes where the manifest says {size} (cut short or changed); refused")
    if digest != md5:
        raise InventoryError(f"{where}: MD5 {digest} is not the manifest's {md5} (corrupted or changed); refused")


def locate(url: str, date: Optional[str] = None, endpoint: Optional[str] = None) -> tuple[Place, str, str]:
    """(where it is, the manifest's key there, the date folder) for an inventory URL and a date (None: newest)."""
    if date is not None and not DATE_ARG.fullmatch(date):
        raise InventoryError(f"inventory date {date!r} is neither YYYY-MM-DD nor YYYY-MM-DDTHH-MMZ")
    place: Place
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise InventoryError(f"{url}: no bucket (s3://BUCKET/PREFIX)")
        place, prefix = S3Place(bucket, endpoint), prefix.strip("/")
    else:
        path = Path(url[len("file://") :] if url.startswith("file://") else url).expanduser()
        if path.name == "manifest.json":
            if not path.is_file():
                raise InventoryError(f"{path}: no such file")
            return LocalPlace(path.parent.parent), f"{path.parent.name}/manifest.json", path.parent.name
        place, prefix = LocalPlace(path), ""
    if prefix.endswith("manifest.json"):
        folder = prefix.rpartition("/")[0]
        return place, prefix, folder.rpartition("/")[2]
    return place, *_newest(place, prefix, url, date)


def _newest(place: Place, prefix: str, url: str, date: Optional[str]) -> tuple[str, str]:
    """The manifest key and the folder of the newest date (that ``date`` names, when given) with a manifest."""
    dates = [d for d in place.dates(prefix) if date is None or d.startswith(date)]
    for folder in reversed(dates):
        key = f"{prefix}/{folder}/manifest.json" if prefix else f"{folder}/manifest.json"
        if place.read(key) is not None:
            return key, folder
    if date is not None:
        raise InventoryError(
            f"{url}: no inventory dated {date} (its dates: {', '.join(place.dates(prefix)[-5:]) or 'none'})"
        )
    raise InventoryError(
        f"{url}: no inventory date (YYYY-MM-DDTHH-MMZ/manifest.json) below it; "
        "give the destination prefix <dest>/<source-bucket>/<config-id>"
    )


_clients: dict[tuple[Optional[str], ...], Any] = {}
_clients_lock = threading.Lock()


def _client(endpoint: Optional[str]) -> Any:
    """One boto3 S3 client per endpoint: signed with the environment's credentials, else anonymous."""
    # per endpoint and per the environment's identity (a test, a service cycle may change it)
    ident = (endpoint, os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_ENDPOINT_URL_S3"))
    with _clients_lock:
        client = _clients.get(ident)
        if client is None:
            import boto3
            from botocore import UNSIGNED

            from neuromirror.network.ceiling import hook_boto
            from neuromirror.network.identity import botocore_config

            session = boto3.session.Session()
            cfg: dict[str, Any] = {"retries": {"max_attempts": 6, "mode": "standard"}, "read_timeout": 120}
            if endpoint:
                cfg["s3"] = {"addressing_style": "path"}
            if session.get_credentials() is None:
                cfg["signature_version"] = UNSIGNED
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            client = session.client("s3", endpoint_url=endpoint, region_name=region, config=botocore_config(**cfg))
            hook_boto(client)
            _clients[ident] = client
        return client


def _boto_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))

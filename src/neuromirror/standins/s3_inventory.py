"""The archive bucket's S3 Inventory, as S3 writes it: a date folder with ``manifest.json`` and
``manifest.checksum``, gzip CSV data files under ``data/``, and ``hive/dt=.../symlink.txt``.

Written from a bucket's actual state (every version and delete marker that ``ListObjectVersions`` of
the stand-in bucket gives) into a destination bucket and prefix, at
``<prefix>/<source-bucket>/<config-id>/``, as AWS lays it out: every field quoted, no header line,
keys URL-encoded as forms encode them (a space is ``+``), a delete marker's Size and ETag empty,
LastModifiedDate to the millisecond with a ``Z``.  :func:`write_inventory` writes any rows (the bench's
synthetic millions) through a ``put(key, bytes)``: a bucket's ``put_object`` or a local directory.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional
from urllib.parse import quote_plus

#: the columns written (the ones an inventory with versions and the multipart flag has, in AWS's order)
SCHEMA = (
    "Bucket",
    "Key",
    "VersionId",
    "IsLatest",
    "IsDeleteMarker",
    "Size",
    "LastModifiedDate",
    "ETag",
    "IsMultipartUploaded",
)

Put = Callable[[str, bytes], None]


@dataclass(frozen=True)
class WrittenInventory:
    """What was written: the prefix to read it by, the date folder, the manifest's key, the data files' keys."""

    prefix: str
    date: str
    manifest_key: str
    files: tuple[str, ...]
    rows: int


def version_rows(client: Any, bucket: str, prefix: str = "") -> Iterator[list[str]]:
    """The bucket's every version and delete marker, as the inventory's CSV fields (``ListObjectVersions``)."""
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            etag = str(v.get("ETag", "")).strip('"')
            yield csv_fields(bucket, v["Key"], v["VersionId"], v["IsLatest"], False, v["Size"], v["LastModified"], etag)
        for m in page.get("DeleteMarkers", []):
            yield csv_fields(bucket, m["Key"], m["VersionId"], m["IsLatest"], True, None, m["LastModified"], "")


def csv_fields(
    bucket: str, key: str, version: str, latest: bool, marker: bool, size: Optional[int], modified: datetime, etag: str
) -> list[str]:
    """One row's fields, as S3 writes them."""
    when = modified.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{modified.microsecond // 1000:03d}Z"
    return [
        bucket,
        quote_plus(key, safe="/"),
        version if version != "null" else "",
        "true" if latest else "false",
        "true" if marker else "false",
        "" if marker or size is None else str(size),
        when,
        etag,
        "" if marker else ("true" if "-" in etag else "false"),
    ]


def _gzip_csv(rows: Iterator[list[str]], most: int, level: int) -> tuple[bytes, int]:
    """(the gzip CSV of the next ``most`` rows at most, how many): streamed, only the compressed bytes held."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=level, mtime=0) as gz:
        text = io.TextIOWrapper(gz, encoding="utf-8", newline="")
        counted = _Counted(itertools.islice(rows, most))
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(counted)
        text.flush()
        text.detach()
    return buf.getvalue(), counted.n


class _Counted:
    """An iterator that counts what it gave."""

    def __init__(self, it: Iterator[list[str]]) -> None:
        self.it, self.n = it, 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> list[str]:
        item = next(self.it)
        self.n += 1
        return item


def write_inventory(
    rows: Iterable[list[str]],
    put: Put,
    *,
    source_bucket: str,
    dest: str,
    prefix: str = "inventory",
    config_id: str = "daily",
    when: Optional[datetime] = None,
    rows_per_file: int = 1_000_000,
    compresslevel: int = 6,
) -> WrittenInventory:
    """Write ``rows`` (CSV fields) as one inventory date through ``put``, one data file at a time (only its
    compressed bytes held); ``dest`` is the destination bucket's name (for the manifest's ARN and the hive
    symlink)."""
    when = when or datetime.now(timezone.utc)
    base = "/".join(p for p in (prefix.strip("/"), source_bucket, config_id) if p)
    folder = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H-%MZ")
    files, keys, count, it = [], [], 0, iter(rows)
    while True:
        data, n = _gzip_csv(it, rows_per_file, compresslevel)
        if not n:
            break
        key = f"{base}/data/{uuid.uuid4()}.csv.gz"
        put(key, data)
        files.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
        keys.append(key)
        count += n
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{dest}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(when.timestamp() * 1000)),
        "fileFormat": "CSV",
        "fileSchema": ", ".join(SCHEMA),
        "files": files,
    }
    body = json.dumps(manifest, indent=2).encode()
    put(f"{base}/{folder}/manifest.json", body)
    put(f"{base}/{folder}/manifest.checksum", hashlib.md5(body).hexdigest().encode())
    hive = when.astimezone(timezone.utc).strftime("dt=%Y-%m-%d-%H-%M")
    put(f"{base}/hive/{hive}/symlink.txt", "".join(f"s3://{dest}/{k}\n" for k in keys).encode())
    return WrittenInventory(base, folder, f"{base}/{folder}/manifest.json", tuple(keys), count)


def bucket_inventory(client: Any, source_bucket: str, dest_bucket: str, **options: Any) -> WrittenInventory:
    """The inventory of ``source_bucket``'s state now, written into ``dest_bucket`` (which must exist)
    with ``client`` (a stand-in's admin client): what S3 would deliver there for this date.  ``options``:
    :func:`write_inventory`'s (``prefix``, ``config_id``, ``when``, ``rows_per_file``)."""

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=dest_bucket, Key=key, Body=data)

    rows = version_rows(client, source_bucket)
    return write_inventory(rows, put, source_bucket=source_bucket, dest=dest_bucket, **options)


def directory_put(root: Path) -> Put:
    """A ``put`` writing into a local directory (as if the destination prefix were copied there)."""

    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return put

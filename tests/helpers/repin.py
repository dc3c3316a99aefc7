"""The archive's side of tests/test_repin.py: an AIND-style asset, and the ways an archive re-keys it
(a moved bucket, a content-addressed layout with its manifest, an object's every version deleted)."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from neuromirror.demo import deterministic_bytes


def put_asset_objects(s3: Any, bucket: str, asset: str) -> dict[str, bytes]:
    """An asset's sidecar (kept in git by the mirror) and annexed objects: path in the dataset -> bytes."""
    files = {"data_description.json": json.dumps({"name": asset, "subject_id": "222222"}).encode()}
    for i in range(10):  # more than one listing's worth of keys in a folder would be 1,000: here, a folder listed
        files[f"SPIM/tile_{i}.bin"] = deterministic_bytes(f"{asset}/{i}", 2000 + i)
    files["derived/notes.bin"] = deterministic_bytes(f"{asset}/notes", 700)  # alone in its folder: a HEAD
    files["SPIM/acquisition.txt"] = b"small text: kept in git, pinned all the same\n"  # matched by its MD5 in git
    for path, data in files.items():
        s3.put(bucket, f"{asset}/{path}", data)
    return files


def purge(s3: Any, bucket: str, prefix: str) -> None:
    """Every version and delete marker under ``prefix`` deleted: the pins there answer 404 for good."""
    c = s3.client()
    for page in c.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            c.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


def _current(s3: Any, bucket: str, prefix: str) -> list[str]:
    c = s3.client()
    return [
        o["Key"]
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]


def move_bucket(s3: Any, old: str, prefix: str, under: str = "", strip: bool = False) -> str:
    """The objects under ``prefix`` copied to a new bucket, ``under`` put before each key (``strip``: in place of
    ``prefix``) (new versionIds, the same ETags), then ``old`` deleted whole (every version, then the bucket: its
    pins answer NoSuchBucket)."""
    new = f"moved-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(new, versioned=True, public=True)
    for key in _current(s3, old, prefix):
        to = under + (key[len(prefix) :] if strip else key)
        s3.client().copy_object(Bucket=new, Key=to, CopySource={"Bucket": old, "Key": key})
    s3.delete_bucket(old)
    return new


def content_addressed(s3: Any, bucket: str, asset: str, manifest: Path) -> Path:
    """The asset's objects moved to content-addressed keys (``content/md5/<md5>``) in the same bucket, the old
    keys purged, and the layout's manifest written (docs/pin.md): path under the asset -> key and digest."""
    c, entries = s3.client(), {}
    for key in _current(s3, bucket, asset + "/"):
        data = c.get_object(Bucket=bucket, Key=key)["Body"].read()
        md5 = hashlib.md5(data).hexdigest()
        s3.put(bucket, f"content/md5/{md5}", data)
        digest = {"md5": md5, "sha256": hashlib.sha256(data).hexdigest()}
        entries[key[len(asset) + 1 :]] = {"key": f"content/md5/{md5}", "size": len(data), "digest": digest}
    purge(s3, bucket, asset + "/")
    manifest.write_text(json.dumps({"prefix": asset + "/", "entries": entries}))
    return manifest

"""The restore tests' helpers (tests/test_restore*.py): a kept dandiset, its bucket's versions and URLs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import numpy as np

from helpers.keep import Dandiset, make_dandiset
from helpers.read import zarr_files

ZARR = "sub-09/sample.zarr"


BLOBS = {"sub-01/a.nwb": 120_000, "sub-02/b.nwb": 30_001, "sub-03/c.nwb": 5_000}


def restore_json(d: Dandiset, *args: str) -> tuple[int, dict, str]:
    code, out, err = d.run("restore", d.spec, *args, "--json")
    return code, json.loads(out), err


def bucket_versions(s3, bucket: str) -> set[tuple[str, str]]:  # noqa: ANN001
    """(key, versionId) of every object version the bucket holds."""
    pages = s3.client().get_paginator("list_object_versions").paginate(Bucket=bucket)
    return {(v["Key"], v["VersionId"]) for page in pages for v in page.get("Versions", [])}


def bucket_of(d: Dandiset) -> str:
    return d.archive.asset_at(d.id, "sub-01/a.nwb", d.version).blob.bucket


def make(dandi_archive, tmp_path: Path) -> tuple[Dandiset, dict[str, bytes], np.ndarray]:  # noqa: ANN001
    values = np.arange(16, dtype="int32").reshape(4, 4) * 7
    chunks = zarr_files(values)
    d = make_dandiset(dandi_archive, tmp_path / "mirror", BLOBS, zarr=chunks)
    d.run.ok("keep", d.spec, "--to", str(tmp_path / "store"))
    return d, chunks, values


def index_urls(d: Dandiset, key: str) -> list[str]:
    """The URLs the index records for ``key``'s file states in the dandiset."""
    conn = sqlite3.connect(d.run.root / ".neuromirror" / "index.sqlite")
    try:
        rows = conn.execute("SELECT urls FROM entries WHERE source=? AND key=?", [d.source, key]).fetchall()
    finally:
        conn.close()
    assert rows, key
    return [u for (urls,) in rows for u in json.loads(urls)]


def whereis_urls(repo: Path, key: str) -> list[str]:
    out = subprocess.run(
        ["git", "annex", "whereis", "--json", "--key", key], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    return [u for w in json.loads(out)["whereis"] for u in w.get("urls", [])] + [
        u for w in json.loads(out).get("untrusted", []) for u in w.get("urls", [])
    ]


def delete_marker(d: Dandiset, path: str) -> None:
    """A plain delete on the versioned bucket: the object's versions stay, behind a delete marker."""
    blob = d.archive.asset_at(d.id, path, d.version).blob  # type: ignore[attr-defined]
    d.archive.s3.client().delete_object(Bucket=blob.bucket, Key=blob.key)  # type: ignore[attr-defined]

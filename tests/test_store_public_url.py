"""Stores kept with a public URL (``NEUROMIRROR_STORE_PUBLIC_URL``), read by a process that has no credentials and
no endpoint for the bucket: ``urls`` names the packed copy by the pack's public URL and the key's byte range (a
plain HTTP range request gets the bytes), and ``neuromirror://`` reads a plain S3 store's copy over its public URL
and a packed one from the endpoint the datasets' branches record, unsigned.

Why: a lab serves its backup to readers who hold no key to its bucket; what they are given must be readable
with nothing but HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from helpers.keep import lose_blobs, make_dandiset, sha256


def test_a_reader_without_credentials_reads_stores_by_their_public_url(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fsspec

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"packed.nwb": 14_000, "plain.nwb": 9_000})
    s3.make_public(bucket)  # the lab serves its store to anyone: GetObject granted to everyone
    public = f"{s3.endpoint_url}/{bucket}"
    monkeypatch.setenv("NEUROMIRROR_STORE_PUBLIC_URL", public)
    d.run.ok("keep", d.spec, "--to", f"pack+s3://{bucket}/packed", "--include", "packed.nwb")
    d.run.ok("keep", d.spec, "--to", f"s3://{bucket}/plain", "--include", "plain.nwb")
    lose_blobs(d, list(d.files))
    for name in ("NEUROMIRROR_STORE_PUBLIC_URL", "NEUROMIRROR_STORE_ENDPOINT", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name)  # the reader: no key to the bucket, no endpoint, only what keep recorded
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    rows = {r["path"]: r for r in d.run.json("urls", d.spec, "--check")}
    packed = rows["packed.nwb"]
    assert packed["served_by"] == "store" and packed["url"].startswith(f"{public}/packed/packs/"), packed
    url, _, fragment = packed["url"].partition("#")
    first, last = (int(n) for n in fragment.removeprefix("bytes=").split("-"))
    got = requests.get(url, headers={"Range": f"bytes={first}-{last}"}, timeout=30)  # curl -r FIRST-LAST URL
    assert got.status_code == 206 and sha256(got.content) == sha256(d.files["packed.nwb"])

    plain = rows["plain.nwb"]
    assert plain["served_by"] == "store" and plain["url"].startswith(f"{public}/plain/"), plain
    fs = fsspec.filesystem("neuromirror", root=str(d.run.root), skip_instance_cache=True)
    for path in ("plain.nwb", "packed.nwb"):  # the packed one from the bucket the branch records, unsigned
        assert sha256(fs.cat_file(f"dandi/{d.id}@{d.version}/{path}")) == sha256(d.files[path]), path

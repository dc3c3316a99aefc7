"""A mirror first made after a blob's current S3 object was deleted still pins the bytes.

Why: the mirror pins each blob's S3 URL with the ``versionId`` a ``HEAD`` gives.  After the
archive deletes an asset, its blob's object carries a delete marker (its older versions stay for
30 days): the ``HEAD`` answers 404, and a first mirror made then recorded the plain S3 URL — which
serves nothing — so ``verify --content`` called the file lost while a noncurrent version still
served its exact bytes.  Now the sync lists the object's versions, pins the one whose ETag and size
are the asset's, and says so in its report.  The delete marker is real (moto with versioning).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from conftest import clone, git
from helpers.keep import T0, key_of
from helpers.retrieve import Runner
from neuromirror.annex.keys import hashdir_lower
from neuromirror.demo import deterministic_bytes

A, B = "sub-01/deleted.nwb", "sub-02/current.nwb"


def test_a_blob_behind_a_delete_marker_is_pinned_by_its_noncurrent_version(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    when = T0 + timedelta(days=400 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="late mirror", created=when)
    files = {p: deterministic_bytes(f"{ident}:{p}", n) for p, n in ((A, 20_000), (B, 7_000))}
    for i, (path, data) in enumerate(files.items()):
        dandi_archive.put_asset(ident, path, data, when=when + timedelta(minutes=i + 1))
    version = dandi_archive.publish(ident, when=when + timedelta(hours=1))
    blob = dandi_archive.asset_at(ident, A, version).blob
    s3 = dandi_archive.s3.client()
    s3.put_object(Bucket=blob.bucket, Key=blob.key, Body=b"other bytes")  # a newer version, other bytes
    s3.delete_object(Bucket=blob.bucket, Key=blob.key)  # then a delete marker on top: HEAD answers 404
    listing = s3.list_object_versions(Bucket=blob.bucket, Prefix=blob.key)
    assert [m["IsLatest"] for m in listing["DeleteMarkers"]] == [True] and len(listing["Versions"]) == 2

    # the first sync, after the delete marker
    run = Runner(tmp_path / "mirror")
    code, out, err = run("sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url)
    assert code == 0, out + err
    assert f"warning: {A}: its current S3 object is deleted (HTTP 404); pinned to the noncurrent version " in out
    assert B + ":" not in out  # the other blob was pinned by its HEAD, as always
    ds = run.root / "dandi" / ident
    key = key_of(ds, A, version)
    urls = git(ds, "show", f"git-annex:{hashdir_lower(key)}{key}.log.web")
    assert f"{blob.key}?versionId={blob.version_id}" in urls  # the upload's version, not the newer one

    code, out, err = run("verify", f"dandi:{ident}@{version}", "--content", "--json")
    rep = json.loads(out)
    assert code == 0 and rep["ok"] and rep["problem_counts"]["lost"] == 0, out + err
    # the API's download URL follows the current object (gone): a dead URL beside the pinned one
    assert [(p["kind"], p["path"]) for p in rep["problems"]] == [("dead-url", A)]
    assert rep["urls_gone"] == {"marked": [], "restored": []}

    # and a plain clone gets the exact bytes from the pinned URL
    work = clone(ds, tmp_path / "clone")
    git(work, "checkout", "-q", version)
    git(work, "annex", "get", A)
    assert (work / A).read_bytes() == files[A]

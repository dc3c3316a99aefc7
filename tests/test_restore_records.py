"""``restore`` gives back everything a version holds, each object as the archive's own records describe it.

Why: DANDI's README.md and CHANGES are blobs at the archive like any asset, but the mirror keeps their
bytes in git, and a restore that left them out left ``dandi download`` failing on them; and DANDI's
blobs were uploaded in parts, their asset's ``dandi-etag`` being that upload's S3 ETag, by which a
mirror made later pins a blob behind a delete marker: a blob written back in one ``PutObject`` (a plain
MD5 ETag) could never be pinned again.  These tests really delete every S3 version of the blobs from
the stand-in's moto bucket, restore into it, and read through the archive's own download route, boto3
and a fresh mirror's sync.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import requests

from conftest import git
from neuromirror.annex.keys import git_file_key
from neuromirror.demo import deterministic_bytes
from test_keep import T0, Dandiset, lose_blobs
from test_restore import restore_json, s3_env, whereis_urls  # noqa: F401  (s3_env: the fixture)
from test_retrieve import Runner

TEXTS = {"README.md": b"# texts sample\n\nkept in git by the mirror\n", "CHANGES": b"0.1.0: the first release\n"}


def download(d: Dandiset, path: str) -> bytes:
    """The asset's bytes as ``/api/assets/<id>/download/`` serves them (a 302 to its S3 object, followed)."""
    aid = d.archive.asset_at(d.id, path, d.version).asset_id
    r = requests.get(f"{d.archive.api_url}/assets/{aid}/download/", timeout=30)
    return r.content if r.status_code == 200 else f"HTTP {r.status_code}".encode()


def test_files_kept_in_git_are_written_back_from_git(dandi_archive, s3, s3_env, tmp_path: Path) -> None:  # noqa: ANN001, F811
    blobs = {"sub-01/a.nwb": deterministic_bytes("texts:a", 9_000)}
    d = _mirrored(dandi_archive, {**blobs, **TEXTS}, tmp_path / "mirror")
    ident, version = d.id, d.version
    d.run.ok("keep", d.spec, "--to", str(tmp_path / "store"))
    for path, data in TEXTS.items():  # in git, not annexed: no store holds them
        assert git(d.ds, "ls-tree", version, "--", path).split()[0] == "100644", path
        assert git(d.ds, "cat-file", "blob", f"{version}:{path}").encode() == data
    lose_blobs(d, list(TEXTS))
    for path in TEXTS:
        assert download(d, path).startswith(b"HTTP 4"), path
    target = f"s3://{dandi_archive.asset_at(ident, 'README.md', version).blob.bucket}"

    code, dry, err = restore_json(d, "--to", target, "--dry-run")
    assert code == 0, err
    assert (dry["would_write"]["objects"], dry["same"]) == (2, 1)

    code, report, err = restore_json(d, "--to", target)
    assert code == 0, err
    assert (report["objects"], report["written"]["objects"], report["same"]) == (3, 2, 1)
    assert report["written"]["bytes"] == sum(len(b) for b in TEXTS.values())
    assert report["failed"] == [] and report["skipped"] == [] and report["ok"]
    # the archive's own download route serves them again, as `dandi download` would fetch them
    for path, data in TEXTS.items():
        assert download(d, path) == data, path
    assert download(d, "sub-01/a.nwb") == blobs["sub-01/a.nwb"]  # left alone: it was never lost
    # the restored version is another URL of the bytes' key on the git-annex branch
    client = s3.client()
    for path, data in TEXTS.items():
        blob = dandi_archive.asset_at(ident, path, version).blob
        current = client.head_object(Bucket=blob.bucket, Key=blob.key)
        urls = whereis_urls(d.ds, git_file_key(hashlib.sha256(data).hexdigest(), len(data)))
        assert any(u.endswith(f"?versionId={current['VersionId']}") for u in urls), urls

    code, again, err = restore_json(d, "--to", target)
    assert code == 0, err
    assert (again["written"]["objects"], again["same"], again["recorded_urls"]) == (0, 3, 0)

    # into a directory: the same keys, the texts from git, the blob from the store
    out = tmp_path / "out"
    code, report, err = restore_json(d, "--to", str(out))
    assert code == 0 and report["written"]["objects"] == 3, err
    for path, data in {**blobs, **TEXTS}.items():
        assert (out / dandi_archive.asset_at(ident, path, version).blob.key).read_bytes() == data, path


def _mirrored(archive, files: dict[str, bytes], root: Path) -> Dandiset:  # noqa: ANN001
    """A dandiset of ``files`` published once and mirrored into ``root``."""
    when = T0 + timedelta(days=700 + len(archive.dandiset_ids()))
    ident = archive.create_dandiset(name="records sample", created=when)
    for i, (path, data) in enumerate(files.items()):
        archive.put_asset(ident, path, data, when=when + timedelta(minutes=i + 1))
    version = archive.publish(ident, when=when + timedelta(hours=1))
    run = Runner(root)
    run.ok("sync", f"dandi:{ident}", "--dandi-api", archive.api_url)
    return Dandiset(archive, ident, version, files, run)

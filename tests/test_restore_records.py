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
import os
from datetime import timedelta
from pathlib import Path

import requests

from conftest import git
from helpers.keep import T0, Dandiset, key_of, lose_blobs
from helpers.restore import bucket_versions, restore_json, whereis_urls
from helpers.retrieve import Runner
from neuromirror.annex.keys import git_file_key
from neuromirror.demo import deterministic_bytes

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

    before = bucket_versions(s3, target[len("s3://") :])
    code, dry, err = restore_json(d, "--to", target, "--dry-run")
    assert code == 0, err
    assert (dry["would_write"]["objects"], dry["same"]) == (2, 1)
    keys = {dandi_archive.asset_at(ident, p, version).blob.key: p for p in TEXTS}
    assert {w["archive_key"]: w["path"] for w in dry["writes"]} == keys  # the files in git, nothing else
    assert all(w["from"] == "git" and w["git"].endswith(f":{w['path']}") for w in dry["writes"])

    code, report, err = restore_json(d, "--to", target)
    assert code == 0, err
    assert (report["objects"], report["written"]["objects"], report["same"]) == (3, 2, 1)
    assert {k for k, _ in bucket_versions(s3, target[len("s3://") :]) - before} == set(keys)  # what the dry run named
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


def test_dandi_part_sizes_are_dandischemas() -> None:
    """The parts a DANDI blob is written in: those dandischema hands out (and so dandi-cli's uploads make)."""
    from dandischema.digests.dandietag import PartGenerator

    from neuromirror.sources.dandi import dandi_spans

    for size in (0, 1, 5 << 20, 64 << 20, (64 << 20) + 1, 3 * (64 << 20), 10_000 * (64 << 20) - 1, 10**12, 5 << 40):
        assert dandi_spans(size) == [(p.offset, p.size) for p in PartGenerator.for_file_size(size)], size


#: the smallest blob dandischema's rule uploads in two parts (the stand-in has no knob to lower its part size)
TWO_PARTS = (64 << 20) + 1


def test_a_restored_blob_carries_the_etag_the_archive_recorded(dandi_archive, s3, s3_env, tmp_path: Path) -> None:  # noqa: ANN001, F811
    big, small = "sub-01/big.nwb", "sub-02/small.nwb"
    data = os.urandom(TWO_PARTS)  # (deterministic_bytes would take seconds)
    d = _mirrored(dandi_archive, {big: data, small: deterministic_bytes("small", 20_000)}, tmp_path / "mirror")
    blob_of = {p: d.archive.asset_at(d.id, p, d.version).blob for p in (big, small)}
    assert blob_of[big].etag.endswith("-2") and blob_of[small].etag.endswith("-1")
    client = s3.client()
    for p, blob in blob_of.items():  # as uploaded: the S3 ETag is the asset's dandi-etag
        assert client.head_object(Bucket=blob.bucket, Key=blob.key)["ETag"].strip('"') == blob.etag, p
    d.run.ok("keep", d.spec, "--to", str(tmp_path / "store"))
    lose_blobs(d, [big, small])

    code, report, err = restore_json(d, "--to", f"s3://{blob_of[big].bucket}")
    assert code == 0, err
    assert report["written"]["objects"] == 2 and report["failed"] == []
    restored = {}
    for p, blob in blob_of.items():
        head = client.head_object(Bucket=blob.bucket, Key=blob.key)
        assert head["ETag"].strip('"') == blob.etag, p  # the archive's record of it, multipart and all
        assert head["ContentLength"] == blob.size
        restored[p] = head["VersionId"]
    assert client.get_object(Bucket=blob_of[big].bucket, Key=blob_of[big].key)["Body"].read() == data
    code, again, err = restore_json(d, "--to", f"s3://{blob_of[big].bucket}")  # recognised as right: not rewritten
    assert code == 0 and again["written"]["objects"] == 0 and again["same"] == 2, err

    # the archive deletes them (a delete marker on top): a mirror first made now pins the restored versions
    for blob in blob_of.values():
        client.delete_object(Bucket=blob.bucket, Key=blob.key)
    later = Runner(tmp_path / "later")
    code, out, err = later("sync", d.source, "--dandi-api", d.archive.api_url)
    assert code == 0, out + err
    assert "not pinned" not in out + err, out + err
    ds = later.root / "dandi" / d.id
    for p, vid in restored.items():
        assert f"pinned to the noncurrent version {vid}" in out, out
        key = key_of(ds, p, d.version)
        assert any(u.endswith(f"{blob_of[p].key}?versionId={vid}") for u in whereis_urls(ds, key)), p


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

"""``repin``: pins the archive re-keyed found again, recorded, and read back by a clone of an old tag.

A small AIND-style asset on a versioned moto bucket is mirrored and tagged; then the archive moves:
its objects are copied to a second bucket (S3 gives each copy a new versionId) and the first is
deleted with every version in it, so each recorded ``?versionId=`` URL answers 404.  ``repin`` finds every key by
size and ETag without one GET of object bytes (the stand-in's request log says so), and a fresh
``datalad clone`` of the old tag gets the same bytes with ``datalad get`` alone.  Also: an object at
the same path holding other bytes is refused and named; a content-addressed layout is followed
through its manifest; a DANDI asset re-uploaded as a new blob is found by the API's record; a dry
run changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from helpers.aind import clone, datalad_get, git
from helpers.repin import content_addressed, move_bucket, purge, put_asset_objects

RAW = "SmartSPIM_222222_2024-02-02_10-00-00"
_CLEAN_ENV = ("NEUROMIRROR_AIND_BUCKET", "NEUROMIRROR_S3_ENDPOINT", "NEUROMIRROR_AIND_PREFIX")


def nm(root: Path, *args: str) -> tuple[int, str, str]:
    """``neuromirror --root ROOT ARGS`` in this process, as a user types it."""
    from neuromirror.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.pop(k) for k in _CLEAN_ENV if k in os.environ}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--root", str(root), *args])
    finally:
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def mirrored(s3: Any, tmp_path: Path) -> tuple[Path, str, dict[str, bytes]]:
    """A fresh bucket holding one asset, mirrored (root, bucket, path in the dataset -> bytes)."""
    bucket = f"aind-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(bucket, versioned=True, public=True)
    files = put_asset_objects(s3, bucket, RAW)
    root = tmp_path / "mirror"
    code, out, err = nm(root, "sync", f"aind:{RAW}", "--bucket", bucket, "--s3-endpoint", s3.endpoint_url, "-J1")
    assert code == 0, out + err
    return root, bucket, files


def object_gets(log: list[tuple[str, str]], *buckets: str) -> list[str]:
    """The requests that read an object's bytes (a GET of a key; listings are GETs of the bucket)."""
    return [p for m, p in log if m == "GET" and any(p.startswith(f"/{b}/") and len(p) > len(b) + 2 for b in buckets)]


def pinned(files: dict[str, bytes]) -> set[str]:
    """The files the mirror pinned by versionId URLs: the annexed ones and small text kept in git (a sidecar is
    kept in git unpinned)."""
    return {p for p in files if p.endswith((".bin", ".txt"))}


def annex_branch(ds: Path) -> str:
    return git(ds, "rev-parse", "git-annex").strip()


def whereis_urls(ds: Path, path: str) -> list[str]:
    out = json.loads(git(ds, "annex", "whereis", "--json", path))
    return sorted(u for r in out["whereis"] for u in r.get("urls", []))


@pytest.fixture
def moved(s3: Any, tmp_path: Path) -> tuple[Path, str, str, dict[str, bytes]]:
    """The asset mirrored, then moved to a second bucket, the first deleted with every version in it."""
    root, old, files = mirrored(s3, tmp_path)
    new = move_bucket(s3, old, RAW + "/")
    return root, old, new, files


def test_moved_bucket_repinned_by_size_and_etag_and_old_tag_clones(moved: Any, s3: Any, tmp_path: Path) -> None:
    root, old, new, files = moved
    ds = root / "aind" / RAW
    tag = git(ds, "tag", "--list").split()[0]
    # verify --content names the keys repin could fix
    code, out, _ = nm(root, "verify", f"aind:{RAW}", "--content", "--json")
    found = json.loads(out)
    report = found[0] if isinstance(found, list) else found
    assert code != 0 and len(report["repinnable"]) == len([p for p in files if p.endswith(".bin")])  # annexed
    assert any("neuromirror repin" in n for n in report["notes"])
    log = s3.log_requests()
    try:
        code, out, err = nm(root, "repin", f"aind:{RAW}", "--bucket", new, "--json")
    finally:
        s3.log_requests(False)
    assert code == 0, out + err
    got = json.loads(out)
    assert {p["path"] for p in got["repinned"]} == pinned(files)
    assert all(p["how"] == "moved" and "ETag" in p["evidence"] and f"/{new}/" in p["new_url"] for p in got["repinned"])
    assert got["bytes_read"] == 0 and object_gets(log, old, new) == []
    # the dataset records it: the new pinned URL, not the dead one; the index follows
    annexed = next(p for p in files if p.endswith(".bin"))
    urls = whereis_urls(ds, annexed)
    assert any(f"/{new}/" in u and "versionId=" in u for u in urls) and not any(f"/{old}/" in u for u in urls)
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    [(recorded,)] = db.execute("SELECT urls FROM entries WHERE path=?", [annexed]).fetchall()
    db.close()
    assert [u for u in json.loads(recorded) if f"/{new}/" in u] and not [
        u for u in json.loads(recorded) if f"/{old}/" in u
    ]
    # a fresh clone of the OLD tag gets the bytes with datalad alone
    work = clone(ds, tmp_path / "clone")
    git(work, "checkout", "-q", tag)
    got_files = sorted(p for p in files if (work / p).is_symlink())
    assert datalad_get(work, *got_files).returncode == 0
    for p in got_files:
        assert hashlib.sha256((work / p).read_bytes()).hexdigest() == hashlib.sha256(files[p]).hexdigest()
    # a rerun finds every pin serving: nothing to do
    code, out, _ = nm(root, "repin", f"aind:{RAW}", "--bucket", new, "--json")
    again = json.loads(out)
    assert code == 0 and again["repinned"] == [] and again["serving"] == len(pinned(files))


def test_dry_run_lists_and_changes_nothing(moved: Any) -> None:
    root, old, new, files = moved
    ds = root / "aind" / RAW
    annexed = sorted(p for p in files if p.endswith(".bin"))[0]
    before = (annex_branch(ds), git(ds, "status", "--porcelain"), whereis_urls(ds, annexed))
    code, out, err = nm(root, "repin", f"aind:{RAW}", "--bucket", new, "--dry-run")
    assert code == 0, out + err
    assert "WOULD REPIN" in out and f"/{old}/" in out and f"/{new}/" in out and "ETag" in out
    after = (annex_branch(ds), git(ds, "status", "--porcelain"), whereis_urls(ds, annexed))
    assert after == before


def test_same_path_other_bytes_refused_and_named(s3: Any, tmp_path: Path) -> None:
    root, bucket, files = mirrored(s3, tmp_path)
    ds = root / "aind" / RAW
    path = sorted(p for p in files if p.endswith(".bin"))[0]
    purge(s3, bucket, f"{RAW}/{path}")  # the pinned version gone ...
    s3.put(bucket, f"{RAW}/{path}", b"other bytes of the same length".ljust(len(files[path]), b"!"))  # ... others there
    before = whereis_urls(ds, path)
    code, out, err = nm(root, "repin", f"aind:{RAW}")
    assert code == 1
    assert f"DIFFERS aind:{RAW} {path}" in out and "holds other bytes" in out and "repin: 1 key(s)" in err
    assert whereis_urls(ds, path) == before  # the old URL kept, nothing new registered


def test_content_addressed_layout_followed_through_its_manifest(s3: Any, tmp_path: Path) -> None:
    root, bucket, files = mirrored(s3, tmp_path)
    ds = root / "aind" / RAW
    manifest = content_addressed(s3, bucket, RAW, tmp_path / "manifest.json")
    code, out, err = nm(root, "repin", f"aind:{RAW}", "--manifest", str(manifest), "--json")
    assert code == 0, out + err
    got = json.loads(out)
    assert {p["path"] for p in got["repinned"]} == pinned(files)
    assert all(p["how"] == "content-addressed" and "/content/md5/" in p["new_url"] for p in got["repinned"])
    work = clone(ds, tmp_path / "clone")
    bins = sorted(p for p in files if (work / p).is_symlink())
    assert datalad_get(work, *bins).returncode == 0
    assert all((work / p).read_bytes() == files[p] for p in bins)


def test_dandi_reuploaded_asset_found_by_its_record(cli: Any, dandi_archive: Any, tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    ident = dandi_archive.create_dandiset(name="re-keyed", created=t0)
    data = b"bytes the paper cites" * 50
    dandi_archive.put_asset(ident, "sub-1/rec.nwb", data, when=t0)
    version = dandi_archive.publish(ident, when=t0 + timedelta(hours=1))
    assert cli("sync", f"dandi:{ident}")[0] == 0
    dandi_archive.reupload_asset(ident, "sub-1/rec.nwb", when=t0 + timedelta(days=1))  # a new blob, the old purged
    code, out, err = cli("repin", f"dandi:{ident}@{version}", "--json")
    assert code == 0, out + err
    got = json.loads(out)
    [pin] = got["repinned"]
    assert pin["how"] == "asset-record" and "dandi:sha2-256" in pin["evidence"] and got["bytes_read"] == 0
    work = clone(cli.root / "dandi" / ident, tmp_path / "c")
    git(work, "checkout", "-q", version)
    assert datalad_get(work, "sub-1/rec.nwb").returncode == 0
    assert (work / "sub-1/rec.nwb").read_bytes() == data


def test_moved_prefix_followed_with_prefix_hints(s3: Any, tmp_path: Path) -> None:
    root, old, files = mirrored(s3, tmp_path)
    # the asset's prefix renamed in the move: RAW/x -> archive/2026/renamed/x
    new = move_bucket(s3, old, RAW + "/", under="archive/2026/renamed/", strip=True)
    hints = ["--bucket", new, "--from-prefix", RAW + "/", "--prefix", "archive/2026/renamed/"]
    code, out, err = nm(root, "repin", f"aind:{RAW}", *hints, "--json")
    assert code == 0, out + err
    got = json.loads(out)
    assert {p["path"] for p in got["repinned"]} == pinned(files)
    assert all(f"/{new}/archive/2026/renamed/" in p["new_url"] for p in got["repinned"])
    code, out, _ = nm(root, "repin", f"aind:{RAW}", "--json")  # a rerun, no hints: every pin serves
    assert code == 0 and json.loads(out)["serving"] == len(pinned(files))


def test_dandi_blob_moved_checked_by_its_bytes(cli: Any, dandi_archive: Any, s3: Any, tmp_path: Path) -> None:
    """A SHA256E key against a multipart ETag: nothing but the bytes can tell, so they are read (and counted)."""
    from datetime import datetime, timezone

    t0 = datetime(2025, 2, 1, tzinfo=timezone.utc)
    ident = dandi_archive.create_dandiset(name="moved blob", created=t0)
    data = b"a blob whose bucket moves" * 40
    asset = dandi_archive.put_asset(ident, "rec.nwb", data, when=t0)
    assert cli("sync", f"dandi:{ident}")[0] == 0
    blob = dandi_archive.asset(asset).blob
    new = f"moved-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(new, versioned=True, public=True)
    s3.client().copy_object(Bucket=new, Key=blob.key, CopySource={"Bucket": blob.bucket, "Key": blob.key})
    purge(s3, blob.bucket, blob.key)
    code, out, err = cli("repin", f"dandi:{ident}", "--bucket", new, "--json")
    assert code == 0, out + err
    got = json.loads(out)
    [pin] = got["repinned"]
    assert pin["how"] == "moved" and "bytes read" in pin["evidence"] and got["bytes_read"] == len(data)
    work = clone(cli.root / "dandi" / ident, tmp_path / "c")
    assert datalad_get(work, "rec.nwb").returncode == 0 and (work / "rec.nwb").read_bytes() == data


def test_bad_manifest_is_one_line(tmp_path: Path, s3: Any) -> None:
    root, _, _ = mirrored(s3, tmp_path)
    (tmp_path / "m.json").write_text("[1, 2]")
    proc = subprocess.run(
        [
            "python",
            "-m",
            "neuromirror",
            "--root",
            str(root),
            "repin",
            f"aind:{RAW}",
            "--manifest",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "not a repin manifest" in proc.stderr

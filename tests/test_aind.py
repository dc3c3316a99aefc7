"""AIND: S3 assets mirrored without download, checked end to end against a versioned moto server.

The stand-in bucket holds a raw asset (sidecar JSON, nested folders, a Zarr store,
one multipart object, hostile keys), a derived asset of it and an unrelated asset.
A mirror of it is cloned with ``datalad clone`` and every file is fetched with
``datalad get``: the bytes must be the archive's, for every version (tags), after
an overwrite and a delete upstream.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from helpers.aind import clone, datalad_get, git, subdatasets, tree
from neuromirror.annex.keys import key_file, key_from_file, md5e_key, sha256e_key
from neuromirror.sources.aind.metadata import asset_meta, parse_asset_name
from neuromirror.sources.aind.options import S3Settings
from neuromirror.sources.aind.s3 import AindError
from neuromirror.sources.aind.source import AindSource, next_label, remote_id_for
from neuromirror.util.sizes import parse_size

RAW = "ecephys_123456_2022-12-12_05-06-07"
DERIVED = RAW + "_sorted_2023-01-01_00-00-00"
OTHER = "SmartSPIM_654321_2023-03-03_01-02-03"
PART = 64  # moto's minimum multipart part size, lowered for the tests


# --------------------------------------------------------------------------- helpers


_CLEAN_ENV = (
    "NEUROMIRROR_AIND_BUCKET",
    "NEUROMIRROR_S3_ENDPOINT",
    "NEUROMIRROR_AIND_HASH",
    "NEUROMIRROR_AIND_HASH_THRESHOLD",
    "NEUROMIRROR_AIND_PREFIX",
    "NEUROMIRROR_ENGINE",
)


def nm(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``neuromirror --root ROOT ARGS``, in this process (fast; the S3 stand-in runs here too)."""
    from neuromirror.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.pop(k) for k in _CLEAN_ENV if k in os.environ}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["--root", str(root), *args])
            except SystemExit as exc:  # argparse
                code = int(exc.code or 0)
    finally:
        os.environ.update(saved)
    proc = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def nm_process(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``neuromirror --root ROOT ARGS`` exactly as a user runs it: a separate process."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(root), *args], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def sync(root: Path, bucket: Bucket, *specs: str, extra: tuple[str, ...] = ()) -> Any:
    """A sync's report; exit 0, or 3 when it refused items (and then said so)."""
    proc = nm(
        root,
        "sync",
        *specs,
        "--bucket",
        bucket.name,
        "--s3-endpoint",
        bucket.s3.endpoint_url,
        "--json",
        "-J1",
        *extra,
        check=False,
    )
    report = json.loads(proc.stdout)
    refused = any(r.get("refused") for r in (report if isinstance(report, list) else [report]))
    assert proc.returncode == (3 if refused else 0), proc.stdout + proc.stderr
    return report


#: loopback stand-in URLs allowed for git-annex in this process's children only (subdatasets included)


def annexed(ds: Path, path: str) -> str:
    """The key of an annexed file, or '' for a file in git (through installed subdatasets)."""
    p = ds / path
    if not p.is_symlink():
        return ""
    return key_from_file(os.readlink(p).rsplit("/", 1)[-1])


def inside(ds: Path, rev: str, path: str) -> tuple[Path, str, str]:
    """(repository, commit, path in it) of ``path`` at ``rev``: a Zarr store's objects are in its subdataset."""
    for line in git(ds, "ls-tree", "-r", rev).splitlines():
        meta, name = line.split("\t", 1)
        mode, _, sha = meta.split()
        if mode == "160000" and path.startswith(name + "/"):
            return inside(ds / name, sha, path[len(name) + 1 :])
    return ds, rev, path


def git_bytes(ds: Path, spec: str) -> bytes:
    return subprocess.run(["git", "-C", str(ds), "cat-file", "blob", spec], capture_output=True, check=True).stdout


def key_at(ds: Path, rev: str, path: str) -> str:
    """The key of an annexed file in commit ``rev`` ('' for a file in git)."""
    ds, rev, path = inside(ds, rev, path)
    mode = git(ds, "ls-tree", rev, "--", path).split()[0]
    if mode != "120000":
        return ""
    return key_from_file(git(ds, "cat-file", "-p", f"{rev}:{path}").rsplit("/", 1)[-1])


def index_rows(root: Path, sql: str, *params: Any) -> list[tuple]:
    conn = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@dataclass
class Bucket:
    s3: Any
    name: str
    files: dict[str, bytes] = field(default_factory=dict)  # S3 key -> current bytes

    def put(self, key: str, data: bytes) -> str:
        self.files[key] = data
        return self.s3.put(self.name, key, data)

    def put_multipart(self, key: str, data: bytes, part: int = PART) -> str:
        c = self.s3.client()
        up = c.create_multipart_upload(Bucket=self.name, Key=key)
        parts = []
        for i, off in enumerate(range(0, len(data), part), start=1):
            r = c.upload_part(
                Bucket=self.name, Key=key, UploadId=up["UploadId"], PartNumber=i, Body=data[off : off + part]
            )
            parts.append({"ETag": r["ETag"], "PartNumber": i})
        r = c.complete_multipart_upload(
            Bucket=self.name, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
        )
        self.files[key] = data
        return str(r.get("VersionId") or "null")

    def delete(self, key: str) -> None:
        self.s3.client().delete_object(Bucket=self.name, Key=key)
        self.files.pop(key, None)

    def asset(self, name: str) -> dict[str, bytes]:
        """path in the dataset -> bytes, for the asset's mirrorable files."""
        return {
            k[len(name) + 1 :]: v
            for k, v in self.files.items()
            if k.startswith(name + "/") and k not in HOSTILE and not k.endswith("/")
        }


HOSTILE = {f"{RAW}/../evil.bin": "escapes", f"{RAW}//abs.bin": "absolute", f"{RAW}/.git/config": "inside .git"}


def zarr_files(tmp: Path) -> dict[str, bytes]:
    """A small OME-Zarr-like store (format 2) written by zarr itself: relative path -> bytes."""
    import numpy as np
    import zarr

    store = tmp / "src.ome.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    root.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}]}]
    arr = root.create_array("0", shape=(4, 6), chunks=(2, 3), dtype="int32", compressors=None)
    arr[:] = np.arange(24, dtype="int32").reshape(4, 6)
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    import moto.s3.models

    from neuromirror.standins.s3 import S3StandIn

    mp = pytest.MonkeyPatch()
    mp.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", PART)  # tiny multipart uploads
    with S3StandIn() as server:
        yield server
    mp.undo()


@pytest.fixture(scope="module")
def bucket(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Bucket:
    b = Bucket(s3, f"aind-{uuid.uuid4().hex[:10]}")
    s3.create_bucket(b.name, versioned=True, public=True)
    dd = {
        "name": RAW,
        "subject_id": "123456",
        "creation_time": "2022-12-12T05:06:07",
        "data_level": "raw",
        "project_name": "Ephys Platform",
        "modality": [{"name": "Extracellular electrophysiology", "abbreviation": "ecephys"}],
        "institution": {"name": "Allen Institute for Neural Dynamics", "abbreviation": "AIND"},
    }
    b.put(f"{RAW}/data_description.json", json.dumps(dd, indent=2).encode())
    b.put(f"{RAW}/subject.json", json.dumps({"subject_id": "123456", "sex": "Female"}).encode())
    b.put(f"{RAW}/procedures.json", b'{"subject_id": "123456", "subject_procedures": []}')
    b.put(f"{RAW}/ecephys/ecephys_clipped/Record Node 101/settings.xml", b"<SETTINGS><INFO/></SETTINGS>\n")
    b.put(f"{RAW}/ecephys/ecephys_clipped/Record Node 101/continuous.dat", os.urandom(300))
    b.put(f"{RAW}/ecephys/notes.bin", b"first version of the notes\x00\x01")
    b.put(f"{RAW}/ecephys/old.bin", b"this object will be deleted upstream\x00")
    b.put(f"{RAW}/ecephys/empty.bin", b"")
    b.put(f"{RAW}/odd name+100%.bin", b"a key that needs quoting\x00")
    b.put(f"{RAW}/folder/", b"")  # an S3 console folder placeholder: not a file
    for rel, data in zarr_files(tmp_path_factory.mktemp("zarr")).items():
        b.put(f"{RAW}/ecephys/compressed/experiment1.ome.zarr/{rel}", data)
    b.put_multipart(f"{RAW}/behavior/video.bin", os.urandom(3 * PART + 10))
    for key in HOSTILE:
        b.s3.put(b.name, key, b"hostile")
    ddd = {
        "name": DERIVED,
        "subject_id": "123456",
        "creation_time": "2023-01-01T00:00:00",
        "data_level": "derived",
        "modality": [{"abbreviation": "ecephys"}],
        "source_data": [RAW],
        "project_name": "Ephys Platform",
    }
    b.put(f"{DERIVED}/data_description.json", json.dumps(ddd).encode())
    b.put(f"{DERIVED}/sorting/units.bin", os.urandom(100))
    odd = {
        "name": OTHER,
        "subject_id": "654321",
        "creation_date": "2023-03-03",
        "creation_time": "01:02:03",
        "data_level": "raw data",
        "modality": "SPIM",
        "project_name": "Brain Atlas",
    }
    b.put(f"{OTHER}/data_description.json", json.dumps(odd).encode())
    b.put(f"{OTHER}/image.bin", os.urandom(50))
    return b


@dataclass
class History:
    root: Path
    reports: list[Any]
    contents: list[dict[str, bytes]]  # the asset's files at each sync
    heads: list[str]


@pytest.fixture(scope="module")
def history(bucket: Bucket, tmp_path_factory: pytest.TempPathFactory) -> History:
    """sync; overwrite one object and delete another upstream; sync; sync again (no-op)."""
    root = tmp_path_factory.mktemp("mirror") / "root"
    h = History(root, [], [], [])
    h.contents.append(bucket.asset(RAW))
    h.reports.append(sync(root, bucket, f"aind:{RAW}"))
    h.heads.append(git(root / "aind" / RAW, "rev-parse", "HEAD").strip())
    time.sleep(1.1)  # a newer LastModified second: a new label
    bucket.put(f"{RAW}/ecephys/notes.bin", b"second version of the notes!\x02")
    bucket.delete(f"{RAW}/ecephys/old.bin")
    h.contents.append(bucket.asset(RAW))
    h.reports.append(sync(root, bucket, f"aind:{RAW}"))
    h.heads.append(git(root / "aind" / RAW, "rev-parse", "HEAD").strip())
    h.reports.append(sync(root, bucket, f"aind:{RAW}"))
    h.heads.append(git(root / "aind" / RAW, "rev-parse", "HEAD").strip())
    return h


# --------------------------------------------------------------------------- end to end


def test_first_sync_layout_keys_and_index(history: History, bucket: Bucket) -> None:
    r = history.reports[0]
    assert r["outcome"] == "ok" and len(r["versions"]) == 1, r
    ds = history.root / "aind" / RAW
    files = history.contents[0]
    rev = r["versions"][0]["commit"]
    assert tree(ds, rev) == sorted(files) and "folder" not in tree(ds, rev)
    # sidecars and small text (Zarr metadata included) are in git; data is annexed
    for path in (
        "data_description.json",
        "subject.json",
        "procedures.json",
        "ecephys/ecephys_clipped/Record Node 101/settings.xml",
        "ecephys/compressed/experiment1.ome.zarr/.zattrs",
        "ecephys/compressed/experiment1.ome.zarr/0/.zarray",
    ):
        sub, sub_rev, rel = inside(ds, rev, path)  # a Zarr store's metadata: in its dataset's git (not checked out)
        assert key_at(ds, rev, path) == "" and git_bytes(sub, f"{sub_rev}:{rel}") == files[path], path
    for path, data in files.items():
        if path.endswith(".bin") or path.endswith(".dat") or path.split("/")[-1].replace(".", "").isdigit():
            key = key_at(ds, rev, path)
            assert key, path
            if path == "behavior/video.bin":
                assert key.startswith(f"VURL-s{len(data)}--"), key  # multipart: verified on first get
            else:
                assert key == md5e_key(hashlib.md5(data).hexdigest(), len(data), path), path
    # every URL is pinned; the version is recorded with the asset's fields
    urls = json.loads(index_rows(history.root, "SELECT urls FROM entries WHERE path='behavior/video.bin'")[0][0])
    assert len(urls) == 1 and "?versionId=" in urls[0] and f"/{bucket.name}/{RAW}/behavior/video.bin?" in urls[0]
    ((label, tag, meta, remote_modified),) = index_rows(
        history.root,
        "SELECT label, tag, meta, remote_modified FROM versions WHERE source=? ORDER BY id LIMIT 1",
        f"aind:{RAW}",
    )
    assert label == tag == r["versions"][0]["label"]
    assert git(ds, "tag", "--list").split() == sorted(
        v["label"] for v in history.reports[0]["versions"] + history.reports[1]["versions"]
    )
    meta = json.loads(meta)
    assert meta["subject_id"] == "123456" and meta["modalities"] == ["ecephys"] and meta["data_level"] == "raw"
    assert meta["creation_time"] == "2022-12-12T05:06:07" and meta["project_name"] == "Ephys Platform"
    assert meta["pinned_upstream"] is True and meta["derived_from"] is None and meta["bucket"] == bucket.name
    kinds = dict(index_rows(history.root, "SELECT path, checksum_kind FROM entries WHERE source=?", f"aind:{RAW}"))
    assert kinds["behavior/video.bin"] == "verify-on-get" and kinds["ecephys/notes.bin"] == "md5"
    assert kinds["data_description.json"] == "git"
    # the commit is dated by the newest LastModified, and the label is that date
    date = git(ds, "log", "-1", "--format=%aI", r["versions"][0]["commit"]).strip()
    assert datetime.fromisoformat(date).strftime("%Y-%m-%dT%H-%M-%SZ") == label
    # git-annex agrees with what was written
    subprocess.run(["git", "annex", "fsck", "--fast", "--quiet"], cwd=ds, check=True, capture_output=True)


def test_hostile_keys_refused(history: History) -> None:
    refused = {x["path"]: x["reason"] for x in history.reports[0]["refused"]}
    assert set(refused) == {"../evil.bin", "/abs.bin", ".git/config"}
    assert "escapes" in refused["../evil.bin"] and "absolute" in refused["/abs.bin"]
    assert "inside .git" in refused[".git/config"] and f"'{RAW}/.git/config'" in refused[".git/config"]
    assert not (history.root / "aind" / "evil.bin").exists()
    ds = history.root / "aind" / RAW
    assert "hostile" not in git(ds, "config", "--list") and not (ds / ".git" / "config").read_text().count("hostile")
    # another bucket for the same asset name would mix two archives in one dataset
    out = nm(
        history.root,
        "sync",
        f"aind:{RAW}",
        "--bucket",
        "another-bucket",
        "--s3-endpoint",
        "http://127.0.0.1:9",
        check=False,
    )
    assert out.returncode == 1 and "was mirrored from" in out.stderr


def test_unreachable_endpoint_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROMIRROR_S3_MAX_ATTEMPTS", "1")
    out = nm(
        tmp_path / "root", "sync", "aind:x_1_2020-01-01_00-00-00", "--s3-endpoint", "http://127.0.0.1:9", check=False
    )
    assert out.returncode == 1
    assert "S3 endpoint http://127.0.0.1:9 is unreachable" in out.stderr and "Traceback" not in out.stderr


def test_clone_gets_exact_bytes_of_every_version(history: History, tmp_path: Path) -> None:
    ds = history.root / "aind" / RAW
    for i, (rev, files) in enumerate(
        zip([history.reports[0]["versions"][0]["tag"], history.reports[1]["versions"][0]["tag"]], history.contents)
    ):
        # a clone per version: ``datalad get -r`` installs the Zarr store at the commit the tag pins
        c = clone(ds, tmp_path / f"clone{i}")
        git(c, "checkout", "-q", rev)
        proc = datalad_get(c, "-r", ".")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert subdatasets(c) == ["ecephys/compressed/experiment1.ome.zarr"]
        assert tree(c) == sorted(files)
        for path, data in files.items():
            assert (c / path).read_bytes() == data, (rev, path)
    # the old tag still retrieves the overwritten object's old bytes (pinned versionId URL) ...
    assert history.contents[0]["ecephys/notes.bin"] != history.contents[1]["ecephys/notes.bin"]
    # ... and the deleted object, although the plain URL now answers 404
    assert "ecephys/old.bin" in history.contents[0] and "ecephys/old.bin" not in history.contents[1]
    # the VURL key's checksum was recorded on first download (git-annex verifies later downloads against it)
    key = annexed(c, "behavior/video.bin")
    ek = git(c, "show", f"git-annex:{_hashdir_lower(key)}{key_file(key)}.log.ek").split()
    video = history.contents[0]["behavior/video.bin"]
    assert ek[-1].startswith(f"SHA256E-s{len(video)}--{hashlib.sha256(video).hexdigest()}")
    subprocess.run(["git", "annex", "fsck", "--quiet", "behavior/video.bin"], cwd=c, check=True, capture_output=True)


def test_verify_content_passes_on_every_version(history: History) -> None:
    """An object overwritten in place: each version's pinned URL still serves that version's bytes."""
    assert history.contents[0]["ecephys/notes.bin"] != history.contents[1]["ecephys/notes.bin"]
    proc = nm(history.root, "verify", f"aind:{RAW}", "--all-versions", "--content", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 version(s) verified: 2 OK" in proc.stdout, proc.stdout
    # every annexed file of both versions has exactly one URL, pinned by its S3 version
    from neuromirror.sources import urlrule

    urls = [
        u
        for (x,) in index_rows(history.root, "SELECT urls FROM entries WHERE source=?", f"aind:{RAW}")
        for u in json.loads(x)
    ]
    assert urls and all(urlrule.stability(u) is urlrule.Stability.PINNED for u in urls), urls


def _hashdir_lower(key: str) -> str:
    from neuromirror.annex.keys import hashdir_lower

    return hashdir_lower(key)


def test_zarr_store_is_usable_after_get(history: History, tmp_path: Path) -> None:
    import numpy as np
    import zarr

    c = clone(history.root / "aind" / RAW, tmp_path / "clone")
    store = "ecephys/compressed/experiment1.ome.zarr"
    chunks = [p for p in history.contents[-1] if p.startswith(store + "/0/") and not p.split("/")[-1].startswith(".")]
    # the store is a subdataset: the asset's clone holds none of its objects until it is installed
    assert subdatasets(c) == [store] and not (c / store / ".zattrs").exists()
    proc = datalad_get(c, "-r", store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(chunks) == 4 and all(annexed(c, p) for p in chunks)  # one annexed file per chunk object
    arr = zarr.open_group(str(c / store), mode="r", zarr_format=2)["0"]
    assert np.array_equal(arr[:], np.arange(24, dtype="int32").reshape(4, 6))


def test_second_sync_records_overwrite_and_delete(history: History) -> None:
    r = history.reports[1]
    assert r["outcome"] == "ok" and (r["added"], r["removed"], r["changed"]) == (0, 1, 1), r
    first, second = history.reports[0]["versions"][0]["label"], r["versions"][0]["label"]
    assert second > first  # labels sort like time
    rows = index_rows(history.root, "SELECT label, files FROM versions WHERE source=? ORDER BY id", f"aind:{RAW}")
    assert [x[0] for x in rows] == [first, second] and rows[0][1] == rows[1][1] + 1


def test_unchanged_upstream_is_a_no_op(history: History) -> None:
    r = history.reports[2]
    assert r["outcome"] == "unchanged" and r["versions"] == [] and history.heads[2] == history.heads[1]
    versions = json.loads(nm(history.root, "versions", f"aind:{RAW}", "--json").stdout)
    assert [v["kind"] for v in versions] == ["snapshot", "snapshot"]
    assert [v["tag"] for v in versions] == [v["version"] for v in versions]
    assert versions[-1]["meta"]["subject_id"] == "123456" and versions[-1]["meta"]["modality"] == "ecephys"


def test_reindex_rebuilds_aind_rows(history: History, bucket: Bucket) -> None:
    q = (
        "SELECT e.path, e.key, e.checksum_kind, e.checksum, e.urls, e.remote_id FROM entries e"
        " WHERE e.source=? ORDER BY e.path, e.key"
    )
    before = index_rows(history.root, q, f"aind:{RAW}")
    q2 = "SELECT label, meta, remote_modified, tag FROM versions WHERE source=? ORDER BY id"
    metas = [(a, json.loads(b), c, d) for a, b, c, d in index_rows(history.root, q2, f"aind:{RAW}")]
    nm(history.root, "reindex")
    after = index_rows(history.root, q, f"aind:{RAW}")
    # reindex cannot know the remote ids of files in git; everything else comes back
    assert [x[:5] for x in after] == [x[:5] for x in before]
    assert [x[5] for x in after if x[2] != "git"] == [x[5] for x in before if x[2] != "git"]
    assert [(a, json.loads(b), c, d) for a, b, c, d in index_rows(history.root, q2, f"aind:{RAW}")] == metas
    # and the next sync still knows nothing changed
    assert sync(history.root, bucket, f"aind:{RAW}")["outcome"] == "unchanged"


def test_search_finds_assets_and_files(history: History, bucket: Bucket) -> None:
    hits = json.loads(nm(history.root, "search", "--subject", "123456", "--json").stdout)
    assert [h["source"] for h in hits] == [f"aind:{RAW}"] and hits[0]["meta"]["modalities"] == ["ecephys"]
    assert nm(history.root, "search", "--modality", "SPIM", check=False).returncode == 1
    notes = history.contents[1]["ecephys/notes.bin"]
    hits = json.loads(nm(history.root, "search", "--md5", hashlib.md5(notes).hexdigest(), "--json").stdout)
    assert [(h["source"], h["path"], h["in_latest"]) for h in hits] == [(f"aind:{RAW}", "ecephys/notes.bin", True)]
    sha = hashlib.sha256(history.contents[0]["data_description.json"]).hexdigest()
    out = nm(history.root, "search", "--sha256", sha).stdout
    assert f"aind:{RAW}" in out and "data_description.json" in out
    old = history.contents[0]["ecephys/old.bin"]
    hits = json.loads(nm(history.root, "search", "--md5", hashlib.md5(old).hexdigest(), "--json").stdout)
    assert len(hits) == 1 and hits[0]["version"] == history.reports[0]["versions"][0]["label"]
    assert hits[0]["in_latest"] is False


def test_glob_selects_assets_and_derived_assets_know_their_source(bucket: Bucket, tmp_path: Path) -> None:
    root = tmp_path / "root"
    reports = sync(root, bucket, "aind:ecephys_*")
    assert sorted(r["source"] for r in reports) == [f"aind:{RAW}", f"aind:{DERIVED}"]
    assert all(r["outcome"] == "ok" for r in reports)
    assert (root / "aind" / DERIVED / "sorting" / "units.bin").is_symlink()
    subds = git(root, "config", "--file", ".gitmodules", "--get-regexp", "path").split()
    assert f"aind/{RAW}" in subds and f"aind/{DERIVED}" in subds
    hits = json.loads(nm(root, "search", "--derived-from", RAW, "--json").stdout)
    assert [h["source"] for h in hits] == [f"aind:{DERIVED}"]
    meta = hits[0]["meta"]
    assert meta["derived_from"] == RAW and meta["raw_asset"] == RAW and meta["source_data"] == [RAW]
    assert meta["data_level"] == "derived" and meta["subject_id"] == "123456"
    # the other asset, with an older data_description schema
    r = sync(root, bucket, f"aind:{OTHER}")
    assert r["outcome"] == "ok"
    hits = json.loads(nm(root, "search", "--modality", "spim", "--json").stdout)
    m = hits[0]["meta"]
    assert (
        m["creation_time"] == "2023-03-03T01:02:03" and m["data_level"] == "raw" and m["project_name"] == "Brain Atlas"
    )
    dates = json.loads(nm(root, "search", "--source", "aind", "--date-from", "2023", "--json").stdout)
    assert [h["source"] for h in dates] == [f"aind:{OTHER}"]
    dates = json.loads(nm(root, "search", "--date-to", "2022-12", "--json").stdout)
    assert sorted(h["source"] for h in dates) == sorted([f"aind:{RAW}", f"aind:{DERIVED}"])
    # a name that matches nothing, and an asset that does not exist
    p = nm(
        root, "sync", "aind:nothing_*", "--bucket", bucket.name, "--s3-endpoint", bucket.s3.endpoint_url, check=False
    )
    assert p.returncode != 0 and "matched nothing" in p.stderr
    p = nm(
        root,
        "sync",
        "aind:no_such_asset",
        "--bucket",
        bucket.name,
        "--s3-endpoint",
        bucket.s3.endpoint_url,
        check=False,
    )
    assert p.returncode == 1 and "no asset 'no_such_asset'" in p.stderr
    assert not (root / "aind" / "no_such_asset").exists()  # asked before anything is created


def test_hash_option_makes_sha256_keys(bucket: Bucket, tmp_path: Path) -> None:
    root = tmp_path / "root"
    r = sync(root, bucket, f"aind:{RAW}", extra=("--hash",))
    assert r["outcome"] == "ok"
    ds = root / "aind" / RAW
    video = bucket.files[f"{RAW}/behavior/video.bin"]
    sha = hashlib.sha256(video).hexdigest()
    assert annexed(ds, "behavior/video.bin") == sha256e_key(sha, len(video), "video.bin")
    hits = json.loads(nm(root, "search", "--sha256", sha, "--json").stdout)
    assert [(h["path"], h["checksum_kind"]) for h in hits] == [("behavior/video.bin", "sha256")]
    subprocess.run(["git", "annex", "fsck", "--fast", "--quiet"], cwd=ds, check=True, capture_output=True)
    # a threshold below the object's size keeps the VURL key: a changed policy is a new version
    r = sync(root, bucket, f"aind:{RAW}", extra=("--hash-threshold", "100"))
    assert r["outcome"] == "ok" and r["changed"] == 1
    assert annexed(ds, "behavior/video.bin").startswith("VURL-")
    r = sync(root, bucket, f"aind:{RAW}", extra=("--hash-threshold", "1KiB"))
    assert annexed(ds, "behavior/video.bin") == sha256e_key(sha, len(video), "video.bin")


def test_unversioned_bucket_plain_urls_and_verification(s3: Any, tmp_path: Path) -> None:
    b = Bucket(s3, f"plain-{uuid.uuid4().hex[:10]}")
    s3.create_bucket(b.name, versioned=False, public=True)
    name = "behavior_111_2024-01-01_00-00-00"
    b.put(f"{name}/data_description.json", b'{"subject_id": "111", "modality": "behavior"}')
    b.put(f"{name}/a.bin", b"single part")
    b.put_multipart(f"{name}/big.bin", b"A" * (2 * PART + 5))
    root = tmp_path / "root"
    out = nm_process(root, "sync", f"aind:{name}", "--bucket", b.name, "--s3-endpoint", s3.endpoint_url)
    assert "warning:" in out.stdout and "not versioned" in out.stdout and "not pinned" in out.stdout, out.stdout
    ((meta,),) = index_rows(root, "SELECT meta FROM versions WHERE source=?", f"aind:{name}")
    assert json.loads(meta)["pinned_upstream"] is False
    urls = [
        u for (x,) in index_rows(root, "SELECT urls FROM entries WHERE source=?", f"aind:{name}") for u in json.loads(x)
    ]
    assert len(urls) == 2 and all("versionId" not in u for u in urls)
    ds = root / "aind" / name
    c = clone(ds, tmp_path / "clone")
    assert datalad_get(c, ".").returncode == 0
    assert (c / "big.bin").read_bytes() == b"A" * (2 * PART + 5) and (c / "a.bin").read_bytes() == b"single part"
    # same size, other bytes upstream at the same plain URL
    old_key = annexed(ds, "big.bin")
    time.sleep(1.1)
    b.put_multipart(f"{name}/big.bin", b"B" * (2 * PART + 5))
    r = sync(root, b, f"aind:{name}")
    assert r["changed"] == 1 and annexed(ds, "big.bin") != old_key  # new ETag -> new key, never a failed check
    # the clone recorded the old VURL key's checksum on first get: the new bytes are rejected for it
    subprocess.run(["git", "annex", "drop", "--force", "big.bin"], cwd=c, check=True, capture_output=True)
    proc = subprocess.run(["git", "annex", "get", "big.bin"], cwd=c, capture_output=True, text=True)
    assert proc.returncode != 0, "the old key's recorded checksum must reject the new bytes"
    # the clone, updated, gets the new bytes under the new key
    subprocess.run(["datalad", "update", "--how", "merge"], cwd=c, check=True, capture_output=True)
    assert datalad_get(c, "big.bin").returncode == 0
    assert (c / "big.bin").read_bytes() == b"B" * (2 * PART + 5)


def test_listing_without_list_versions_permission_still_pins(s3: Any, tmp_path: Path) -> None:
    """A bucket that denies anonymous ListObjectVersions: ListObjectsV2 + HEAD give the version ids.

    moto does not enforce s3:ListBucketVersions apart from s3:ListBucket, so the denial
    is made by a botocore hook on the (shared, cached) client the sync uses.
    """
    from botocore.exceptions import ClientError

    from neuromirror.sources.aind.s3 import s3_client

    b = Bucket(s3, f"nolv-{uuid.uuid4().hex[:10]}")
    s3.create_bucket(b.name, versioned=True)
    name = "ecephys_222_2024-02-02_00-00-00"
    vid = b.put(f"{name}/x.bin", b"x data")
    b.put(f"{name}/y.bin", b"y data")
    heads: list[str] = []

    def deny(params: dict, **kw: Any) -> None:
        if params.get("Bucket") == b.name:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "ListObjectVersions")

    def count(params: dict, **kw: Any) -> None:
        if params.get("Bucket") == b.name:
            heads.append(params["Key"])

    client = s3_client(S3Settings(bucket=b.name, endpoint=s3.endpoint_url))
    client.meta.events.register("before-parameter-build.s3.ListObjectVersions", deny)
    client.meta.events.register("before-parameter-build.s3.HeadObject", count)
    try:
        root = tmp_path / "root"
        assert sync(root, b, f"aind:{name}")["outcome"] == "ok"
        assert sorted(set(heads)) == [f"{name}/x.bin", f"{name}/y.bin"]
        ((urls,),) = index_rows(root, "SELECT urls FROM entries WHERE path='x.bin'")
        assert json.loads(urls)[0].endswith(f"?versionId={vid}")
        n = len(heads)
        assert sync(root, b, f"aind:{name}")["outcome"] == "unchanged"
        assert len(heads) == n  # version ids are cached per (key, ETag, LastModified): no HEAD again
        b.put(f"{name}/y.bin", b"y data, new")
        r = sync(root, b, f"aind:{name}")
        assert r["changed"] == 1 and heads[n:] == [f"{name}/y.bin"]
    finally:
        client.meta.events.unregister("before-parameter-build.s3.ListObjectVersions", deny)
        client.meta.events.unregister("before-parameter-build.s3.HeadObject", count)


def test_prefix_layout(s3: Any, tmp_path: Path) -> None:
    """aind-benchmark-data/ephys-compression/<source>/<session>: assets below a prefix."""
    b = Bucket(s3, f"bench-{uuid.uuid4().hex[:10]}")
    s3.create_bucket(b.name)
    b.put("ephys-compression/aind-np2/595262_2022-02-21_15-18-07_ProbeA/recording.bin", b"np2 data")
    b.put("ephys-compression/aind-np2/612962_2022-04-13_19-18-04_ProbeB/recording.bin", b"np2 data b")
    b.put("ephys-compression/ibl/other/recording.bin", b"ibl")
    root = tmp_path / "root"
    reports = sync(root, b, "aind:*ProbeA", extra=("--prefix", "ephys-compression/aind-np2"))
    assert reports["source"] == "aind:595262_2022-02-21_15-18-07_ProbeA"
    ds = root / "aind" / "595262_2022-02-21_15-18-07_ProbeA"
    assert tree(ds) == ["recording.bin"]
    ((meta,),) = index_rows(root, "SELECT meta FROM versions")
    assert json.loads(meta)["prefix"] == "ephys-compression/aind-np2/595262_2022-02-21_15-18-07_ProbeA/"
    # the same asset name from another bucket would mix two archives in one dataset: refused
    p = nm(
        root,
        "sync",
        "aind:595262_2022-02-21_15-18-07_ProbeA",
        "--bucket",
        b.name,
        "--s3-endpoint",
        s3.endpoint_url,
        check=False,
    )
    assert p.returncode == 1 and "was mirrored from" in p.stderr


# --------------------------------------------------------------------------- units


def test_streamed_listing_memory(tmp_path: Path) -> None:
    """A large asset is spooled, not held: peak memory stays far below the listing's size."""
    import tracemalloc

    n, page = 12_000, 1000  # held in memory, these entries alone would take ~6 MB
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)

    class Pages:
        def paginate(self, **kw: Any) -> Iterator[dict]:
            for p in range(n // page):
                yield {
                    "Versions": [
                        {
                            "Key": f"big/d/{i:08d}.bin",
                            "VersionId": f"v{i}",
                            "IsLatest": True,
                            "ETag": f'"{i:032x}"',
                            "Size": 1000 + i,
                            "LastModified": base + timedelta(seconds=i),
                        }
                        for i in range(p * page, (p + 1) * page)
                    ]
                }

    class Client:
        def get_paginator(self, name: str) -> Pages:
            assert name == "list_object_versions"
            return Pages()

    class State:
        def labels(self) -> set[str]:
            return set()

        def recorded_meta(self) -> dict:
            return {}

        def cache_get(self, ns: str, key: str) -> None:
            return None

    src = AindSource("big", S3Settings(bucket="b", endpoint="http://127.0.0.1:1"), client=Client())
    tracemalloc.start()
    try:
        gen = src.snapshots(State())  # type: ignore[arg-type]
        snap = next(gen)
        count = 0
        for _e in snap.entries:
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n and snap.meta["objects"] == n and snap.label == "2024-01-01T03-19-59Z"
    assert peak < 3 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for {n} objects"  # about one page


def test_first_sync_listing_that_fails_midway_stops_cleanly() -> None:
    """The first sync takes entries while the listing goes on: an error on a later page ends the entries
    with that error, and the listing thread ends too, as it does when the consumer stops early."""
    import threading

    base = datetime(2024, 1, 1, tzinfo=timezone.utc)

    class Pages:
        def __init__(self, fail_at: Optional[int]) -> None:
            self.fail_at = fail_at

        def paginate(self, **kw: Any) -> Iterator[dict]:
            for p in range(6):
                if p == self.fail_at:
                    raise OSError("connection reset by peer")
                yield {
                    "Versions": [
                        {
                            "Key": f"a/d/{i:06d}.bin",
                            "VersionId": f"v{i}",
                            "IsLatest": True,
                            "ETag": f'"{i:032x}"',
                            "Size": 10,
                            "LastModified": base,
                        }
                        for i in range(p * 1000, (p + 1) * 1000)
                    ]
                }

    class Client:
        def __init__(self, fail_at: Optional[int]) -> None:
            self.fail_at = fail_at

        def get_paginator(self, name: str) -> Pages:
            return Pages(self.fail_at)

    class State:
        def labels(self) -> set[str]:
            return set()

        def recorded_meta(self) -> dict:
            return {}

        def cache_get(self, ns: str, key: str) -> None:
            return None

    def listing_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("listing ")]

    src = AindSource("a", S3Settings(bucket="b", endpoint="http://127.0.0.1:1"), client=Client(3))
    snap = next(src.snapshots(State()))  # type: ignore[arg-type]
    assert snap.label == ""  # not known before the listing ends
    seen = 0
    with pytest.raises(AindError, match="connection reset"):
        for _ in snap.entries:
            seen += 1
    assert 0 < seen <= 3000 and not listing_threads()
    # a consumer that stops early (a failed commit, an interrupt) ends the listing as well
    src = AindSource("a", S3Settings(bucket="b", endpoint="http://127.0.0.1:1"), client=Client(None))
    snap = next(src.snapshots(State()))  # type: ignore[arg-type]
    entries = iter(snap.entries)
    next(entries)
    entries.close()  # type: ignore[attr-defined]
    assert not listing_threads()
    # and read to the end, the snapshot is complete: label and metadata from the whole listing
    snap = next(src.snapshots(State()))  # type: ignore[arg-type]
    assert sum(1 for _ in snap.entries) == 6000 and snap.meta["objects"] == 6000
    assert snap.label == "2024-01-01T00-00-00Z" and snap.remote_modified and not listing_threads()


def test_parse_asset_name() -> None:
    assert parse_asset_name(RAW) == {
        "platform": "ecephys",
        "subject_id": "123456",
        "acquisition_date": "2022-12-12",
        "acquisition_time": "05:06:07",
    }
    d = parse_asset_name(DERIVED)
    assert d["derived_from"] == RAW and d["raw_asset"] == RAW and d["process_label"] == "sorted"
    assert d["subject_id"] == "123456"
    dd = parse_asset_name(DERIVED + "_curated_2023-02-02_00-00-00")
    assert dd["derived_from"] == DERIVED and dd["raw_asset"] == RAW and dd["process_label"] == "curated"
    assert parse_asset_name("662585_2023-03-01_10-00-00")["subject_id"] == "662585"
    assert parse_asset_name("single-plane-ophys_1_2023-01-01_01-01-01")["platform"] == "single-plane-ophys"
    assert parse_asset_name("not an aind name") == {}


def test_asset_meta_schema_generations() -> None:
    v2 = {
        "subject_id": "1",
        "modalities": [{"abbreviation": "ecephys"}, {"abbreviation": "behavior-videos"}],
        "creation_time": "2025-01-01T00:00:00-08:00",
        "data_level": "raw",
        "project_name": "P",
    }
    m = asset_meta("x", {"data_description.json": json.dumps(v2).encode()})
    assert m["modalities"] == ["ecephys", "behavior-videos"] and m["modality"] == "ecephys,behavior-videos"
    assert m["creation_time"] == "2025-01-01T00:00:00-08:00" and m["acquisition_date"] == "2025-01-01"
    m = asset_meta(RAW, {"data_description.json": b"not json"})
    assert m["subject_id"] == "123456" and m["modalities"] == ["ecephys"] and m["data_level"] == "raw"
    m = asset_meta(RAW, {"subject.json": b'{"subject_id": "999"}'})
    assert m["subject_id"] == "999"
    m = asset_meta(
        "derived_thing", {"data_description.json": b'{"source_data": ["s3://b/raw_1_2020-01-01_00-00-00/"]}'}
    )
    assert m["derived_from"] == "raw_1_2020-01-01_00-00-00"


def test_labels_sort_and_never_repeat() -> None:
    t = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
    assert next_label(t, set()) == "2026-11-21T10-00-00Z"
    assert next_label(t + timedelta(seconds=1), {"2026-11-21T10-00-00Z"}) == "2026-11-21T10-00-01Z"
    # a deletion in an unversioned bucket leaves the newest LastModified where it was (or older)
    assert next_label(t, {"2026-11-21T10-00-00Z"}) == "2026-11-21T10-00-00Z-2"
    labels = {"2026-11-21T10-00-00Z"} | {f"2026-11-21T10-00-00Z-{i}" for i in range(2, 11)}
    assert next_label(t - timedelta(days=1), labels) == "2026-11-21T10-00-00Z-11"


def test_sizes_urls_and_remote_ids() -> None:
    assert parse_size("1KiB") == 1024 and parse_size("500MB") == 500_000_000 and parse_size("2G") == 2 * 10**9
    assert parse_size(None) == 0 and parse_size(4096) == 4096 and parse_size("1gib") == 1 << 30
    with pytest.raises(ValueError):
        parse_size("lots")
    aws = S3Settings()
    u = aws.object_url("asset/a b+c%.bin", "v1.x_y")
    assert u == "https://aind-open-data.s3.us-west-2.amazonaws.com/asset/a%20b%2Bc%25.bin?versionId=v1.x_y"
    assert remote_id_for("a b+c%.bin", None, (u,)) == "asset/a b+c%.bin@v1.x_y"
    dotted = S3Settings(bucket="my.bucket")
    assert dotted.object_url("k", None) == "https://s3.us-west-2.amazonaws.com/my.bucket/k"
    assert remote_id_for("k", None, (dotted.object_url("k", None),)) == "k"
    local = S3Settings(bucket="b", endpoint="http://127.0.0.1:5000/")
    assert local.object_url("x/y.bin", None) == "http://127.0.0.1:5000/b/x/y.bin"
    assert remote_id_for("y.bin", None, ("http://127.0.0.1:5000/b/x/y.bin?versionId=3",)) == "x/y.bin@3"
    s = S3Settings.from_options({"bucket": None, "hash_threshold": "1MiB", "prefix": "/a/b/"})
    assert s.bucket == "aind-open-data" and s.hash_threshold == 1 << 20 and s.prefix == "a/b/"
    assert s.wants_hash(1 << 20) and not s.wants_hash((1 << 20) + 1)


def test_key_file_names_match_git_annex() -> None:
    """URL keys hold ':', '/', '%', '&': their file names are escaped like git-annex's keyFile."""
    for key in ("VURL-s5--http://h:1/a%20b&c", "SHA256E-s1--ab.txt", "VURL--x&a&s&c%"):
        assert key_from_file(key_file(key)) == key
    assert key_file("VURL-s5--http://h:1/a%20b&c") == "VURL-s5--http&c%%h&c1%a&s20b&ac"

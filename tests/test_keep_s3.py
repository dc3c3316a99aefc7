"""``keep`` into an S3 bucket: the store is a git-annex S3 special remote every clone enables by itself.

Why: a lab's store is as often a bucket (its own MinIO, a cloud bucket) as a disk. These tests keep a
small dandiset's published version into a bucket of the moto stand-in, *really* delete every S3
version of the archive's blobs, and check that ``reproduce`` of a lock and a plain ``datalad clone`` +
``git checkout TAG`` + ``datalad get .`` still give the exact bytes — from the bucket, which the clone
enabled from the ``remote.log`` line alone (credentials in the environment, as git-annex reads them).
Also: the bucket's layout is git-annex's own (``FILEPREFIX + KEY``), a second keep transfers nothing,
multipart uploads appear under the key's name only once verified, and no credential is written
anywhere (history, git-annex branch, index, logs).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import git
from helpers.keep import (
    ACCESS_KEY,
    SECRET_KEY,
    STORE_NAME,
    Dandiset,
    key_of,
    lose_blobs,
    make_dandiset,
    sha256,
    whereis,
)
from helpers.retrieve import data_files


def objects(s3, bucket: str) -> dict[str, int]:  # noqa: ANN001
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return {o["Key"]: o["Size"] for o in listing.get("Contents", [])}


def allow_loopback() -> dict[str, str]:
    """The environment of a user whose git config lets git-annex reach the loopback stand-in (as ``git -c``)."""
    env = dict(os.environ)
    n = int(env.get("GIT_CONFIG_COUNT") or 0)
    env[f"GIT_CONFIG_KEY_{n}"] = "annex.security.allowed-ip-addresses"
    env[f"GIT_CONFIG_VALUE_{n}"] = "all"
    env["GIT_CONFIG_COUNT"] = str(n + 1)
    return env


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=allow_loopback())


def keep_json(d: Dandiset, store: str, *args: str) -> tuple[int, dict, str]:
    import json

    code, out, err = d.run("keep", *args, "--to", store, "--json")
    return code, json.loads(out), err


def test_kept_in_a_bucket_reproduces_after_the_archive_lost_it(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 120_000, "sub-02/b.nwb": 30_001})
    lock = tmp_path / "data.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    store = f"s3://{bucket}/lab/keep"

    code, report, err = keep_json(d, store, d.spec, "-J", "2")
    assert code == 0, err
    said = err + str(report)
    assert report["store"]["kind"] == "S3" and report["store"]["url"] == f"s3://{bucket}/lab/keep/"
    (v,) = report["versions"]
    assert (v["kept"], v["already"], v["failed"], v["recorded"]) == (2, 0, [], 2)
    assert report["transferred"] == {"files": 2, "bytes": 150_001}
    # git-annex's S3 layout: FILEPREFIX + KEY, plus the store's identity and git-annex's annex-uuid
    keys = {p: key_of(d.ds, p, d.version) for p in d.files}
    held = objects(s3, bucket)
    assert {f"lab/keep/{k}" for k in keys.values()} <= set(held)
    assert set(held) - {f"lab/keep/{k}" for k in keys.values()} == {
        "lab/keep/.neuromirror-store.json",
        "lab/keep/annex-uuid",
    }
    for path, key in keys.items():
        body = s3.client().get_object(Bucket=bucket, Key=f"lab/keep/{key}")["Body"].read()
        assert body == d.files[path]
    store_uuid = report["store"]["uuid"]
    assert report["store"]["name"] == f"{STORE_NAME}-{store_uuid.replace('-', '')[:8]}"  # a name of its own
    assert s3.client().get_object(Bucket=bucket, Key="lab/keep/annex-uuid")["Body"].read() == store_uuid.encode()
    remote_log = next(ln for ln in git(d.ds, "show", "git-annex:remote.log").splitlines() if ln.startswith(store_uuid))
    fields = dict(w.split("=", 1) for w in remote_log.split()[1:-1])
    assert fields == {
        "autoenable": "true",
        "bucket": bucket,
        "cost": "150",  # read before the archive, as a directory store (issue 57)
        "datacenter": "US",
        "encryption": "none",
        "fileprefix": "lab/keep/",
        "host": s3.host,
        "name": report["store"]["name"],
        "port": str(s3.port),
        "protocol": "http",
        "requeststyle": "path",
        "signature": "v4",
        "type": "S3",
    }
    assert all(any("neuromirror store at s3://" in w for w in whereis(d.ds, k)) for k in keys.values())

    # a second keep: HEAD says every object is there with the key's size; nothing moves
    branch = git(d.ds, "rev-parse", "git-annex")
    code, again, err = keep_json(d, store, d.spec)
    assert code == 0, err
    said += err
    assert (again["versions"][0]["kept"], again["versions"][0]["already"]) == (0, 2)
    assert again["transferred"] == {"files": 0, "bytes": 0} and again["versions"][0]["recorded"] == 0
    assert git(d.ds, "rev-parse", "git-annex") == branch

    # the archive loses the bytes for good (every S3 version of the blobs)
    lose_blobs(d, list(d.files))
    code, out, err = d.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    said += out + err
    got = data_files(tmp_path / "work" / "dandi" / d.id)
    for path, data in d.files.items():
        assert sha256(got[path]) == sha256(data), path

    # a plain DataLad user with credentials in the environment: clone, check out the tag, get
    work = tmp_path / "clone"
    proc = run(["datalad", "clone", str(d.ds), str(work)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(work, "config", f"remote.{report['store']['name']}.annex-s3").strip() == "true"  # autoenabled
    git(work, "checkout", "-q", d.version)
    proc = run(["datalad", "get", "."], work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in d.files.items():
        assert (work / path).read_bytes() == data
        assert STORE_NAME in run(["git", "annex", "whereis", path], work).stdout

    # no credential anywhere: history and git-annex branch, the index, the logs, any file of the mirror
    assert_no_credentials(d, work, said)


def assert_no_credentials(d: Dandiset, clone: Path, output: str) -> None:
    secrets = (ACCESS_KEY, SECRET_KEY)
    assert not any(s in output for s in secrets)
    for repo in (d.ds, clone):
        history = git(repo, "log", "-p", "--all")
        assert "type=S3" in history or repo == clone  # the record is there, the secrets are not
        assert not any(s in history for s in secrets), repo
    for db in [p for p in d.run.root.rglob("*") if p.is_file() and p.suffix in (".db", ".sqlite", ".sqlite3")]:
        con = sqlite3.connect(db)
        try:
            dump = "\n".join(con.iterdump())
        finally:
            con.close()
        assert not any(s in dump for s in secrets), db
    for root in (d.run.root, clone):
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink():
                data = p.read_bytes()
                assert not any(s.encode() in data for s in secrets), p


def test_multipart_upload_is_completed_only_after_verification(s3, bucket) -> None:  # noqa: ANN001
    """Bounded memory: parts go out as they fill; the key's name appears only at commit; a discard leaves nothing."""
    import hashlib

    from neuromirror.store import s3 as s3store
    from neuromirror.store.location import open_store

    store = open_store(f"s3://{bucket}")
    assert isinstance(store, s3store.S3Store) and store.prefix == ""
    data = os.urandom(s3store.PART + 1234)
    key = f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.bin"
    with store.receive(key) as incoming:
        for i in range(0, len(data), 1 << 20):
            incoming.write(data[i : i + (1 << 20)])
        assert len(incoming._buf) < s3store.PART and incoming._parts  # one part sent, the rest held
        assert not store.has(key)  # in flight: not under its name
        uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in uploads] == [key]
        assert incoming.commit()
    assert store.has(key) and s3.client().get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    with store.receive(key) as again:  # the store has it: not written twice
        again.write(data)
        assert again.commit() is False
    other = "SHA256E-s10--" + "0" * 64
    with store.receive(other) as dropped:  # verification failed: the caller never commits
        dropped.write(os.urandom(s3store.PART + 10))
    assert not store.has(other) and not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert store.used_bytes() == len(data)  # the identity objects do not count
    # S3 allows 10,000 parts: a 200 GB file goes in larger parts, whole MiB
    assert s3store.part_size(key) == s3store.PART
    big = s3store.part_size(f"SHA256E-s{200 * 10**9}--{'0' * 64}.nwb")
    assert big % (1 << 20) == 0 and 200 * 10**9 / big <= s3store.MAX_PARTS


def test_s3_store_names(s3, bucket, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.errors import UserError
    from neuromirror.store.location import open_store

    s = open_store(f"s3://{bucket}/a/b/")
    assert (s.url, s.prefix, s.endpoint) == (f"s3://{bucket}/a/b/", "a/b/", s3.endpoint_url)  # type: ignore[attr-defined]
    for bad in ("s3:///nobucket", "s3://b/p?x=1"):
        with pytest.raises(UserError, match="s3://BUCKET"):
            open_store(bad)
    # a bucket holding other things is not taken for a store
    s3.client().put_object(Bucket=bucket, Key="thesis.pdf", Body=b"%PDF")
    with pytest.raises(UserError, match="not a neuromirror store"):
        _ = open_store(f"s3://{bucket}", create=True).identity
    # a prefix opened to be read is never made a store by looking
    with pytest.raises(UserError, match="not reachable: no .neuromirror-store.json there"):
        _ = open_store(f"s3://{bucket}/keep").identity
    # ...but keep --to makes a new prefix one; one identity for every user of the store
    a, b = open_store(f"s3://{bucket}/keep", create=True), open_store(f"s3://{bucket}/keep", create=True)
    assert a.identity == b.identity
    monkeypatch.setenv("NEUROMIRROR_STORE_ENDPOINT", "ftp://nope")
    with pytest.raises(UserError, match="http"):
        open_store(f"s3://{bucket}")


def test_public_bucket_serves_clones_without_credentials(
    dandi_archive, s3, bucket, tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    """``NEUROMIRROR_STORE_PUBLIC_URL``: ``publicurl=`` in ``remote.log``; a clone with no credentials gets over HTTP."""
    s3.make_public(bucket)  # anonymous GET/HEAD allowed by the bucket policy
    monkeypatch.setenv("NEUROMIRROR_STORE_PUBLIC_URL", f"{s3.endpoint_url}/{bucket}")
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 20_000})
    code, report, err = keep_json(d, f"s3://{bucket}/pub", d.spec)
    assert code == 0 and report["versions"][0]["kept"] == 1, err
    assert f"publicurl={s3.endpoint_url}/{bucket}/ " in git(d.ds, "show", "git-annex:remote.log")
    lose_blobs(d, list(d.files))
    env = {k: v for k, v in allow_loopback().items() if not k.startswith("AWS_")}
    work = tmp_path / "clone"
    for cmd, cwd in ((["datalad", "clone", str(d.ds), str(work)], tmp_path), (["git", "annex", "get", "."], work)):
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"(from {report['store']['name']}...)" in proc.stdout
    assert (work / "sub-01/a.nwb").read_bytes() == d.files["sub-01/a.nwb"]


def test_keep_killed_mid_upload_then_rerun_converges(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    """SIGKILL after a part of a large file went out: no object under its name, nothing recorded; a rerun converges."""
    import sys

    from neuromirror.store.s3 import PART

    sizes = {"sub-01/a.nwb": 30_000, "sub-01/b.nwb": PART + 1_000_000, "sub-01/c.nwb": 32_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = f"s3://{bucket}/k"
    # -J 1, path order: "keep-copy" #1 is a's only chunk, #2.. b's 1 MiB chunks; after #9 b's first part is out
    env = dict(os.environ, NEUROMIRROR_CRASH_AT="keep-copy#10")
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "keep", d.spec, "--to", store, "-J", "1"]
    crashed = subprocess.run([*cmd, "-q"], env=env, capture_output=True, text=True)
    assert crashed.returncode == -9, crashed.stderr
    keys = {p: key_of(d.ds, p, d.version) for p in sizes}
    assert {k for k in objects(s3, bucket) if "--" in k} == {f"k/{keys['sub-01/a.nwb']}"}
    uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == [f"k/{keys['sub-01/b.nwb']}"]  # invisible until completed
    assert not any(STORE_NAME in " ".join(whereis(d.ds, k)) for k in keys.values())
    code, report, err = keep_json(d, store, d.spec)
    assert code == 0, err
    v = report["versions"][0]
    assert (v["already"], v["kept"], v["recorded"]) == (1, 2, 3) and report["transferred"]["files"] == 2
    for path, key in keys.items():
        assert s3.client().head_object(Bucket=bucket, Key=f"k/{key}")["ContentLength"] == sizes[path]


def test_a_bucket_store_keeps_its_storage_class(dandi_archive, s3, bucket, tmp_path: Path) -> None:  # noqa: ANN001
    """Its objects in the class it was made with; another class named for it is a one-line error.  (A packed
    store's fixed pack size: tests/test_pack_store.py; cold classes read and thawed: tests/test_pack_s3.py.)"""
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 4_000})
    assert d.run("keep", d.spec, "--to", f"s3://{bucket}/ia", "--storage-class", "STANDARD_IA")[0] == 0
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix="ia/")["Contents"]
    (key,) = [o["Key"] for o in listed if "neuromirror" not in o["Key"] and "annex-uuid" not in o["Key"]]
    assert s3.client().head_object(Bucket=bucket, Key=key)["StorageClass"] == "STANDARD_IA"
    code, out, err = d.run("keep", d.spec, "--to", f"s3://{bucket}/ia", "--storage-class", "GLACIER")
    said = f"--storage-class GLACIER: s3://{bucket}/ia/ was made with storage class STANDARD_IA"
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1, (code, err)

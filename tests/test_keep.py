"""``keep``: a version's content in the lab's own store outlives the archive — used as a lab would.

Why: a pinned state is reproducible only while the archive keeps its bytes, and archives lose
them (garbage collection of unreferenced blobs, lifecycle rules on old object versions). These
tests mirror small dandisets from the stand-ins, keep a version in a directory store, then
*really* delete every S3 version of its blobs from the moto stand-in (as garbage collection
would) and check that ``reproduce`` and a plain ``datalad clone`` + ``datalad get`` still give
the exact bytes — from the store, found by the clone itself — while without ``keep`` the same
reproduction fails naming the lost files.  Also: reruns copy nothing twice, a byte flipped in
the store is refused at retrieval, ``--budget`` stops cleanly, a SIGKILL mid-copy converges.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import clone, git
from helpers.keep import (
    STORE_NAME,
    T0,
    keep_json,
    kept_in,
    key_of,
    lose_blobs,
    lose_zarr,
    make_dandiset,
    remote_name_of,
    sha256,
    store_keys,
)
from helpers.retrieve import data_files
from neuromirror.demo import deterministic_bytes
from neuromirror.store.directory import DirectoryStore

#: every store's remote name starts so (``neuromirror-store-<first 8 hex digits of its UUID>``)


# -- the story: keep, lose the archive's bytes, reproduce anyway ----------------------------
def test_kept_version_reproduces_after_the_archive_lost_it(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 120_000, "sub-02/b.nwb": 30_001})
    lock = tmp_path / "data.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    store = tmp_path / "store"

    code, report, err = keep_json(d, store, d.spec)
    assert code == 0, err
    (v,) = report["versions"]
    assert (v["version"], v["files"], v["bytes"], v["kept"], v["already"]) == (d.version, 2, 150_001, 2, 0)
    assert v["in_git"] == 2 and v["skipped"] == [] and v["failed"] == [] and v["recorded"] == 2
    assert report["transferred"] == {"files": 2, "bytes": 150_001} and report["ok"]
    keys = {p: key_of(d.ds, p, d.version) for p in d.files}
    assert store_keys(store) == set(keys.values())
    for path, key in keys.items():  # the store is a git-annex directory remote: <hashdirlower>/<KEY>/<KEY>
        from neuromirror.annex.keys import hashdir_lower

        assert (store / hashdir_lower(key) / key / key).read_bytes() == d.files[path]
        assert kept_in(d.ds, key)
    remote_log = git(d.ds, "show", "git-annex:remote.log")
    assert f"directory={store} " in remote_log and "autoenable=true cost=150" in remote_log  # before the web's 200

    # a second keep: everything already there, nothing transferred or rewritten
    inodes = {p: p.stat().st_ino for p in store.glob("*/*/*/*")}
    branch = git(d.ds, "rev-parse", "git-annex")
    code, again, err = keep_json(d, store, d.spec)
    assert code == 0, err
    assert (again["versions"][0]["kept"], again["versions"][0]["already"]) == (0, 2)
    assert again["transferred"] == {"files": 0, "bytes": 0} and again["versions"][0]["recorded"] == 0
    assert {p: p.stat().st_ino for p in store.glob("*/*/*/*")} == inodes
    assert git(d.ds, "rev-parse", "git-annex") == branch  # a no-op: the branch did not move

    # the archive loses the bytes for good; the draft drops one asset; the mirror resyncs
    lose_blobs(d, list(d.files))
    dandi_archive.delete_asset(d.id, "sub-02/b.nwb", when=T0 + timedelta(days=200))
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)

    # reproduce the lock elsewhere: every byte, from the store
    code, out, err = d.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    got = data_files(tmp_path / "work" / "dandi" / d.id)
    for path, data in d.files.items():
        assert sha256(got[path]) == sha256(data), path

    # a plain DataLad user: clone, check out the tag, get — the clone enabled the store by itself
    work = clone(d.ds, tmp_path / "clone")
    name = remote_name_of(store)
    assert name.startswith(STORE_NAME + "-") and len(name) == len(STORE_NAME) + 9
    assert git(work, "config", f"remote.{name}.annex-directory").strip() == str(store)
    git(work, "checkout", "-q", d.version)
    proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in d.files.items():
        assert (work / path).read_bytes() == data
        assert STORE_NAME in git(work, "annex", "whereis", path)

    # a byte flipped in the store: git-annex verifies the key and refuses it
    victim = next(p for p in store.glob("*/*/*/*") if p.name == keys["sub-01/a.nwb"])
    os.chmod(victim.parent, 0o755)
    os.chmod(victim, 0o644)
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0xFF
    victim.write_bytes(bytes(data))
    other = clone(d.ds, tmp_path / "clone2")
    git(other, "checkout", "-q", d.version)
    proc = subprocess.run(["git", "annex", "get", "sub-01/a.nwb"], cwd=other, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Verification of content failed" in proc.stdout + proc.stderr
    assert not (other / "sub-01/a.nwb").exists()  # a dangling symlink: no wrong bytes were kept


def test_without_keep_reproduce_fails_naming_the_lost_files(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/kept.nwb": 20_000, "sub-01/lost.nwb": 25_000})
    lock = tmp_path / "data.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    # only one of the two files kept (a filter): the other is what the archive then loses for good
    code, report, err = keep_json(d, tmp_path / "store", d.spec, "--exclude", "*lost*")
    assert code == 0, err
    assert (report["versions"][0]["files"], report["versions"][0]["excluded"]) == (1, 1)
    lose_blobs(d, list(d.files))
    code, out, err = d.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all", "--keep-failed")
    assert code == 1
    text = out + err
    assert "sub-01/lost.nwb" in text and "REPRODUCTION FAILED" in text
    assert "sub-01/kept.nwb:" not in text
    work = tmp_path / "work" / "dandi" / d.id
    assert (work / "sub-01/kept.nwb").read_bytes() == d.files["sub-01/kept.nwb"]
    assert not (work / "sub-01/lost.nwb").exists()  # never wrong bytes: no bytes at all


# -- budget, filters, the JSON report -------------------------------------------------------
def test_budget_stops_cleanly_and_what_fits_is_recorded(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    sizes = {"sub-01/a.nwb": 40_000, "sub-01/b.nwb": 40_000, "sub-01/c.nwb": 40_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "store"
    code, report, err = keep_json(d, store, d.spec, "--budget", "100K")  # 100,000 bytes: two files fit
    assert code == 1
    assert "keep stopped by --budget 100000 bytes" in err and "1 file(s), 39.1 KiB did not fit" in err
    v = report["versions"][0]
    assert (v["kept"], v["already"], v["failed"]) == (2, 0, [])
    assert [(s["path"], s["why"].startswith("over the budget")) for s in v["skipped"]] == [("sub-01/c.nwb", True)]
    assert report["budget"]["stopped"] and report["budget"]["not_fitting"] == {"files": 1, "bytes": 40_000}
    assert report["budget"]["store_bytes_before"] == 0 and not report["ok"]
    # the store and the git-annex branch agree: exactly the files that fit
    held = store_keys(store)
    assert len(held) == 2
    for path in sizes:
        key = key_of(d.ds, path, d.version)
        assert kept_in(d.ds, key) == (key in held), path
    # what the store holds counts: the same budget again keeps nothing more
    code, report, _ = keep_json(d, store, d.spec, "--budget", "100K")
    assert code == 1 and report["transferred"]["files"] == 0
    assert report["budget"]["store_bytes_before"] >= 80_000
    code, report, err = keep_json(d, store, d.spec, "--budget", "1M")
    assert code == 0, err
    assert (report["versions"][0]["kept"], report["versions"][0]["already"]) == (1, 2)


def test_filters_and_the_json_report(dandi_archive, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.util import progress

    sizes = {"sub-01/small.nwb": 2_000, "sub-01/big.nwb": 50_000, "sub-02/other.nwb": 3_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    code, report, err = keep_json(
        d, tmp_path / "store", d.source, "--include", "sub-01/*", "--max-file-size", "10K", "-J", "2"
    )
    assert code == 0, err
    assert report["store"]["kind"] == "directory" and report["store"]["name"] == remote_name_of(tmp_path / "store")
    assert [v["version"] for v in report["versions"]] == [d.version, "draft"]  # no @VERSION: published + draft
    v = report["versions"][0]
    assert set(v) >= {"files", "bytes", "kept", "already", "skipped", "failed", "excluded", "in_git", "recorded"}
    assert (v["files"], v["bytes"], v["kept"], v["excluded"]) == (2, 52_000, 1, 1)
    assert v["skipped"] == [
        {
            "path": "sub-01/big.nwb",
            "key": key_of(d.ds, "sub-01/big.nwb", d.version),
            "size": 50_000,
            "why": "larger than the max file size (10000 bytes)",
        }
    ]
    draft = report["versions"][1]
    assert (draft["kept"], draft["already"]) == (1, 0)  # the same file: kept by this run (for both versions)
    assert report["transferred"] == {"files": 1, "bytes": 2_000}  # and copied once
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # off a terminal, a keep this short would print no progress
    code, out, err = d.run("keep", d.spec, "--to", str(tmp_path / "store"), "--max-file-size", "10K")
    assert code == 0, out
    assert f"keep {d.spec}" in err and "1/1 files" in err  # progress on stderr: bytes and files
    assert (
        f"{d.spec} (commit " in out
        and "3 file(s), 53.7 KiB: 1 kept (2.9 KiB), 1 already in the store, 1 skipped" in out
    )
    assert "skipped 1 file(s), 48.8 KiB: larger than the max file size (10000 bytes)" in out


def test_store_names_and_unsupported_kinds(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.errors import UserError
    from neuromirror.store.location import STORE_ENV, open_store, store_name

    assert open_store(f"file://{tmp_path}/s").path == tmp_path / "s"
    assert open_store(str(tmp_path / "t")).path == tmp_path / "t"
    for url in ("https://example.org/store", "ria+ssh://host/path"):
        with pytest.raises(UserError, match="store kind not supported yet"):
            open_store(url)
    monkeypatch.delenv(STORE_ENV, raising=False)
    with pytest.raises(UserError, match="no store named"):
        store_name(None)
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "env"))
    assert store_name(None) == str(tmp_path / "env")
    # a directory that holds other things is not taken for a store
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.pdf").write_bytes(b"%PDF")
    with pytest.raises(UserError, match="not a neuromirror store"):
        _ = open_store(str(tmp_path / "busy"), create=True).identity
    # a store opened to be read is never made by looking: only keep --to's opening makes one
    with pytest.raises(UserError, match="not reachable: no .neuromirror-store.json there"):
        _ = open_store(str(tmp_path / "s")).identity
    assert not (tmp_path / "s").exists()
    # one identity, created once: every dataset records the same remote
    a, b = open_store(str(tmp_path / "s"), create=True), open_store(str(tmp_path / "s"), create=True)
    assert a.identity == b.identity and (tmp_path / "s" / ".neuromirror-store.json").is_file()


def test_what_keep_cannot_verify_or_fetch_is_skipped_with_why() -> None:
    from neuromirror.annex.keys import key_checksum
    from neuromirror.annex.tree import annexed_file
    from neuromirror.dataset.files import skip_reason
    from neuromirror.store.annexlog import escape_value, remote_log_with

    sha = "a" * 64
    f = annexed_file("x.nwb", f"SHA256E-s10--{sha}.nwb", ("https://e/x",), Path("."))
    assert skip_reason(f, None) is None and key_checksum(f.key).digest == sha  # type: ignore[union-attr]
    assert key_checksum("MD5E-s3--" + "b" * 32).algorithm == "md5"  # type: ignore[union-attr]
    boss = annexed_file("c/0", f"SHA256E-s10--{sha}", ("neuromirror+boss://x/cutout?chunk=0",), Path("."))
    assert "special remote" in (skip_reason(boss, None) or "")
    vurl = annexed_file("o.bin", "VURL-s10--https&c%%e%o.bin", ("https://e/o.bin",), Path("."))
    assert "no checksum of its own" in (skip_reason(vurl, None) or "")
    assert escape_value("/mnt/lab store/&x") == "/mnt/lab&32;store/&38;x"
    line = remote_log_with(None, "u", {"type": "directory", "name": "n"}, now=5)
    assert line == b"u name=n type=directory timestamp=5s\n"
    assert remote_log_with(line, "u", {"type": "directory", "name": "n"}) is None  # idempotent


# -- crash consistency ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("point", "stored_before_rerun", "spoiled"), [("keep-copy#2", 1, False), ("keep-stored#2", 2, True)]
)
def test_keep_killed_then_rerun_converges(
    point: str,
    stored_before_rerun: int,
    spoiled: bool,
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    # b spans three 1 MiB chunks: "keep-copy#2" is reached after b's first chunk (-J 1: a, b, c in path order)
    sizes = {"sub-01/a.nwb": 30_000, "sub-01/b.nwb": 2_500_000, "sub-01/c.nwb": 32_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    store = tmp_path / "store"
    env = dict(os.environ, NEUROMIRROR_CRASH_AT=point)
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "keep", d.spec, "--to", str(store)]
    crashed = subprocess.run([*cmd, "-J", "1", "-q"], env=env, capture_output=True, text=True)
    assert crashed.returncode == -9, crashed.stderr
    # killed: whole files only at final paths, the half one at most in the temp directory, nothing recorded
    assert len(store_keys(store)) == stored_before_rerun
    half = [p.stat().st_size for p in (store / ".neuromirror-tmp").iterdir()]
    assert half == ([1 << 20] if point.startswith("keep-copy") else [])
    keys = [key_of(d.ds, p, d.version) for p in sizes]
    assert not any(kept_in(d.ds, k) for k in keys)
    wrong = 0
    if spoiled:  # a byte of a stored copy flipped after the kill (same size): the rerun must not count it
        path = DirectoryStore(store).key_path(keys[0])
        path.parent.chmod(0o755)
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
        wrong = 1
    code, report, err = keep_json(d, store, d.spec)
    assert code == 0, err
    v = report["versions"][0]
    already = stored_before_rerun - wrong
    assert (v["already"], v["kept"], v["recorded"]) == (already, 3 - already, 3)
    assert report["transferred"]["files"] == 3 - already  # nothing good copied twice; the spoiled one again
    # the killed run's copies had no check recorded: read back and hashed before they count as verified
    assert report["reread"] == {"files": stored_before_rerun, "wrong": wrong}
    assert report["counts"][0]["enough"]["files"] == 3, report["counts"]
    assert list((store / ".neuromirror-tmp").iterdir()) == []  # the killed run's temp file is gone
    assert all(kept_in(d.ds, k) for k in keys) and store_keys(store) == set(keys)
    good = {k: hashlib.sha256(DirectoryStore(store).key_path(k).read_bytes()).hexdigest() for k in keys}
    assert all(k.split("--")[1].startswith(h) for k, h in good.items()), good
    code, report, _ = keep_json(d, store, d.spec)
    assert code == 0 and report["transferred"]["files"] == 0 and report["versions"][0]["recorded"] == 0


# -- Zarr assets: the same records in the Zarr's own dataset ----------------------------------
def test_kept_zarr_comes_back_from_the_store(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    chunks = {
        ".zgroup": b'{"zarr_format": 2}',
        "0/.zarray": b'{"chunks": [64], "zarr_format": 2}',
        "0/0": deterministic_bytes(f"{tmp_path}z0", 700),
        "0/1": deterministic_bytes(f"{tmp_path}z1", 900),
    }
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 5_000}, zarr=chunks)
    code, report, err = keep_json(d, tmp_path / "store", d.spec)
    assert code == 0, err
    assert report["versions"][0]["kept"] >= 3  # the blob and the two chunks (small JSON may be in git)
    zds = d.ds / "sub-09/sample.zarr"
    for name in ("0/0", "0/1"):
        assert kept_in(zds, key_of(zds, name, "HEAD"))
    lock = tmp_path / "data.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    lose_blobs(d, ["sub-01/a.nwb"])
    lose_zarr(d, "sub-09/sample.zarr")
    # reproduce installs the Zarr's dataset as datalad does (its clone enables the store by itself), then gets;
    # (a plain `datalad get -r .` works as well, from the store first: tests/test_store_first.py)
    code, out, err = d.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    work = tmp_path / "work" / "dandi" / d.id
    assert (work / "sub-01/a.nwb").read_bytes() == d.files["sub-01/a.nwb"]
    for name, data in chunks.items():
        assert (work / "sub-09/sample.zarr" / name).read_bytes() == data, name
    assert STORE_NAME in git(work / "sub-09/sample.zarr", "annex", "whereis", "0/0")


def test_a_file_cut_short_in_the_store_is_not_kept_and_is_replaced(tmp_path: Path) -> None:
    """A store syncs once before recording, not per file: a file a power loss cut short after its rename
    is not "already there" (its size is not the key's) and the next copy replaces it."""
    from neuromirror.store.location import open_store

    data = b"the bytes a paper cites\n" * 40
    key = f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.dat"
    store = open_store(str(tmp_path / "store"), create=True)
    with store.receive(key) as incoming:
        incoming.write(data[:100])
        assert incoming.commit()  # the caller verifies; here a short file stands for a torn one
    assert not store.has(key), "a file of the wrong size counts as held"
    with store.receive(key) as incoming:
        incoming.write(data)
        assert incoming.commit() is True
    assert store.has(key)
    store.sync()
    assert store.key_path(key).read_bytes() == data

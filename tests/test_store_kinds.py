"""One contract every registered store kind passes, as a lab uses it: the commands, not the store classes.

Why: a store kind used to bring test files of its own replaying keep, read, verify, restore and prune for that one
kind (the packed kind brought fourteen).  Here one suite runs over directory, s3 (a bucket on the moto stand-in),
pack+file and pack+s3: a dandiset mirrored from the DANDI stand-in is kept into a store of the kind
(``keep --to URL``); then, in order, what a lab owes its store and its readers: a rerun writes nothing,
``verify --kept`` finds the copies (the store named by ``NEUROMIRROR_STORE``), a byte flipped inside the store is
named by ``verify --kept --content`` and ``restore --drill`` and repaired by ``verify --stores`` (one source's
copies, then the whole store), ``keep --prune`` drops a superseded draft state's key so that no file of the store
holds its bytes (and never a key another source's kept version needs); the archive loses every S3 version of the
files, and ``neuromirror://`` reads them whole and by range (a reader opened before the loss reads on, ``urls
--check`` says the store serves them), ``urls`` names where a person reads each file's exact bytes (the store's
file or object, and its range), the view's WebDAV streams them whole and by range, a plain clone's
``datalad get`` asks the archive nothing, a lock names the store and ``reproduce`` and ``get --store`` read from
it, ``keep --from`` moves its copies into another store, ``restore --from`` writes the archive's own keys back;
and a store gone (its directory moved, its endpoint down) is reported as not reachable
while a reader reads from elsewhere; last, a Zarr kept with a blob is checked chunk by chunk, read on after the
loss and got by a stranger's ``datalad get -r`` from a RIA store, the mirror gone.  A bucket's store is asked one
GET a read.  The store's files and objects are read as a person would (every file under
the directory, every object under the prefix): the suite knows a kind only by its URL.

A new store kind: add its place to ``PLACES`` (and its URL's backing, a directory or a bucket prefix, to ``Kept``);
what only that kind does (packing, repack, cold classes for packs) goes in a test file of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import requests

from conftest import clone, git
from helpers.keep import (
    ACCESS_KEY,
    SECRET_KEY,
    T0,
    Dandiset,
    key_of,
    lab_bucket,
    lose_blobs,
    lose_zarr,
    make_dandiset,
    sha256,
    whereis,
)
from helpers.read import view_server, zarr_files
from helpers.retrieve import data_files
from neuromirror.demo import deterministic_bytes

FILES = {"sub-01/a.nwb": 21_000, "sub-02/b.nwb": 9_000}
A, B = FILES
DRAFT = "sub-03/c.nwb"  # a draft-only file, replaced upstream: the state pruning drops
ZARR, VALUES = "sub-09/sample.zarr", np.arange(16, dtype="int32").reshape(4, 4) * 7  # a Zarr kept last

#: kind -> how a place of it is named: under a directory (file kinds) or a bucket's prefix (bucket kinds)
PLACES = {
    "directory": "{dir}/store",
    "s3": "s3://{bucket}/lab/keep",
    "pack+file": "pack+file://{dir}/packed",
    "pack+s3": "pack+s3://{bucket}/lab/packs",
}


class Kept:
    """One kind's world: a dandiset kept into a store of the kind, its archive, and the store's own bytes."""

    def __init__(self, kind: str, archive, s3, tmp: Path, bucket: str) -> None:  # noqa: ANN001
        self.kind, self.s3, self.tmp, self.bucket = kind, s3, tmp, bucket
        self.url = PLACES[kind].format(dir=tmp, bucket=bucket)
        self.in_bucket = "{bucket}" in PLACES[kind]
        self.d: Dandiset = make_dandiset(archive, tmp / "mirror", FILES)
        self.published = tmp / "published.git"  # a copy published (a bare sibling) before the keep: no store in it
        subprocess.run(["git", "clone", "-q", "--bare", str(self.d.ds), str(self.published)], check=True)
        code, out, err = self.d.run("keep", self.d.spec, "--to", self.url, "--json")
        assert code == 0, out + err
        self.report = json.loads(out)
        self.keys = {p: key_of(self.d.ds, p, self.d.version) for p in FILES}
        self.lost = False

    @property
    def root(self) -> Path:
        return self.d.run.root

    @property
    def prefix(self) -> str:
        return self.url.split(f"{self.bucket}/", 1)[1] + "/" if self.in_bucket else ""

    def objects(self) -> dict[str, bytes]:
        """Every file (or object) the store holds, by its name, as ``ls -R`` or ``aws s3 ls`` would find it."""
        if self.in_bucket:
            client = self.s3.client()
            listed = client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix).get("Contents", [])
            return {o["Key"]: client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read() for o in listed}
        base = Path(self.url.split("://", 1)[-1])
        return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}

    @property
    def location(self) -> str:
        """Where the store's own files or objects are, as a URL names them."""
        return f"s3://{self.bucket}/{self.prefix}" if self.in_bucket else f"file://{self.url.split('://', 1)[-1]}/"

    def fetch(self, url: str, offset: int, length: int) -> bytes:
        """The bytes ``urls`` names, read as a person would: a file's range, or a ranged GET of the object."""
        if url.startswith("file://"):
            with open(url[len("file://") :], "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        bucket, _, key = url[len("s3://") :].partition("/")
        got = self.s3.client().get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}")
        return bytes(got["Body"].read())

    def holding(self, data: bytes) -> list[str]:
        return [name for name, body in self.objects().items() if data in body]

    def flip(self, data: bytes) -> None:
        """Rot: a byte flipped in the middle of ``data`` where the store holds it, written back in place."""
        (name,) = self.holding(data)
        body = bytearray(self.objects()[name])
        body[body.index(data) + len(data) // 2] ^= 0xFF
        if self.in_bucket:
            self.s3.client().put_object(Bucket=self.bucket, Key=name, Body=bytes(body))
        else:
            path = Path(self.url.split("://", 1)[-1]) / name
            os.chmod(path.parent, 0o755)
            os.chmod(path, 0o644)
            path.write_bytes(bytes(body))

    def lose(self) -> None:
        """What garbage collection does: every S3 version of the published files gone from the archive."""
        if not self.lost:
            self.lost = True
            lose_blobs(self.d, list(FILES))

    @property
    def moved(self) -> str:
        """Another kind's store, where ``keep --from`` moves this one's copies: a directory, or a packed one."""
        where = self.tmp / "moved"
        return str(where) if self.kind.startswith("pack+") else f"pack+file://{where}"

    def move_out(self) -> tuple[int, str, str]:
        return self.d.run("keep", self.d.spec, "--to", self.moved, "--from", self.url, "--json")

    def bucket_requests(self, log: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The store's bucket's requests in a stand-in's request log (a store in a bucket has that bucket alone)."""
        return [(m, p) for m, p in log if self.in_bucket and p.startswith((f"/{self.bucket}/", f"/{self.bucket}?"))]

    def archive_requests(self, log: list[tuple[str, str]]) -> list[str]:
        return [p for _, p in log if p.startswith(f"/{self.d.archive.bucket}/")]


@pytest.fixture(scope="module", params=list(PLACES))
def kept(request: pytest.FixtureRequest, dandi_archive, s3, tmp_path_factory) -> Iterator[Kept]:  # noqa: ANN001
    with lab_bucket(s3) as bucket:  # the lab's endpoint and credentials, as for S3 stores (the view's process too)
        yield Kept(request.param, dandi_archive, s3, tmp_path_factory.mktemp(request.param.replace("+", "-")), bucket)


def test_a_keep_records_the_store_keeps_no_secret_and_a_rerun_writes_nothing(
    kept: Kept, monkeypatch: pytest.MonkeyPatch
) -> None:
    (v,) = kept.report["versions"]
    assert (v["kept"], v["failed"], v["recorded"]) == (len(FILES), [], len(FILES)), kept.report
    assert kept.report["store"]["url"].rstrip("/") == kept.url
    remote_log = git(kept.d.ds, "show", "git-annex:remote.log")
    assert "autoenable=true" in remote_log and "cost=150" in remote_log, remote_log
    for path, key in kept.keys.items():
        assert any("neuromirror" in w for w in whereis(kept.d.ds, key)), path  # the branch sends clones there
    held = kept.objects()
    for text in [remote_log, *(b.decode("latin-1") for b in held.values())]:
        assert ACCESS_KEY not in text and SECRET_KEY not in text

    monkeypatch.setenv("NEUROMIRROR_STORE", kept.url)  # no --to, no --store: the environment's
    code, out, err = kept.d.run("keep", kept.d.spec, "--json")
    assert code == 0, out + err
    again = json.loads(out)
    assert again["store"]["url"].rstrip("/") == kept.url and again["transferred"] == {"files": 0, "bytes": 0}
    assert kept.objects() == held
    code, out, err = kept.d.run("verify", kept.d.spec, "--kept")
    assert code == 0, out + err


def test_a_flipped_byte_is_named_by_the_checks_and_repaired_by_verify_stores(kept: Kept, tmp_path: Path) -> None:
    d, url = kept.d, kept.url
    kept.flip(d.files[A])
    code, out, err = d.run("verify", d.spec, "--kept", "--content", "--store", url)
    assert code == 1 and "MISMATCH content" in out, out + err
    assert A in out and B not in out, out  # the one file the flip lies in

    code, out, err = d.run("restore", "--drill", d.spec, "--to", str(tmp_path / "scratch"), "--from", url, "--json")
    assert code == 1, out + err
    (bad,) = json.loads(out)["bad_copies"]
    assert bad["key"] == kept.keys[A] and bad["store"].rstrip("/") == url and "sha256" in bad["why"], bad

    # one source's copies, then (a byte of the other file flipped) the whole store: found, repaired from the archive
    for flipped, spec in ((A, [d.spec]), (B, [])):
        if not spec:
            kept.flip(d.files[B])
        whole = [] if spec else ["--fraction", "1"]
        code, out, err = d.run("verify", "--stores", *spec, "--store", url, *whole, "--json")
        assert code == 1, out + err
        report = json.loads(out)
        assert [(b["key"], b["repaired"]) for b in report["bad"]] == [(kept.keys[flipped], True)], report
        assert report["checked"] == len(FILES) and report["good"] == len(FILES) - 1, report
    assert d.run("verify", "--stores", "--store", url, "--fraction", "1")[0] == 0
    for path, data in d.files.items():
        assert len(kept.holding(data)) >= 1, path


def test_keep_prune_drops_a_superseded_draft_states_key_from_the_store(kept: Kept, dandi_archive) -> None:  # noqa: ANN001
    d, url = kept.d, kept.url
    when = T0 + timedelta(days=900)
    first, second = (deterministic_bytes(f"{d.id}:{kept.kind}:{n}", 15_000) for n in ("first", "second"))
    dandi_archive.put_asset(d.id, DRAFT, first, when=when)
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    d.run.ok("keep", d.source, "--to", url)  # the published version and the draft
    old_commit = git(d.ds, "rev-parse", "HEAD").strip()
    old_key = key_of(d.ds, DRAFT, old_commit)
    assert kept.holding(first)

    dandi_archive.put_asset(d.id, DRAFT, second, when=when + timedelta(hours=1))
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)
    code, out, err = d.run("keep", d.source, "--to", url, "--prune", "--json")
    assert code == 0, out + err
    pruned = json.loads(out)["prune"]
    assert pruned["dropped_versions"] == [f"{d.source}@{old_commit[:12]}"] and pruned["dead_keys"] == 1, pruned
    assert pruned["store_dropped"]["keys"] == 1, pruned
    assert not kept.holding(first) and kept.holding(second)  # no file of the store holds the dropped bytes
    assert not any("neuromirror" in w for w in whereis(d.ds, old_key))
    assert d.run("verify", "--stores", d.source, "--store", url)[0] == 0
    held = kept.objects()
    code, out, err = d.run("keep", d.source, "--to", url, "--prune")  # a rerun: nothing more to drop
    assert code == 0 and "no version dropped" in out, out + err
    assert kept.objects() == held


def test_neuromirror_fs_reads_the_store_whole_and_by_range_after_the_archive_lost_the_files(kept: Kept) -> None:
    """A reader that opened the files while the archive served reads on from the store once the archive lost them
    (a fresh one too, whole and by range), and ``urls --check`` says the store serves each."""
    import fsspec

    def pin(path: str) -> str:
        return f"dandi/{kept.d.id}@{kept.d.version}/{path}"

    fs = fsspec.filesystem("neuromirror", root=str(kept.root), skip_instance_cache=True)
    opened = {path: fs.open(pin(path), "rb", cache_type="none") for path in FILES}
    for path, f in opened.items():
        assert f.read(1000) == kept.d.files[path][:1000], path
    kept.lose()  # after the reader started (unless the suite runs out of order): its files' URLs die under it
    for path, f in opened.items():
        f.seek(3_000)
        assert f.read(4_000) == kept.d.files[path][3_000:7_000], path
        f.close()

    fresh = fsspec.filesystem("neuromirror", root=str(kept.root), skip_instance_cache=True)
    log = kept.s3.log_requests()
    try:
        for path, data in kept.d.files.items():
            assert sha256(fresh.cat_file(pin(path))) == sha256(data), path
            assert fresh.cat_file(pin(path), start=5, end=4_005) == data[5:4_005], path
            info = fresh.info(pin(path))
            assert info["served_by"] == "store" and info["url"].startswith(kept.location), info
    finally:
        kept.s3.log_requests(False)
    # a bucket's: one ranged GET of the object holding the file a read, and the store's own other objects (a packed
    # store's index listing and index files) read once by this filesystem, which holds the stores it opened
    asked, holding = kept.bucket_requests(log), {n for data in kept.d.files.values() for n in kept.holding(data)}
    reads = [p for _, p in asked if p.split("?")[0][len(kept.bucket) + 2 :] in holding]
    others = [p for _, p in asked if p.split("?")[0][len(kept.bucket) + 2 :] not in holding]
    assert {m for m, _ in asked} <= {"GET"} and len(reads) == 2 * len(FILES) * kept.in_bucket, asked
    assert len(others) == len(set(others)), asked
    rows = {r["path"]: r for r in kept.d.run.json("urls", kept.d.spec, "--check")}
    assert {p: rows[p]["served_by"] for p in FILES} == dict.fromkeys(FILES, "store"), rows


def test_urls_names_where_each_lost_file_is_read_from_the_store(kept: Kept) -> None:
    """Each file's copy in the store as ``urls`` names it (the store's file or object, and where the key is one range
    of it, that range, in the URL's fragment too): a person reads the file's exact bytes there; the loss that
    ``--check`` found is remembered by a plain ``urls``, whose text names the same URLs."""
    d = kept.d
    kept.lose()
    rows = {r["path"]: r for r in d.run.json("urls", d.spec, "--check")}
    again = {r["path"]: r for r in d.run.json("urls", d.spec)}
    lines = dict(line.split("\t", 1) for line in d.run.ok("urls", d.spec).splitlines())
    for path, data in d.files.items():
        row = rows[path]
        assert row["served_by"] == again[path]["served_by"] == "store" and row["url"].startswith(kept.location), row
        assert row["url"] == again[path]["url"] == lines[path]
        url, _, fragment = row["url"].partition("#")
        offset, length = row.get("range", (0, len(data)))
        assert fragment == (f"bytes={offset}-{offset + length - 1}" if "range" in row else ""), row
        whole = "range" not in row  # a whole object: the key's bytes and no more
        assert length == len(data) and kept.fetch(url, offset, length + whole) == data, path


def test_the_views_webdav_streams_each_lost_file_from_the_store_whole_and_by_range(kept: Kept) -> None:
    from webdav4.fsspec import WebdavFileSystem

    d = kept.d
    kept.lose()
    with view_server(kept.root) as base:
        dav, pin = WebdavFileSystem(base + "dav"), f"dandi/{d.id}/{d.version}"
        for path, data in d.files.items():
            assert dav.info(f"{pin}/{path}")["size"] == len(data)
            assert sha256(dav.cat_file(f"{pin}/{path}")) == sha256(data), path
            assert dav.cat_file(f"{pin}/{path}", start=7_000, end=7_100) == data[7_000:7_100], path
        log = kept.s3.log_requests()  # a range the view is asked for: one request to a bucket's store
        try:
            for path, data in d.files.items():
                r = requests.get(f"{base}dav/{pin}/{path}", headers={"Range": "bytes=1000-1999"}, timeout=30)
                assert (r.status_code, r.content) == (206, data[1000:2000]), path
        finally:
            kept.s3.log_requests(False)
        assert [m for m, _ in kept.bucket_requests(log)] == ["GET"] * len(FILES) * kept.in_bucket, log


def test_a_plain_clone_gets_every_lost_byte_from_the_store_asking_the_archive_nothing(
    kept: Kept, tmp_path: Path
) -> None:
    """Whether the mirror never heard of the loss, or its ``verify --content`` found the URLs dead first."""
    kept.lose()
    work = clone(kept.d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", kept.d.version)
    for seen in (False, True):
        if seen:  # the mirror's verify found the URLs dead; the clone fetches what its branch says now
            code, out, err = kept.d.run("verify", kept.d.spec, "--content")
            assert code == 0 and "dead-url" in out and "MISMATCH" not in out, out + err
            git(work, "annex", "drop", "--force", ".")
            git(work, "fetch", "-q", "origin")
        log = kept.s3.log_requests()
        try:
            proc = subprocess.run(["datalad", "get", "."], cwd=work, capture_output=True, text=True)
        finally:
            kept.s3.log_requests(False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for path, data in kept.d.files.items():
            assert sha256((work / path).read_bytes()) == sha256(data), (seen, path)
        assert kept.archive_requests(log) == [], seen  # the store before the archive's dead URLs


def test_a_lock_names_the_store_and_reproduce_and_get_read_from_it(kept: Kept, tmp_path: Path) -> None:
    d = kept.d
    kept.lose()
    lock = tmp_path / "data.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    named = re.search(r'^store = "(.*)"$', lock.read_text(), re.M)
    assert named and named.group(1).rstrip("/") == kept.url, lock.read_text()
    code, out, err = d.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    got = data_files(tmp_path / "work" / "dandi" / d.id)
    for path, data in d.files.items():
        assert sha256(got[path]) == sha256(data), path

    # a clone of the copy published before the keep knows no store: --store names it
    log = subprocess.run(["git", "show", "git-annex:remote.log"], cwd=kept.published, capture_output=True, text=True)
    assert "neuromirror" not in log.stdout
    into = tmp_path / "got"
    args = ("--from", str(kept.published), "--to", str(into), "--store", kept.url, "--allow-ip", "all")
    log = kept.s3.log_requests()
    try:
        code, out, err = d.run("get", d.spec, *args)
    finally:
        kept.s3.log_requests(False)
    assert code == 0, out + err
    for path, data in d.files.items():
        assert sha256((into / path).read_bytes()) == sha256(data), path
    assert kept.archive_requests(log) == []  # every byte from the store
    assert "neuromirror" in git(into, "show", "git-annex:remote.log")  # the store named, for the next get
    # no secret in the clone: not on its branches (its git-annex branch among them), not in git-annex's cache
    history = git(into, "log", "-p", "--all")
    cached = [p.read_text() for p in (into / ".git" / "annex").rglob("*") if p.is_file() and "creds" in p.parts]
    for text in (history, *cached):
        assert ACCESS_KEY not in text and SECRET_KEY not in text


def test_keep_from_the_store_moves_its_copies_into_another_kind_asking_the_archive_nothing(kept: Kept) -> None:
    d = kept.d
    kept.lose()
    log = d.archive.s3.log_requests()
    try:
        code, out, err = kept.move_out()
    finally:
        d.archive.s3.log_requests(False)
    assert code == 0, out + err
    assert json.loads(out)["versions"][0]["kept"] == len(FILES)
    assert kept.archive_requests(log) == []
    into = kept.moved
    code, out, err = d.run("verify", d.spec, "--kept", "--content", "--store", into)
    assert code == 0, out + err
    code, _, err = d.run("keep", d.spec, "--to", into, "--from", str(kept.tmp / "nowhere"))
    assert code == 2 and "--from" in err and "not a store" in err and len(err.strip().splitlines()) == 1, err


def test_restore_writes_the_archives_own_keys_back_from_the_store(kept: Kept, tmp_path: Path) -> None:
    d = kept.d
    kept.lose()
    client = kept.s3.client()
    blobs = {p: d.archive.asset_at(d.id, p, d.version).blob for p in FILES}
    code, out, err = d.run("restore", "--drill", d.spec, "--to", str(tmp_path / "drill"), "--from", kept.url, "--json")
    assert code == 0, out + err
    drill = json.loads(out)
    assert drill["result"] == "ok" and drill["written"]["objects"] == len(FILES) and drill["mismatches"] == 0, drill
    assert not [p for p in (tmp_path / "drill").rglob("*") if p.is_file()]  # a rehearsal: its objects gone

    target = f"s3://{d.archive.bucket}"
    code, out, err = d.run("restore", d.spec, "--to", target, "--from", kept.url, "--json")
    assert code == 0 and json.loads(out)["failed"] == [], out + err
    for path, blob in blobs.items():  # the archive's own keys hold the bytes again
        body = client.get_object(Bucket=blob.bucket, Key=blob.key)["Body"].read()
        assert sha256(body) == sha256(d.files[path]), path
    code, out, err = d.run("restore", d.spec, "--to", target, "--from", kept.url, "--json")
    assert code == 0 and json.loads(out)["written"]["objects"] == 0, out + err  # a rerun writes nothing
    kept.lost = False  # the archive serves again
    kept.lose()


def test_a_store_gone_is_reported_not_reachable_and_a_clone_reads_elsewhere(
    kept: Kept, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's directory moved away (a disk unmounted) or its endpoint down: ``verify --stores`` names it as
    not reachable and fails; a reader reads every file from the store ``keep --from`` filled (a clone skipping a
    gone packed store: tests/test_pack_unreachable.py)."""
    import fsspec

    d = kept.d
    kept.lose()
    assert kept.move_out()[0] == 0  # (done already when the suite runs in order)
    if kept.in_bucket:
        monkeypatch.setenv("NEUROMIRROR_STORE_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
        back = None
    else:
        where = Path(kept.url.split("://", 1)[-1])
        back = (where, shutil.move(str(where), str(tmp_path / "unmounted")))
    try:
        code, out, err = d.run("verify", "--stores", "--store", kept.url)  # named: a one-line error
        assert code != 0 and kept.url in err and "not reachable" in err and len(err.strip().splitlines()) == 1, err
        code, out, err = d.run("verify", "--stores")  # recorded: named, its copies unverified, the run failed
        assert code == 1, out + err
        (line,) = [x for x in out.splitlines() if "NOT REACHABLE" in x]
        assert kept.url in line, out
        assert d.run("verify", "--stores", "--allow-unreachable")[0] == 0  # the other store's copies are good

        fs = fsspec.filesystem("neuromirror", root=str(kept.root), skip_instance_cache=True)
        for path, data in d.files.items():  # read from the store keep --from filled
            assert sha256(fs.cat_file(f"dandi/{d.id}@{d.version}/{path}")) == sha256(data), path
    finally:
        if back:
            shutil.move(str(back[1]), str(back[0]))


def test_a_kept_zarr_is_checked_chunk_by_chunk_read_on_after_the_loss_and_got_by_a_stranger_with_get_r(
    kept: Kept,
    dandi_archive,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    """A Zarr kept with a blob (by another dandiset of the mirror, last: its mirror moves away at the end), the
    store shared with the first (a prune of this one keeps the other's keys); ``verify --stores`` of the whole store walks the Zarr's dataset (a rotten chunk named by its path in the
    version, re-kept from the archive); zarr-python reads on after the archive lost it, through ``neuromirror://``
    (opened while the archive served), the view's WebDAV and dandidav's ``/zarrs/``; published into a RIA store,
    the mirror moved away, a stranger's ``datalad clone`` + ``datalad get -r`` installs the Zarr's dataset (which
    records the store too) and gets every chunk and the blob from the store."""
    import zarr

    chunks = zarr_files(VALUES)
    z = make_dandiset(dandi_archive, kept.tmp / "mirror", {"sub-01/a.nwb": 5_000}, zarr=chunks)
    z.run.ok("keep", z.source, "--to", kept.url)
    # another source shares the store: pruning it to its draft state drops its published version and no key that
    # state still needs, nor any key of the first source
    code, out, err = z.run("keep", f"{z.source}@draft", "--to", kept.url, "--prune", "--json")
    assert code == 0, out + err
    pruned = json.loads(out)["prune"]
    assert pruned["dropped_versions"] == [f"{z.source}@{z.version}"] and pruned["dead_keys"] == 0, pruned
    assert all(kept.holding(data) for data in [*z.files.values(), chunks["0.0"], *kept.d.files.values()])
    pin = f"dandi/{z.id}@{z.version}/{ZARR}"
    arr = zarr.open_array(f"neuromirror://{pin}", mode="r", storage_options={"root": str(kept.root)})
    np.testing.assert_array_equal(arr[0:2, 0:2], VALUES[0:2, 0:2])
    kept.flip(chunks["0.0"])
    code, out, err = z.run("verify", "--stores", "--store", kept.url, "--fraction", "1", "--json")
    assert code == 1, out + err
    report, key = json.loads(out), key_of(z.ds / ZARR, "0.0", "HEAD")
    assert [(b["key"], b["path"], b["repaired"]) for b in report["bad"]] == [(key, f"{ZARR}/0.0", True)], report
    assert report["good"] == report["checked"] - 1 and z.run("verify", "--stores", "--store", kept.url)[0] == 0

    lose_zarr(z, ZARR)  # after the reader started: its chunks' URLs die under it
    lose_blobs(z, ["sub-01/a.nwb"])
    np.testing.assert_array_equal(arr[:], VALUES)  # chunk 0.0 read again, from the store, the rest too
    zid = z.archive.asset_at(z.id, ZARR, z.version).zarr.zarr_id
    with view_server(kept.root) as base:
        dav = f"{base}dav/dandi/{z.id}/{z.version}/{ZARR}"
        np.testing.assert_array_equal(zarr.open_array(dav, mode="r")[:], VALUES)
        (state,) = requests.get(f"{base}zarr-manifests/{zid[:3]}/{zid[3:6]}/{zid}/", timeout=30).json()["files"]
        zarrs = f"{base}zarrs/{zid[:3]}/{zid[3:6]}/{zid}/{state[: -len('.json')]}.zarr"
        r = requests.get(f"{zarrs}/0.0", headers={"Range": "bytes=2-9"}, timeout=30)
        assert (r.status_code, r.content) == (206, chunks["0.0"][2:10])
        np.testing.assert_array_equal(zarr.open_array(zarrs, mode="r")[:], VALUES)

    # published in the session whose reader (``arr``) still holds the index, the view's process closed it since
    z.run.ok("publish", z.source, "--to", f"ria+file://{tmp_path / 'ria'}")
    kept.root.rename(tmp_path / "gone")  # the mirror's machine is no help any more
    work, allowed = tmp_path / "stranger", {"GIT_CONFIG_KEY_0": "annex.security.allowed-ip-addresses"}
    env = {**os.environ, **allowed, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_VALUE_0": "all"}  # the stand-ins' loopback
    ria = f"ria+file://{tmp_path / 'ria'}#~dandi/{z.id}"
    proc = subprocess.run(["datalad", "clone", ria, str(work)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["git", "-C", str(work), "checkout", "-q", z.version], check=True)
    proc = subprocess.run(["datalad", "get", "-r", "."], cwd=work, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in [*z.files.items(), *((f"{ZARR}/{c}", b) for c, b in chunks.items())]:
        assert (work / path).read_bytes() == data, path

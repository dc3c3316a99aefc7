"""``publish --to ria+file:///STORE``: a DataLad RIA store that a plain static web server serves.

Why: labs and archives share datasets from RIA stores, and a RIA store behind any static web
server (nginx, ``python -m http.server``) is the cheapest way to offer a mirror to others.  These
tests publish a small mirror — a dandiset with two versions, a draft and a Zarr subdataset; a
dandiset whose S3 bytes are lost but kept in the lab's store; an embargoed dandiset — into a
store, serve it with ``python -m http.server`` in a separate process on loopback, and clone it
with the real tools (``datalad clone 'ria+http://...#~dandi/NNNNNN'``, ``datalad get -r``)
as a stranger would, comparing every byte with the archive's.  Also: a second publish writes
nothing, a resync moves only what changed, a SIGKILL at any crash point converges, the embargoed
dandiset (and every secret) never reaches the store until the embargo is lifted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from helpers.publish_ria import (
    KEY,
    T0,
    Served,
    _delete_all_versions,
    _sync,
    aliases,
    assert_no_alias_to_incomplete,
    ds_dir,
    dsid_of,
    sh,
    snapshot,
    status,
    store_refs,
)
from helpers.retrieve import ZARR, Runner, Sample, build_sample, data_files, git, without_metadata
from neuromirror.demo import deterministic_bytes

TOKEN = "nmriatoken" + uuid.uuid4().hex  # a BOSS token in the environment while publishing


@dataclass
class World:
    sample: Sample  # dandi A: versions, draft, a Zarr subdataset
    kept: str  # dandi B: one published version, kept in the lab's store, then lost by the archive
    kept_files: dict[str, bytes]
    hidden: str  # dandi E: embargoed
    keep_store: Path
    store: Path
    report: dict
    served: Served

    @property
    def run(self) -> Runner:
        return self.sample.run

    @property
    def mount(self) -> Path:
        return self.store.with_name("mnt")

    @property
    def url(self) -> str:
        return f"ria+file://{self.mount}"


@pytest.fixture(scope="module")
def world(archive, served: Served) -> World:  # noqa: ANN001
    base = served.store.parent
    sample = build_sample(archive, base / "mirror", zarr=True)
    run = sample.run
    # B: kept in the lab's directory store, then garbage-collected by the archive
    b = archive.create_dandiset(name="kept", created=T0)
    files = {"sub-01/kept.nwb": deterministic_bytes(b + "k", 40_000)}
    archive.put_asset(b, "sub-01/kept.nwb", files["sub-01/kept.nwb"], when=T0 + timedelta(minutes=1))
    bver = archive.publish(b, when=T0 + timedelta(hours=1))
    _sync(run, archive, b)
    keep_store = base / "keep"
    run.ok("keep", f"dandi:{b}@{bver}", "--to", str(keep_store))
    blob = archive.asset_at(b, "sub-01/kept.nwb", bver).blob
    _delete_all_versions(archive, blob.bucket, blob.key)
    # E: embargoed, synced with the key
    e = archive.create_dandiset(name="embargoed", embargoed=True, created=T0)
    archive.put_asset(e, "secret.nwb", b"embargoed science" * 200, when=T0 + timedelta(minutes=1))
    _sync(run, archive, e, key=True)

    store = served.store
    # published through a symlink (a mount point), removed when a "stranger" clones: the path the
    # datasets record for the store's ORA remote then does not exist, as on any other machine
    (base / "mnt").symlink_to(store)
    os.environ["INTERN_TOKEN"] = TOKEN
    try:
        report = run.json(
            "publish", "dandi:*", "--to", f"ria+file://{base / 'mnt'}", "--with-root", "--public-url", served.url
        )
    finally:
        os.environ.pop("INTERN_TOKEN", None)
    return World(sample, b, files, e, keep_store, store, report, served)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def http(world: World) -> str:
    return world.served.url


# -- layout ------------------------------------------------------------------------------------
def test_store_layout_ids_aliases_and_refs(world: World) -> None:
    s, store = world.sample, world.store
    assert (store / "ria-layout-version").read_text() == "1\n" and (store / "error_logs").is_dir()
    a = s.root / "dandi" / s.id
    zarr = a / ZARR
    for repo, alias in ((a, f"dandi/{s.id}"), (zarr, None), (s.root / "dandi" / world.kept, f"dandi/{world.kept}")):
        d = ds_dir(store, dsid_of(repo))
        assert (d / "ria-layout-version").read_text() == "2\n" and (d / "annex" / "objects").is_dir()
        assert git(d, "rev-parse", "--is-bare-repository") == "true"
        for ref in ("HEAD", "git-annex", *git(repo, "tag").split()):
            assert git(d, "rev-parse", ref) == git(repo, "rev-parse", ref), (repo, ref)
        assert (d / "info" / "refs").is_file()  # dumb HTTP
        # complete, whether pushed (tags) or made from the mirror's object files (the Zarr)
        assert subprocess.run(["git", "--git-dir", str(d), "fsck", "--connectivity-only"]).returncode == 0
        if alias:
            link = store / "alias" / alias
            assert link.is_symlink() and not os.path.isabs(os.readlink(link))
            assert link.resolve() == d.resolve()
    published = {p["alias"]: p for p in world.report["published"]}
    assert set(published) == {f"dandi/{s.id}", f"dandi/{world.kept}", "root"}
    assert published[f"dandi/{s.id}"]["subdatasets"] == 1 and published[f"dandi/{s.id}"]["created"]
    assert [h["source"] for h in world.report["held_back"]] == [f"dandi:{world.hidden}"]
    assert "embargoed" in world.report["held_back"][0]["why"] and world.report["ok"]
    # the text report says it too; a store over HTTP(S) cannot be written to: refused in one line
    code, out, err = world.run("publish", "dandi:*", "--to", world.url)
    assert code == 0 and f"dandi:{world.hidden}: held back, embargoed" in out, out + err
    code, _, err = world.run("publish", "dandi:*", "--to", "ria+https://host/srv/store")
    assert code == 2 and "not supported" in err and len(err.strip().splitlines()) == 1, err


# -- cloning over HTTP -------------------------------------------------------------------------
def test_clone_over_http_gets_every_version_and_the_zarr_from_the_store(
    world: World, http: str, tmp_path: Path
) -> None:
    s = world.sample
    clone = tmp_path / "a"
    sh(tmp_path, "datalad", "clone", f"ria+{http}/#~dandi/{s.id}", str(clone))
    sh(clone, "git", "checkout", "-q", s.v1)
    sh(clone, "datalad", "get", "-r", ".")
    assert without_metadata(data_files(clone)) == s.files[s.v1]
    # the Zarr's dataset came from the same store, by its id
    zid = dsid_of(s.root / "dandi" / s.id / ZARR)
    assert git(clone / ZARR, "remote", "get-url", "origin") == f"{http}/{zid[:3]}/{zid[3:]}"
    sh(clone, "git", "checkout", "-q", "master")
    sh(clone, "git", "submodule", "update", "--", ZARR)
    sh(clone, "datalad", "get", "-r", ".")
    assert without_metadata(data_files(clone)) == s.files["draft"]


def test_root_over_http_names_only_published_datasets(world: World, http: str, tmp_path: Path) -> None:
    s = world.sample
    clone = tmp_path / "root"
    sh(tmp_path, "datalad", "clone", f"ria+{http}/#~root", str(clone))
    modules = (clone / ".gitmodules").read_text()
    assert f"dandi/{s.id}" in modules and world.hidden not in modules
    assert world.hidden not in git(clone, "log", "--all", "-p")
    sh(clone, "datalad", "get", "-n", f"dandi/{s.id}")
    sh(clone, "datalad", "get", f"dandi/{s.id}/sub-03")
    got = (clone / "dandi" / s.id / "sub-03/sub-03_ecephys.nwb").read_bytes()
    assert got == s.files["draft"]["sub-03/sub-03_ecephys.nwb"]


# -- the store's clone URL: recorded, named by lock and cite, used by get and reproduce ---------------
def test_lock_cite_get_and_reproduce_use_the_stores_clone_url(world: World, http: str, tmp_path: Path) -> None:
    s = world.sample
    want = f"ria+{http}#~dandi/{s.id}"
    published = {p["alias"]: p for p in world.report["published"]}
    assert published[f"dandi/{s.id}"]["clone_url"] == want
    assert git(s.root / "dandi" / s.id, "config", "neuromirror.published-url") == want
    # the mirror's dataset has no git remote with a ria+ URL: git commands there keep working
    assert "ria+" not in git(s.root / "dandi" / s.id, "remote", "-v")
    lock = tmp_path / "data.lock"
    world.run.ok("lock", f"{s.source}@{s.v1}", "-o", str(lock))
    from neuromirror.pin import lockfile

    assert [d.url for d in lockfile.read(str(lock)).datasets] == [want]
    text = world.run.ok("cite", f"{s.source}@{s.v1}")
    assert f"datalad clone '{want}' DIR" in text and f"--from '{want}'" in text, text
    assert world.run.json("cite", f"{s.source}@{s.v1}")["clone_url"] == want  # type: ignore[index]
    # lock --url ria+...: the alias is added (and must exist in the store)
    world.run.ok("lock", f"{s.source}@{s.v1}", "-o", str(lock), "--url", f"ria+{http}")
    assert [d.url for d in lockfile.read(str(lock)).datasets] == [want]
    code, _, err = world.run("lock", f"dandi:{world.hidden}", "--url", f"ria+{http}")
    assert code == 2 and f"no alias dandi/{world.hidden}" in err and len(err.strip().splitlines()) == 1, err

    # get --from the store over HTTP, by alias: every byte of v1 (the Zarr's too) from the archive's URLs
    out = tmp_path / "got"
    res = world.run.json(
        "get", f"{s.source}@{s.v1}", "--to", str(out), "--from", f"ria+{http}", "--allow-ip", "all", "-q"
    )
    assert res["from"] == want and res["ok"] and res["subdatasets"] >= 1, res  # type: ignore[index]
    assert without_metadata(data_files(out)) == s.files[s.v1]
    assert git(out, "remote", "get-url", "origin").startswith(f"{http}/")
    # a second get into the same clone reuses it (its origin is the store's dataset by id)
    again = world.run.json("get", f"{s.source}@{s.v1}", "--to", str(out), "--from", f"ria+{http}", "-q")
    assert again["reused"] and again["ok"]  # type: ignore[index]
    # without a mirror at all (a stranger): the version is found in the clone
    code, got, err = world.run(
        "get",
        f"{s.source}@{s.v1}",
        "--to",
        str(tmp_path / "stranger"),
        "--from",
        f"ria+{http}",
        "--allow-ip",
        "all",
        "-q",
        "--json",
        root=tmp_path / "no-mirror",
    )
    assert code == 0, err
    assert without_metadata(data_files(tmp_path / "stranger")) == s.files[s.v1]
    code, _, err = world.run("get", f"dandi:{world.hidden}", "--to", str(tmp_path / "x"), "--from", f"ria+{http}")
    assert code == 1 and "no alias" in err and f"dandi/{world.hidden}" in err, err

    # reproduce of the lock clones from the URL it names
    world.run.ok("lock", f"{s.source}@{s.v1}", "-o", str(lock))
    rep = world.run.json("reproduce", str(lock), "--to", str(tmp_path / "rebuilt"), "--allow-ip", "all", "-q")
    assert isinstance(rep, dict) and rep["ok"], rep
    assert [(d["from"], d["problems"]) for d in rep["datasets"]] == [(want, [])]
    assert without_metadata(data_files(tmp_path / "rebuilt" / "dandi" / s.id)) == s.files[s.v1]


def test_embargoed_dandiset_and_secrets_are_not_in_the_store(world: World, http: str) -> None:
    e = world.sample.root / "dandi" / world.hidden
    eid = dsid_of(e)
    assert not ds_dir(world.store, eid).exists()
    assert status(f"{http}/alias/dandi/{world.hidden}/HEAD") == 404
    assert status(f"{http}/{eid[:3]}/{eid[3:]}/HEAD") == 404
    assert status(f"{http}/{eid[:3]}/{eid[3:]}/info/refs") == 404
    assert status(f"{http}/alias/dandi/{world.sample.id}/HEAD") == 200
    secrets = [KEY.encode(), TOKEN.encode()]
    if os.environ.get("AWS_SECRET_ACCESS_KEY"):
        secrets.append(os.environ["AWS_SECRET_ACCESS_KEY"].encode())
    hits = []
    for dirpath, _, names in os.walk(world.store):
        for n in names:
            p = Path(dirpath) / n
            if p.is_file() and any(x in p.read_bytes() for x in secrets):
                hits.append(str(p))
        if (Path(dirpath) / "HEAD").is_file() and (Path(dirpath) / "objects").is_dir():  # compressed objects
            objs = subprocess.run(
                ["git", "--git-dir", dirpath, "cat-file", "--batch-all-objects", "--batch"], capture_output=True
            ).stdout
            assert objs, dirpath
            if any(x in objs for x in secrets) or world.hidden.encode() + b"\n" in objs:
                hits.append(f"{dirpath} (objects)")
    assert hits == []
    # unless asked for
    other = world.store.with_name("with-embargoed")
    res = world.run.json("publish", f"dandi:{world.hidden}", "--to", f"ria+file://{other}", "--include-embargoed")
    assert res["held_back"] == [] and (other / "alias" / "dandi" / world.hidden / "HEAD").is_file()


# -- kept content -----------------------------------------------------------------------------------
def test_kept_content_lost_by_the_archive_comes_from_the_store_over_http(
    world: World, http: str, tmp_path: Path
) -> None:
    bds = world.sample.root / "dandi" / world.kept
    key = Path(os.readlink(bds / "sub-01/kept.nwb")).name
    d = ds_dir(world.store, dsid_of(bds))
    objects = [p for p in (d / "annex" / "objects").rglob(key) if p.is_file()]
    assert len(objects) == 1 and objects[0].read_bytes() == world.kept_files["sub-01/kept.nwb"]
    assert "externaltype=ora" in git(bds, "show", "git-annex:remote.log")
    # the lab's store is not reachable from the stranger's machine: only the RIA store has the bytes
    assert f"url=ria+{http}" in git(bds, "show", "git-annex:remote.log")
    away = world.keep_store.with_name("keep-elsewhere")
    world.keep_store.rename(away)
    world.mount.unlink()
    try:
        clone = tmp_path / "b"
        sh(tmp_path, "datalad", "clone", f"ria+{http}/#~dandi/{world.kept}", str(clone))
        sh(clone, "datalad", "get", ".")
        assert (clone / "sub-01/kept.nwb").read_bytes() == world.kept_files["sub-01/kept.nwb"]
    finally:
        away.rename(world.keep_store)
        world.mount.symlink_to(world.store)
    log = world.served.log
    log.seek(0)
    assert f"GET /{d.relative_to(world.store)}/annex/objects/".encode() in log.read()


# -- incremental ----------------------------------------------------------------------------------


def test_republish_writes_nothing_and_a_resync_moves_only_what_changed(world: World, http: str) -> None:
    s = world.sample
    before = snapshot(world.store)
    out = world.run.ok("publish", "dandi:*", "--to", world.url, "--with-root", "--public-url", http)
    assert snapshot(world.store) == before
    assert out.count("already up to date") == 3, out
    refs = store_refs(world.store)
    z = s.archive.asset_at(s.id, ZARR).zarr  # type: ignore[attr-defined]
    s.archive.modify_zarr(z.zarr_id, put={"0/2": deterministic_bytes(s.id + "z2", 200)})  # type: ignore[attr-defined]
    s.sync()
    world.run.ok("publish", "dandi:*", "--to", world.url, "--public-url", http)
    after = store_refs(world.store)
    moved = {d for d in refs if refs[d] != after[d]}
    a, zid = dsid_of(s.root / "dandi" / s.id), dsid_of(s.root / "dandi" / s.id / ZARR)
    assert moved == {f"{a[:3]}/{a[3:]}", f"{zid[:3]}/{zid[3:]}"}
    assert after[f"{a[:3]}/{a[3:]}"]["refs/heads/master"] == git(s.root / "dandi" / s.id, "rev-parse", "HEAD")


def test_lifted_embargo_is_published_next_time(world: World, archive, http: str, tmp_path: Path) -> None:  # noqa: ANN001
    archive.set_embargoed(world.hidden, False)
    _sync(world.run, archive, world.hidden)
    res = world.run.json("publish", "dandi:*", "--to", world.url, "--with-root", "--public-url", http)
    assert res["held_back"] == [] and any(p["alias"] == f"dandi/{world.hidden}" for p in res["published"])
    clone = tmp_path / "e"
    sh(tmp_path, "datalad", "clone", f"ria+{http}/#~dandi/{world.hidden}", str(clone))
    sh(clone, "datalad", "get", ".")
    assert (clone / "secret.nwb").read_bytes() == b"embargoed science" * 200
    root = tmp_path / "root"
    sh(tmp_path, "datalad", "clone", f"ria+{http}/#~root", str(root))
    assert f"dandi/{world.hidden}" in (root / ".gitmodules").read_text()


# -- crashes ------------------------------------------------------------------------------------------


def publish_process(world: World, store: Path, crash: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("NEUROMIRROR_CRASH_AT", None)
    if crash:
        env["NEUROMIRROR_CRASH_AT"] = crash
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(world.sample.root)]
    cmd += ["publish", world.sample.source, "--to", f"ria+file://{store}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_sigkill_mid_publish_then_rerun_converges(world: World, tmp_path: Path) -> None:
    ref = tmp_path / "reference"
    assert publish_process(world, ref, None).returncode == 0
    want = (store_refs(ref), aliases(ref))
    for point in ("publish-ria:before-rename", "publish-ria:before-rename#2", "publish-ria:before-alias"):
        store = tmp_path / point.replace(":", "-").replace("#", "-")
        proc = publish_process(world, store, point)
        assert proc.returncode == -9, (point, proc.stderr)
        assert_no_alias_to_incomplete(store)
        assert f"dandi/{world.sample.id}" not in aliases(store)
        assert publish_process(world, store, None).returncode == 0
        assert (store_refs(store), aliases(store)) == want, point
        assert not list(store.glob("*/.*.tmp-*")), point
    # an update killed between the push and update-server-info: the rerun serves the new refs
    store = tmp_path / "update"
    shutil.copytree(ref, store, symlinks=True)
    d = ds_dir(store, dsid_of(world.sample.root / "dandi" / world.sample.id))
    git(d, "update-ref", "refs/heads/master", git(d, "rev-parse", "master~1"))
    git(d, "update-server-info")
    proc = publish_process(world, store, "publish-ria:pushed")
    assert proc.returncode == -9, proc.stderr
    assert_no_alias_to_incomplete(store)
    assert publish_process(world, store, None).returncode == 0
    assert store_refs(store) == want[0]
    assert f"{git(d, 'rev-parse', 'master')}\trefs/heads/master" in (d / "info" / "refs").read_text()

"""``publish --to ria+ssh://HOST/PATH``: the same RIA store as ``ria+file://``, written on a host over ssh.

Why: a lab's web server is rarely the machine that runs the mirror; publishing over ssh lands the
store where it is served.  Tested as git's own test suite tests its ssh transport: an executable
``ssh`` shim (``GIT_SSH_COMMAND``) drops the options and the host and runs the remote command
here with ``sh -c`` — so git's real ssh transport (``git-receive-pack`` on the "host") and
neuromirror's real remote shell scripts (``tar``, ``mv``, ``git update-server-info``) run; only the
network hop is replaced.  The shim logs each call, so the tests can count round trips.

Checked: the store on the "host" is served by ``python -m http.server`` and cloned with the real
tools (``datalad clone 'ria+http://...#~dandi/NNNNNN'``, ``datalad get -r``) byte for byte, kept
content included (sent as one tar stream); the embargoed dandiset is held back; a second publish
writes nothing and makes one ssh call whatever the number of datasets; a SIGKILL at each crash
point converges on rerun; a failing ssh program is one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Iterator

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

SHIM = """#!/bin/sh
# a stand-in for ssh (as git's t/helper fake ssh): log the call, drop options and host, run here
{{ printf '%s' "$*" | tr '\\n' ' '; echo; }} >> {log}  # one line per call
while [ $# -gt 0 ]; do
    case "$1" in
        -p|-o|-l|-i|-F|-J) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
shift
exec sh -c "$*"
"""

REFUSED = """#!/bin/sh
echo "ssh: connect to host fakehost port 22: Connection refused" >&2
exit 255
"""


@dataclass
class World:
    sample: Sample
    kept: str
    kept_files: dict[str, bytes]
    hidden: str
    keep_store: Path
    store: Path  # the "host's" path, served over HTTP
    shim: Path
    log: Path
    report: dict
    served: Served

    @property
    def run(self) -> Runner:
        return self.sample.run

    @property
    def url(self) -> str:
        return f"ria+ssh://fakehost{self.store}"

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def make_shim(where: Path, log: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    shim = where / "ssh"  # named ssh: git takes it for OpenSSH (-p PORT, -o ...)
    shim.write_text(SHIM.format(log=str(log)))
    shim.chmod(0o755)
    return shim


@pytest.fixture(scope="module")
def fake_ssh(tmp_path_factory) -> Iterator[tuple[Path, Path]]:  # noqa: ANN001
    """``GIT_SSH_COMMAND`` = the shim, for git and neuromirror alike, for this module's tests."""
    base = tmp_path_factory.mktemp("fake-ssh")
    log = base / "calls.log"
    shim = make_shim(base / "bin", log)
    old = os.environ.get("GIT_SSH_COMMAND")
    os.environ["GIT_SSH_COMMAND"] = str(shim)
    try:
        yield shim, log
    finally:
        if old is None:
            os.environ.pop("GIT_SSH_COMMAND", None)
        else:
            os.environ["GIT_SSH_COMMAND"] = old


@pytest.fixture(scope="module")
def world(archive, served: Served, fake_ssh: tuple[Path, Path]) -> World:  # noqa: ANN001, F811
    shim, log = fake_ssh
    base = served.store.parent
    sample = build_sample(archive, base / "mirror", zarr=True)
    run = sample.run
    b = archive.create_dandiset(name="kept over ssh", created=T0)
    files = {"sub-01/kept.nwb": deterministic_bytes(b + "ssh", 30_000)}
    archive.put_asset(b, "sub-01/kept.nwb", files["sub-01/kept.nwb"], when=T0 + timedelta(minutes=1))
    bver = archive.publish(b, when=T0 + timedelta(hours=1))
    _sync(run, archive, b)
    keep_store = base / "keep"
    run.ok("keep", f"dandi:{b}@{bver}", "--to", str(keep_store))
    blob = archive.asset_at(b, "sub-01/kept.nwb", bver).blob
    _delete_all_versions(archive, blob.bucket, blob.key)
    e = archive.create_dandiset(name="embargoed over ssh", embargoed=True, created=T0)
    archive.put_asset(e, "secret.nwb", b"embargoed science" * 100, when=T0 + timedelta(minutes=1))
    _sync(run, archive, e, key=True)
    store = served.store
    url = f"ria+ssh://fakehost{store}"
    report = run.json("publish", "dandi:*", "--to", url, "--with-root", "--public-url", served.url)
    return World(sample, b, files, e, keep_store, store, shim, log, report, served)  # type: ignore[arg-type]


# -- the store on the host, cloned over HTTP ----------------------------------------------------------
def test_store_over_ssh_has_the_ria_file_layout_and_clones_over_http(world: World, tmp_path: Path) -> None:
    s, store, http = world.sample, world.store, world.served.url
    assert world.report["ok"], world.report
    assert (store / "ria-layout-version").read_text() == "1\n" and (store / "error_logs").is_dir()
    published = {p["alias"]: p for p in world.report["published"]}
    assert set(published) == {f"dandi/{s.id}", f"dandi/{world.kept}", "root"}
    assert published[f"dandi/{s.id}"]["url"] == world.url and published[f"dandi/{s.id}"]["created"]
    a = s.root / "dandi" / s.id
    for repo, alias in ((a, f"dandi/{s.id}"), (a / ZARR, None), (s.root / "dandi" / world.kept, f"dandi/{world.kept}")):
        d = ds_dir(store, dsid_of(repo))
        assert (d / "ria-layout-version").read_text() == "2\n" and (d / "annex" / "objects").is_dir()
        for ref in ("HEAD", "git-annex", *git(repo, "tag").split()):
            assert git(d, "rev-parse", ref) == git(repo, "rev-parse", ref), (repo, ref)
        assert git(d, "symbolic-ref", "HEAD") == git(repo, "symbolic-ref", "HEAD")
        served_refs = (d / "info" / "refs").read_text()
        assert f"{git(repo, 'rev-parse', 'HEAD')}\t{git(repo, 'symbolic-ref', 'HEAD')}" in served_refs
        assert (
            subprocess.run(["git", "--git-dir", str(d), "fsck", "--connectivity-only", "--no-progress"]).returncode == 0
        )
        if alias:
            link = store / "alias" / alias
            assert link.is_symlink() and not os.path.isabs(os.readlink(link)) and link.resolve() == d.resolve()
    assert not list(store.glob("*/.*.tmp-*")) and not list(store.glob("*/*/.nm-incoming-*"))
    # pushed by git's own ssh transport, to the "host" named in the URL
    assert any("git-receive-pack" in c and "fakehost" in c for c in world.calls())
    # a stranger clones over plain HTTP: every byte of v1, the Zarr's dataset from the store by id
    clone = tmp_path / "a"
    sh(tmp_path, "datalad", "clone", f"ria+{http}/#~dandi/{s.id}", str(clone))
    sh(clone, "git", "checkout", "-q", s.v1)
    sh(clone, "datalad", "get", "-r", ".")
    assert without_metadata(data_files(clone)) == s.files[s.v1]
    zid = dsid_of(a / ZARR)
    assert git(clone / ZARR, "remote", "get-url", "origin") == f"{http}/{zid[:3]}/{zid[3:]}"
    # the root names only what the store holds
    root = tmp_path / "root"
    sh(tmp_path, "datalad", "clone", f"ria+{http}/#~root", str(root))
    assert f"dandi/{s.id}" in (root / ".gitmodules").read_text()
    assert world.hidden not in (root / ".gitmodules").read_text()


def test_kept_content_went_over_ssh_and_is_served(world: World, tmp_path: Path) -> None:
    bds = world.sample.root / "dandi" / world.kept
    key = Path(os.readlink(bds / "sub-01/kept.nwb")).name
    d = ds_dir(world.store, dsid_of(bds))
    objects = [p for p in (d / "annex" / "objects").rglob(key) if p.is_file()]
    assert len(objects) == 1 and objects[0].read_bytes() == world.kept_files["sub-01/kept.nwb"]
    assert objects[0].stat().st_mode & 0o222 == 0  # read-only, as git-annex keeps objects
    assert git(d, "config", "-f", "config", "datalad.ora-remote.uuid")
    # the lab's store is out of reach: only the store on the "host" has the bytes the archive lost
    away = world.keep_store.with_name("keep-away")
    world.keep_store.rename(away)
    try:
        clone = tmp_path / "b"
        sh(tmp_path, "datalad", "clone", f"ria+{world.served.url}/#~dandi/{world.kept}", str(clone))
        sh(clone, "datalad", "get", ".")
        assert (clone / "sub-01/kept.nwb").read_bytes() == world.kept_files["sub-01/kept.nwb"]
    finally:
        away.rename(world.keep_store)


def test_embargoed_dandiset_is_held_back(world: World) -> None:
    eid = dsid_of(world.sample.root / "dandi" / world.hidden)
    assert [h["source"] for h in world.report["held_back"]] == [f"dandi:{world.hidden}"]
    assert not ds_dir(world.store, eid).exists() and not (world.store / "alias" / "dandi" / world.hidden).exists()
    assert status(f"{world.served.url}/alias/dandi/{world.hidden}/HEAD") == 404
    for dirpath, _, names in os.walk(world.store):
        for n in names:
            p = Path(dirpath) / n
            assert not (p.is_file() and KEY.encode() in p.read_bytes()), p


# -- incremental: one ssh call when nothing changed -------------------------------------------------
def test_republish_changes_nothing_and_makes_one_ssh_call(world: World) -> None:
    s = world.sample
    before, n = snapshot(world.store), len(world.calls())
    out = world.run.ok("publish", "dandi:*", "--to", world.url, "--with-root", "--public-url", world.served.url)
    assert out.count("already up to date") == 3, out
    assert snapshot(world.store) == before
    calls = world.calls()[n:]
    # four datasets (a dandiset, its Zarr, a kept dandiset, the root): one round trip reads them all
    assert len(calls) == 1 and "git-receive-pack" not in calls[0], calls
    # a resync that changes the Zarr: only it and its dandiset move, in a few calls per changed dataset
    refs = store_refs(world.store)
    z = s.archive.asset_at(s.id, ZARR).zarr  # type: ignore[attr-defined]
    s.archive.modify_zarr(z.zarr_id, put={"0/2": deterministic_bytes(s.id + "ssh-z2", 200)})  # type: ignore[attr-defined]
    s.sync()
    n = len(world.calls())
    world.run.ok("publish", "dandi:*", "--to", world.url, "--public-url", world.served.url)
    after = store_refs(world.store)
    a, zid = dsid_of(s.root / "dandi" / s.id), dsid_of(s.root / "dandi" / s.id / ZARR)
    assert {d for d in refs if refs[d] != after[d]} == {f"{a[:3]}/{a[3:]}", f"{zid[:3]}/{zid[3:]}"}
    d = ds_dir(world.store, a)
    assert after[f"{a[:3]}/{a[3:]}"]["refs/heads/master"] == git(s.root / "dandi" / s.id, "rev-parse", "HEAD")
    assert f"{git(d, 'rev-parse', 'master')}\trefs/heads/master" in (d / "info" / "refs").read_text()
    calls = world.calls()[n:]
    assert sum("git-receive-pack" in c for c in calls) == 2 and len(calls) <= 1 + 2 * 3, calls


# -- crashes ----------------------------------------------------------------------------------------
def publish_process(world: World, store: Path, crash: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_SSH_COMMAND=str(world.shim))
    env.pop("NEUROMIRROR_CRASH_AT", None)
    if crash:
        env["NEUROMIRROR_CRASH_AT"] = crash
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(world.sample.root)]
    cmd += ["publish", world.sample.source, "--to", f"ria+ssh://fakehost{store}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_sigkill_mid_publish_over_ssh_then_rerun_converges(world: World, tmp_path: Path) -> None:
    ref = tmp_path / "reference"
    assert publish_process(world, ref, None).returncode == 0
    want = (store_refs(ref), aliases(ref))
    assert f"dandi/{world.sample.id}" in want[1]
    for point in ("publish-ria:before-rename", "publish-ria:before-rename#2", "publish-ria:before-alias"):
        store = tmp_path / point.replace(":", "-").replace("#", "-")
        proc = publish_process(world, store, point)
        assert proc.returncode == -9, (point, proc.stderr)
        assert_no_alias_to_incomplete(store)
        assert f"dandi/{world.sample.id}" not in aliases(store)
        proc = publish_process(world, store, None)
        assert proc.returncode == 0, proc.stderr
        assert (store_refs(store), aliases(store)) == want, point
        assert not list(store.glob("*/.*.tmp-*")), point
    # an update killed between git's push and update-server-info: the rerun serves the new refs
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


# -- errors -----------------------------------------------------------------------------------------
def test_failing_ssh_and_bad_urls_are_one_line(world: World, tmp_path: Path) -> None:
    refused = tmp_path / "bin" / "ssh"
    refused.parent.mkdir()
    refused.write_text(REFUSED)
    refused.chmod(0o755)
    os.environ["GIT_SSH_COMMAND"] = str(refused)
    try:
        code, out, err = world.run("publish", world.sample.source, "--to", f"ria+ssh://fakehost{tmp_path / 's'}")
    finally:
        os.environ["GIT_SSH_COMMAND"] = str(world.shim)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "ssh fakehost" in err and "Connection refused" in err, err
    assert not (tmp_path / "s").exists()
    for bad in ("ria+ssh://-oProxyCommand=x/srv/ria", "ria+ssh://host/srv/a b", "ria+ssh://user:pw@host/srv/ria"):
        code, _, err = world.run("publish", world.sample.source, "--to", bad)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "ria+ssh" in err, (bad, err)

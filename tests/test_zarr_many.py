"""A dandiset of many small Zarr assets (issue 25), each its own dataset written without ``git annex init``.

The Zarr datasets are written directly (:mod:`neuromirror.dataset.fast_init`); what is
checked here is that git, git-annex and DataLad take them as their own: ``git fsck``,
the sparse checkout on the mirror host (:mod:`neuromirror.dataset.sparse`), ``git annex
whereis / fsck --branch HEAD``, then ``get / copy`` once the user made it whole, ``datalad clone`` +
``datalad get -r`` of two Zarrs in a clone, bytes compared.  And that a resync costs
O(changed Zarrs): with nothing changed, no git process runs in any Zarr dataset and only
a handful run at all; with one Zarr changed, only its dataset and the dandiset move, the
dandiset by one commit.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import pytest

from conftest import CLI, git
from helpers.dandi_full import T0, annexed_checksum, archive_checksum, get, run, user_env
from neuromirror.dataset.fast_init import FirstCommit, fast_init
from neuromirror.records import AnnexEntry, Snapshot
from neuromirror.sources.dandi import zarr_assets, zarr_states
from neuromirror.sources.dandi.client import DandiAPI
from neuromirror.sources.dandi.zarr_states import ZarrStates

ZARRS = 200


def zarr_path(i: int) -> str:
    return f"sub-{i // 50:02d}/sub-{i:03d}_sample.ome.zarr"


def zarr_files(i: int) -> dict[str, bytes]:
    return {".zgroup": b'{"zarr_format": 2}', f"0/{i % 7}/{i}": f"chunk of Zarr {i}\n".encode()}


@pytest.fixture(scope="module")
def archive(s3):  # noqa: ANN001, ANN201
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket="nm-zarr-many") as a:
        yield a


@pytest.fixture
def mcli(tmp_path, capsys, archive, monkeypatch) -> CLI:  # noqa: ANN001
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    return CLI(tmp_path / "mirror", capsys, archive.api_url)


def sync_commits(ds: Path) -> list[str]:
    return git(ds, "log", "--format=%H", "--grep=^Neuromirror-Source: ").split()


def zarr_heads(ds: Path) -> dict[str, str]:
    """Each Zarr dataset's HEAD, asked of git."""
    return {zarr_path(i): git(ds / zarr_path(i), "rev-parse", "HEAD").strip() for i in range(ZARRS)}


def gitlinks(ds: Path) -> dict[str, str]:
    out = git(ds, "ls-tree", "-r", "HEAD")
    return {line.split("\t", 1)[1]: line.split()[2] for line in out.splitlines() if line.startswith("160000 ")}


def git_starts(trace: Path) -> list[list[str]]:
    """The argv of every git process a GIT_TRACE2_EVENT file recorded."""
    if not trace.exists():
        return []
    return [e["argv"] for e in map(json.loads, trace.read_text().splitlines()) if e.get("event") == "start"]


def annex(repo: Path, env: dict, *args: str) -> str:
    p = run(["git", "annex", *args], cwd=repo, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_fast_init_dataset_is_what_git_annex_and_datalad_expect(tmp_path: Path) -> None:
    """Made from scratch, with a first commit: git, git-annex and DataLad read it as their own."""
    entries = [
        AnnexEntry(".zgroup", "MD5E-s2--99914b932bd37a50b983c5e7c90ae93b", 2, ("http://127.0.0.1:9/z/.zgroup",)),
        AnnexEntry("0/0", "MD5E-s3--900150983cd24fb0d6963f7d28e17f72", 3, ("http://127.0.0.1:9/z/0/0?versionId=1",)),
    ]
    made = fast_init(
        tmp_path / "ds",
        description="a test Zarr (fast_init)",
        attributes=["* annex.backend=MD5E"],
        message="[neuromirror] new",
        first=FirstCommit(entries, "[neuromirror] first: 2 added\n", T0),
    )
    ds = tmp_path / "ds"
    assert git(ds, "fsck", "--strict", "--no-dangling") == ""
    assert git(ds, "status", "--porcelain") == ""
    assert git(ds, "rev-parse", "HEAD").strip() == made.commit
    assert git(ds, "rev-parse", "HEAD~1").strip() == made.created
    assert git(ds, "config", "annex.uuid").strip() == made.annex_uuid
    assert git(ds, "log", "-1", "--format=%aI", "HEAD").strip().startswith(T0.strftime("%Y-%m-%dT%H:%M:%S"))
    info = git(ds, "annex", "info", "--fast")
    assert f"{made.annex_uuid} -- a test Zarr (fast_init) [here]" in info
    where = git(ds, "annex", "whereis", "0/0")
    assert "web: http://127.0.0.1:9/z/0/0?versionId=1" in where and "1 copy" in where
    assert "fsck 0/0 ok" in git(ds, "annex", "fsck", "--fast")
    assert git(ds, "annex", "find", "--include=*", "--format=${key}\\n").split() == sorted(e.key for e in entries)
    # DataLad: a dataset with this id, git-annex in it, clean
    status = subprocess.run(["datalad", "-f", "json", "status", "-d", str(ds)], capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert all(json.loads(line)["state"] == "clean" for line in status.stdout.splitlines())
    wtf = subprocess.run(
        ["datalad", "-f", "json", "wtf", "-S", "dataset", "-d", str(ds)], capture_output=True, text=True
    )
    assert made.dataset_id in wtf.stdout


def test_many_small_zarrs_sync_clone_annex_and_resync_one(mcli, archive, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    ident = archive.create_dandiset(name="many small zarrs", created=T0)
    archive.put_asset(ident, "sub-00/sub-00_ecephys.nwb", b"nwb" * 200, when=T0)
    aids = [archive.add_zarr_asset(ident, zarr_path(i), zarr_files(i), when=T0) for i in range(ZARRS)]
    zids = [archive.asset(a).zarr.zarr_id for a in aids]

    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert "refused" not in out and "pending" not in out, out
    ds = mcli.root / "dandi" / ident
    assert len(sync_commits(ds)) == 1  # the draft: one commit for 200 Zarrs
    # registered: none is kept out of the dandiset's status any longer (git matches each line to each directory)
    assert not (ds / ".git" / "info" / "exclude").exists()  # emptied, removed (issue 59: maintain's churn)
    assert git(ds, "status", "--porcelain") == ""
    heads = zarr_heads(ds)
    assert gitlinks(ds) == heads  # every Zarr registered at its dataset's HEAD
    modules = git(ds, "config", "-f", ".gitmodules", "--get-regexp", r"submodule\..*\.datalad-id")
    ids = {}
    for i in range(ZARRS):
        zds = ds / zarr_path(i)
        ids[git(zds, "config", "datalad.dataset.id").strip()] = i  # DataLad's view: .git/config on the host
        # creation + the mirror's one commit, the latter carrying the Zarr's trailers
        assert git(zds, "log", "--format=%s").splitlines()[1].startswith("[neuromirror] new Zarr dataset")
    assert len(ids) == ZARRS and all(i in modules for i in ids)  # distinct ids, in .gitmodules
    uuids = {git(ds / zarr_path(i), "config", "annex.uuid").strip() for i in range(0, ZARRS, 20)}
    assert len(uuids) == len(range(0, ZARRS, 20))

    # on the mirror host a Zarr's dataset is checked out sparse: its top level and .datalad/,
    # the objects below in the index only (skip-worktree); git status is clean
    env = user_env(archive)
    z5 = ds / zarr_path(5)
    assert git(z5, "fsck", "--strict", "--no-dangling") == ""
    assert git(z5, "status", "--porcelain") == ""
    tops = [rel for rel in zarr_files(5) if "/" not in rel]
    assert tops and all((z5 / rel).is_symlink() for rel in tops)
    assert not (z5 / "0").exists()
    flags = dict(line.split(" ", 1)[::-1] for line in git(z5, "ls-files", "-v").splitlines())
    assert flags["0/5/5"] == "S" and all(flags[rel] == "H" for rel in tops)
    # git-annex on the mirror host reads the objects from the branch
    uuid5 = git(z5, "config", "annex.uuid").strip()
    info = annex(z5, env, "info", "--fast")
    assert f"{uuid5} -- DANDI:{ident} Zarr {zarr_path(5)} ({zids[5]}) mirrored from {archive.api_url} [here]" in info
    chunk = "0/5/5"
    where = annex(z5, env, "whereis", "--branch", "HEAD")
    assert re.search(r"web: http://\S+/zarr/" + zids[5] + r"/0/5/5\?versionId=", where), where
    assert "fsck HEAD:0/5/5 ok" in annex(z5, env, "fsck", "--fast", "--branch", "HEAD")
    assert annexed_checksum(z5) == archive_checksum(archive, aids[5])
    # a user who wants the work tree whole on the host says so to git (tests/test_zarr_checkout.py)
    git(z5, "sparse-checkout", "disable")
    assert (z5 / chunk).is_symlink() and git(z5, "status", "--porcelain") == ""
    annex(z5, env, "get", chunk)
    assert (z5 / chunk).read_bytes() == zarr_files(5)[chunk]
    assert "fsck 0/5/5 (checksum...) ok" in annex(z5, env, "fsck", chunk).replace("\n", " ")
    (tmp_path / "keep").mkdir()
    annex(z5, env, "initremote", "keep", "type=directory", f"directory={tmp_path / 'keep'}", "encryption=none")
    annex(z5, env, "copy", "--to", "keep", chunk)
    assert "keep" in annex(z5, env, "whereis", chunk)

    # a user clones the mirror and gets two Zarrs with datalad get -r
    work = tmp_path / "work"
    p = run(["datalad", "clone", str(mcli.root), str(work)], env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    wds = work / "dandi" / ident
    p = run(["datalad", "get", "-n", f"dandi/{ident}"], cwd=work, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    p = get(wds, env, "-r", zarr_path(3), zarr_path(170))
    assert p.returncode == 0, p.stdout + p.stderr
    for i in (3, 170):
        for rel, data in zarr_files(i).items():
            assert (wds / zarr_path(i) / rel).read_bytes() == data

    # nothing changed: no git process in any Zarr dataset, a handful in all; the dandiset, its
    # versions and its newest asset (three plain GETs: a Zarr ingest moves its asset's modified,
    # dandi-archive PR #2720, tests/test_dandi_changes.py): no Zarr list, no dandi client
    trace = tmp_path / "trace-nochange.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    archive.reset_request_log()
    code, out, err = mcli("sync", f"dandi:{ident}")
    monkeypatch.delenv("GIT_TRACE2_EVENT")
    assert code == 0, err
    assert "unchanged" in out, out
    asked = sorted(urlsplit(raw).path for _, raw in archive.request_log)
    mine = [
        f"/api/dandisets/{ident}/",
        f"/api/dandisets/{ident}/versions/",
        f"/api/dandisets/{ident}/versions/draft/assets/",
    ]
    assert [a for a in asked if "info" not in a] == mine, asked
    starts = git_starts(trace)
    assert not [a for a in starts if any(".ome.zarr" in x for x in a)], starts
    assert len(starts) < 25, [a[:4] for a in starts]
    assert len(sync_commits(ds)) == 1

    # one Zarr changed: only its dataset and the dandiset move, the dandiset by one commit
    later = T0 + timedelta(days=1)
    archive.modify_zarr(zids[42], put={"0/9/new": b"added"}, delete=[f"0/{42 % 7}/42"], when=later)
    trace = tmp_path / "trace-one.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    code, out, err = mcli("sync", f"dandi:{ident}")
    monkeypatch.delenv("GIT_TRACE2_EVENT")
    assert code == 0, err
    touched = {x for a in git_starts(trace) for x in a if ".ome.zarr" in x}
    assert touched and all(x.endswith(zarr_path(42)) for x in touched), touched  # its dataset, its gitlink
    after = zarr_heads(ds)
    moved = {p for p in heads if heads[p] != after[p]}
    assert moved == {zarr_path(42)}
    assert len(sync_commits(ds)) == 2
    assert git(ds, "rev-parse", "HEAD~1").strip() == sync_commits(ds)[1]  # one commit on top
    assert gitlinks(ds) == after
    # its gitlink (and the draft's metadata); .gitmodules and every other gitlink as they were
    assert set(git(ds, "diff", "--name-only", "HEAD~1", "HEAD").split()) - {"dandiset.yaml"} == {zarr_path(42)}
    z42 = ds / zarr_path(42)
    assert annexed_checksum(z42) == archive_checksum(archive, aids[42])
    assert git(ds, "status", "--porcelain") == "" and git(z42, "status", "--porcelain") == ""
    assert not (z42 / "0").exists() and "S 0/9/new" in git(z42, "ls-files", "-v")  # the commit kept it sparse
    assert git(mcli.root, "status", "--porcelain") == ""

    # a Zarr removed from the draft: its gitlink goes, its dataset stays on disk (older commits
    # point into it), kept out of the dandiset's status and of the crash recovery of later syncs
    archive.delete_asset(ident, zarr_path(7), when=later + timedelta(hours=1))
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert zarr_path(7) not in gitlinks(ds) and len(sync_commits(ds)) == 3
    assert git(ds, "status", "--porcelain") == ""
    archive.put_asset(ident, "sub-00/sub-00_more.nwb", b"more" * 50, when=later + timedelta(hours=2))
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert len(sync_commits(ds)) == 4
    assert git(ds / zarr_path(7), "rev-parse", "HEAD").strip() == heads[zarr_path(7)]
    assert git(ds, "rev-parse", f"HEAD~2:{zarr_path(7)}").strip() == heads[zarr_path(7)]
    # its Zarr archive is still in the archive's Zarr list: it does not make every sync a resync
    assert draft_stamp(mcli.root, ident).endswith(" zarrs=modified")
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0 and "unchanged" in out, out

    # versions: the dandiset's own tree counts each Zarr once; what the Zarrs hold is said beside it
    code, out, err = mcli("versions", f"dandi:{ident}", "--json")
    assert code == 0, err
    objects = {i: dict(zarr_files(i)) for i in range(ZARRS) if i != 7}
    del objects[42][f"0/{42 % 7}/42"]
    objects[42]["0/9/new"] = b"added"
    assert json.loads(out)[-1]["inside_subdatasets"] == {
        "subdatasets": ZARRS - 1,
        "files": sum(len(o) for o in objects.values()),
        "bytes": sum(len(d) for o in objects.values() for d in o.values()),
        "unknown": 0,
    }
    code, out, err = mcli("versions", f"dandi:{ident}")
    assert f"{ZARRS - 1}: {sum(len(o) for o in objects.values())} files" in out.splitlines()[-1], out


def draft_stamp(root: Path, ident: str) -> str:
    """The draft's ``remote_modified`` as the index records it."""
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    try:
        (stamp,) = db.execute(
            "SELECT remote_modified FROM versions WHERE source=? AND label='draft' ORDER BY id DESC LIMIT 1",
            [f"dandi:{ident}"],
        ).fetchone()
    finally:
        db.close()
    return str(stamp)


def test_zarr_list_read_whole_or_not_at_all(archive, monkeypatch) -> None:  # noqa: ANN001
    """The dandiset's Zarr list, paged as the archive pages it; a route the archive lacks is None."""
    ident = archive.create_dandiset(name="zarr list", created=T0)
    aids = [archive.add_zarr_asset(ident, zarr_path(i), zarr_files(i), when=T0) for i in range(5)]
    monkeypatch.setattr(zarr_states, "PAGE_SIZE", 2)
    states = zarr_states.fetch(DandiAPI(ident, api_url=archive.api_url))
    assert states is not None
    assert states.checksums == {archive.asset(a).zarr.zarr_id: archive_checksum(archive, a) for a in aids}
    assert zarr_states.fetch(DandiAPI(ident, api_url=archive.root_url + "/no-api")) is None


def test_draft_stamp_claims_only_the_listed_states() -> None:
    """The draft's ``zarrs=`` token: the Zarr list's digest only when every Zarr asset handed to the
    run was mirrored at the list's checksum, or waits for one the list does not have yet."""
    ck = "0" * 32 + "-2--10"
    states = ZarrStates({"a": ck, "b": None, "orphan": ck})

    def stamped(mirrored: dict[str, str], states: Optional[ZarrStates] = states) -> str:
        snap = Snapshot("draft", "draft", [], T0, "draft", remote_modified="2025-01-01T00:00:00+00:00")
        zarr_assets.track_draft(snap, lambda: states)
        zarr_assets.expect_zarrs(snap, [{"zarr": "a"}, {"zarr": "b"}])
        for zid, checksum in mirrored.items():
            zarr_assets.note_zarr(snap, f"{zid}.zarr", zid, checksum)
        zarr_assets.stamp_zarrs(snap)
        return str(snap.remote_modified)

    assert stamped({"a": ck}) == f"2025-01-01T00:00:00+00:00 zarrs={states.digest}"  # b: pending
    recheck = "2025-01-01T00:00:00+00:00 zarrs=recheck"
    assert stamped({"a": "1" * 32 + "-2--10"}) == recheck  # mirrored at a state the list does not say
    assert stamped({}) == recheck  # a refused although the list has its checksum
    assert stamped({"a": ck, "b": ck}) == recheck  # b mirrored while the list had no checksum yet
    assert stamped({"a": ck}, None) == recheck  # no list
    snap = Snapshot("draft", "draft", [], T0, "draft", remote_modified="t")
    zarr_assets.track_draft(snap, lambda: states)
    zarr_assets.stamp_zarrs(snap)
    assert snap.remote_modified == "t"  # a draft without Zarr assets: no token


def test_without_the_zarr_list_every_sync_looks_again(mcli, archive, monkeypatch) -> None:  # noqa: ANN001
    """An archive whose Zarr list cannot be read: Zarrs mirrored all the same (their checksums from their
    metadata).  A state holding every asset reads Zarr ingests from the asset listing's ``-modified`` head
    (``zarrs=modified``, dandi-archive PR #2720): the next sync asks no Zarr list and sees an ingest."""
    ident = archive.create_dandiset(name="no zarr list", created=T0)
    aids = [archive.add_zarr_asset(ident, zarr_path(i), zarr_files(i), when=T0) for i in range(4)]
    ds = mcli.root / "dandi" / ident
    with monkeypatch.context() as m:
        m.setattr(zarr_states, "fetch", lambda *args: None)
        code, out, err = mcli("sync", f"dandi:{ident}")
        assert code == 0 and "refused" not in out, err + out
        assert annexed_checksum(ds / zarr_path(2)) == archive_checksum(archive, aids[2])
        assert draft_stamp(mcli.root, ident).endswith(" zarrs=modified")
        archive.reset_request_log()
        code, out, err = mcli("sync", f"dandi:{ident}")
        assert code == 0 and "unchanged" in out, err + out
        assert not [raw for _, raw in archive.request_log if raw.startswith("/api/zarr/")]
        archive.modify_zarr(archive.asset(aids[1]).zarr.zarr_id, put={"0/9/new": b"added"}, when=T0 + timedelta(days=1))
        code, out, err = mcli("sync", f"dandi:{ident}")
        assert code == 0 and "refused" not in out, err + out
        assert annexed_checksum(ds / zarr_path(1)) == archive_checksum(archive, aids[1])
        assert len(sync_commits(ds)) == 2
        assert not [raw for _, raw in archive.request_log if raw.startswith("/api/zarr/")]


def sync_process(root: Path, api: str, ident: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, DANDI_NO_ET="1", **env)
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", f"dandi:{ident}", "--dandi-api", api, "-q"]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=300)


def test_crash_after_a_zarr_commit_then_the_archive_reverts_it(archive, tmp_path: Path) -> None:
    """SIGKILL after a changed Zarr's dataset moved, before the dandiset's commit; then the archive
    puts the Zarr back as it was.  The rerun must not take the Zarr for unchanged (its cached commit
    is the recorded one, but its dataset moved): it is checked, committed again, and registered."""
    ident = archive.create_dandiset(name="zarr crash", created=T0)
    n = 12
    aids = [archive.add_zarr_asset(ident, zarr_path(i), zarr_files(i), when=T0) for i in range(n)]
    zid = archive.asset(aids[4]).zarr.zarr_id
    root = tmp_path / "mirror"
    p = sync_process(root, archive.api_url, ident)
    assert p.returncode == 0, p.stderr
    ds = root / "dandi" / ident
    z4 = ds / zarr_path(4)
    first = git(z4, "rev-parse", "HEAD").strip()
    others = {i: git(ds / zarr_path(i), "rev-parse", "HEAD").strip() for i in range(n) if i != 4}

    archive.modify_zarr(zid, put={"0/9/new": b"added"}, when=T0 + timedelta(days=1))
    p = sync_process(root, archive.api_url, ident, NEUROMIRROR_CRASH_AT="before-commit")
    assert p.returncode == -9, p.stderr
    moved = git(z4, "rev-parse", "HEAD").strip()
    assert moved != first and git(ds, "rev-parse", f"HEAD:{zarr_path(4)}").strip() == first
    assert zarr_path(4) in (ds / ".git" / "info" / "exclude").read_text()  # in flight

    archive.modify_zarr(zid, delete=["0/9/new"], when=T0 + timedelta(days=2))  # as it was first
    archive.put_asset(ident, "sub-00/sub-00_new.nwb", b"new" * 10, when=T0 + timedelta(days=2))  # the draft moves
    assert archive_checksum(archive, aids[4]) == annexed_checksum_at(z4, first)
    p = sync_process(root, archive.api_url, ident)
    assert p.returncode == 0, p.stderr
    head = git(z4, "rev-parse", "HEAD").strip()
    assert head not in (first, moved)  # committed again, on top of the crashed run's commit
    assert git(ds, "rev-parse", f"HEAD:{zarr_path(4)}").strip() == head
    assert annexed_checksum(z4) == archive_checksum(archive, aids[4])
    assert {i: git(ds / zarr_path(i), "rev-parse", "HEAD").strip() for i in others} == others
    assert git(ds, "status", "--porcelain") == "" and git(z4, "status", "--porcelain") == ""
    assert not (ds / ".git" / "info" / "exclude").exists()


def annexed_checksum_at(zds: Path, commit: str) -> str:
    """The Zarr checksum of the MD5E keys a commit of a Zarr dataset records."""
    from neuromirror.sources.dandi import zarr_listing

    leaves = []
    for line in git(zds, "ls-tree", "-r", commit).splitlines():
        meta, path = line.split("\t", 1)
        if not meta.startswith("120000 "):
            continue
        key = git(zds, "cat-file", "-p", meta.split()[2]).rsplit("/", 1)[-1]
        size = int(key.split("--", 1)[0].split("-s", 1)[1])
        leaves.append((path, size, key.split("--", 1)[1].split(".", 1)[0]))
    return zarr_listing.checksum_of(leaves)

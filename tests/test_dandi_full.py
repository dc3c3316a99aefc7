"""The whole DANDI archive: Zarr assets as subdatasets, embargoed dandisets, ``dandi:*``.

A second DANDI stand-in with access control (``api_token``) serves these tests,
so that embargoed dandisets behave as on the archive; clones retrieve through
git-annex (web remote, and the ``neuromirror-dandi`` special remote for
embargoed content) exactly as a user would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

from conftest import CLI, git
from helpers.dandi_full import (
    T0,
    annexed_checksum,
    archive_checksum,
    clone_all,
    get,
    index_dump,
    run,
    user_env,
    zarr_files,
)
from neuromirror.sources.dandi import zarr_listing

#: recognisable, so that the test can prove it was written nowhere
KEY = "nmtestkey" + uuid.uuid4().hex


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def archive(s3) -> Iterator[DandiStandIn]:  # noqa: F821, ANN001
    """A stand-in with access control: embargoed dandisets need KEY."""
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket="nm-full", api_token=KEY) as a:
        yield a


@pytest.fixture
def mcli(tmp_path: Path, capsys: pytest.CaptureFixture, archive, monkeypatch: pytest.MonkeyPatch) -> CLI:  # noqa: ANN001
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    return CLI(tmp_path / "mirror", capsys, archive.api_url)


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Zarr listing a sync makes (zarr ids)."""
    calls: list[str] = []
    real = zarr_listing.list_zarr

    def counting(source, zarr_id, *rest):  # noqa: ANN001, ANN002, ANN202
        calls.append(zarr_id)
        return real(source, zarr_id, *rest)

    monkeypatch.setattr(zarr_listing, "list_zarr", counting)
    return calls


# -- Zarr assets ------------------------------------------------------------------------
def test_zarr_subdataset_clone_get_tags_incremental(mcli, archive, tmp_path: Path, listings: list[str]) -> None:
    ident = archive.create_dandiset(name="zarr", created=T0)
    archive.put_asset(ident, "sub-01/sub-01_ecephys.nwb", b"nwb" * 500, when=T0)
    files = zarr_files("v1")
    assert len(files) >= 300
    aid = archive.add_zarr_asset(ident, "sub-01/sub-01_sample.ome.zarr", files, when=T0)
    zarr_id = archive.asset(aid).zarr.zarr_id
    version = archive.publish(ident, when=T0 + timedelta(hours=1))
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert "2 new version(s)" in out and "pending" not in out and "refused" not in out, out
    ds = mcli.root / "dandi" / ident
    zds = ds / "sub-01/sub-01_sample.ome.zarr"

    # the Zarr is a dataset of its own, registered as a subdataset (gitlink + .gitmodules url ./<path>)
    assert git(ds, "ls-tree", "HEAD", "sub-01/sub-01_sample.ome.zarr").split()[:2] == ["160000", "commit"]
    url = git(ds, "config", "-f", ".gitmodules", "submodule.sub-01/sub-01_sample.ome.zarr.url").strip()
    assert url == "./sub-01/sub-01_sample.ome.zarr"
    assert git(ds, "config", "-f", ".gitmodules", "submodule.sub-01/sub-01_sample.ome.zarr.datalad-id").strip()
    assert git(ds, "status", "--porcelain") == "" and git(zds, "status", "--porcelain") == ""
    first = git(zds, "rev-parse", "HEAD").strip()
    assert git(ds, "rev-parse", "HEAD:sub-01/sub-01_sample.ome.zarr").strip() == first
    # every object annexed with an MD5E key; its one URL: S3 pinned by versionId
    key = git(zds, "annex", "lookupkey", "0/0/0/0").strip()
    assert key.startswith("MD5E-s"), key
    urls = git(zds, "annex", "whereis", "--key", key, "--json")
    assert "versionId=" in urls and "/api/zarr/" not in urls  # the API route follows the current object
    # the checksum of the recorded keys is the archive's, and nothing was downloaded
    assert annexed_checksum(zds) == archive_checksum(archive, aid)
    assert git(zds, "annex", "find", "--branch", "HEAD").strip() == ""
    # the published version's tag pins the Zarr's commit; the Zarr's dataset has the tag too
    assert git(ds, "rev-parse", f"{version}:sub-01/sub-01_sample.ome.zarr").strip() == first
    assert git(zds, "rev-parse", f"{version}^{{commit}}").strip() == first
    assert listings == [zarr_id]  # two versions, one listing

    # unchanged: O(1) API calls, no listing
    archive.reset_request_log()
    code, out, _ = mcli("sync", f"dandi:{ident}")
    assert code == 0 and "unchanged" in out
    assert archive.request_count <= 4, archive.request_log
    assert listings == [zarr_id]
    # the draft changes elsewhere: the Zarr is not listed again
    archive.put_asset(ident, "sub-02/sub-02_ecephys.nwb", b"two" * 100, when=T0 + timedelta(days=1))
    assert mcli("sync", f"dandi:{ident}")[0] == 0
    assert listings == [zarr_id]
    assert git(zds, "rev-parse", "HEAD").strip() == first

    # the Zarr changes in place (the draft's modified does not move): found, listed, committed
    old_chunk = files["0/0/0/0"]
    archive.modify_zarr(
        zarr_id, put={"0/3/7/7": b"rewritten", "0/9/0/0": b"added"}, delete=["0/0/0/0"], when=T0 + timedelta(days=2)
    )
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert "1 new version(s) (draft)" in out, out
    assert listings == [zarr_id, zarr_id]
    second = git(zds, "rev-parse", "HEAD").strip()
    assert second != first and git(ds, "rev-parse", "HEAD:sub-01/sub-01_sample.ome.zarr").strip() == second
    assert "1 added, 1 removed, 1 changed" in git(zds, "log", "-1", "--format=%s")
    assert annexed_checksum(zds) == archive_checksum(archive, aid)
    assert git(ds, "rev-parse", f"{version}:sub-01/sub-01_sample.ome.zarr").strip() == first

    # a user: clone the mirror's root, install recursively, get chunks of the draft and of the tag
    env = user_env(archive)
    work = clone_all(mcli.root, tmp_path / "work", env, f"dandi/{ident}")
    wz = work / "dandi" / ident / "sub-01/sub-01_sample.ome.zarr"
    assert (wz / ".zgroup").is_symlink()
    p = get(
        work / "dandi" / ident, env, "sub-01/sub-01_sample.ome.zarr/0/1/2/3", "sub-01/sub-01_sample.ome.zarr/0/9/0/0"
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert (wz / "0/1/2/3").read_bytes() == files["0/1/2/3"]
    assert (wz / "0/9/0/0").read_bytes() == b"added"
    # the published version: the deleted chunk comes back through its S3 versionId
    wds = work / "dandi" / ident
    git(wds, "checkout", "-q", version)
    git(wds, "submodule", "update", "--", "sub-01/sub-01_sample.ome.zarr")  # the subdataset at the tag's commit
    assert git(wz, "rev-parse", "HEAD").strip() == first
    p = get(wds, env, "sub-01/sub-01_sample.ome.zarr/0/0/0/0")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (wz / "0/0/0/0").read_bytes() == old_chunk

    # the index knows the subdataset by its commit, and reindex agrees
    db = sqlite3.connect(mcli.root / ".neuromirror" / "index.sqlite")
    rows = db.execute(
        "SELECT checksum_kind, checksum FROM entries WHERE source=? AND path=?",
        [f"dandi:{ident}", "sub-01/sub-01_sample.ome.zarr"],
    ).fetchall()
    assert set(rows) == {("subdataset", first), ("subdataset", second)}
    before = index_dump(mcli.root)
    for suffix in ("", "-wal", "-shm"):
        Path(str(mcli.root / ".neuromirror" / "index.sqlite") + suffix).unlink(missing_ok=True)
    code, out, err = mcli("reindex")
    assert code == 0, err
    assert index_dump(mcli.root) == before


def test_a_zarr_held_before_manifests_gets_one_once(
    mcli,
    archive,
    listings: list[str],
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    """A mirror made by a release that wrote no Zarr manifests (here: its manifests removed; and, as such a
    release did, the draft listed whole, so its stamp is the old one) gets the held state's manifest at the
    next sync, from one more listing, with nothing committed; then no more."""
    ident = archive.create_dandiset(name="zarr before manifests", created=T0)
    files = zarr_files("held", chunks=2)
    aid = archive.add_zarr_asset(ident, "sub-01/held.ome.zarr", files, when=T0)
    zarr_id = archive.asset(aid).zarr.zarr_id
    checksum = archive_checksum(archive, aid)
    monkeypatch.setenv("NEUROMIRROR_DANDI_CHANGES", "0")  # the older release: no listing by changes (issue 75)
    assert mcli("sync", f"dandi:{ident}")[0] == 0
    monkeypatch.delenv("NEUROMIRROR_DANDI_CHANGES")
    manifests = mcli.root / ".neuromirror" / "zarr-manifests"
    written = manifests / zarr_id[:3] / zarr_id[3:6] / zarr_id / f"{checksum}.json"
    first = written.read_bytes()
    ds = mcli.root / "dandi" / ident
    heads = (git(ds, "rev-parse", "HEAD"), git(ds / "sub-01/held.ome.zarr", "rev-parse", "HEAD"))
    for p in sorted(manifests.rglob("*"), reverse=True):  # as an older release left the root
        p.unlink() if p.is_file() else p.rmdir()
    assert listings == [zarr_id]

    code, out, err = mcli("sync", f"dandi:{ident}")  # nothing changed upstream
    assert code == 0, err
    assert listings == [zarr_id, zarr_id]  # listed once more, for its manifest
    assert written.read_bytes() == first  # the same file the first sync wrote
    assert (git(ds, "rev-parse", "HEAD"), git(ds / "sub-01/held.ome.zarr", "rev-parse", "HEAD")) == heads
    assert git(ds, "status", "--porcelain") == ""

    code, out, _ = mcli("sync", f"dandi:{ident}")
    assert code == 0 and "unchanged" in out
    assert listings == [zarr_id, zarr_id]  # not again


def test_s3_location_of_zarr_urls() -> None:
    loc = zarr_listing._s3_location
    assert loc("https://dandiarchive.s3.amazonaws.com/zarr/abc/") == (None, "dandiarchive", "zarr/abc/")
    assert loc("https://dandiarchive.s3.us-east-2.amazonaws.com/zarr/abc/") == (None, "dandiarchive", "zarr/abc/")
    assert loc("http://127.0.0.1:9000/bucket/zarr/abc/") == ("http://127.0.0.1:9000", "bucket", "zarr/abc/")


def test_zarr_checksum_mismatch_is_caught(mcli, archive, listings: list[str]) -> None:
    ident = archive.create_dandiset(name="zarr mismatch", created=T0)
    archive.put_asset(ident, "a.nwb", b"a" * 100, when=T0)
    good = archive.add_zarr_asset(ident, "good.zarr", zarr_files("good", chunks=1), when=T0)
    bad = archive.add_zarr_asset(ident, "bad.zarr", zarr_files("bad", chunks=1), when=T0)
    archive.corrupt_zarr_checksum(bad)
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 3, err  # the rest synced, an item refused
    assert "refused 'bad.zarr': refused: Zarr checksum mismatch: the archive says" in out, out
    assert "(s3-versions, twice)" in out
    assert listings.count(archive.asset(bad).zarr.zarr_id) == 2  # listed again before giving up
    ds = mcli.root / "dandi" / ident
    tree = git(ds, "ls-tree", "--name-only", "HEAD").split()
    assert "good.zarr" in tree and "bad.zarr" not in tree
    # no state claiming the wrong checksum was recorded anywhere
    assert not (ds / "bad.zarr" / ".git").exists() or not git(
        ds / "bad.zarr", "log", "--grep=Neuromirror-Zarr:", "--oneline"
    )
    assert annexed_checksum(ds / "good.zarr") == archive_checksum(archive, good)
    # the next sync tries again (the draft's stamp does not claim the bad Zarr) and stays refused
    code, out, _ = mcli("sync", f"dandi:{ident}")
    assert code == 3 and "refused 'bad.zarr'" in out, out

    # a mirrored Zarr whose checksum goes wrong later keeps its last verified state
    before = git(ds, "rev-parse", "HEAD:good.zarr").strip()
    archive.corrupt_zarr_checksum(good)
    archive.put_asset(ident, "b.nwb", b"b" * 100, when=T0 + timedelta(days=1))
    code, out, _ = mcli("sync", f"dandi:{ident}")
    assert code == 3
    assert "refused 'good.zarr': refused: Zarr checksum mismatch" in out and "kept the last verified state" in out
    assert git(ds, "rev-parse", "HEAD:good.zarr").strip() == before
    assert "b.nwb" in git(ds, "ls-tree", "--name-only", "HEAD")


# -- embargo ------------------------------------------------------------------------------
def grep_key(*roots: Path) -> list[str]:
    """Every place under ``roots`` holding KEY: plain files and all git objects of every repository."""
    needle = KEY.encode()
    hits: list[str] = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for n in names:
                p = Path(dirpath) / n
                if p.is_symlink() or not p.is_file():
                    continue
                if needle in p.read_bytes():
                    hits.append(str(p))
            if Path(dirpath).name == ".git":  # objects are compressed: ask git for their contents
                objs = subprocess.run(
                    ["git", "--git-dir", dirpath, "cat-file", "--batch-all-objects", "--batch"], capture_output=True
                ).stdout
                if needle in objs:
                    hits.append(f"{dirpath} (git objects)")
    return hits


def test_embargoed_dandiset_key_from_environment(mcli, archive, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    ident = archive.create_dandiset(name="embargoed", embargoed=True, created=T0)
    blob = b"secret science" * 300
    archive.put_asset(ident, "sub-01/sub-01_ecephys.nwb", blob, when=T0)
    archive.put_asset(ident, "participants.tsv", b"participant_id\nsub-01\n", when=T0)
    files = zarr_files("embargoed", chunks=1)
    aid = archive.add_zarr_asset(ident, "sub-01/sub-01_sample.ome.zarr", files, when=T0)

    # without the key the archive does not show it
    code, _, err = mcli("sync", f"dandi:{ident}")
    assert code != 0 and ident in err
    monkeypatch.setenv("DANDI_API_KEY", KEY)
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert "refused" not in out and "pending" not in out, out
    ds = mcli.root / "dandi" / ident
    zds = ds / "sub-01/sub-01_sample.ome.zarr"
    for repo, path in ((ds, "sub-01/sub-01_ecephys.nwb"), (ds, "participants.tsv"), (zds, "0/0/0/0")):
        key = git(repo, "cat-file", "-p", f"HEAD:{path}").rsplit("/", 1)[-1]  # a Zarr's chunk: not checked out
        where = json.loads(git(repo, "annex", "whereis", "--json", "--key", key))
        assert [w["description"] for w in where["whereis"]] == ["[neuromirror-dandi]"], where
        assert all(u.startswith("neuromirror+dandi:") for w in where["whereis"] for u in w["urls"]), where
    assert annexed_checksum(zds) == archive_checksum(archive, aid)
    assert "autoenable=true" in git(ds, "show", "git-annex:remote.log")
    # O(1) when nothing changed, embargoed or not
    archive.reset_request_log()
    code, out, _ = mcli("sync", f"dandi:{ident}")
    assert code == 0 and "unchanged" in out and archive.request_count <= 4

    # a user with the key in the environment gets the blob and a Zarr chunk
    work = clone_all(mcli.root, tmp_path / "work", user_env(archive), f"dandi/{ident}")
    wds = work / "dandi" / ident
    p = get(wds, user_env(archive), "sub-01/sub-01_ecephys.nwb")
    assert p.returncode != 0 and "DANDI_API_KEY" in p.stdout + p.stderr, p.stdout + p.stderr
    p = get(
        wds,
        user_env(archive, KEY),
        "sub-01/sub-01_ecephys.nwb",
        "participants.tsv",
        "sub-01/sub-01_sample.ome.zarr/0/0/1/2",
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert (wds / "sub-01/sub-01_ecephys.nwb").read_bytes() == blob
    assert (wds / "participants.tsv").read_bytes() == b"participant_id\nsub-01\n"  # small text too: behind the key
    assert (wds / "sub-01/sub-01_sample.ome.zarr/0/0/1/2").read_bytes() == files["0/0/1/2"]
    # the key goes only to known DANDI API hosts (here the stand-in, named by NEUROMIRROR_DANDI_API)
    stranger = {k: v for k, v in user_env(archive, KEY).items() if k != "NEUROMIRROR_DANDI_API"}
    p = get(wds, stranger, "sub-01/sub-01_sample.ome.zarr/0/0/1/3")
    assert p.returncode != 0 and "refusing to send DANDI_API_KEY" in p.stdout + p.stderr, p.stdout + p.stderr
    # a wrong key: the archive's refusal, said plainly
    p = get(wds, user_env(archive, "wrong" + KEY), "sub-01/sub-01_sample.ome.zarr/0/0/1/3")
    assert p.returncode != 0 and "refused DANDI_API_KEY" in p.stdout + p.stderr, p.stdout + p.stderr
    # the key is nowhere: datasets, git histories and configs, the index, the clone
    assert grep_key(mcli.root, work) == []

    # the embargo is lifted: the next sync registers the public URLs, anyone can get
    archive.set_embargoed(ident, False)
    monkeypatch.delenv("DANDI_API_KEY")
    code, out, err = mcli("sync", f"dandi:{ident}")
    assert code == 0, err
    assert "1 new version(s) (draft)" in out and "changed" in out
    where = json.loads(git(ds, "annex", "whereis", "--json", "sub-01/sub-01_ecephys.nwb"))
    assert any("versionId=" in u for w in where["whereis"] for u in w["urls"]), where
    assert "Neuromirror-Zarr-Access: open" in git(zds, "log", "-1", "--format=%B")
    # the Zarr's objects: the pinned S3 URL only; the key's API route (it follows the current object) is gone
    key = git(zds, "cat-file", "-p", "HEAD:0/0/4/4").rsplit("/", 1)[-1]  # a chunk: not checked out on the host
    urls = json.loads(git(zds, "annex", "whereis", "--json", "--key", key))["whereis"]
    assert [u for w in urls for u in w["urls"]] and all("versionId=" in u for w in urls for u in w["urls"]), urls
    assert not (ds / "participants.tsv").is_symlink()  # public now: text in git, as for any open dandiset
    assert (ds / "participants.tsv").read_bytes() == b"participant_id\nsub-01\n"
    public = clone_all(mcli.root, tmp_path / "public", user_env(archive), f"dandi/{ident}")
    pds = public / "dandi" / ident
    p = get(pds, user_env(archive), "sub-01/sub-01_ecephys.nwb", "sub-01/sub-01_sample.ome.zarr/0/0/4/4")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (pds / "sub-01/sub-01_sample.ome.zarr/0/0/4/4").read_bytes() == files["0/0/4/4"]
    assert grep_key(mcli.root, work, public) == []


# -- the whole archive ---------------------------------------------------------------------
def test_all_dandisets_in_parallel_one_failing(tmp_path: Path, capsys, s3, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket=f"nm-all-{uuid.uuid4().hex[:8]}", api_token=KEY) as arch:
        ids = []
        for i in range(4):
            ident = arch.create_dandiset(name=f"public {i}", created=T0)
            arch.put_asset(ident, f"sub-{i}/data.nwb", f"data {i}".encode() * 50, when=T0)
            ids.append(ident)
        arch.add_zarr_asset(ids[1], "sub-1/img.zarr", zarr_files("all", chunks=1), when=T0)
        arch.publish(ids[2], when=T0 + timedelta(hours=1))
        hidden = arch.create_dandiset(name="embargoed", embargoed=True, created=T0)
        arch.put_asset(hidden, "secret.nwb", b"s" * 100, when=T0)
        broken = ids[3]
        arch.faults.set_only_paths(rf"^/api/dandisets/{broken}/versions/(\?|$)")
        arch.faults.set_rate(1.0, ("truncated",))

        monkeypatch.setenv("DANDI_API_KEY", KEY)
        monkeypatch.setenv("NEUROMIRROR_HTTP_RETRIES", "2")  # its every answer cut short: asked twice, then failed
        cli = CLI(tmp_path / "mirror", capsys, arch.api_url)
        code, out, err = cli("sync", "dandi:*", "-J", "3")
        assert code == 1
        lines = out.strip().splitlines()
        assert lines[-1] == "5 sources: 4 updated, 0 unchanged, 1 failed", out
        assert f"dandi:{broken}" not in out and f"neuromirror: dandi:{broken}:" in err  # said once, on stderr
        for ident in [*ids[:3], hidden]:
            assert f"dandi:{ident}: 1 new version(s)" in out or f"dandi:{ident}: 2 new version(s)" in out, out
        subs = run(["datalad", "subdatasets", "-d", str(cli.root)]).stdout
        assert all(f"dandi/{i}" in subs for i in [*ids[:3], hidden])
        assert git(cli.root / "dandi" / ids[1] / "sub-1/img.zarr", "config", "datalad.dataset.id").strip()

        # a mirror definition with `all: true` does the same; the broken one recovered
        arch.faults.reset()
        defs = tmp_path / "defs.yaml"
        defs.write_text(
            f"defaults:\n  schedule: {{interval: 6h}}\n  options: {{dandi_api: '{arch.api_url}'}}\n"
            "sources:\n  - {archive: dandi, all: true}\n"
        )
        code, out, err = cli("sync", "--config", str(defs))
        assert code == 0, err
        assert out.strip().splitlines()[-1] == "5 sources: 1 updated, 4 unchanged, 0 failed", out
        assert grep_key(cli.root) == []

"""``neuromirror publish``: a sibling anyone can ``datalad clone`` + ``datalad get`` from, without the mirror.

Why: a lock file or a citation is only useful to others if the datasets it
names can be cloned from somewhere public.  These tests publish to local bare
repositories (what GIN or an ssh server would hold), then clone from there as
a stranger would — plain ``datalad clone``/``datalad get``, and
``neuromirror get``/``reproduce`` with no mirror at all — and compare every
byte with the archive's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers.retrieve import ZARR, Sample, build_sample, data_files, git, without_metadata


@pytest.fixture(scope="module")
def sample(dandi_archive, tmp_path_factory) -> Sample:  # noqa: ANN001
    return build_sample(dandi_archive, tmp_path_factory.mktemp("publish") / "mirror", zarr=True)


@pytest.fixture(scope="module")
def published(sample: Sample, tmp_path_factory) -> Path:  # noqa: ANN001
    base = tmp_path_factory.mktemp("pub") / "siblings"
    out = sample.run.ok("publish", sample.source, "--to", str(base))
    assert f"{sample.source} -> {base / 'dandi' / sample.id} (created)" in out and "1 subdataset(s)" in out
    return base


def sh(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_published_sibling_is_a_bare_repository_with_everything(sample: Sample, published: Path) -> None:
    bare = published / "dandi" / sample.id
    assert git(bare, "rev-parse", "--is-bare-repository") == "true"
    mirror_ds = sample.root / "dandi" / sample.id
    for ref in ("HEAD", sample.v1, sample.v2, "git-annex"):
        assert git(bare, "rev-parse", ref) == git(mirror_ds, "rev-parse", ref), ref
    # the mirror records where it published, but never fetches from it or uses it for content
    assert git(mirror_ds, "config", "remote.published.url") == str(bare)
    assert git(mirror_ds, "config", "remote.published.annex-ignore") == "true"
    assert subprocess.run(["git", "-C", str(mirror_ds), "config", "remote.published.fetch"]).returncode == 1
    assert git(mirror_ds, "status", "--porcelain") == ""


def test_datalad_clone_and_get_from_the_sibling(sample: Sample, published: Path, tmp_path: Path) -> None:
    clone = tmp_path / "stranger"
    sh(tmp_path, "datalad", "clone", str(published / "dandi" / sample.id), str(clone))
    sh(clone, "git", "config", "annex.security.allowed-ip-addresses", "all")  # loopback stand-in, this clone only
    sh(clone, "datalad", "get", "-n", ZARR)  # the Zarr's dataset, from the sibling too
    sh(clone / ZARR, "git", "config", "annex.security.allowed-ip-addresses", "all")
    sh(clone, "datalad", "get", "-r", ".")
    assert without_metadata(data_files(clone)) == sample.files["draft"]
    sh(clone, "git", "checkout", "-q", sample.v1)
    sh(clone, "git", "submodule", "update", "--", ZARR)
    sh(clone, "datalad", "get", "-r", ".")
    assert without_metadata(data_files(clone)) == sample.files[sample.v1]


def test_neuromirror_get_and_reproduce_without_the_mirror(sample: Sample, published: Path, tmp_path: Path) -> None:
    nowhere = tmp_path / "no-mirror"
    # get resolves the version from the sibling's tags and commit trailers
    code, out, err = sample.run(
        "get",
        f"{sample.source}@{sample.v1}",
        "--from",
        str(published),
        "--to",
        str(tmp_path / "g"),
        "--allow-ip",
        "all",
        root=nowhere,
    )
    assert code == 0, err
    assert without_metadata(data_files(tmp_path / "g")) == sample.files[sample.v1]
    assert git(tmp_path / "g", "rev-parse", "HEAD") == sample.run.json("pin", f"{sample.source}@{sample.v1}")["commit"]
    res = sample.run.json(
        "get",
        sample.source,
        "--from",
        str(published / "dandi" / sample.id),
        "--to",
        str(tmp_path / "d"),
        "--allow-ip",
        "all",
        root=nowhere,
    )
    assert res["version"] == "draft" and res["ok"]
    code, _, err = sample.run(
        "get", f"{sample.source}@0.999999.9999", "--from", str(published), "--to", str(tmp_path / "x"), root=nowhere
    )
    assert code == 1 and "no version '0.999999.9999'" in err
    assert not nowhere.exists()

    # a lock naming the sibling (the default once published) is reproducible anywhere
    lock = tmp_path / "data.lock"
    sample.run.ok("lock", f"{sample.source}@{sample.v2}", "-o", str(lock))
    assert f'url = "{published / "dandi" / sample.id}"' in lock.read_text()
    code, out, err = sample.run("reproduce", str(lock), "--to", str(tmp_path / "r"), "--allow-ip", "all", root=nowhere)
    assert code == 0, out + err
    assert without_metadata(data_files(tmp_path / "r" / "dandi" / sample.id)) == sample.files[sample.v2]
    # --url BASE names the same place explicitly
    sample.run.ok("lock", f"{sample.source}@{sample.v2}", "--url", str(published), "-o", str(tmp_path / "b.lock"))
    assert f'url = "{published / "dandi" / sample.id}"' in (tmp_path / "b.lock").read_text()


def test_republish_pushes_only_news_and_refuses_divergence(sample: Sample, published: Path, tmp_path: Path) -> None:
    out = sample.run.ok("publish", sample.source, "--to", str(published))
    assert "already up to date" in out
    # a new draft state upstream: sync, then publish moves the sibling forward
    archive = sample.archive
    archive.put_asset(sample.id, "sub-05/sub-05_ecephys.nwb", b"new recording" * 100)  # type: ignore[attr-defined]
    sample.sync()
    out = sample.run.ok("publish", sample.source, "--to", str(published))
    assert "pushed: " in out and "master" in out.split("pushed: ")[1] and "git-annex" in out.split("pushed: ")[1]
    bare = published / "dandi" / sample.id
    assert git(bare, "rev-parse", "HEAD") == git(sample.root / "dandi" / sample.id, "rev-parse", "HEAD")
    # someone else pushed to the sibling: refuse to overwrite unless --force
    other = tmp_path / "other"
    sh(tmp_path, "git", "clone", "-q", str(bare), str(other))
    (other / "x.txt").write_text("not from the archive\n")
    sh(other, "git", "add", "x.txt")
    sh(other, "git", "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "-m", "x")
    sh(other, "git", "push", "-q", "origin", "HEAD:master")
    code, out, err = sample.run("publish", sample.source, "--to", str(published))
    assert code == 1 and "refused master" in err and "--force" in err
    sample.run.ok("publish", sample.source, "--to", str(published), "--force")
    assert git(bare, "rev-parse", "HEAD") == git(sample.root / "dandi" / sample.id, "rev-parse", "HEAD")


def test_with_root_and_url_templates(sample: Sample, tmp_path: Path) -> None:
    base = tmp_path / "site"
    out = sample.run.ok("publish", "dandi:*", "--to", str(base), "--with-root", "--name", "site")
    assert "(root superdataset)" in out
    # a stranger clones the root and gets a file of the dataset through it
    clone = tmp_path / "root-clone"
    sh(tmp_path, "datalad", "clone", str(base), str(clone))
    sh(clone, "datalad", "get", "-n", f"dandi/{sample.id}")
    sh(clone / "dandi" / sample.id, "git", "config", "annex.security.allowed-ip-addresses", "all")
    sh(clone, "datalad", "get", f"dandi/{sample.id}/sub-03")
    got = (clone / "dandi" / sample.id / "sub-03/sub-03_ecephys.nwb").read_bytes()
    assert got == sample.files["draft"]["sub-03/sub-03_ecephys.nwb"]
    # flat hosts: one URL per dataset from a template
    flat = tmp_path / "flat"
    code, _, err = sample.run("publish", sample.source, "--to", str(flat) + "/{archive}-{name}.git", "--name", "flat")
    # relative .gitmodules URLs: a BASE target only
    assert code == 1 and "has 1 subdataset(s)" in err and "publish it to a BASE, a target with no placeholders" in err
    from neuromirror.publish.sibling import target_url

    assert (
        target_url("git@github.com:lab/{slug}.git", "dandi:000027", "dandi/000027")
        == "git@github.com:lab/dandi-000027.git"
    )
    assert target_url("ssh://h/srv/{relpath}", "boss:c/e", "boss/c/e") == "ssh://h/srv/boss/c/e"
    assert target_url("git@host:base", "dandi:000027", "dandi/000027") == "git@host:base/dandi/000027"
    code, _, err = sample.run("publish", sample.source, "--to", str(flat) + "/{nope}", "--name", "flat")
    assert code == 1 and "bad placeholder" in err
    code, _, err = sample.run("publish", f"{sample.source}@{sample.v1}", "--to", str(flat))
    assert code == 2 and "whole datasets" in err
    assert os.path.isdir(base / "dandi" / sample.id)

"""The one walker over a version's files (annex/tree.py), on real git repositories made here.

A dataset with a file in git, an annexed file (a symlink to its key) whose URL its git-annex branch
registers, an installed subdataset and one that is not here: what each reader of a version sees."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from neuromirror.annex.keys import log_path
from neuromirror.records import GIT, SHA256

KEY = "SHA256E-s5--" + hashlib.sha256(b"hello").hexdigest() + ".nwb"
SUB_KEY = "MD5E-s3--" + hashlib.md5(b"abc").hexdigest() + ".bin"
URL = "https://bucket.s3.amazonaws.com/a.nwb?versionId=v1"


def git(repo: Path, *args: str, input: bytes | None = None, env: dict | None = None) -> str:
    full = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    full |= {"GIT_COMMITTER_EMAIL": "t@t", **(env or {})}
    return (
        subprocess.run(["git", "-C", str(repo), *args], input=input, env=full, check=True, capture_output=True)
        .stdout.decode()
        .strip()
    )


def annex_link(repo: Path, path: str, key: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(f".git/annex/objects/xx/yy/{key}/{key}", repo / path)


def web_log(repo: Path, key: str, url: str, tmp: Path) -> None:
    """The key's URL registered on a git-annex branch of its own (as git-annex writes it)."""
    blob = git(repo, "hash-object", "-w", "--stdin", input=f"1700000000s 1 {url}\n".encode())
    env = {"GIT_INDEX_FILE": str(tmp / f"annex-index-{repo.name}")}
    git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{log_path(key, '.log.web')}", env=env)
    tree = git(repo, "write-tree", env=env)
    git(repo, "update-ref", "refs/heads/git-annex", git(repo, "commit-tree", tree, "-m", "annex"))


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, str, str]:
    ds, sub = tmp_path / "ds", tmp_path / "ds" / "zarr" / "a.zarr"
    git(tmp_path, "init", "-q", str(ds))
    sub.parent.mkdir(parents=True)
    git(tmp_path, "init", "-q", str(sub))
    annex_link(sub, "0/0", SUB_KEY)
    (sub / ".zarray").write_text("{}")
    git(sub, "add", "-A")
    git(sub, "commit", "-qm", "zarr")
    sub_commit = git(sub, "rev-parse", "HEAD")
    web_log(sub, SUB_KEY, "https://bucket.s3.amazonaws.com/zarr/0/0?versionId=z", tmp_path)
    (ds / "dataset_description.json").write_text('{"name": "x"}')
    (ds / ".datalad").mkdir()
    (ds / ".datalad" / "config").write_text("")
    annex_link(ds, "sub-1/a.nwb", KEY)
    (ds / ".gitmodules").write_text('[submodule "zarr/a.zarr"]\n\tpath = zarr/a.zarr\n\turl = ./zarr/a.zarr\n')
    git(ds, "add", "dataset_description.json", ".datalad", ".gitmodules", "sub-1")
    git(ds, "update-index", "--add", "--cacheinfo", f"160000,{sub_commit},zarr/a.zarr")
    git(ds, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},zarr/gone.zarr")
    git(ds, "commit", "-qm", "version")
    web_log(ds, KEY, URL, tmp_path)
    return ds, git(ds, "rev-parse", "HEAD"), sub_commit


def test_a_versions_files_subdatasets_and_urls(dataset: tuple[Path, str, str]) -> None:
    from neuromirror.annex.tree import iter_version

    ds, commit, sub_commit = dataset
    top = {f.path: f for f in iter_version(ds, commit)}
    assert sorted(top) == ["dataset_description.json", "sub-1/a.nwb", "zarr/a.zarr", "zarr/gone.zarr"]  # no plumbing
    text, nwb, zarr = top["dataset_description.json"], top["sub-1/a.nwb"], top["zarr/a.zarr"]
    assert (text.key, text.checksum_kind, text.size) == (None, GIT, 13) and text.in_git
    assert text.checksum == hashlib.sha256(b'{"name": "x"}').hexdigest() and text.ident.startswith("GIT-SHA256-s13--")
    assert (nwb.key, nwb.size, nwb.checksum_kind, nwb.urls, nwb.repo) == (KEY, 5, SHA256, (), ds)
    assert zarr.is_subdataset and zarr.checksum == sub_commit and zarr.ident == f"SUBDATASET--{sub_commit}"

    deep = {f.path: f for f in iter_version(ds, commit, recurse=True, urls=True)}
    assert deep["sub-1/a.nwb"].urls == (URL,)
    assert deep["zarr/a.zarr/0/0"].key == SUB_KEY and deep["zarr/a.zarr/0/0"].repo == ds / "zarr" / "a.zarr"
    assert deep["zarr/a.zarr/0/0"].urls == ("https://bucket.s3.amazonaws.com/zarr/0/0?versionId=z",)
    assert deep["zarr/a.zarr/.zarray"].in_git
    assert "zarr/a.zarr" not in deep  # installed: its files stand for it
    assert deep["zarr/gone.zarr"].is_subdataset  # not here: yielded itself, for the caller to say so

    only = [f.path for f in iter_version(ds, commit, recurse=True, paths=["zarr/a.zarr/0"])]
    assert only == ["zarr/a.zarr/0/0"]


def test_the_file_list_needs_every_subdataset(dataset: tuple[Path, str, str]) -> None:
    from neuromirror.pin.filelist import walk_files
    from neuromirror.pin.retrieve import RetrieveError

    ds, commit, _ = dataset
    with pytest.raises(RetrieveError, match="zarr/gone.zarr"):
        list(walk_files(ds, commit))

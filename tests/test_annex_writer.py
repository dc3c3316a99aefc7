"""The annex writer: what the fast engine writes must be what git-annex itself writes and reads."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from neuromirror.annex.keys import (
    hashdir_lower,
    hashdir_mixed,
    key_extension,
    md5e_key,
    sha256e_key,
    symlink_target,
)
from neuromirror.annex.writer import Delete, Put, make_writer
from neuromirror.dataset.mirror import Datasets
from neuromirror.records import AnnexEntry, GitEntry


def annex(repo: Path, *args: str, input: str | None = None) -> str:
    proc = subprocess.run(["git", "annex", *args], cwd=repo, capture_output=True, text=True, input=input)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def entries(n: int = 6) -> list[AnnexEntry]:
    out = []
    for i in range(n):
        content = f"content {i}".encode()
        sha = hashlib.sha256(content).hexdigest()
        path = f"sub-{i:02d}/odd name {i}/f{i}.nii.gz" if i % 2 else f"f{i}.nwb"
        out.append(
            AnnexEntry(
                path,
                sha256e_key(sha, len(content), path),
                len(content),
                (f"https://example.org/blobs/{i}?versionId=v{i}", f"https://example.org/api/{i}/download/"),
            )
        )
    return out


@pytest.fixture
def mirror(tmp_path: Path) -> Datasets:
    return Datasets(tmp_path / "root")


def test_keys_match_git_annex(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    annex(repo, "init", "-q")
    names = ["a.nii.gz", "b.json", "c.tar.gz.longext", "sub-01_ses-1.nwb", "noext", "x.abcde", "a.b.c.d"]
    for name in names:
        (repo / name).write_bytes(b"some bytes\n")
        key = annex(repo, "calckey", "--backend=SHA256E", name).strip()
        sha = hashlib.sha256(b"some bytes\n").hexdigest()
        assert sha256e_key(sha, 11, name) == key, name
        assert key_extension(name) == key.split(sha, 1)[1]
        md5 = hashlib.md5(b"some bytes\n").hexdigest()
        assert md5e_key(md5, 11, name) == annex(repo, "calckey", "--backend=MD5E", name).strip()
        fmt = annex(repo, "examinekey", "--format=${hashdirmixed} ${hashdirlower}\n", key).strip()
        assert fmt == f"{hashdir_mixed(key)} {hashdir_lower(key)}"


@pytest.mark.parametrize("engine", ["fast-import", "batch"])
def test_engine_commit_is_what_git_annex_reads(mirror: Datasets, engine: str) -> None:
    ds = mirror.ensure_dataset(f"t/{engine}", "test")
    writer = make_writer(engine, ds)
    ents = entries()
    date = datetime(2023, 5, 1, 10, 0, tzinfo=timezone.utc)
    res = writer.commit([Put(e) for e in ents] + [Put(GitEntry("README.md", b"hello\n"))], message="first", date=date)
    assert git(ds, "status", "--porcelain") == ""
    assert git(ds, "log", "-1", "--format=%at %ct", res.commit).split() == [str(int(date.timestamp()))] * 2
    for e in ents:
        assert Path(ds / e.path).is_symlink()
        assert (ds / e.path).readlink().as_posix() == symlink_target(e.path, e.key)
        where = json.loads(annex(ds, "whereis", "--json", e.path))
        assert {u for w in where["whereis"] for u in w.get("urls", [])} == set(e.urls)
    # a later git-annex process writes on top of what we wrote, and keeps our records
    annex(ds, "registerurl", ents[0].key, "https://example.org/extra")
    where = json.loads(annex(ds, "whereis", "--json", ents[0].path))
    assert "https://example.org/extra" in {u for w in where["whereis"] for u in w.get("urls", [])}
    assert set(ents[0].urls) <= {u for w in where["whereis"] for u in w.get("urls", [])}
    # fsck --fast checks keys and location logs (not the URLs' bytes); all numcopies are satisfied by web
    annex(ds, "fsck", "--fast", "--quiet")
    # deletions and changes touch only what changed
    res2 = writer.commit(
        [Delete(ents[0].path), Put(GitEntry("README.md", b"hello again\n"))], message="second", date=date
    )
    changed = git(ds, "diff", "--name-only", res.commit, res2.commit).split("\n")
    assert sorted(filter(None, changed)) == sorted([ents[0].path, "README.md"])
    assert (ds / "README.md").read_bytes() == b"hello again\n"
    assert git(ds, "status", "--porcelain") == ""


def test_engines_make_identical_trees(mirror: Datasets) -> None:
    trees = []
    for engine in ("fast-import", "batch"):
        ds = mirror.ensure_dataset(f"same/{engine}", "test")
        writer = make_writer(engine, ds)
        res = writer.commit(
            [Put(e) for e in entries()] + [Put(GitEntry("a/b.json", b"{}\n"))],
            message="m",
            date=datetime(2023, 1, 1, tzinfo=timezone.utc),
        )
        listing = git(ds, "ls-tree", "-r", res.commit)
        trees.append("\n".join(line for line in listing.splitlines() if ".datalad/config" not in line))
    assert trees[0] == trees[1]


def test_fast_engine_failure_leaves_repository_unchanged(mirror: Datasets) -> None:
    ds = mirror.ensure_dataset("t/fail", "test")
    writer = make_writer("fast-import", ds)
    before = git(ds, "rev-parse", "HEAD", "git-annex")

    def boom() -> bytes:
        raise RuntimeError("download failed")

    bad = GitEntry("x.json", None, sha256="0" * 64, length=3, loader=boom)
    with pytest.raises(RuntimeError, match="download failed"):
        writer.commit([Put(entries(1)[0]), Put(bad)], message="m", date=datetime(2023, 1, 1, tzinfo=timezone.utc))
    assert git(ds, "rev-parse", "HEAD", "git-annex") == before
    assert git(ds, "status", "--porcelain") == ""


def test_git_annex_filter_stays_off_in_mirrors_and_on_in_clones(mirror: Datasets, tmp_path: Path) -> None:
    """git status in a mirror never runs git-annex (its keys-database catch-up under git's index lock)."""
    ds = mirror.ensure_dataset("t/filter", "test")
    writer = make_writer("fast-import", ds)
    writer.commit(
        [Put(e) for e in entries()] + [Put(GitEntry("README.md", b"hello\n"))],
        message="m",
        date=datetime(2023, 1, 1, tzinfo=timezone.utc),
    )
    writer.commit(
        [Put(GitEntry("README.md", b"hello again\n"))], message="m2", date=datetime(2023, 1, 2, tzinfo=timezone.utc)
    )
    attributes = ds / ".git" / "info" / "attributes"
    # a dataset made today has no info/attributes at all (issue 52: no filter to quiet); git annex init
    # with annex.supportunlocked=false sets no filter either; where one is set (datasets made before),
    # the writer's "* !filter" comes after it
    lines = attributes.read_text().splitlines() if attributes.exists() else []
    assert lines.count("* !filter") <= 1
    assert "* filter=annex" not in lines or lines.index("* !filter") > lines.index("* filter=annex")
    assert git(ds, "check-attr", "filter", "--", "README.md").strip() == "README.md: filter: unspecified"
    assert git(ds, "for-each-ref", "refs/neuromirror/") == ""  # the staging ref is gone once the branch moved
    (ds / "README.md").touch()
    trace = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ds, capture_output=True, text=True, env={**os.environ, "GIT_TRACE": "1"}
    )
    assert trace.stdout == "" and "git-annex" not in trace.stderr
    # a later git-annex command sees everything, and a clone is an ordinary git-annex repository
    annex(ds, "fsck", "--fast", "--quiet")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ds), str(clone)], check=True)
    annex(clone, "init", "-q")
    assert git(clone, "check-attr", "filter", "--", "README.md").strip() == "README.md: filter: annex"


#: (MEMORY_MIN_KEYS, PACK_MIN_KEYS) that send the test's 200 and 101 keys each way of annexbranch
_WAYS = {"packed": (0, 0), "memory": (0, 1_000_000), "stream": (1_000_000, 1_000_000)}


@pytest.mark.parametrize("way", sorted(_WAYS))
def test_annex_branch_written_whole_is_what_git_annex_writes(
    mirror: Datasets, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """The git-annex branch's trees, built by neuromirror into a pack on disk (as for 20,000 keys and more)
    or in memory with its own index (from 2,000), or placed by fast-import: git checks them, and a second
    commit merges into the directories the first one made, as git-annex's own registerurl does."""
    from neuromirror.annex import annexbranch

    memory_min_keys, pack_min_keys = _WAYS[way]
    monkeypatch.setattr(annexbranch, "MEMORY_MIN_KEYS", memory_min_keys)
    monkeypatch.setattr(annexbranch, "PACK_MIN_KEYS", pack_min_keys)
    ents = entries(300)
    more = [AnnexEntry(ents[0].path, ents[0].key, ents[0].size, ("https://example.org/mirror/0",))]
    date = datetime(2023, 1, 1, tzinfo=timezone.utc)
    logs = []
    for engine in ("fast-import", "batch"):
        ds = mirror.ensure_dataset(f"branch/{engine}-{way}", "test")
        writer = make_writer(engine, ds)
        writer.commit([Put(e) for e in ents[:200]], message="first", date=date)
        writer.commit([Put(e) for e in ents[200:]] + [Put(more[0])], message="second", date=date)
        fsck = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=ds, capture_output=True, text=True)
        assert fsck.returncode == 0 and "error" not in fsck.stderr, fsck.stderr
        listing = git(ds, "ls-tree", "-r", "--name-only", "git-annex").split()
        logs.append(sorted(p for p in listing if p.count("/") == 2))
        where = json.loads(annex(ds, "whereis", "--json", ents[0].path))
        assert {u for w in where["whereis"] for u in w.get("urls", [])} == set(ents[0].urls) | {more[0].urls[0]}
        last = json.loads(annex(ds, "whereis", "--json", ents[-1].path))
        assert {u for w in last["whereis"] for u in w.get("urls", [])} == set(ents[-1].urls)
    assert logs[0] == logs[1] and len(logs[0]) == 2 * len({e.key for e in ents})


def test_key_logs_read_as_git_annex_reads_them() -> None:
    """The newest line per value decides (whatever the line order); a ':' marks a special remote's URL."""
    from neuromirror.annex.logs import add_present, log_state, web_urls

    log = (
        b"1700000002.5s 0 https://a/x\n"
        b"1700000001s 1 https://a/x\n"  # older than the removal above: x stays gone
        b"1700000001s 1 :https://b/y\n"
        b"garbage\n"
    )
    assert log_state(log) == {"https://a/x": False, ":https://b/y": True}
    assert web_urls(log) == ("https://b/y",)
    assert web_urls(None) == ()
    assert add_present(log, "1700000003s", [":https://b/y"]) is None  # already present
    again = add_present(log, "1700000003s", ["https://a/x", "https://a/x"])
    assert again is not None and web_urls(again) == ("https://b/y", "https://a/x")
    assert add_present(None, "1700000003s", ["u", "u", "v"]) == b"1700000003s 1 u\n1700000003s 1 v\n"
    assert add_present(None, "1700000003s", []) is None

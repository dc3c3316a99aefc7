"""The listing of a git-annex branch a reader of 10^6 keys' logs holds: the same answers git gives.

``BlobMap`` keeps a fingerprint per log instead of its path (32 bytes a log, where a dict held ~250);
checked against ``git ls-tree`` and ``git cat-file`` on a real repository's branch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import git
from helpers.annex import _annex_repo
from neuromirror.annex import blobmap
from neuromirror.annex.blobmap import COMPACT_MIN, MISSING, BlobMap
from neuromirror.annex.keys import log_path
from neuromirror.annex.logs import BRANCH
from neuromirror.store import record
from neuromirror.store.directory import DirectoryStore
from neuromirror.util import gitutil


@pytest.mark.parametrize("compact_min", [1, COMPACT_MIN])
def test_the_branch_listing_answers_as_git_does(
    tmp_path: Path, compact_min: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both forms: the arrays (a branch of 20,000 logs or more), a dict below."""
    repo = tmp_path / "ds"
    keys = _annex_repo(repo, 30)
    record.record_present(repo, DirectoryStore(tmp_path / "store"), keys)
    listed = {}
    for line in git(repo, "ls-tree", "-r", BRANCH).splitlines():
        meta, path = line.split("\t", 1)
        listed[path] = meta.split()[2]

    logs = BlobMap.listed(repo, BRANCH, ".log", compact_min=compact_min)
    assert len(logs) == sum(p.endswith(".log") for p in listed) == 32  # the keys', remote.log, uuid.log
    paths = [log_path(k) for k in keys]
    assert logs.get_many(paths) == [listed[p] for p in paths]
    for p in paths[:3]:
        (sha,) = logs.get_many([p])
        assert sha == listed[p]
        assert git(repo, "cat-file", "-p", sha) == git(repo, "cat-file", "-p", f"{BRANCH}:{p}")
    assert logs.get_many([log_path(k, ".log.web") for k in keys]) == [None] * 30  # another suffix: not listed
    assert logs.get_many(["remote.log"]) == [listed["remote.log"]]
    # what cat-file is asked: the blob, or an id git answers "missing" for
    specs = logs.specs(["abc/def/nothing.log", paths[0]])
    assert specs == [MISSING, listed[paths[0]]]
    with gitutil.CatFile(repo) as cat:
        assert cat.get_few(specs) == [None, git(repo, "cat-file", "-p", listed[paths[0]]).encode()]

    web = BlobMap.listed(repo, BRANCH, ".log.web", compact_min=compact_min)
    assert len(web) == 0 and web.get_many(paths) == [None] * 30
    top = sorted({p[:3] for p in paths})[:2]  # two top-level directories listed: their logs only
    some = BlobMap.listed(repo, BRANCH, ".log", top, compact_min)
    assert some.get_many(paths) == [listed[p] if p[:3] in top else None for p in paths]
    assert len(BlobMap.listed(repo, "refs/heads/no-such-branch", ".log", compact_min=compact_min)) == 0

    # read tree by tree through cat-file (bounded memory at 10^6 keys): the same answers as the listing; a
    # branch of fewer top-level directories than a 10^6-key one (this one) listed by ls-tree, as fast
    every = sorted(listed)
    for walk_min in (0, blobmap._WALK_MIN):
        monkeypatch.setattr(blobmap, "_WALK_MIN", walk_min)
        for suffix in (".log", ".log.web"):
            walked = BlobMap.walked(repo, BRANCH, suffix, compact_min=compact_min)
            assert len(walked) == len(BlobMap.listed(repo, BRANCH, suffix, compact_min=compact_min))
            assert walked.get_many(every) == [listed[p] if p.endswith(suffix) else None for p in every]
    some = BlobMap.walked(repo, BRANCH, ".log", top, compact_min)
    assert some.get_many(every) == [listed[p] if p[:3] in top and p.endswith(".log") else None for p in every]
    assert len(BlobMap.walked(repo, "refs/heads/no-such-branch", ".log", compact_min=compact_min)) == 0


class _SameHash(str):
    def __hash__(self) -> int:  # every path one string hash: the CRC beside it tells them apart
        return 42


def test_logs_found_through_the_branchs_trees_are_the_blobs_git_finds_by_path(tmp_path: Path) -> None:
    """``blob_ids``: the view's first listing of a Zarr directory reads each of its chunks' logs by blob id, the
    branch's root and the directories on the way read once, not searched by git for every log."""
    repo = tmp_path / "ds"
    keys = _annex_repo(repo, 30)
    record.record_present(repo, DirectoryStore(tmp_path / "store"), keys)
    branch = git(repo, "rev-parse", BRANCH).strip()
    paths = [log_path(k) for k in keys] + [log_path(k, ".log.web") for k in keys[:2]]
    paths += ["remote.log", "abc/def/nothing.log", f"{log_path(keys[0])}/deeper", log_path(keys[0])[:3]]
    with gitutil.CatFile(repo) as cat:
        for ref in (BRANCH, branch):
            got = blobmap.blob_ids(cat, ref, paths)
            by_path = [
                gitutil.out(repo, "rev-parse", "-q", "--verify", f"{ref}:{p}", check=False).strip() or None
                for p in paths[:33]
            ]
            assert got[:33] == by_path and all(got[:30]) and got[32]  # every key's location log, the root's remote.log
            assert got[30:32] == [None, None]  # no URL log recorded: as git answers "missing"
            assert got[33:] == [None, None, None]  # not on the branch; a blob as a directory; a directory
            assert cat.get_few([got[0] or MISSING]) == cat.get_few([f"{ref}:{paths[0]}"])
        assert blobmap.blob_ids(cat, "refs/heads/no-such-branch", paths[:2]) == [None, None]


def test_paths_with_the_same_string_hash_are_told_apart() -> None:
    paths = [_SameHash(f"{i:03x}/000/KEY{i}.log") for i in range(6)]
    ids = [bytes([i]) * 20 for i in range(6)]
    logs = BlobMap.of(zip(paths, (i.hex() for i in ids)), compact_min=1)
    assert logs.get_many(list(reversed(paths))) == [i.hex() for i in reversed(ids)]
    assert logs.get_many([_SameHash("fff/000/OTHER.log")]) == [None]


def test_keeps_readers_bound_gits_caches_and_answer_the_same(tmp_path: Path) -> None:
    """keep reads 10^6 logs through one cat-file: inside ``lean_readers`` git runs with its delta base cache
    and pack windows bounded (one such reader held 259 MB of a 10^6-key repository's packs, ~40 MB so);
    outside, and in another thread meanwhile (a sync beside it), with git's defaults.  The same bytes either way."""
    repo = tmp_path / "ds"
    keys = _annex_repo(repo, 5)
    record.record_present(repo, DirectoryStore(tmp_path / "store"), keys)
    specs = [f"{BRANCH}:{log_path(k)}" for k in keys]

    def read() -> tuple[list[str], list]:
        with gitutil.CatFile(repo) as cat:
            got = cat.get_few(specs)  # answered: git runs (its command line read after its exec)
            argv = Path(f"/proc/{cat.proc.pid}/cmdline").read_bytes().split(b"\0")
            return [a.decode() for a in argv if a], got

    plain_argv, plain = read()
    with gitutil.lean_readers():
        lean_argv, lean = read()
        listed = list(gitutil.ls_tree(repo, BRANCH))
        with ThreadPoolExecutor(1) as beside:  # another thread meanwhile (a sync beside a keep): git's defaults
            beside_argv, beside_got = beside.submit(read).result()
    assert lean == plain == beside_got and all(plain)
    assert "core.deltaBaseCacheLimit=4m" in lean_argv and "core.packedGitLimit=16m" in lean_argv
    assert not any(a.startswith("core.") for a in plain_argv + beside_argv)
    assert {p for *_, p in listed} == {p for *_, p in gitutil.ls_tree(repo, BRANCH)}

"""A branch head read from the ref files (``gitutil.branch_sha``), as git itself answers it.

Why: keep and the copies count read the git-annex branch head of every Zarr dataset of a version (20,000 in a
dandiset of small Zarrs), and a ``git rev-parse`` each cost ~2 ms; the files answer the same in ~20 us,
whether the ref is loose, packed, or shadowed by a newer loose one, and git is asked where they do not say.
"""

from __future__ import annotations

from pathlib import Path

from conftest import git
from neuromirror.util import gitutil

BRANCH = "refs/heads/git-annex"


def _commit(repo: Path, name: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD").strip()


def test_branch_sha_reads_loose_packed_and_shadowed_refs_as_git_does(tmp_path: Path) -> None:
    repo = tmp_path / "ds"
    repo.mkdir()
    git(repo, "init", "-q")
    assert gitutil.branch_sha(repo, BRANCH) is None  # no such branch: git says so too

    first = _commit(repo, "a")
    git(repo, "update-ref", BRANCH, first)
    assert (repo / ".git" / BRANCH).is_file()
    assert gitutil.branch_sha(repo, BRANCH) == first == gitutil.ref_sha(repo, BRANCH)

    git(repo, "pack-refs", "--all")  # packed: no loose file left
    assert not (repo / ".git" / BRANCH).exists()
    assert gitutil.branch_sha(repo, BRANCH) == first

    second = _commit(repo, "b")
    git(repo, "update-ref", BRANCH, second)  # a loose ref newer than the packed one: the loose one wins
    assert gitutil.branch_sha(repo, BRANCH) == second == gitutil.ref_sha(repo, BRANCH)

    # a submodule-style work tree whose .git is a file pointing at its git directory
    moved = tmp_path / "gitdir"
    (repo / ".git").rename(moved)
    (repo / ".git").write_text(f"gitdir: {moved}\n")
    assert gitutil.branch_sha(repo, BRANCH) == second

    # what the files do not say plainly (a symbolic ref) is asked of git
    git(repo, "symbolic-ref", "refs/heads/alias", BRANCH)
    assert gitutil.branch_sha(repo, "refs/heads/alias") == second


def test_has_commit_answers_from_the_checked_out_head_and_asks_git_otherwise(tmp_path: Path) -> None:
    from neuromirror.annex.tree import has_commit

    repo = tmp_path / "zarr"
    repo.mkdir()
    git(repo, "init", "-q")
    first = _commit(repo, "a")
    second = _commit(repo, "b")
    assert gitutil.checked_out(repo) == second  # a branch's loose ref
    git(repo, "pack-refs", "--all")
    assert gitutil.checked_out(repo) == second  # packed
    git(repo, "checkout", "-q", first)
    assert gitutil.checked_out(repo) == first  # detached
    assert has_commit(repo, first) and has_commit(repo, second)  # the other one from git
    assert not has_commit(repo, "0" * 40)
    assert gitutil.checked_out(tmp_path / "nowhere") is None


def test_loose_ref_reads_only_a_loose_commit_id_and_leaves_the_rest_to_branch_sha(tmp_path: Path) -> None:
    repo = tmp_path / "ds"
    repo.mkdir()
    git(repo, "init", "-q")
    git_dir = str(repo / ".git")
    assert gitutil.loose_ref(git_dir, BRANCH) is None  # no such branch
    first = _commit(repo, "a")
    git(repo, "update-ref", BRANCH, first)
    assert gitutil.loose_ref(git_dir, BRANCH) == first == gitutil.branch_sha(repo, BRANCH)
    git(repo, "pack-refs", "--all")  # packed: not this reader's to answer
    assert gitutil.loose_ref(git_dir, BRANCH) is None and gitutil.branch_sha(repo, BRANCH) == first
    git(repo, "symbolic-ref", "refs/heads/alias", BRANCH)  # a file, but no commit id in it
    assert gitutil.loose_ref(git_dir, "refs/heads/alias") is None

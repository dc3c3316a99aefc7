"""The git-annex branch has one writer beside the sync's (issue 51): :mod:`neuromirror.annex.branch_writer`.

(a) git-annex's subcommands that write the branch (``setpresentkey``, ``registerurl``, ``unregisterurl``)
are named, as a command's words, in that module only: the sync's reference engine
(:mod:`neuromirror.annex.batch`) registers a version's URLs through it too (``annex_register``), into
git-annex's journal that its ``fromkey`` run commits.
(b) the writer used as a user would, in a real git-annex repository, with git-annex the judge
(``whereis --json``): a key present in a directory store, then absent; a URL registered, then taken
back; the web's mark.  Each write one commit on the branch.
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

from conftest import git
from helpers.annex import _annex_repo
from helpers.code import docstrings
from neuromirror.annex.branch_writer import Batch, mark_web, register_urls, unregister_urls, write
from neuromirror.annex.contract import WEB_UUID
from neuromirror.annex.logs import BRANCH, branch_logs, web_urls
from neuromirror.store.directory import DirectoryStore

SRC = Path(__file__).resolve().parent.parent / "src" / "neuromirror"
SUBCOMMANDS = {"setpresentkey", "registerurl", "unregisterurl"}
#: module -> the subcommands it may run
ALLOWED = {
    "annex/branch_writer.py": SUBCOMMANDS,
}


def _subcommands(path: Path) -> set[str]:
    """The branch-writing subcommands ``path``'s code names as a word of a string (docstrings aside)."""
    tree = ast.parse(path.read_text(), str(path))
    prose = docstrings(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            found |= SUBCOMMANDS & set(node.value.split())
    return found


def test_git_annex_writes_the_branch_from_the_writer_module_only() -> None:
    used: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        names = _subcommands(path)
        if names:
            used[rel] = names
    stray = {rel: names - ALLOWED.get(rel, set()) for rel, names in used.items()}
    assert not {rel: n for rel, n in stray.items() if n}, "write the git-annex branch through annex/branch_writer"
    # the check sees the writer's own (setpresentkey's lines are written there, not run)
    assert used["annex/branch_writer.py"] == {"registerurl", "unregisterurl"}


def test_the_check_sees_a_subcommand_in_code_and_not_in_prose(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text('"""``git annex setpresentkey`` in prose."""\nrun("annex", "unregisterurl", "--batch")\n')
    assert _subcommands(f) == {"unregisterurl"}


def _whereis(repo: Path, key: str) -> dict[str, list[str]]:
    """uuid -> its URLs, as ``git annex whereis --json`` says (after merging the branch into its index)."""
    proc = subprocess.run(
        ["git", "annex", "whereis", "--json", "--key", key], cwd=repo, capture_output=True, text=True, check=False
    )
    if not proc.stdout.strip():
        return {}
    return {w["uuid"]: w.get("urls", []) for w in json.loads(proc.stdout)["whereis"]}


def _commits(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", BRANCH))


def test_the_writer_as_a_user_uses_it_checked_by_git_annex(tmp_path: Path) -> None:
    from neuromirror.store.record import record_absent, record_present

    repo = tmp_path / "ds"
    key, other = _annex_repo(repo, 2)
    store = DirectoryStore(tmp_path / "store")
    uuid = store.identity.uuid

    # present in a directory store: the remote's lines and the key's log, one commit
    n = _commits(repo)
    assert record_present(repo, store, [key]) == 1
    assert _commits(repo) == n + 1
    assert uuid in _whereis(repo, key) and uuid not in _whereis(repo, other)
    assert uuid in git(repo, "show", f"{BRANCH}:remote.log") and uuid in git(repo, "show", f"{BRANCH}:uuid.log")
    assert record_present(repo, store, [key]) == 0 and _commits(repo) == n + 1  # a rerun: nothing

    # absent
    assert record_absent(repo, uuid, [key, other]) == 1
    assert _commits(repo) == n + 2
    assert uuid not in _whereis(repo, key)

    # a URL registered (by git-annex, into its journal), then committed: the web has the key
    url = "https://example.org/data/f0.dat"
    register_urls(repo, [(key, url)])
    assert _commits(repo) == n + 3
    assert not any((Path(git(repo, "rev-parse", "--absolute-git-dir").strip()) / "annex" / "journal").iterdir())
    assert _whereis(repo, key).get(WEB_UUID) == [url]
    assert web_urls(branch_logs(repo, [key], ".log.web")[key]) == (url,)

    # the web's mark: gone, then serving again (the URL stays registered meanwhile)
    assert mark_web(repo, [key], []) == ([key], [])
    assert _commits(repo) == n + 4
    assert WEB_UUID not in _whereis(repo, key)
    assert web_urls(branch_logs(repo, [key], ".log.web")[key]) == (url,)
    assert mark_web(repo, [key], []) == ([], []) and _commits(repo) == n + 4
    assert mark_web(repo, [], [key]) == ([], [key])
    assert _whereis(repo, key).get(WEB_UUID) == [url]

    # unregistered: the URL gone, and with its last URL the web
    unregister_urls(repo, [(key, url, False)])
    assert _commits(repo) == n + 6
    assert WEB_UUID not in _whereis(repo, key)
    assert web_urls(branch_logs(repo, [key], ".log.web")[key]) == ()

    # a batch of both kinds: git-annex's journal flushed once (one commit), then the lines written here (one)
    batch = Batch(register=[(other, url)]).present(uuid, [key, other])
    assert sorted(write(repo, batch).keys) == sorted([key, other])
    assert _commits(repo) == n + 8
    where = _whereis(repo, other)
    assert uuid in where and where.get(WEB_UUID) == [url] and uuid in _whereis(repo, key)
    assert git(repo, "fsck", "--strict", "--no-dangling") == ""
    fsck = subprocess.run(["git", "annex", "fsck", "--fast", "-q"], cwd=repo, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

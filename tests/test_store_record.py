"""A store's keys recorded on a dataset's git-annex branch: the same logs ``git annex setpresentkey`` writes.

``record_present`` writes the location logs itself (as the sync does), not through git-annex; a user
checks the result with git-annex and git: ``whereis`` names the store, ``git fsck --strict`` is clean,
and the logs say what git-annex's own ``setpresentkey`` says in a twin repository.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import git
from helpers.annex import _annex_repo
from neuromirror.annex.keys import log_path
from neuromirror.annex.logs import BRANCH, branch_logs, log_state
from neuromirror.store.directory import DirectoryStore


def _logs(repo: Path, keys: list[str]) -> dict[str, dict[str, bool]]:
    return {k: log_state(v) for k, v in branch_logs(repo, keys).items()}


def _whereis(repo: Path, key: str) -> set[str]:
    out = subprocess.run(
        ["git", "annex", "whereis", "--json", "--key", key], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    return {w["uuid"] for w in json.loads(out)["whereis"]}


@pytest.mark.parametrize("files,chunk", [(3, None), (12, None), (12, 4)])
def test_record_present_writes_what_setpresentkey_writes(
    tmp_path: Path, files: int, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ours and git-annex's own, from the same state: the same stores per key; whereis names the store.
    Many keys are written a chunk of the branch's directories at a time (``chunk``: 4 keys where a keep
    of 10^6 writes 50,000), a commit each, the store's remote lines in the first."""
    from neuromirror.store import record

    if files > 10:  # the branch listed (its chunk's directories), the logs read by blob id (many keys)
        monkeypatch.setattr(record, "_LISTED_MIN", 2)
    if chunk:
        monkeypatch.setattr(record, "CHUNK", chunk)
    ours = tmp_path / "ours"
    keys = _annex_repo(ours, files)
    theirs = tmp_path / "theirs"
    git(tmp_path, "clone", "-q", str(ours), str(theirs))
    git(theirs, "annex", "init", "-q", "twin")
    store = DirectoryStore(tmp_path / "store")
    uuid = store.identity.uuid
    # one key was in the store once and is recorded gone: the new line must win over the old 0
    old = keys[0]
    for repo in (ours, theirs):
        git(repo, "annex", "setpresentkey", old, uuid, "0")

    git(ours, "annex", "merge", "-q")  # git-annex's journal committed: the commits after are ours
    before = git(ours, "rev-parse", BRANCH).strip()
    assert record.record_present(ours, store, keys) == files
    after = git(ours, "rev-parse", BRANCH).strip()
    # on top of the branch (the remote's own lines, then the keys' logs): nothing of it rewritten
    git(ours, "merge-base", "--is-ancestor", before, after)
    commits = git(ours, "rev-list", "--reverse", f"{before}..{after}").split()
    parts = list(record.chunks(keys))
    assert len(commits) == len(parts) and (len(parts) > 1) == bool(chunk)
    assert sorted(k for part in parts for k in part) == keys  # each key once, in one chunk
    for commit, part in zip(commits, parts):  # each commit: its chunk's logs, the first the remote's lines too
        changed = git(ours, "diff-tree", "-r", "--name-only", "--no-commit-id", commit).split()
        assert sorted(changed) == sorted(
            [log_path(k) for k in part] + (["remote.log", "uuid.log"] if commit == commits[0] else [])
        )
    record.ensure_remote(theirs, store)
    subprocess.run(
        ["git", "annex", "setpresentkey", "--batch"],
        cwd=theirs,
        input="".join(f"{k} {uuid} 1\n" for k in keys),
        text=True,
        check=True,
    )
    git(theirs, "annex", "merge", "-q")

    ours_logs, their_logs = _logs(ours, keys), _logs(theirs, keys)
    twin = git(theirs, "config", "annex.uuid").strip()  # the twin repository itself, which ours never saw
    for k in keys:
        assert ours_logs[k].get(uuid) is True and their_logs[k].get(uuid) is True
        live_ours = {u for u, live in ours_logs[k].items() if live}
        assert live_ours == {u for u, live in their_logs[k].items() if live} - {twin}
        assert uuid in _whereis(ours, k)  # git-annex reads the branch we wrote
    # one line per store in each log, as git-annex compacts it: the old "0" replaced, not kept beside
    raw = git(ours, "cat-file", "-p", f"{BRANCH}:{log_path(old)}")
    assert sum(uuid in line for line in raw.splitlines()) == 1
    assert git(ours, "fsck", "--strict", "--no-dangling") == ""

    # a rerun writes nothing: no new commit
    assert record.record_present(ours, store, keys) == 0
    assert git(ours, "rev-parse", BRANCH).strip() == after
    # and git-annex's own writes still go on top of ours
    git(ours, "annex", "setpresentkey", keys[-1], uuid, "0")
    git(ours, "annex", "merge", "-q")
    assert uuid not in _whereis(ours, keys[-1])


def test_a_key_recorded_again_after_git_annex_recorded_it_gone_stays_recorded(tmp_path: Path) -> None:
    """verify --stores' repair: git-annex's ``setpresentkey KEY UUID 0`` (its clock: whole seconds, one on
    from a line of the same second), then the store's copy re-kept and recorded here, then git-annex writes
    again (merging its index with the branch: a union, the dropped ``0`` line back). The key stays in the
    store: the line written here is newer than git-annex's, even with its clock ahead of ours."""
    import time

    from neuromirror.store import record

    repo = tmp_path / "ds"
    key, other = _annex_repo(repo, 2)
    store = DirectoryStore(tmp_path / "store")
    uuid = store.identity.uuid
    assert record.record_present(repo, store, [key]) == 1
    ahead = dict(os.environ, GIT_ANNEX_VECTOR_CLOCK=str(int(time.time()) + 100))
    subprocess.run(["git", "annex", "setpresentkey", key, uuid, "0"], cwd=repo, env=ahead, check=True)
    assert record.record_absent(repo, uuid, [key]) == 0  # already gone: git-annex's journal flushed
    assert uuid not in _whereis(repo, key)

    assert record.record_present(repo, store, [key]) == 1
    git(repo, "annex", "setpresentkey", other, uuid, "1")  # git-annex's index merges the branch
    git(repo, "annex", "merge", "-q")
    assert uuid in _whereis(repo, key) and uuid in _whereis(repo, other)
    assert log_state(branch_logs(repo, [key])[key])[uuid] is True

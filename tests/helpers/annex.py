"""A bare git-annex repository for the store-record tests (tests/test_store_record.py, tests/test_branch_writer.py)."""

from __future__ import annotations

from pathlib import Path

from conftest import git


def _annex_repo(path: Path, files: int) -> list[str]:
    """A git-annex repository with ``files`` annexed files; their keys."""
    path.mkdir()
    git(path, "init", "-q")
    git(path, "annex", "init", "-q", "here")
    for i in range(files):
        (path / f"f{i:04d}.dat").write_bytes(b"content %d\n" % i)
    git(path, "annex", "add", "-q", ".")
    git(path, "commit", "-q", "-m", "files")
    out = git(path, "annex", "find", "--format", "${key}\\n")
    return sorted(out.split())

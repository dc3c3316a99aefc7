"""A bare git-annex repository for the store-record tests (tests/test_store_record.py, tests/test_branch_writer.py);
the URLs a dataset's annexed files have, as ``whereis`` tells a user."""

from __future__ import annotations

import json
import subprocess
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


def web_urls(ds: Path) -> dict[str, list[str]]:
    """path -> the URLs git-annex's web remote has for the file at HEAD (what a clone's get tries)."""
    out = subprocess.run(
        ["git", "annex", "whereis", "--json", "--fast"], cwd=ds, capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in out.splitlines():
        rec = json.loads(line)
        found[rec["file"]] = sorted(u for w in rec["whereis"] + rec.get("untrusted", []) for u in w.get("urls", []))
    return found

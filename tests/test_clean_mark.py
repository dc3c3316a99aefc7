"""A sync that ends clean says so; the next one skips its crash check's ``git status`` (issue 40).

The check (``Mirror.recover``) is a ``git status`` of the whole dataset, half of a no-change
resync of a 10^5-file dandiset.  Seen as a user sees it: no ``git status`` in a no-change
resync; a run killed mid-way leaves no mark, and the run after it resets the debris as
before; a ``git add`` by hand (the index rewritten) makes the next sync check and reset too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import CLI, git
from neuromirror.dataset.clean_mark import MARK

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)


def git_commands(trace: Path) -> list[str]:
    """The git subcommands a GIT_TRACE2_EVENT file saw start."""
    out = []
    for line in trace.read_text().splitlines() if trace.exists() else ():
        e = json.loads(line)
        if e.get("event") == "start" and len(e.get("argv", ())) > 1:
            args = [a for a in e["argv"][1:] if not a.startswith("-")]
            out.append(args[0] if args else "")
    return out


def test_a_clean_end_is_trusted_and_anything_else_checked(
    cli: CLI, dandi_archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    a = dandi_archive
    ident = a.create_dandiset(name="clean mark", created=T0)
    a.put_asset(ident, "sub-01/a.nwb", b"clean mark a" * 10, when=T0)
    code, out, err = cli("sync", f"dandi:{ident}")
    assert code == 0, err
    ds = cli.root / "dandi" / ident
    assert (ds / ".git" / MARK).read_text().split()[0] == git(ds, "rev-parse", "HEAD").strip()

    # nothing changed: no git status at all
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    code, out, err = cli("sync", f"dandi:{ident}")
    monkeypatch.delenv("GIT_TRACE2_EVENT")
    assert code == 0 and "unchanged" in out, out + err
    assert "status" not in git_commands(trace), git_commands(trace)
    assert (ds / ".git" / MARK).exists()

    # a file added by hand with git: the index moved, so the next sync checks and resets it
    (ds / "stray.txt").write_text("not the archive's\n")
    git(ds, "add", "stray.txt")
    code, out, err = cli("sync", f"dandi:{ident}", "--json")
    assert code == 0, err
    assert any("reset the work tree" in w for w in json.loads(out)["warnings"]), out
    assert not (ds / "stray.txt").exists() and git(ds, "status", "--porcelain") == ""

    # a run killed before its commit leaves no mark: the run after it finds the debris and resets it
    a.put_asset(ident, "sub-02/b.nwb", b"clean mark b" * 10, when=T0 + timedelta(hours=1))
    env = dict(os.environ, NEUROMIRROR_CRASH_AT="before-commit", DANDI_NO_ET="1")
    killed = subprocess.run(
        [sys.executable, "-m", "neuromirror", "--root", str(cli.root), "sync", f"dandi:{ident}"]
        + ["--dandi-api", a.api_url, "-q"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    assert not (ds / ".git" / MARK).exists()
    (ds / "debris.part").write_bytes(b"half written")  # what a killed writer may leave
    code, out, err = cli("sync", f"dandi:{ident}", "--json")
    assert code == 0, err
    assert any("reset the work tree" in w for w in json.loads(out)["warnings"]), out
    assert not (ds / "debris.part").exists() and (ds / "sub-02/b.nwb").is_symlink()
    assert git(ds, "status", "--porcelain") == "" and (ds / ".git" / MARK).exists()

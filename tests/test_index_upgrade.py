"""A mirror written by the previous release opens, migrates and syncs with this one.

The previous release is the repository's own commit ``PREVIOUS`` (index schema 1: a
``version_files`` row per file per version), taken out with ``git archive`` and run as a
subprocess from the same venv.  Its index migrates on the first open by this code, in one
transaction: killed in the middle (SIGKILL at the ``index-migrate`` crash point), the old
index is intact and the old release still reads it; opened again, it migrates cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import git

PREVIOUS = "b4bafe3"
REPO = Path(__file__).resolve().parent.parent
NEW_SRC = REPO / "src"
T0 = datetime(2025, 4, 1, 8, 0, tzinfo=timezone.utc)
MIGRATING = "neuromirror: migrating the index"

#: every version's file list, as the running code's Index reads it
DUMP = """
import json, sys
from neuromirror.index.db import Index
idx = Index(sys.argv[1])
out = {}
for src in idx.sources():
    s = src if isinstance(src, dict) else {"id": src.id}  # the previous release's rows are dicts
    for row in idx.versions(s["id"]):
        v = row if isinstance(row, dict) else vars(row)  # the previous release's rows are dicts
        files = [[f.path, f.key, f.size, f.checksum_kind, f.checksum, list(f.urls)] for f in idx.version_files(v["id"])]
        count = v["files"] if "files" in v else v["file_count"]  # a Version record names the column file_count
        out[f'{s["id"]}@{v["label"]}#{v["id"]}'] = {"commit": v["commit"], "files": files, "count": count}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def previous_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's ``src`` directory, extracted from this repository's history."""
    known = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"], capture_output=True
    ).returncode
    if known != 0:
        pytest.skip(
            f"the previous release {PREVIOUS} is not in this checkout's git history (no .git, or a shallow clone)"
        )
    dest = tmp_path_factory.mktemp("previous-release")
    tar = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS, "src"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return dest / "src"


def run(code: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m neuromirror ARGS`` (or ``python -c``) with ``code`` first on the path."""
    full = {k: v for k, v in os.environ.items() if k != "NEUROMIRROR_CRASH_AT"}
    full.update(DANDI_NO_ET="1", PYTHONPATH=str(code), **env)
    cmd = [sys.executable, *(args if args[0] == "-c" else ("-m", "neuromirror", *args))]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=300)


def dump(code: Path, index: Path) -> dict:
    proc = run(code, "-c", DUMP, str(index))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def schema_of(index: Path) -> tuple[str, set[str]]:
    db = sqlite3.connect(index)
    try:
        version = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return version, tables
    finally:
        db.close()


@pytest.fixture(scope="module")
def old_mirror(previous_src: Path, dandi_archive, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:  # noqa: ANN001
    """A root the previous release synced three times (two published versions, drafts between)."""
    ident = dandi_archive.create_dandiset(name="written by the previous release", created=T0)
    root = tmp_path_factory.mktemp("old") / "mirror"
    for i in range(3):
        dandi_archive.put_asset(ident, f"sub-{i}/sub-{i}_ecephys.nwb", f"rec {i}".encode() * 50, when=T0)
    dandi_archive.put_asset(ident, "README.md", b"v1\n", when=T0)
    dandi_archive.publish(ident, when=T0 + timedelta(hours=1))
    sync = ("--root", str(root), "sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url, "-q")
    assert (p := run(previous_src, *sync)).returncode == 0, p.stderr
    dandi_archive.put_asset(ident, "sub-3/sub-3_ecephys.nwb", b"rec 3" * 50, when=T0 + timedelta(days=1))
    assert (p := run(previous_src, *sync)).returncode == 0, p.stderr
    dandi_archive.delete_asset(ident, "sub-0/sub-0_ecephys.nwb", when=T0 + timedelta(days=2))
    dandi_archive.publish(ident, when=T0 + timedelta(days=2, hours=1))
    assert (p := run(previous_src, *sync)).returncode == 0, p.stderr
    version, tables = schema_of(root / ".neuromirror" / "index.sqlite")
    assert version == "1" and "version_files" in tables
    return root, ident


def copy_root(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest, symlinks=True)
    return dest


def test_schema_1_index_migrates_on_first_open(previous_src: Path, old_mirror, tmp_path: Path) -> None:  # noqa: ANN001
    root = copy_root(old_mirror[0], tmp_path / "mirror")
    index = root / ".neuromirror" / "index.sqlite"
    before = dump(previous_src, index)
    assert len(before) >= 4 and all(len(v["files"]) == v["count"] for v in before.values())

    first = run(NEW_SRC, "--root", str(root), "versions", f"dandi:{old_mirror[1]}", "--json")
    assert first.returncode == 0, first.stderr
    said = [ln for ln in first.stderr.splitlines() if ln.startswith(MIGRATING)]
    assert len(said) == 1 and "schema 1 to 2" in said[0], first.stderr
    version, tables = schema_of(index)
    assert version == "2" and "version_files" not in tables and {"filesets", "fileset_spans"} <= tables
    assert dump(NEW_SRC, index) == before  # every version's list, file for file
    again = run(NEW_SRC, "--root", str(root), "versions", f"dandi:{old_mirror[1]}", "--json")
    assert again.returncode == 0 and MIGRATING not in again.stderr
    assert json.loads(again.stdout) == json.loads(first.stdout)
    db = sqlite3.connect(index)
    spans, rows_before = (
        db.execute("SELECT count(*) FROM fileset_spans").fetchone()[0],
        sum(v["count"] for v in before.values()),
    )
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL, for retention
    db.close()
    assert spans < rows_before / 2, (spans, rows_before)


def test_killed_migration_leaves_the_old_index_then_migrates(previous_src: Path, old_mirror, tmp_path: Path) -> None:  # noqa: ANN001
    root = copy_root(old_mirror[0], tmp_path / "mirror")
    index = root / ".neuromirror" / "index.sqlite"
    before = dump(previous_src, index)
    for point in ("index-migrate#2", "index-migrate-commit"):  # half-way through the versions; before COMMIT
        killed = run(NEW_SRC, "--root", str(root), "versions", f"dandi:{old_mirror[1]}", NEUROMIRROR_CRASH_AT=point)
        assert killed.returncode == -9, (point, killed.returncode, killed.stderr)
        assert MIGRATING in killed.stderr
        version, tables = schema_of(index)
        assert version == "1" and "version_files" in tables and "filesets" not in tables
        assert dump(previous_src, index) == before  # the previous release still reads it, unchanged
    done = run(NEW_SRC, "--root", str(root), "versions", f"dandi:{old_mirror[1]}")
    assert done.returncode == 0 and MIGRATING in done.stderr, done.stderr
    assert schema_of(index)[0] == "2" and dump(NEW_SRC, index) == before


def test_a_mirror_of_the_previous_release_syncs_with_this_one(
    previous_src: Path,
    old_mirror,
    dandi_archive,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    root = copy_root(old_mirror[0], tmp_path / "mirror")
    ident = old_mirror[1]
    spec = f"dandi:{ident}"
    dandi_archive.put_asset(ident, "sub-4/sub-4_ecephys.nwb", b"rec 4" * 50, when=T0 + timedelta(days=3))
    synced = run(NEW_SRC, "--root", str(root), "sync", spec, "--dandi-api", dandi_archive.api_url, "--json")
    assert synced.returncode == 0, synced.stderr
    assert MIGRATING in synced.stderr
    report = json.loads(synced.stdout)
    assert report["added"] >= 1, report
    ds = root / "dandi" / ident
    assert "sub-4/sub-4_ecephys.nwb" in git(ds, "ls-files")
    assert git(ds, "status", "--porcelain") == ""
    checked = run(NEW_SRC, "--root", str(root), "verify", spec)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = dump(NEW_SRC, root / ".neuromirror" / "index.sqlite")
    draft = [v for k, v in listed.items() if "@draft#" in k][-1]
    assert "sub-4/sub-4_ecephys.nwb" in {f[0] for f in draft["files"]}
    # a resync with nothing new: unchanged, and the index takes its run row only
    again = run(NEW_SRC, "--root", str(root), "sync", spec, "--dandi-api", dandi_archive.api_url, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["added"] == 0, again.stderr

"""The whole-DANDI and Zarr tests' helpers (tests/test_dandi_full.py and the Zarr tests): Zarr files, checksums, a user's environment."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from conftest import git
from neuromirror.sources.dandi import zarr_listing

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)


def zarr_files(seed: str, chunks: int = 4) -> dict[str, bytes]:
    """An OME-Zarr-like tree: nested groups, two arrays, a label group; a few hundred objects."""
    rnd = random.Random(seed)
    files: dict[str, bytes] = {
        ".zgroup": b'{"zarr_format": 2}',
        ".zattrs": json.dumps({"multiscales": [{"datasets": [{"path": "0"}, {"path": "1"}]}]}).encode(),
        "0/.zarray": b'{"chunks": [1, 8, 8], "zarr_format": 2}',
        "1/.zarray": b'{"chunks": [1, 4, 4], "zarr_format": 2}',
        "labels/.zgroup": b'{"zarr_format": 2}',
        "labels/mask/.zgroup": b'{"zarr_format": 2}',
        "labels/mask/0/.zarray": b'{"chunks": [1, 8, 8], "zarr_format": 2}',
    }
    for z in range(chunks):
        for y in range(8):
            for x in range(8):
                files[f"0/{z}/{y}/{x}"] = rnd.randbytes(rnd.randint(16, 96))
        for y in range(4):
            for x in range(4):
                files[f"1/{z}/{y}/{x}"] = rnd.randbytes(rnd.randint(8, 48))
    for y in range(4):
        for x in range(4):
            files[f"labels/mask/0/0/{y}/{x}"] = rnd.randbytes(12)
    return files


def user_env(archive, key: Optional[str] = None) -> dict:  # noqa: ANN001
    """A user's environment for datalad/git-annex: loopback allowed, the API known, the key if given."""
    env = {k: v for k, v in os.environ.items() if k != "DANDI_API_KEY"}
    env.update(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "annex.security.allowed-ip-addresses",
            "GIT_CONFIG_VALUE_0": "all",
            "NEUROMIRROR_DANDI_API": archive.api_url,
        }
    )
    if key:
        env["DANDI_API_KEY"] = key
    return env


def run(cmd: list[str], cwd: Optional[Path] = None, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def clone_all(root: Path, dest: Path, env: dict, *paths: str) -> Path:
    """Clone the mirror's root superdataset and install ``paths`` recursively (no content)."""
    p = run(["datalad", "clone", str(root), str(dest)], env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(["datalad", "get", "-n", "-r", *paths], cwd=dest, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    return dest


def get(repo: Path, env: dict, *paths: str) -> subprocess.CompletedProcess:
    return run(["datalad", "get", *paths], cwd=repo, env=env)


def annexed_checksum(zds: Path) -> str:
    """The Zarr checksum of what a Zarr dataset records at HEAD: from its MD5E keys alone (nothing
    downloaded; read from the branch, as the mirror host checks out only a Zarr's top level)."""
    leaves = []
    for line in git(
        zds, "annex", "find", "--branch", "HEAD", "--include=*", "--format=${file}\\t${key}\\n"
    ).splitlines():
        path, key = line.split("\t")
        path = path.removeprefix("HEAD:")
        info = key.split("--", 1)
        size = int(info[0].split("-s", 1)[1])
        leaves.append((path, size, info[1].split(".", 1)[0]))
    return zarr_listing.checksum_of(leaves)


def archive_checksum(archive, asset_id: str) -> str:  # noqa: ANN001
    return archive.asset(asset_id).zarr.reported_checksum


def index_dump(root: Path) -> list:
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    return db.execute(
        'SELECT v.label, v."commit", v.remote_modified, e.path, e.key, e.size, e.checksum_kind, e.checksum, e.urls'
        " FROM version_files vf JOIN versions v ON v.id = vf.version_id JOIN entries e ON e.id = vf.entry_id"
        " ORDER BY v.source, v.id, e.path"
    ).fetchall()

"""The AIND tests' helpers (tests/test_aind.py, tests/test_aind_stores.py): clones, trees, a store's objects."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from neuromirror.demo import deterministic_bytes


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def clone(source: Path, dest: Path) -> Path:
    subprocess.run(["datalad", "clone", str(source), str(dest)], check=True, capture_output=True)
    git(dest, "config", "annex.security.allowed-ip-addresses", "all")  # loopback stand-in: this clone only
    return dest


LOOPBACK = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "annex.security.allowed-ip-addresses",
    "GIT_CONFIG_VALUE_0": "all",
}


def datalad_get(repo: Path, *paths: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **LOOPBACK}
    return subprocess.run(["datalad", "get", *paths], cwd=repo, capture_output=True, text=True, env=env)


def tree(ds: Path, rev: str = "HEAD") -> list[str]:
    """The files of ``rev``, those of its subdatasets (at their recorded commits) included."""
    out = []
    for line in git(ds, "ls-tree", "-r", rev).splitlines():
        meta, name = line.split("\t", 1)
        mode, _, sha = meta.split()
        if mode == "160000":
            out += [f"{name}/{p}" for p in tree(ds / name, sha)]
        elif not name.startswith(".datalad/") and name not in (".gitattributes", ".gitmodules"):
            out.append(name)
    return sorted(out)


def subdatasets(ds: Path, rev: str = "HEAD") -> list[str]:
    return sorted(
        line.split("\t", 1)[1] for line in git(ds, "ls-tree", "-r", rev).splitlines() if line.startswith("160000")
    )


ASSET = "SmartSPIM_111111_2024-01-01_00-00-00"


STORES = ("SPIM/ch488.ome.zarr", "SPIM/ch561.ome.zarr")


def store_objects(store: str, tag: str = "") -> dict[str, bytes]:
    """A store's objects: Zarr metadata (small JSON, in git) and chunks (annexed)."""
    objs = {
        f"{store}/.zgroup": b'{"zarr_format": 2}',
        f"{store}/0/.zarray": b'{"chunks": [2], "zarr_format": 2}',
    }
    for i in range(6):
        objs[f"{store}/0/{i}"] = deterministic_bytes(f"{store}/{i}{tag}", 3000 + i)
    return objs

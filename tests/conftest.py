"""Shared, session-scoped stand-in archives and the environment every test runs in."""

from __future__ import annotations

import os

from neuromirror.util.gitutil import IDENTITY

# the dandi client must not reach the internet; tests' own git commits need an identity
os.environ.setdefault("DANDI_NO_ET", "1")
os.environ.setdefault("DANDI_CACHE", "ignore")
for _k, _v in IDENTITY.items():
    os.environ.setdefault(_k, _v)

import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def s3() -> Iterator[S3StandIn]:  # noqa: F821
    from neuromirror.standins.s3 import S3StandIn

    with S3StandIn() as server:
        yield server


@pytest.fixture(scope="session")
def dandi_archive(s3) -> Iterator[DandiStandIn]:  # noqa: F821, ANN001
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3) as archive:
        yield archive


class CLI:
    """Runs ``neuromirror`` in-process against one root, like a user at a shell."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture, dandi_api: str | None = None):
        self.root = root
        self.capsys = capsys
        self.dandi_api = dandi_api

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from neuromirror.cli import main

        argv = ["--root", str(self.root), *args]
        if self.dandi_api and args and args[0] == "sync" and "--dandi-api" not in args:
            argv += ["--dandi-api", self.dandi_api]
        self.capsys.readouterr()
        code = main(argv)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> object:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture, dandi_archive) -> CLI:  # noqa: ANN001
    return CLI(tmp_path / "mirror", capsys, dandi_archive.api_url)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def clone(source: Path, dest: Path) -> Path:
    """``datalad clone`` + allow the loopback stand-ins in this clone only."""
    subprocess.run(["datalad", "clone", str(source), str(dest)], check=True, capture_output=True)
    git(dest, "config", "annex.security.allowed-ip-addresses", "all")
    return dest


def datalad_get(repo: Path, *paths: str) -> None:
    proc = subprocess.run(["datalad", "get", *paths], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

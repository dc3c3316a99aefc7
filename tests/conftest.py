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


# ----------------------------------------------------------------------------- fixtures several test modules share
# (their helpers are in tests/helpers/, imported here when a fixture runs: helpers import ``git`` from this module)


@pytest.fixture
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The BOSS tests' environment: an empty HOME, no BOSS settings, the stand-in's token.

    Autouse in the modules that ask for it (``pytestmark = pytest.mark.usefixtures("hermetic")``)."""
    from helpers.boss import TOKEN, _base_env

    for k, v in _base_env(tmp_path / "home").items():
        monkeypatch.setenv(k, v)
    for k in ("INTERN_HOST", "INTERN_PROTOCOL", "NEUROMIRROR_BOSS_URL", "NEUROMIRROR_BOSS_NO_HASH"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("INTERN_TOKEN", TOKEN)


@pytest.fixture
def boss() -> Iterator[BossStandIn]:  # noqa: F821
    from helpers.boss import TOKEN
    from neuromirror.standins.boss.tiny import tiny_sample

    with tiny_sample(token=TOKEN) as server:
        yield server


@pytest.fixture
def bucket(s3, monkeypatch) -> str:  # noqa: ANN001
    """An empty, unversioned bucket on the stand-in, and the store's environment (endpoint, credentials)."""
    import uuid

    from helpers.keep import ACCESS_KEY, SECRET_KEY

    name = f"lab-keep-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=name)
    s3.buckets.append(name)  # deleted with the stand-in
    monkeypatch.setenv("NEUROMIRROR_STORE_ENDPOINT", s3.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "NEUROMIRROR_STORE_REGION", "NEUROMIRROR_STORE_PUBLIC_URL"):
        monkeypatch.delenv(var, raising=False)
    return name


@pytest.fixture
def lab_bucket(bucket: str) -> str:
    """``bucket`` under the name tests/test_copies.py and tests/test_verify_loss.py use."""
    return bucket


@pytest.fixture(scope="module")
def archive(s3) -> Iterator[object]:  # noqa: ANN001
    """A stand-in with access control: the embargoed dandiset needs KEY."""
    import uuid

    from helpers.publish_ria import KEY
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket=f"nm-ria-{uuid.uuid4().hex[:8]}", api_token=KEY) as a:
        yield a


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:  # noqa: ANN001, F821
    """``python -m http.server`` serving the (still empty) store directory, a process of its own."""
    import socket
    import sys
    import time

    from helpers.publish_ria import Served

    store = tmp_path_factory.mktemp("ria") / "store"
    store.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(store.with_name("access.log"), "w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(store)],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while True:  # wait for the port to accept
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "http.server did not listen"
            try:  # the poll's interval, watching for an early exit
                proc.wait(timeout=0.05)
                raise AssertionError(f"http.server exited: {proc.returncode}")
            except subprocess.TimeoutExpired:
                pass
    try:
        yield Served(f"http://127.0.0.1:{port}", store, log)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def s3_env(s3, monkeypatch) -> None:  # noqa: ANN001
    """The target's endpoint and credentials, as for S3 stores (moto takes any)."""
    monkeypatch.setenv("NEUROMIRROR_STORE_ENDPOINT", s3.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIARESTORETEST00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "restore-secret")
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "NEUROMIRROR_STORE_REGION"):
        monkeypatch.delenv(var, raising=False)

"""The BOSS tests' helpers (tests/test_boss.py and its neighbours): the sample's spec, an in-process runner, datalad/git-annex calls."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from conftest import git
from neuromirror.standins.boss.sample import SAMPLE_COLLECTION, SAMPLE_EXPERIMENT
from neuromirror.standins.boss.server import BossStandIn
from neuromirror.standins.boss.tiny import TINY_CHUNK

C, E = SAMPLE_COLLECTION, SAMPLE_EXPERIMENT


SPEC = f"boss:{C}/{E}"


TOKEN = "nm-secret-TOKEN-5f3a9c71e2"


CHUNK_ARG = "x".join(map(str, TINY_CHUNK))


VENV_BIN = os.path.dirname(sys.executable)


def _base_env(home: Path) -> dict[str, str]:
    """The variables every test sets: an empty HOME (no ~/.intern), the venv's scripts on PATH."""
    home.mkdir(parents=True, exist_ok=True)
    path = os.environ.get("PATH", "")
    if VENV_BIN not in path.split(os.pathsep):
        path = VENV_BIN + os.pathsep + path
    return {"HOME": str(home), "PATH": path}


class Runner:
    """``neuromirror`` in-process against one root, capturing stdout, stderr and every log record."""

    def __init__(self, root: Path, boss_url: str):
        self.root = root
        self.boss_url = boss_url
        self.transcript: list[str] = []

    def __call__(self, *args: str, verbose: bool = False) -> tuple[int, str, str]:
        from neuromirror.cli import main

        argv = ["--root", str(self.root)] + (["-vv"] if verbose else []) + list(args)
        if args and args[0] == "sync" and "--boss-url" not in args:
            argv += ["--boss-url", self.boss_url]
        out, err = io.StringIO(), io.StringIO()
        records = io.StringIO()
        handler = logging.StreamHandler(records)
        handler.setLevel(logging.DEBUG)
        root_logger = logging.getLogger()
        old_level = root_logger.level
        root_logger.addHandler(handler)
        if verbose:
            root_logger.setLevel(logging.DEBUG)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        finally:
            root_logger.removeHandler(handler)
            root_logger.setLevel(old_level)
        self.transcript += [out.getvalue(), err.getvalue(), records.getvalue()]
        return code, out.getvalue(), err.getvalue()

    def ok(self, *args: str, **kw: bool) -> str:
        code, out, err = self(*args, **kw)
        assert code == 0, out + err
        return out

    @property
    def index(self) -> Path:
        return self.root / ".neuromirror" / "index.sqlite"

    def ds(self, coll: str = C, exp: str = E) -> Path:
        return self.root / "boss" / coll / exp


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full)


def clone(ds: Path, dest: Path) -> Path:
    proc = run(["datalad", "clone", str(ds), str(dest)], cwd=ds.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest


def get(
    repo: Path, *paths: str, env: dict[str, str] | None = None, datalad: bool = False
) -> subprocess.CompletedProcess:
    """``datalad get`` (what users type) or the quicker ``git annex get`` underneath it."""
    cmd = ["datalad", "get", *paths] if datalad else ["git", "annex", "get", *paths]
    return run(cmd, cwd=repo, env=env)


def chunk_bytes(vol: np.ndarray, iz: int, iy: int, ix: int, chunk=TINY_CHUNK) -> bytes:
    """What a chunk file must hold: the volume's box, zero-padded to the full chunk, C order."""
    cz, cy, cx = chunk
    out = np.zeros(chunk, dtype=vol.dtype.newbyteorder("<"))
    part = vol[iz * cz : (iz + 1) * cz, iy * cy : (iy + 1) * cy, ix * cx : (ix + 1) * cx]
    out[: part.shape[0], : part.shape[1], : part.shape[2]] = part
    return out.tobytes()


def key_of(repo: Path, path: str, rev: str = "HEAD") -> str:
    target = git(repo, "cat-file", "-p", f"{rev}:{path}")
    return target.rsplit("/", 1)[-1]


def cutouts(boss: BossStandIn) -> list[str]:
    """The channels of the cutout requests the stand-in answered."""
    return [r.path.split("/")[5] for r in boss.request_log if r.route == "cutout"]


@contextlib.contextmanager
def hermetic_sample(home: Path) -> Iterator[BossStandIn]:
    """The tiny sample served, with the environment the ``hermetic`` fixture (conftest.py) gives one test, for as
    long as a module-scoped fixture holds it: an empty HOME, no BOSS settings, the stand-in's token."""
    import pytest

    from neuromirror.standins.boss.tiny import tiny_sample

    with pytest.MonkeyPatch.context() as mp, tiny_sample(token=TOKEN) as boss:
        for k in ("INTERN_HOST", "INTERN_PROTOCOL", "NEUROMIRROR_BOSS_URL", "NEUROMIRROR_BOSS_NO_HASH"):
            mp.delenv(k, raising=False)
        for k, v in {**_base_env(home), "INTERN_TOKEN": TOKEN}.items():
            mp.setenv(k, v)
        yield boss

"""Large Zarr jobs run in worker processes (util.processes, issue 40): in threads their Python took turns
with one interpreter lock, which held a 2-core machine at ~1.3 cores.  A user sees the same mirror
either way; a worker dies with the sync, and a crash inside one ends the whole sync, as a crash does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import CLI, git
from helpers.dandi_full import T0
from neuromirror.sources.dandi import zarr_assets
from neuromirror.util.processes import RoutedExecutor

LARGE = {".zgroup": b'{"zarr_format": 2}', **{f"0/{i // 8}/{i % 8}": f"chunk {i}\n".encode() for i in range(40)}}


def pid_of(weight: int) -> int:
    return os.getpid()


def write_one(path: str) -> int:
    Path(path).write_text("x")
    return os.getpid()


def test_a_workers_work_is_counted_as_the_syncs_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With NEUROMIRROR_COUNTS, a worker process appends its own line, as the sync does (the hot-path guard)."""
    from neuromirror.util import counts

    target = tmp_path / "counts.jsonl"
    monkeypatch.setenv(counts.ENV, str(target))
    pool = RoutedExecutor(1, 1, heavy=lambda path: True)
    try:
        worker = pool.submit(write_one, str(tmp_path / "written")).result()
    finally:
        pool.shutdown()
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    (mine,) = [line for line in lines if line["pid"] == worker]
    assert mine["counts"]["files-written"] >= 1


def test_heavy_jobs_run_in_worker_processes_and_light_ones_in_threads() -> None:
    pool = RoutedExecutor(2, 2, heavy=lambda weight: weight >= 10)
    try:
        light, heavy = pool.submit(pid_of, 1).result(), pool.submit(pid_of, 10).result()
    finally:
        pool.shutdown()
    assert light == os.getpid() and heavy != os.getpid()
    only_threads = RoutedExecutor(2, 0, heavy=lambda weight: True)
    try:
        assert only_threads.submit(pid_of, 10).result() == os.getpid() and not only_threads.processes_started
    finally:
        only_threads.shutdown()


JOBS = """
import os, sys, time
from pathlib import Path

def hold(marker):
    Path(marker).write_text(str(os.getpid()))
    time.sleep(120)

def crash(marker):
    while not Path(marker).exists():
        time.sleep(0.01)
    from neuromirror.util.crashpoints import crashpoint
    crashpoint("in-a-worker")

def main(marker, crash_too):
    from neuromirror.util.processes import RoutedExecutor
    pool = RoutedExecutor(1, 2, heavy=lambda m: True)
    pool.submit(hold, marker)
    if crash_too:
        pool.submit(crash, marker).result()
    time.sleep(120)
"""


def gone(pid: int, within: float = 60.0) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", ["crash-point-in-a-worker", "sync-killed"])
def test_workers_end_with_the_sync_and_a_crash_in_one_ends_the_sync(tmp_path: Path, how: str) -> None:
    (tmp_path / "jobs.py").write_text(textwrap.dedent(JOBS))
    marker = tmp_path / "held"
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import jobs; jobs.main({str(marker)!r}, {how.startswith('crash')})"
    env = {**os.environ, "NEUROMIRROR_CRASH_AT": "in-a-worker"}
    sync = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            assert sync.poll() is None or how.startswith("crash")
            time.sleep(0.02)
        worker = int(marker.read_text())
        if how == "sync-killed":
            sync.kill()
        assert sync.wait(timeout=60) == -9  # killed: by the crash point's SIGKILL, or by us
        assert gone(worker), "a worker outlived the sync"
    finally:
        if sync.poll() is None:
            sync.kill()


def test_a_large_zarr_mirrored_in_a_worker_is_the_one_a_thread_mirrors(
    cli: CLI, dandi_archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    a = dandi_archive
    ident = a.create_dandiset(name="zarrs in workers", created=T0)
    a.add_zarr_asset(ident, "large.zarr", LARGE, when=T0)
    monkeypatch.setenv("NEUROMIRROR_WORKER_PROCESSES", "2")
    trees = []
    for process_min in (1, 10**9):  # in a worker, then in a thread (another mirror root)
        monkeypatch.setattr(zarr_assets, "PROCESS_MIN", process_min)
        cli.root = tmp_path / f"mirror-{process_min}"
        code, out, err = cli("sync", f"dandi:{ident}")
        assert code == 0, err
        zds = cli.root / "dandi" / ident / "large.zarr"
        assert git(zds, "status", "--porcelain") == "" and git(zds, "fsck", "--strict", "--no-dangling") == ""
        urls = subprocess.run(
            ["git", "annex", "whereis", "--key", Path(os.readlink(zds / ".zgroup")).name],
            cwd=zds,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "web: http" in urls and "versionId=" in urls
        # the same files, keys and git-annex logs' paths (the dataset's id in .datalad/config is its own)
        files = [line for line in git(zds, "ls-tree", "-r", "HEAD").splitlines() if "\t.datalad/" not in line]
        logs = sorted(git(zds, "ls-tree", "-r", "--name-only", "git-annex").split())
        trees.append((files, [p for p in logs if p.count("/") == 2]))
    assert trees[0] == trees[1] and len(trees[0][0]) == len(LARGE) + 1  # and .gitattributes

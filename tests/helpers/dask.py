"""A real Dask cluster on loopback for tests: ``dask scheduler`` and named ``dask worker`` processes that import
this worktree's code (tests/test_dask.py, tests/test_ceiling.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from neuromirror.network.ports import free_port

SRC = str(Path(__file__).resolve().parents[2] / "src")
DASK = str(Path(sys.executable).with_name("dask"))
#: a dead worker's Dask lock lease expires quickly, so that the rerun of its task does not wait 30 s
DASK_ENV = {
    "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT": "3s",
    "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL": "1s",
    # a killed worker's connection closes at once (the scheduler removes it then); the TTL is for a hung one,
    # and a busy machine delays a working worker's heartbeats by seconds: 10 s removed a live worker mid-task
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "120s",
}
ENV = {
    **os.environ,
    "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
    "PYTHONUNBUFFERED": "1",
    "DANDI_NO_ET": "1",
    "DANDI_CACHE": "ignore",
    **DASK_ENV,
}
ENV.pop("NEUROMIRROR_ROOT", None)
ENV.pop("NEUROMIRROR_CRASH_AT", None)


def wait_for(pred: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Cluster:
    """``dask scheduler`` + named ``dask worker`` processes (no nanny: kill -9 kills the worker)."""

    def __init__(self, logdir: Path, **scheduler_env: str):
        self.logdir = logdir
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.procs: dict[str, subprocess.Popen] = {}
        self._start(
            "scheduler",
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
            {**ENV, **scheduler_env},
        )

    def _start(self, name: str, cmd: list[str], env: Optional[dict] = None) -> None:
        with (self.logdir / f"{name}.log").open("a") as fh:
            self.procs[name] = subprocess.Popen(cmd, env=env or ENV, stdout=fh, stderr=subprocess.STDOUT)

    def start_worker(self, name: str, **env: str) -> None:
        self._start(
            name,
            [
                DASK,
                "worker",
                self.address,
                "--name",
                name,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--local-directory",
                str(self.logdir / name),
            ],
            {**ENV, **env},
        )
        wait_for(lambda: name in self.worker_names(), 60, f"worker {name} to join")

    def stop_worker(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        wait_for(lambda: name not in self.worker_names(), 30, f"worker {name} to leave")

    def workers(self) -> dict[str, str]:
        """worker address -> name, as the scheduler sees them."""
        from distributed import Client

        with Client(self.address, timeout="10s", set_as_default=False) as c:
            return {a: str(w["name"]) for a, w in c.scheduler_info()["workers"].items()}

    def worker_names(self) -> set[str]:
        try:
            return set(self.workers().values())
        except OSError:
            return set()

    def close(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def two_workers(logdir: Path) -> Iterator[Cluster]:
    """A scheduler and the workers ``w1`` and ``w2``, stopped after (a session- or module-scoped fixture's body)."""
    c = Cluster(logdir)
    try:
        c.start_worker("w1")
        c.start_worker("w2")
        yield c
    finally:
        c.close()

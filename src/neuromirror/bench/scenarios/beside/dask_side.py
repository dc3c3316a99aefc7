"""The ``ceiling`` scenario's Dask side: a cold sync on 2 real Dask workers under one ceiling (issue 59).

A ``dask scheduler`` and two ``dask worker`` processes (one thread each, no nanny) on loopback, started for
the row and stopped after it; the sync is ``neuromirror sync SPEC... --dask ADDRESS --max-rate R/s
--max-in-flight F`` into a root of its own, judged at the same counting proxies as ``-J 4``.  Start-up of
the cluster is not in the row's wall time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from neuromirror.bench.measure import child_env, say
from neuromirror.network.ports import free_port

WORKERS = ("bench-w1", "bench-w2")


class Cluster:
    """``dask scheduler`` + the :data:`WORKERS`, their output in ``logdir``."""

    def __init__(self, logdir: Path, workers: Sequence[str] = WORKERS, env: Optional[dict] = None) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        dask = str(Path(sys.executable).with_name("dask"))
        env = {**(env or child_env()), "PYTHONUNBUFFERED": "1"}
        src = str(Path(__file__).resolve().parents[4])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        self.procs: list[subprocess.Popen] = []
        cmds = [[dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]]
        for name in workers:
            cmds.append(
                [dask, "worker", self.address, "--name", name, "--nworkers", "1", "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--local-directory", str(logdir / name)]
            )  # fmt: skip
        for i, cmd in enumerate(cmds):
            with (logdir / f"{i}.log").open("ab") as fh:
                self.procs.append(subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT))
            if i == 0:
                self._wait(lambda: self._workers() is not None, "the scheduler")
        self._wait(lambda: len(self._workers() or ()) == len(workers), f"{len(workers)} workers")

    def _workers(self) -> Any:
        from distributed import Client

        try:
            with Client(self.address, timeout="5s", set_as_default=False) as c:
                return c.scheduler_info()["workers"]
        except OSError:
            return None

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"dask cluster: {what} did not start (logs in the work directory)")
            time.sleep(0.2)

    def cpu_seconds(self, scheduler: bool = False) -> float:
        """CPU seconds the workers' processes (``scheduler``: the scheduler's) have used so far (user + system)."""
        import psutil

        total = 0.0
        for p in self.procs[:1] if scheduler else self.procs[1:]:
            try:
                t = psutil.Process(p.pid).cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def dask_sync(work: Path, reset: Callable[[], None], run: Callable[[str], dict], judge: Callable[[dict], dict]) -> dict:
    """The cold sync on 2 Dask workers: ``run(address)`` syncs on the cluster (the proxies ``reset`` just before),
    ``judge`` makes its row (:mod:`.ceiling`'s)."""
    say(f"ceiling-dask: a scheduler and {len(WORKERS)} workers ...")
    t = time.perf_counter()
    cluster = Cluster(work / "ceiling-dask-cluster")
    started = time.perf_counter() - t
    try:
        say(f"ceiling-dask: cluster up in {started:.1f} s; the sync on it ...")
        reset()
        synced = run(cluster.address)
        out = judge(synced)
        out["workers"] = sorted({str(t.get("worker")) for r in synced["reports"] for t in r.get("tasks", [])})
        out["cluster_start_s"] = round(started, 2)
        return out
    finally:
        cluster.close()

"""``keep-cluster`` (issue 75): a keep of many small objects into one ``pack+s3://`` store on real Dask workers,
the archive a network away, beside one worker and beside a single-host keep.

One stand-in dandiset of ``--cluster-zarrs`` Zarrs x ``--cluster-zarr-objects`` small objects, behind the
bench's shaping proxies (:mod:`neuromirror.bench.network`), synced at RTT 0; then the proxies at
``--cluster-rtt`` (default 25 ms) and three keeps, each into a prefix of its own of one moto bucket, each a
``neuromirror keep SPEC --to pack+s3://... -J 4`` subprocess:

- ``keep-cluster-host``: on this host;
- ``keep-cluster-1``: ``--dask`` on a ``dask scheduler`` and 1 ``dask worker`` (one thread);
- ``keep-cluster-4``: the same on 4 workers.

The scheduler and workers run with :data:`QUIET` (docs/scale-out.md's advice for a keep's workers;
``--cluster-dask-defaults``: Dask's own settings).

Each row: objects/s; CPU per object, whole (``cpu_us_per_object``: the keep's process tree, the workers' and
the scheduler's processes while it runs, what a user pays) and busy (``cpu_us_per_object_busy``: less the
cluster's idle CPU, its heartbeats and monitors, a second of it watched for ``--cluster-idle`` s before the
keep, times the wall), each part apart (``cpu_keep_process_s``, ``cpu_workers_s``, ``cpu_scheduler_s``,
``cpu_idle_s``; the cluster's start-up, ``cpu_startup_s``, in neither); the cluster's tasks (``keep --json``'s
``tasks``: count, mean and longest seconds); and the store's index files read back: keys named twice.
Targets: 4 workers >= 3x one worker's objects/s, 0 keys stored twice, CPU per object (whole) within 1.1x of
the single-host keep.  Cluster start-up is not in a row's wall.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from neuromirror.bench.archives import Archives, zarr_dandiset
from neuromirror.bench.measure import neuromirror_cmd, run_measured, say
from neuromirror.bench.scenarios.restore import _env
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported
from neuromirror.keep.cluster import dask_setup

BUCKET = "bench-keep-cluster"
TARGETS = (
    ("keep-cluster-4", "x_one_worker", 3.0, "min", "keep-cluster: 4 workers' objects/s over 1 worker's"),
    ("keep-cluster-4", "keys_twice", 0, "max", "keep-cluster: keys stored twice"),
    ("keep-cluster-4", "cpu_x_host", 1.1, "max", "keep-cluster: CPU per object over the single-host keep's"),
)


def add_options(p: Any) -> None:
    g = p.add_argument_group("keep-cluster (issue 75): keep into pack+s3:// on 1 and 4 Dask workers")
    g.add_argument("--cluster-zarrs", type=int, default=4, help="keep-cluster: Zarr assets (default 4)")
    g.add_argument(
        "--cluster-zarr-objects",
        type=lambda s: int(float(s)),
        default=500,
        help="keep-cluster: objects per Zarr (default 500; the issue's 10^5: --cluster-zarrs 20 and 5,000)",
    )
    g.add_argument("--cluster-rtt", type=float, default=0.025, help="keep-cluster: the archive's RTT, s (0.025)")
    g.add_argument(
        "--cluster-idle",
        type=float,
        default=5.0,
        help="keep-cluster: seconds each cluster is watched idle before its keep, for its idle CPU (5)",
    )
    g.add_argument(
        "--cluster-dask-defaults",
        action="store_true",
        help="keep-cluster: workers with Dask's own defaults, not QUIET (docs/scale-out.md's advice for keeps)",
    )


def index_counts(client: Any, prefix: str) -> Counter:
    """Every key the packed store's index files name, with how many times."""
    counts: Counter = Counter()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/index/"):
        for o in page.get("Contents", []):
            doc = json.loads(client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
            counts.update(k[0] for k in doc["keys"])
    return counts


def bench_keep_cluster(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    from neuromirror.bench.network import NetworkArchives

    z, m = int(args.cluster_zarrs), int(args.cluster_zarr_objects)
    archives.s3.create_bucket(BUCKET, versioned=False, public=False)
    net = NetworkArchives(archives)
    try:
        ident, _ = zarr_dandiset(net, z, m, 0, datetime(2025, 6, 1, tzinfo=timezone.utc), f"bench cluster {z}x{m}")
        root = work / "root-keep-cluster"
        run_sync("keep-cluster-sync", z * m, root, f"dandi:{ident}", ["--dandi-api", net.api_url], net, startup)
        net.set_rtt(float(args.cluster_rtt))
        rows = [
            _keep(args, archives, work, root, ident, z * m, name, w) for name, w in (("host", 0), ("1", 1), ("4", 4))
        ]
    finally:
        net.close()
    host, one, four = rows
    for r in rows:
        r["cpu_x_host"] = round(r["cpu_us_per_object"] / host["cpu_us_per_object"], 2)
        r["cpu_x_host_busy"] = round(r["cpu_us_per_object_busy"] / host["cpu_us_per_object"], 2)
    four["x_one_worker"] = round(four["objects_per_s"] / one["objects_per_s"], 2)
    judge(rows, TARGETS, f"keep-cluster {z}x{m} at RTT {args.cluster_rtt * 1000:.0f} ms")
    archives.drop_objects(NetworkArchives.BUCKET)
    return rows


#: the Dask settings docs/scale-out.md advises for a keep's workers: no statistical profiler (a stack walk
#: every 10 ms), the event loop's tick, the system monitor and the memory monitor less often (every 20 ms,
#: 500 ms and 100 ms by default): an idle worker's CPU from ~2.4 % of a core to ~0.2 %, measured on this
#: machine; and the keep's worker set-up at the worker's start (``--preload neuromirror.keep.cluster``:
#: :func:`~neuromirror.keep.cluster.dask_setup`)
QUIET = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "5s",
    "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s",
    "DASK_DISTRIBUTED__WORKER__PRELOAD": json.dumps([dask_setup.__module__]),
}


def _keep(args: Any, archives: Archives, work: Path, root: Path, ident: str, n: int, name: str, workers: int) -> dict:
    """One keep into a new prefix: on this host (``workers`` 0) or on a cluster of ``workers`` workers."""
    from neuromirror.bench.scenarios.beside.dask_side import Cluster

    env = _env(archives)
    prefix = f"packed-{name}-{int(time.time() * 1000)}"
    cmd = [*neuromirror_cmd(), "--root", str(root), "keep", f"dandi:{ident}", "--to", f"pack+s3://{BUCKET}/{prefix}"]
    cmd += ["-J", "4", "--json"]
    cluster: Optional[Cluster] = None
    cpu = {"keep_process": 0.0, "workers": 0.0, "scheduler": 0.0, "startup": 0.0, "idle_per_s": 0.0}
    if workers:
        say(f"keep-cluster: a scheduler and {workers} worker(s) ...")
        quiet = {} if args.cluster_dask_defaults else QUIET
        cluster = Cluster(work / f"keep-cluster-{name}", [f"bench-k{i}" for i in range(workers)], env={**env, **quiet})
        cmd += ["--dask", cluster.address]
    try:
        if cluster:
            cpu["startup"], cpu["idle_per_s"] = _idle(cluster, float(args.cluster_idle))
        before = (cluster.cpu_seconds(), cluster.cpu_seconds(scheduler=True)) if cluster else (0.0, 0.0)
        say(f"keep-cluster-{name}: keep of {n} objects into pack+s3:// ...")
        r = run_measured(cmd, env=env)
        cpu["keep_process"] = r["cpu"]
        if cluster:
            cpu["workers"] = cluster.cpu_seconds() - before[0]
            cpu["scheduler"] = cluster.cpu_seconds(scheduler=True) - before[1]
    finally:
        if cluster:
            cluster.close()
    counts = index_counts(archives.s3.client(), prefix)
    result = {"scenario": f"keep-cluster-{name}", "n": n, "workers": workers, **_cpu_columns(cpu, r["wall"], n)}
    result.update(
        {
            "peak_rss_mb": round(r["rss_mb"], 1),
            "keys_in_store": len(counts),
            "keys_twice": sum(1 for c in counts.values() if c > 1),
            **_task_columns(r["stdout"]),
        }
    )
    rate, per, busy = result["objects_per_s"], result["cpu_us_per_object"], result["cpu_us_per_object_busy"]
    say(f"keep-cluster-{name}: {rate:,.1f} objects/s, {per:,.0f} us CPU/object ({busy:,.0f} busy)")
    return result


def _idle(cluster: Any, seconds: float) -> tuple[float, float]:
    """The cluster's CPU seconds since its processes started (start-up), and its idle CPU a second (its
    heartbeats and monitors), watched for ``seconds`` (``--cluster-idle``) before the keep."""
    startup = cluster.cpu_seconds() + cluster.cpu_seconds(scheduler=True)
    if seconds <= 0:
        return startup, 0.0
    time.sleep(seconds)
    return startup, (cluster.cpu_seconds() + cluster.cpu_seconds(scheduler=True) - startup) / seconds


def _cpu_columns(cpu: dict, wall: float, n: int) -> dict:
    """The row's CPU: the whole a user pays while the keep runs (the keep's process tree, the workers and the
    scheduler, their idle ticking included), and the same less the cluster's idle CPU over the wall (busy);
    the cluster's start-up apart, in neither."""
    whole = cpu["keep_process"] + cpu["workers"] + cpu["scheduler"]
    idle = min(whole, cpu["idle_per_s"] * wall)
    return {
        "wall_s": round(wall, 2),
        "objects_per_s": round(n / wall, 1),
        "cpu_s": round(whole, 2),
        "cpu_keep_process_s": round(cpu["keep_process"], 2),
        "cpu_workers_s": round(cpu["workers"], 2),
        "cpu_scheduler_s": round(cpu["scheduler"], 2),
        "cpu_idle_s": round(idle, 2),
        "cpu_startup_s": round(cpu["startup"], 2),
        "cpu_us_per_object": round(1e6 * whole / n, 1),
        "cpu_us_per_object_busy": round(1e6 * (whole - idle) / n, 1),
    }


def _task_columns(stdout: bytes) -> dict:
    """The cluster's tasks from ``keep --json`` (``tasks``): how many, their mean and longest seconds."""
    try:
        tasks = json.loads(stdout).get("tasks") or []
    except (ValueError, AttributeError):
        tasks = []
    seconds = [float(t.get("seconds") or 0) for t in tasks]
    if not seconds:
        return {}
    return {"tasks": len(seconds), "task_s_mean": round(sum(seconds) / len(seconds), 2), "task_s_max": max(seconds)}


def keep_cluster_targets(results: list[dict]) -> list[dict]:
    return [
        t
        for r in results
        if r.get("scenario") == "keep-cluster-4"
        for t in reported(r, "one run, the archive behind the shaping proxies")
    ]

"""``keep-cluster`` (issue 75): a keep of many small objects into one ``pack+s3://`` store on real Dask workers,
the archive a network away, beside one worker and beside a single-host keep.

One stand-in dandiset of ``--cluster-zarrs`` Zarrs x ``--cluster-zarr-objects`` small objects, behind the
bench's shaping proxies (:mod:`neuromirror.bench.network`), synced at RTT 0; then the proxies at
``--cluster-rtt`` (default 25 ms) and three keeps, each into a prefix of its own of one moto bucket, each a
``neuromirror keep SPEC --to pack+s3://... -J 4`` subprocess:

- ``keep-cluster-host``: on this host;
- ``keep-cluster-1``: ``--dask`` on a ``dask scheduler`` and 1 ``dask worker`` (one thread);
- ``keep-cluster-4``: the same on 4 workers.

Each row: objects/s, the CPU seconds of the keep's process tree plus the workers' processes (CPU per
object), and the store's index files read back: keys named twice.  Targets: 4 workers >= 3x one worker's
objects/s, 0 keys stored twice, CPU per object within 1.1x of the single-host keep.  Cluster start-up is not
in a row's wall.
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
        rows = [_keep(archives, work, root, ident, z * m, name, w) for name, w in (("host", 0), ("1", 1), ("4", 4))]
    finally:
        net.close()
    host, one, four = rows
    for r in rows:
        r["cpu_x_host"] = round(r["cpu_us_per_object"] / host["cpu_us_per_object"], 2)
    four["x_one_worker"] = round(four["objects_per_s"] / one["objects_per_s"], 2)
    judge(rows, TARGETS, f"keep-cluster {z}x{m} at RTT {args.cluster_rtt * 1000:.0f} ms")
    archives.drop_objects(NetworkArchives.BUCKET)
    return rows


def _keep(archives: Archives, work: Path, root: Path, ident: str, n: int, name: str, workers: int) -> dict:
    """One keep into a new prefix: on this host (``workers`` 0) or on a cluster of ``workers`` workers."""
    from neuromirror.bench.scenarios.beside.dask_side import Cluster

    env = _env(archives)
    prefix = f"packed-{name}-{int(time.time() * 1000)}"
    cmd = [*neuromirror_cmd(), "--root", str(root), "keep", f"dandi:{ident}", "--to", f"pack+s3://{BUCKET}/{prefix}"]
    cmd += ["-J", "4", "--json"]
    cluster: Optional[Cluster] = None
    if workers:
        say(f"keep-cluster: a scheduler and {workers} worker(s) ...")
        cluster = Cluster(work / f"keep-cluster-{name}", [f"bench-k{i}" for i in range(workers)], env=env)
        cmd += ["--dask", cluster.address]
    try:
        before = cluster.cpu_seconds() if cluster else 0.0
        say(f"keep-cluster-{name}: keep of {n} objects into pack+s3:// ...")
        r = run_measured(cmd, env=env)
        cpu = r["cpu"] + (cluster.cpu_seconds() - before if cluster else 0.0)
    finally:
        if cluster:
            cluster.close()
    counts = index_counts(archives.s3.client(), prefix)
    result = {
        "scenario": f"keep-cluster-{name}",
        "n": n,
        "workers": workers,
        "wall_s": round(r["wall"], 2),
        "objects_per_s": round(n / r["wall"], 1),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_object": round(1e6 * cpu / n, 1),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "keys_in_store": len(counts),
        "keys_twice": sum(1 for c in counts.values() if c > 1),
    }
    rate, per = result["objects_per_s"], result["cpu_us_per_object"]
    say(f"keep-cluster-{name}: {rate:,.1f} objects/s, {per:,.0f} us CPU/object")
    return result


def keep_cluster_targets(results: list[dict]) -> list[dict]:
    return [
        t
        for r in results
        if r.get("scenario") == "keep-cluster-4"
        for t in reported(r, "one run, the archive behind the shaping proxies")
    ]

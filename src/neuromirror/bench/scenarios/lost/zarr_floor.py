"""The floor under ``inventory-cold``: the same Zarr datasets written from listings already in memory.

Why: a cold sync of a Zarr-heavy dandiset spends most of its CPU writing the Zarrs' datasets (each object's annex
entry, the Zarr checksum checked, the dataset's objects and first commit, its manifest), whichever way it learned
the objects; no way of listing them makes a sync faster than that writing.  Here the writing alone runs: in a
subprocess as the syncs do, through the sync's own Zarr executor
(:func:`~neuromirror.sources.dandi.zarr_assets.zarr_executor`, the same worker processes) and the job's own steps
(:func:`~neuromirror.engine.zarr.job.mirror_listed`), from the objects as moto holds them (what the inventory's
rows say, already parsed): no request, no listing, no inventory, and none of the sync's dandiset-level work (its
dataset, asset listing, commit and index).  Its objects/s is what no cold sync of these Zarrs on this machine
exceeds; the two paths' rows say how close they come (``of_floor``).

``python -m neuromirror.bench.scenarios.lost.zarr_floor JOBS``: ``JOBS`` a pickle of (job, objects) pairs; prints
one JSON line: the objects written, the seconds spent reading ``JOBS`` (not the writing's: taken out of its wall),
and the jobs' timings summed.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from collections import defaultdict
from datetime import timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.measure import child_env, run_measured
from neuromirror.bench.moto_patch import moto_bucket_backend
from neuromirror.bench.syncs import profiled, without_profiler


def floor_jobs(net: Any, ident: str, zarr_ids: list[str], root: Path, given: Path) -> None:
    """(job, objects) of each Zarr of the dandiset pickled into ``given``, as its sync would make the job and
    list the objects (each key's newest version, none behind a delete marker), its dataset under ``root``."""
    from moto.core.utils import unix_time_millis
    from moto.s3.models import FakeKey

    from neuromirror.bench.archives import zarr_path
    from neuromirror.engine.zarr.job import ZarrJob
    from neuromirror.sources.dandi.zarr_listing import ZObject

    wanted = {f"zarr/{zid}/": zid for zid in zarr_ids}
    objs: dict[str, list[Any]] = defaultdict(list)
    keys = moto_bucket_backend(net.BUCKET).get_bucket(net.BUCKET).keys
    for name in keys.keys():
        prefix = "/".join(name.split("/", 2)[:2]) + "/"
        if prefix not in wanted:
            continue
        v = max(keys.getlist(name, []), key=lambda v: unix_time_millis(v.last_modified))
        if isinstance(v, FakeKey):
            when = v.last_modified.replace(tzinfo=timezone.utc)
            etag = v.etag.strip('"').lower()
            objs[wanted[prefix]].append(ZObject(name[len(prefix) :], v.size, etag, v.version_id, when))
    out = []
    for i, zid in enumerate(zarr_ids):
        path = zarr_path(i)
        job = ZarrJob(
            dandiset=ident,
            api_url=net.api_url,
            path=path,
            zarr_id=zid,
            asset_id=None,
            dataset=str(root / ident / path),
            checksum=net.dandi.zarr(zid).checksum,
            s3_base=net.s3.url(net.BUCKET, f"zarr/{zid}/"),
            embargoed=False,
            modified=None,
            description=f"DANDI:{ident} Zarr {path} ({zid}): the bench's floor",
            manifests=str(root / "zarr-manifests"),
        )
        out.append((job, objs.pop(zid, [])))
    given.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))


def run_floor(given: Path, n: int) -> dict:
    """The writing of the jobs pickled in ``given`` (:func:`floor_jobs`), in a subprocess: its result row
    (``inventory-cold-floor``)."""
    cmd = [sys.executable, "-m", "neuromirror.bench.scenarios.lost.zarr_floor", str(given)]
    r = run_measured(profiled("inventory-cold-floor", cmd), env=child_env())
    got = json.loads(without_profiler(r["stdout"]).splitlines()[-1])
    if got["objects"] != n:
        raise RuntimeError(f"inventory-cold-floor: {got['objects']} objects written, {n} expected: {got}")
    wall = r["wall"] - got["reading_s"]
    return {
        "scenario": "inventory-cold-floor",
        "n": n,
        "wall_s": round(wall, 3),
        "reading_jobs_s": round(got["reading_s"], 3),
        "zarr_objects_per_s": round(n / wall, 1),
        "cpu_s": round(r["cpu"], 2),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "timings": got["timings"],
    }


def main(argv: list[str]) -> None:
    from neuromirror.engine.zarr.job import mirror_listed
    from neuromirror.sources.dandi.zarr_assets import zarr_executor

    t = time.perf_counter()
    jobs = pickle.loads(Path(argv[0]).read_bytes())
    reading = time.perf_counter() - t
    executor = zarr_executor()
    try:
        records = [f.result() for f in [executor.submit(mirror_listed, job, objs, "s3-versions") for job, objs in jobs]]
    finally:
        executor.shutdown()
    refused = [r.refused for r in records if r.commit is None]
    if refused:
        raise SystemExit(f"floor: {len(refused)} Zarr(s) refused, e.g. {refused[0]}")
    spent: dict[str, float] = defaultdict(float)
    for rec in records:
        for k, v in rec.timings.items():
            spent[f"zarr-{k}"] += v
    print(json.dumps({"objects": sum(r.objects for r in records), "reading_s": reading, "timings": spent}))


if __name__ == "__main__":
    main(sys.argv[1:])

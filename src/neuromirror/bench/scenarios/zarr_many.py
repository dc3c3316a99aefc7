"""``zarr-many`` (issue 25): a dandiset of tens of thousands of small Zarr assets.

Where ``zarr-dandiset`` (:mod:`.scale`) has a few hundred large Zarrs, whose cost is their
objects, this one has N Zarrs of 20 objects each plus 100 blob assets (default N 20,000):
what it measures is the fixed cost of a Zarr — making its dataset, committing it,
registering it in the dandiset — and whether a resync stays O(changed Zarrs).

Syncs measured, each ``neuromirror sync`` in a subprocess (:func:`.syncs.run_sync`):

1. ``zarr-many-cold``: Zarrs/s, CPU ms per Zarr of the whole process tree, peak RSS of the tree;
2. ``zarr-many-resync``: no change;
3. ``zarr-many-2zarrs1blob``: 2 Zarrs changed (1 object added, 1 rewritten, 1 deleted each)
   and 1 blob asset added.

Each row also has the dandiset's commits made by that sync, and ``targets``: each target of
issues 25 and 40 with its value and whether it is met (``docs/performance.md``).
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from neuromirror.bench.archives import Archives, change_two_zarrs_and_a_blob, zarr_dandiset, zarr_path
from neuromirror.bench.measure import say
from neuromirror.bench.scenarios.scale import commits, zarr_split
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge

#: issue 25's targets: (row, field, bound, "min" | "max")
TARGETS = (
    ("zarr-many-cold", "zarrs_per_s", 42.0, "min"),
    ("zarr-many-cold", "cpu_ms_per_zarr", 40.0, "max"),
    ("zarr-many-cold", "peak_rss_mb", 1024.0, "max"),
    ("zarr-many-resync", "beyond_startup_s", 5.0, "max"),
    ("zarr-many-2zarrs1blob", "wall_s", 5.0, "max"),
    # issue 40: 20,000 x 20 cold <= 120 s (6 ms a Zarr), no-change resync <= 2 s, 2 Zarrs + 1 blob <= 3 s
    ("zarr-many-cold", "wall_ms_per_zarr", 6.0, "max", "wall ms per Zarr (issue 40: 120 s / 20,000)"),
    ("zarr-many-resync", "beyond_startup_s", 2.0, "max", "no-change beyond start-up s (issue 40)"),
    ("zarr-many-2zarrs1blob", "wall_s", 3.0, "max", "2 Zarrs + 1 blob wall s (issue 40)"),
)


def fill(archives: Archives, n: int, objects: int, blobs: int, when: datetime) -> tuple[str, list[str]]:
    """The stand-in dandiset: ``n`` Zarrs x ``objects`` + ``blobs`` blobs; its id and Zarr ids."""
    return zarr_dandiset(archives, n, objects, blobs, when, f"bench many zarrs {n}x{objects}")


def bench_zarr_many(
    archives: Archives,
    work: Path,
    startup: float,
    n: int,
    objects: int = 20,
    blobs: int = 100,
    keep: bool = False,
    drop: bool = True,
) -> list[dict]:
    """The three syncs (see the module); ``drop``: forget the Zarrs' objects in moto afterwards
    (only worth it when another scenario follows: 4x10^5 objects take moto minutes to drop)."""
    when = datetime(2025, 7, 1, tzinfo=timezone.utc)
    t = time.perf_counter()
    ident, zarr_ids = fill(archives, n, objects, blobs, when)
    say(
        f"zarr-many: stand-in dandiset {ident}: {n} Zarrs x {objects} objects + {blobs} blobs in {time.perf_counter() - t:.1f} s"
    )
    d = archives.dandi
    root = work / "root-zarr-many"
    api = ["--dandi-api", d.api_url]
    ds = root / "dandi" / ident
    size = f"{n}x{objects}+{blobs}"
    files = n * objects + blobs
    out: list[dict] = []

    def sync(name: str) -> dict:
        before = commits(ds, "^Neuromirror-Source: ") if ds.exists() else 0
        d.reset_request_log()
        res = zarr_split(run_sync(name, files, root, f"dandi:{ident}", api, archives, startup))
        res.update(
            size=size,
            zarrs=n,
            dandiset_commits=commits(ds, "^Neuromirror-Source: ") - before,
            api_requests=d.request_count,
            # issue 75: the asset listing's pages (the -modified head) and the Zarr list's
            listing_pages=sum(1 for m, raw in d.request_log if m == "GET" and "/versions/draft/assets/?" in raw),
            zarr_list_pages=sum(1 for m, raw in d.request_log if m == "GET" and raw.startswith("/api/zarr/?")),
        )
        out.append(res)
        return res

    cold = sync("zarr-many-cold")
    cold["zarrs_per_s"] = round(n / cold["wall_s"], 1)
    cold["cpu_ms_per_zarr"] = round(1000 * cold["cpu_s"] / n, 1)
    cold["wall_ms_per_zarr"] = round(1000 * cold["wall_s"] / n, 2)
    sync("zarr-many-resync")
    change_two_zarrs_and_a_blob(archives, ident, zarr_ids, when + timedelta(hours=1))
    res = sync("zarr-many-2zarrs1blob")
    res["zarr_commits"] = [commits(ds / zarr_path(i), "^Neuromirror-Zarr: ") for i in range(3)]
    judge(out, TARGETS, f"zarr-many {size}")
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    if drop:
        archives.drop_objects(d.bucket)
    return out

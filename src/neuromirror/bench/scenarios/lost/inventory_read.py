"""``inventory-read`` (issue 75): an archive's S3 Inventory of ``--inventory-rows`` rows read on one core.

A synthetic inventory in AWS's layout (:func:`neuromirror.standins.s3_inventory.write_inventory`, into a
local directory: a copy of the destination prefix) has the archive's shape: mostly Zarr chunks under
``zarr/<id>/``, a blob every 20 rows, a delete marker and its noncurrent version every 50; 10^6 rows a
gzip CSV data file.  A process of its own (this module as a script) then reads it with
:func:`neuromirror.inventory.open_inventory`, every row typed, each file's MD5 checked before its rows:
rows per CPU second (one thread: one core) and the process's peak RSS.  Targets: >= 100,000 rows/s and
< 400 MB whatever the row count (the reading is bounded by one data file).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from neuromirror.bench.measure import child_env, run_measured, say
from neuromirror.bench.targets import judge, reported

TARGETS = (
    ("inventory-read", "rows_per_cpu_s", 100_000, "min", "inventory-read: S3 Inventory rows read per CPU second"),
    ("inventory-read", "peak_rss_mb", 400, "under", "inventory-read: peak RSS of the reader (MB)"),
)
STAMP = "2026-11-01T12:00:01.123Z"


def add_options(p: Any) -> None:
    g = p.add_argument_group("inventory-read (issue 75): an S3 Inventory read on one core")
    g.add_argument(
        "--inventory-rows",
        type=lambda s: int(float(s)),
        default=10_000_000,
        help="inventory-read: rows of the synthetic inventory (default 10^7)",
    )


def synthetic_rows(n: int, bucket: str = "dandiarchive") -> Iterator[list[str]]:
    """``n`` rows of the archive's shape, as the inventory's CSV fields."""
    for i in range(n):
        if i % 20 == 19:
            key = f"blobs/{i % 4096:03x}/{i % 4093:03x}/{i:08x}-0000-4000-8000-{i:012x}"
        else:
            key = f"zarr/{i // 5000:08x}-0000-4000-8000-000000000000/0/{i % 50}/{i % 100}.{i % 7}"
        marker = i % 50 == 49
        latest = "true" if marker or i % 50 != 48 else "false"
        size = "" if marker else str(1000 + i % 50_000)
        etag = "" if marker else f"{i:032x}"
        yield [
            bucket,
            key,
            f"v{i:031d}",
            latest,
            "true" if marker else "false",
            size,
            STAMP,
            etag,
            "" if marker else "false",
        ]


def bench_inventory_read(args: Any, work: Path) -> list[dict]:
    from neuromirror.standins.s3_inventory import directory_put, write_inventory

    rows = int(args.inventory_rows)
    root = work / "inventory-read"
    say(f"inventory-read: writing a synthetic S3 Inventory of {rows:,} rows")
    t = time.perf_counter()
    when = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    written = write_inventory(
        synthetic_rows(rows),
        directory_put(root),
        source_bucket="dandiarchive",
        dest="inventory",
        when=when,
        compresslevel=1,
    )
    made_s = time.perf_counter() - t
    r = run_measured([sys.executable, "-m", __name__, str(root / written.prefix)], env=child_env())
    count, cpu = json.loads(r["stdout"])
    result = {
        "scenario": "inventory-read",
        "n": rows,
        "rows": count,
        "files": len(written.files),
        "bytes": sum(p.stat().st_size for p in (root / written.prefix / "data").iterdir()),
        "read_cpu_s": round(cpu, 2),
        "read_wall_s": round(r["wall"], 2),
        "rows_per_cpu_s": round(count / cpu) if cpu else None,
        "rows_per_s": round(count / r["wall"]),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "written_s": round(made_s, 1),
        "rows_right": count == rows,
    }
    say(f"inventory-read: {count:,} rows in {cpu:.2f} s CPU, peak {r['rss_mb']:.1f} MB")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    judge([result], TARGETS)
    return [result]


def inventory_read_targets(results: list[dict]) -> list[dict]:
    return [t for r in results if r.get("scenario") == "inventory-read" for t in reported(r, "one process, one thread")]


def read(url: str) -> tuple[int, float]:
    """Every row of the inventory at ``url``, typed: how many, the CPU seconds it took."""
    from neuromirror.inventory import open_inventory

    start = time.process_time()
    n = sum(1 for _ in open_inventory(url).rows())
    return n, time.process_time() - start


if __name__ == "__main__":
    print(json.dumps(read(sys.argv[1])))

"""``tiff-region`` (issue 60): a region of a pinned BOSS state written as a TIFF stack, against reading its chunks.

The BOSS stand-in (:mod:`neuromirror.standins.boss`, in this process) serves one experiment of one uint8 image
channel, level 0 only, its volume generated once from a seed (the stand-in's own synthetic content, one read-only
array: no copy is made of it here).  It is a region of ``--tiff-mb`` MiB (64 planes, square) plus half a chunk on
every side, so that the region crosses chunk borders and meets partial chunks at its edges.  ``neuromirror sync``
mirrors it (no store: the pin's chunks are read back from the BOSS by their recorded cutout URLs and checked
against their keys, as ``get --format tiff`` does without a store).  Then, in one run, ``--tiff-rounds``
alternating rounds of the two sides, each a process of its own:

1. ``floor``: this module as a script: every chunk the region needs, by the cutout URL the TIFF path would read
   (:meth:`~neuromirror.read.ome.level.Chunks.cutouts`, the chunk's own first), read with the same client
   (:meth:`~neuromirror.read.ome.level.Chunks.read_cutout`: intern, a client per thread) on ``--tiff-jobs``
   threads, the bytes dropped.  Its time covers the reads only (the URLs are listed before its clock starts).
2. ``tiff``: ``neuromirror get SPEC@V --region ... --channel C --format tiff --to FILE -J JOBS --json``: wall,
   peak RSS of its process tree (:func:`~neuromirror.bench.measure.run_measured`), CPU.

The row ``tiff-region`` has both sides' medians, the region's bytes per second of each, ``x_floor`` (the
TIFF's rate over the floor's: target >= 0.8) and the TIFF's peak RSS (target < 500 MB).  Last, so that the bench
never reports a fast wrong answer, sub-regions of the TIFF (its corners, across chunk borders, and one inside)
read with tifffile are compared with intern's ``get_cutout`` of the same boxes from the stand-in:
``wrong_voxels`` must be 0.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from neuromirror.bench.measure import child_env, neuromirror_cmd, own_cpu, run_measured, say
from neuromirror.bench.targets import judge, reported

COLLECTION, EXPERIMENT, CHANNEL, TOKEN = "bench_tiff", "region", "em", "bench-tiff-token"
SPEC = f"boss:{COLLECTION}/{EXPERIMENT}"
DEPTH = 64  # planes of the region
TARGETS = (
    ("tiff-region", "x_floor", 0.8, "min", "tiff-region: TIFF region bytes/s over reading its chunks'"),
    ("tiff-region", "peak_rss_mb", 500, "under", "tiff-region: peak RSS of get --format tiff (MB)"),
    ("tiff-region", "wrong_voxels", 0, "max", "tiff-region: voxels of the TIFF unlike intern's cutout"),
)


def add_options(p: Any) -> None:
    g = p.add_argument_group("tiff-region (issue 60): get --region --format tiff of a BOSS pin, against its chunks")
    g.add_argument("--tiff-mb", type=float, default=64, help="tiff-region: MiB of the region (default 64; target 1024)")
    g.add_argument("--tiff-chunk", default="16x512x512", help="tiff-region: chunk ZxYxX of the sync (16x512x512)")
    g.add_argument("--tiff-jobs", type=int, default=4, help="tiff-region: -J of get and the floor's threads (4)")
    g.add_argument("--tiff-rounds", type=int, default=1, help="tiff-region: alternating rounds per side (1)")


def geometry(mb: float, chunk: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[tuple[int, int], ...]]:
    """(the frame's (z, y, x), the region's (z, y, x) spans): ``mb`` MiB of uint8 in 64 square planes, half a
    chunk in from the frame's origin and half a chunk short of its far sides."""
    side = max(16, int(math.sqrt(mb * 2**20 / DEPTH)) // 16 * 16)
    size = (DEPTH, side, side)
    spans = tuple((c // 2, c // 2 + n) for c, n in zip(chunk, size))
    z, y, x = (n + c for n, c in zip(size, chunk))
    return (z, y, x), spans


def region_arg(spans: tuple[tuple[int, int], ...]) -> str:
    """``X0:X1,Y0:Y1,Z0:Z1`` of (z, y, x) spans."""
    return ",".join(f"{a}:{b}" for a, b in reversed(spans))


def standin(frame: tuple[int, int, int]) -> Any:
    """A stand-in BOSS (not started) holding the one channel, its volume generated now (outside any timing)."""
    from neuromirror.standins.boss.server import BossStandIn

    boss = BossStandIn(token=TOKEN)
    z, y, x = frame
    boss.add_collection(COLLECTION, "bench: tiff-region")
    boss.add_coord_frame(f"{COLLECTION}_frame", x, y, z, 4.0, 4.0, 40.0, "nanometers")
    boss.add_experiment(COLLECTION, EXPERIMENT, f"{COLLECTION}_frame", num_hierarchy_levels=1)
    boss.add_channel(COLLECTION, EXPERIMENT, CHANNEL, type="image", datatype="uint8", seed=60)
    boss.volume(COLLECTION, EXPERIMENT, CHANNEL)  # generated once, held read-only by the stand-in
    return boss


def _env() -> dict:
    env = child_env()
    for k in (
        "NEUROMIRROR_STORE",
        "NEUROMIRROR_BOSS_URL",
        "INTERN_HOST",
        "INTERN_PROTOCOL",
        "NEUROMIRROR_BOSS_NO_HASH",
    ):
        env.pop(k, None)
    env["INTERN_TOKEN"] = TOKEN
    return env


def bench_tiff_region(args: Any, work: Path) -> list[dict]:
    cz, cy, cx = (int(n) for n in args.tiff_chunk.lower().split("x"))
    chunk = (cz, cy, cx)
    frame, spans = geometry(args.tiff_mb, chunk)
    region = region_arg(spans)
    nbytes = math.prod(b - a for a, b in spans)
    root, out = work / "root-tiff-region", work / "tiff-region.tif"
    say(f"tiff-region: generating a {frame} uint8 volume; region {region} ({nbytes / 2**20:.0f} MiB)")
    boss = standin(frame)
    with boss:
        sync = run_measured(
            [*neuromirror_cmd(), "--root", str(root), "sync", SPEC, "--boss-url", boss.url, "--chunk", args.tiff_chunk]
            + ["--json", "-q"],
            env=_env(),
        )
        listed = run_measured([*neuromirror_cmd(), "--root", str(root), "versions", SPEC, "--json"], env=_env())
        version = json.loads(listed["stdout"])[-1]["version"]
        say(f"tiff-region: synced in {sync['wall']:.1f} s (peak {sync['rss_mb']:.0f} MB), version {version}")
        job = {"root": str(root), "spec": f"{SPEC}@{version}", "region": region, "channel": CHANNEL}
        floors, tiffs = [], []
        for i in range(args.tiff_rounds):
            floors.append(_floor(job, args.tiff_jobs))
            out.unlink(missing_ok=True)
            tiffs.append(_tiff(job, out, args.tiff_jobs))
            say(
                f"tiff-region round {i + 1}: floor {floors[-1]['read_s']:.2f} s, TIFF {tiffs[-1]['wall_s']:.2f} s "
                f"(peak {tiffs[-1]['peak_rss_mb']:.0f} MB)"
            )
        checked = check(boss, out, spans)
    row = _row(floors, tiffs, nbytes, region, frame, sync, checked)
    if not args.keep:
        out.unlink(missing_ok=True)
    judge([row], TARGETS)
    return [row]


def _floor(job: dict, jobs: int) -> dict:
    own = own_cpu()
    r = run_measured([sys.executable, "-m", __name__, json.dumps({**job, "jobs": jobs})], env=_env())
    got = dict(json.loads(r["stdout"]))
    got.update(wall_s=round(r["wall"], 3), peak_rss_mb=round(r["rss_mb"], 1), cpu_s=round(r["cpu"], 2))
    return {**got, "standin_cpu_s": round(own_cpu() - own, 2)}


def _tiff(job: dict, out: Path, jobs: int) -> dict:
    cmd = [*neuromirror_cmd(), "--root", job["root"], "get", job["spec"], "--region", job["region"]]
    cmd += ["--channel", job["channel"], "--format", "tiff", "--to", str(out), "-J", str(jobs), "--json"]
    own = own_cpu()
    r = run_measured(cmd, env=_env())
    report = json.loads(r["stdout"])
    return {
        "standin_cpu_s": round(own_cpu() - own, 2),
        "wall_s": round(r["wall"], 3),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "cpu_s": round(r["cpu"], 2),
        "rss_at_peak": r["rss_at_peak"],
        "chunks": report["chunks"],
        "file_bytes": out.stat().st_size,
    }


def check(boss: Any, path: Path, spans: tuple[tuple[int, int], ...]) -> dict:
    """Sub-regions of the TIFF against intern's ``get_cutout`` of the same boxes: voxels that differ, and
    whether shape and dtype are the region's."""
    import numpy as np
    import tifffile
    from intern.remote.boss import BossRemote
    from intern.resource.boss.resource import ChannelResource

    remote = BossRemote(boss.remote_config())
    resource = ChannelResource(CHANNEL, COLLECTION, EXPERIMENT, type="image", datatype="uint8")
    shape = tuple(b - a for a, b in spans)
    image = tifffile.memmap(path, mode="r")
    wrong, boxes = 0, []
    for box in _boxes(shape):
        want = remote.get_cutout(resource, 0, *[[s[0] + a, s[0] + b] for s, (a, b) in reversed(list(zip(spans, box)))])
        got = np.asarray(image[tuple(slice(a, b) for a, b in box)])
        wrong += int((got != want).sum()) if got.shape == want.shape else got.size
        boxes.append(region_arg(box))
    ok = tuple(image.shape) == shape and image.dtype == np.uint8
    del image
    return {"wrong_voxels": wrong if ok else max(wrong, 1), "checked_boxes": boxes, "shape_dtype_ok": ok}


def _boxes(shape: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
    """The boxes checked (region voxels, (z, y, x)): both far corners, and one in the middle, each up to
    24 x 96 x 96 (chunk borders fall inside them at the sizes the bench runs)."""
    size = [min(n, m) for n, m in zip(shape, (24, 96, 96))]
    corner = tuple((0, s) for s in size)
    far = tuple((n - s, n) for n, s in zip(shape, size))
    mid = tuple((n // 2 - s // 2, n // 2 - s // 2 + s) for n, s in zip(shape, size))
    return [corner, far, mid]


def _row(
    floors: list[dict], tiffs: list[dict], nbytes: int, region: str, frame: tuple, sync: dict, checked: dict
) -> dict:
    floor_s = statistics.median(f["read_s"] for f in floors)
    tiff_s = statistics.median(t["wall_s"] for t in tiffs)
    last = tiffs[-1]
    return {
        "scenario": "tiff-region",
        "n": floors[-1]["chunks"],
        "wall_s": round(tiff_s, 3),
        "cpu_s": statistics.median(t["cpu_s"] for t in tiffs),
        "region": region,
        "frame_zyx": list(frame),
        "region_mb": round(nbytes / 2**20, 1),
        "chunks": floors[-1]["chunks"],
        "chunk_mb": round(floors[-1]["bytes"] / 2**20, 1),
        "sync_s": round(sync["wall"], 2),
        "floor_s": round(floor_s, 3),
        "floor_process_s": statistics.median(f["wall_s"] for f in floors),
        "floor_mb_per_s": round(nbytes / 2**20 / floor_s, 1),
        "floor_chunk_mb_per_s": round(floors[-1]["bytes"] / 2**20 / floor_s, 1),
        "floor_peak_rss_mb": max(f["peak_rss_mb"] for f in floors),
        "tiff_s": round(tiff_s, 3),
        "tiff_mb_per_s": round(nbytes / 2**20 / tiff_s, 1),
        "x_floor": round(floor_s / tiff_s, 3),
        # the floor's whole process (its start-up and listing too) over the TIFF's: reported, not the target
        "x_floor_process": round(statistics.median(f["wall_s"] for f in floors) / tiff_s, 3),
        "peak_rss_mb": max(t["peak_rss_mb"] for t in tiffs),
        "floor_cpu_s": statistics.median(f["cpu_s"] for f in floors),
        # the bench's process meanwhile: the BOSS stand-in answering the cutouts (blosc), the same for both sides
        "standin_cpu_s": {"floor": [f["standin_cpu_s"] for f in floors], "tiff": [t["standin_cpu_s"] for t in tiffs]},
        "rss_at_peak": last["rss_at_peak"],
        "tiff_chunks": last["chunks"],
        "file_mb": round(last["file_bytes"] / 2**20, 1),
        "rounds": {"floor_s": [f["read_s"] for f in floors], "tiff_s": [t["wall_s"] for t in tiffs]},
        **checked,
    }


def tiff_region_targets(results: list[dict]) -> list[dict]:
    return [t for r in results if r.get("scenario") == "tiff-region" for t in reported(r, "floor: same URLs, -J")]


def floor(job: dict) -> dict:
    """Every chunk the region needs read as the TIFF path reads it (its cutout URL, intern, ``jobs`` threads),
    the bytes dropped: the rate the TIFF is held to."""
    from neuromirror.read.ome.regions import Region, RegionRequest, chunk_index, chunk_span, open_region
    from neuromirror.spec import parse_spec

    region = Region.parse(job["region"])
    req = RegionRequest(Path(job["root"]), None, parse_spec(job["spec"]), region, Path("-"), channel=job["channel"])
    opened = open_region(req)
    lv, chunks = opened.level, opened.chunks
    zs, ys, xs = chunk_span(lv, region)
    cutouts = []
    for iz in zs:
        for iy in ys:
            for ix in xs:
                index = chunk_index(lv, iz, iy, ix)
                key = str(chunks.fs.info(f"{lv.path}/{lv.separator.join(map(str, index))}").get("key") or "")
                cutouts.append(chunks.cutouts(key, index)[0])
    t = time.perf_counter()
    with ThreadPoolExecutor(int(job["jobs"])) as pool:
        total = sum(pool.map(lambda c: len(chunks.read_cutout(c)), cutouts))
    read_s = time.perf_counter() - t
    chunks.close()
    return {"read_s": round(read_s, 3), "chunks": len(cutouts), "bytes": total}


if __name__ == "__main__":
    print(json.dumps(floor(json.loads(sys.argv[1]))))

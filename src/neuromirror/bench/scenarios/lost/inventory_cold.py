"""``inventory-cold`` (issue 75): a cold sync of a Zarr-heavy dandiset from the bucket's S3 Inventory, beside
the same cold sync by listing.

The stand-in dandiset has ``--inventory-zarrs`` Zarrs x ``--inventory-zarr-objects`` objects (default 200 x
5,000: 10^6, the issue's size; smaller for a quick look).  Its bucket's inventory is written from moto's own
state (every version, ETag and size as moto holds them, read from its backend: writing it asks the server
nothing) into a local directory, a copy of the destination prefix as ``aws s3 sync`` would make it.  Then two
cold syncs into two new roots, each ``neuromirror sync`` in a subprocess, with the archive (API and S3 behind the
bench's shaping proxies, :mod:`neuromirror.bench.network`) at RTT 0 and again at ``--inventory-rtt``:

1. ``inventory-cold-listing``: the listing path (ListObjectVersions per Zarr);
2. ``inventory-cold-inventory``: ``sync --inventory DIR``: pins from the inventory's rows;
3. ``inventory-cold-floor``: the same Zarr datasets written from the objects already in memory, no listing and
   no inventory (:mod:`.zarr_floor`): what bounds both, since the writing is most of a cold Zarr sync's CPU.

Each row has its Zarr objects/s, its CPU an object (``cpu_us_per_object``: a sync's with the stand-ins' answering
it) and moto's ListObjectVersions pages (counted in the backend), and the sides their objects/s over the floor's
(``of_floor``) and the floor's CPU an object over theirs (``cpu_of_floor``); the targets: the inventory path >= 3x
the listing path's objects/s, with 0 ListObjectVersions.  The floor over the listing path (``floor_x_listing``) is
the most any listing could give.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from neuromirror.bench.archives import Archives, zarr_dandiset
from neuromirror.bench.measure import say
from neuromirror.bench.moto_patch import moto_bucket_backend
from neuromirror.bench.scenarios.lost.zarr_floor import floor_jobs, run_floor
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported

TARGETS = (
    ("inventory-cold-inventory", "x_listing_path", 3.0, "min", "inventory-cold: objects/s over the listing path"),
    ("inventory-cold-inventory", "list_object_versions", 0, "max", "inventory-cold: ListObjectVersions pages"),
)


def add_options(p: Any) -> None:
    g = p.add_argument_group("inventory-cold (issue 75): a cold sync from an S3 Inventory beside the listing path")
    g.add_argument("--inventory-zarrs", type=int, default=200, help="inventory-cold: Zarr assets (default 200)")
    g.add_argument(
        "--inventory-zarr-objects",
        type=lambda s: int(float(s)),
        default=5_000,
        help="inventory-cold: objects per Zarr (default 5,000: 200 x 5,000 = 10^6)",
    )
    g.add_argument(
        "--inventory-rtt", type=float, default=0.05, help="inventory-cold: a second round at this RTT, s (default 0.05)"
    )


def moto_rows(bucket: str) -> Iterator[list[str]]:
    """Every version of ``bucket`` as the inventory's CSV fields, read from moto's backend (no request)."""
    from moto.core.utils import unix_time_millis
    from moto.s3.models import FakeKey

    from neuromirror.standins.s3_inventory import csv_fields

    keys = moto_bucket_backend(bucket).get_bucket(bucket).keys
    for name in sorted(keys.keys()):
        ordered = sorted(keys.getlist(name, []), key=lambda v: -unix_time_millis(v.last_modified))
        for j, v in enumerate(ordered):
            if isinstance(v, FakeKey):
                yield csv_fields(bucket, name, v.version_id, j == 0, False, v.size, v.last_modified, v.etag.strip('"'))
            else:
                yield csv_fields(bucket, name, v.version_id, j == 0, True, None, v.last_modified, "")


def bench_inventory_cold(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    from neuromirror.bench.network import NetworkArchives
    from neuromirror.standins.s3_inventory import directory_put, write_inventory

    z, m = int(args.inventory_zarrs), int(args.inventory_zarr_objects)
    net = NetworkArchives(archives)
    try:
        ident, zarr_ids = zarr_dandiset(
            net, z, m, 10, datetime(2025, 6, 1, tzinfo=timezone.utc), f"bench inventory {z}x{m}"
        )
        say(f"inventory-cold: stand-in dandiset {ident}: {z} Zarrs x {m} objects; writing its bucket's inventory")
        inv = work / "inventory-cold-inventory"
        written = write_inventory(
            moto_rows(net.BUCKET), directory_put(inv), source_bucket=net.BUCKET, dest="inventory", compresslevel=1
        )
        jobs = work / "inventory-cold-floor.pickle"
        floor_jobs(net, ident, zarr_ids, work / "root-inventory-cold-floor", jobs)
        out: list[dict] = []
        git: Optional[dict] = None  # the floor's datasets are the same at every round trip: imported once
        for rtt in sorted({0.0, float(args.inventory_rtt)}):
            net.set_rtt(rtt)
            out += _both_paths(args, net, work, startup, ident, z * m, inv / written.prefix, f"{z}x{m}", rtt)
            if _has_floor():
                out.append(_floor(args, jobs, work, z * m, f"{z}x{m}", rtt, out[-2:]))
                git = git or _git_import(work, z * m)
                out.append(_git_floor(git, z * m, f"{z}x{m}", rtt, startup, out[-3:-1]))
    finally:
        net.close()
    if not args.keep:
        shutil.rmtree(inv, ignore_errors=True)
        shutil.rmtree(work / "root-inventory-cold-floor", ignore_errors=True)
        (work / "inventory-cold-floor.pickle").unlink(missing_ok=True)
    archives.drop_objects(NetworkArchives.BUCKET)
    return out


def _both_paths(
    args: Any, net: Any, work: Path, startup: float, ident: str, n: int, inv: Path, size: str, rtt: float
) -> list[dict]:
    """The two cold syncs of one round trip, each into a new root: listing, then inventory."""
    out = []
    for name, extra in (("inventory-cold-listing", []), ("inventory-cold-inventory", ["--inventory", str(inv)])):
        root = work / f"root-{name}"
        net.counters.listings.clear()
        res = run_sync(name, n, root, f"dandi:{ident}", ["--dandi-api", net.api_url, *extra], net, startup)
        res.update(
            size=size,
            rtt_ms=round(rtt * 1000),
            zarr_objects_per_s=round(n / res["wall_s"], 1),
            list_object_versions=net.counters.listings.get(net.BUCKET, 0),
            # the sync's process tree and the stand-ins answering it (on the same 2 cores): steadier than the
            # wall on a shared machine
            cpu_us_per_object=round((res["cpu_s"] + res["bench_process_cpu_s"]) / n * 1e6, 1),
        )
        out.append(res)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    out[1]["x_listing_path"] = round(out[1]["zarr_objects_per_s"] / out[0]["zarr_objects_per_s"], 2)
    say(
        f"inventory-cold at RTT {rtt * 1000:.0f} ms: listing {out[0]['zarr_objects_per_s']:,.0f} objects/s, "
        f"inventory {out[1]['zarr_objects_per_s']:,.0f} objects/s ({out[1]['x_listing_path']}x), "
        f"{out[1]['list_object_versions']} ListObjectVersions"
    )
    judge(out, TARGETS, f"inventory-cold {size} at RTT {rtt * 1000:.0f} ms")
    return out


def _has_floor() -> bool:
    """Whether the code under test has the floor: under ``--compare REV`` an older commit's side may not."""
    from neuromirror.bench import measure

    other = measure.CHILD_PYTHONPATH
    if other and not (Path(other) / "neuromirror" / "bench" / "scenarios" / "lost" / "zarr_floor.py").exists():
        say("inventory-cold-floor: not run for the other commit (it has no bench/scenarios/lost/zarr_floor.py)")
        return False
    return True


def _floor(args: Any, jobs: Path, work: Path, n: int, size: str, rtt: float, sides: list[dict]) -> dict:
    """The floor's row, run after the round's two syncs (it asks the archive nothing: the RTT is the round's
    only), and each side's objects/s over it."""
    root = work / "root-inventory-cold-floor"
    say(f"N={n}: inventory-cold-floor: the Zarrs' datasets written from objects in memory ...")
    shutil.rmtree(root, ignore_errors=True)  # a round's floor writes into a new root, as the syncs do
    res = run_floor(jobs, n)
    res.update(size=size, rtt_ms=round(rtt * 1000), cpu_us_per_object=round(res["cpu_s"] / n * 1e6, 1))
    for side in sides:
        side["of_floor"] = round(side["zarr_objects_per_s"] / res["zarr_objects_per_s"], 2)
        side["cpu_of_floor"] = round(res["cpu_us_per_object"] / side["cpu_us_per_object"], 2)
    res["floor_x_listing"] = round(res["zarr_objects_per_s"] / sides[0]["zarr_objects_per_s"], 2)
    say(
        f"inventory-cold floor at RTT {rtt * 1000:.0f} ms: {res['zarr_objects_per_s']:,.0f} objects/s "
        f"({res['cpu_us_per_object']} us CPU an object; listing {sides[0]['cpu_us_per_object']}, inventory "
        f"{sides[1]['cpu_us_per_object']}); listing {sides[0]['of_floor']} of it, inventory {sides[1]['of_floor']}; "
        f"the floor is {res['floor_x_listing']}x the listing path"
    )
    return res


def _git_import(work: Path, n: int) -> dict:
    """git's own floor (:mod:`.git_floor`): the floor's datasets' objects through ``git fast-import``."""
    from neuromirror.bench.scenarios.lost.git_floor import git_floor
    from neuromirror.sources.dandi.zarr_assets import default_processes

    say(f"N={n}: inventory-cold-git-floor: the floor's datasets' objects through git fast-import ...")
    return git_floor(work / "root-inventory-cold-floor", work / "git-floor", default_processes() or 1)


def _git_floor(git: dict, n: int, size: str, rtt: float, startup: float, sides: list[dict]) -> dict:
    """git's floor (``git``: :func:`_git_import`'s) plus the sync's start-up, beside the 3x target's budget (a third
    of the listing path's wall: the whole inventory sync's at 3x its objects/s), and each side's wall against it."""
    res = {"scenario": "inventory-cold-git-floor", "n": n, "size": size, "rtt_ms": round(rtt * 1000), **git}
    floor_s = git["wall_s"] + startup
    budget = sides[0]["wall_s"] / 3
    res.update(
        startup_s=round(startup, 3),
        target_budget_s=round(budget, 3),
        git_floor_over_budget=round(floor_s / budget, 2),
        zarr_objects_per_s=round(n / floor_s, 1),
        cpu_us_per_object=round(git["cpu_s"] / n * 1e6, 1),
    )
    for side in sides:
        side["of_git_floor"] = round(floor_s / side["wall_s"], 2)
    say(
        f"inventory-cold git floor at RTT {rtt * 1000:.0f} ms: fast-import of the {git['git_objects']:,} objects "
        f"{git['wall_s']} s + start-up {startup:.2f} s = {floor_s:.2f} s, against the 3x budget {budget:.2f} s "
        f"({res['git_floor_over_budget']}x it); the inventory path {sides[1]['wall_s']} s "
        f"({sides[1]['of_git_floor']} of git's floor)"
    )
    return res


def inventory_cold_targets(results: list[dict]) -> list[dict]:
    return [
        t
        for r in results
        if r.get("scenario") == "inventory-cold-inventory"
        for t in reported(r, f"{r.get('size')} at RTT {r.get('rtt_ms')} ms, both paths in one run")
    ]

"""``scripts/bench --rtt 50ms [--throttle 0.2] [--bandwidth 10MB/s]`` (issue 50): each sync at RTT 0 and
at the RTT asked, in the same run, against the same archive; and once more throttled.

The archives sit behind shaping proxies (:mod:`neuromirror.bench.network`); each scenario it applies
to is synced into two roots, one at RTT 0 (the proxies there, delaying nothing) and one at the RTT,
and the RTT side's row gets ``rtt_ratio`` (its wall over RTT 0's).  Rows are named
``<scenario>@<ms>ms`` (``dandi-cold@0ms``, ``dandi-cold@50ms``...), with ``base``, ``rtt_ms`` and
``side`` (``rtt0``, ``rtt``, ``throttled``).  Scenarios:

* ``dandi`` (per ``--sizes`` N): ``dandi-cold``, ``dandi-resync`` (no change), ``dandi-3changes``;
* ``zarr-many`` (``--many-zarrs`` x ``--many-zarr-objects`` + ``--many-zarr-blobs``) and
  ``zarr-dandiset`` (``--zarrs`` x ``--zarr-objects`` + ``--zarr-blobs``): cold, resync, 2 Zarrs + 1 blob.
* ``read-nwb`` (:mod:`.read_nwb`): pynwb reading 100 rows of an NWB file at the RTT, through
  ``neuromirror://`` and with remfile on the pinned URL, alternating (rows ``read-nwb-<reader>@<ms>ms``).

``--throttle F``: a third cold sync of the dandiset at the RTT, into a third root, while the API answers a
fraction F of its GETs ``429`` (Retry-After 1 s) and, from the sync's ``N/10``-th S3 request on, S3 a
fraction F of the HEADs ``503 SlowDown``, for ``--throttle-for`` seconds (default 30).  Every network
sync retries as a user's does (pacing's default attempts, not the loopback scenarios' 3).  Its row
(``dandi-cold@50ms+throttle``) says whether the result is identical to the clean RTT side's (the
dataset's tree, the index's rows), the URLs registered on S3 without ``?versionId=`` (git-annex
branch and index), its wall over the clean run's, the requests beyond the clean run's against the
throttled answers, and the requests in flight at the S3 proxy before and after a burst of SlowDowns.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from neuromirror.bench.archives import (
    Archives,
    change_three,
    change_two_zarrs_and_a_blob,
    put_empty_blob,
    zarr_dandiset,
)
from neuromirror.bench.measure import say
from neuromirror.bench.moto_patch import moto_bucket_backend
from neuromirror.bench.network import Burst, NetworkArchives, index_rows, tree, unpinned_in_index, unpinned_urls
from neuromirror.bench.syncs import run_sync
from neuromirror.network import pacing


class _Sides:
    """The syncs of one archive (``spec``) at RTT 0 and at ``rtt``, each side into its own root."""

    def __init__(self, net: NetworkArchives, work: Path, tag: str, spec: str, startup: float, rtt: float) -> None:
        self.net, self.spec, self.startup, self.rtt = net, spec, startup, rtt
        self.ms = round(rtt * 1000)
        self.roots = {0.0: work / f"net-{tag}-rtt0", rtt: work / f"net-{tag}-rtt{self.ms}"}
        self.rows: list[dict] = []

    def sync(self, base: str, n: int, rtt: float, root: Optional[Path] = None, files: Optional[int] = None) -> dict:
        self.net.set_rtt(rtt)
        self.net.clean()
        ms = round(rtt * 1000)
        row = run_sync(
            f"{base}@{ms}ms",
            n,
            root or self.roots[rtt],
            self.spec,
            ["--dandi-api", self.net.api_url],
            self.net,
            self.startup,
            files,
        )
        side = "rtt" if rtt else "rtt0"
        in_flight = self.net.s3_proxy.max_in_flight
        row.update(base=base, rtt_ms=ms, side=side, proxy_requests=self.net.requests(), proxy_max_in_flight=in_flight)
        return row

    def both(
        self, base: str, n: int, files: Optional[int] = None, extra: Optional[Callable[[dict], None]] = None
    ) -> dict:
        """``base`` at RTT 0, then at the RTT; the RTT row (with ``rtt_ratio``) returned."""
        zero = self.sync(base, n, 0.0, files=files)
        far = self.sync(base, n, self.rtt, files=files)
        for row in (zero, far):
            if extra:
                extra(row)
            self.rows.append(row)
        far["rtt_ratio"] = round(far["wall_s"] / zero["wall_s"], 2) if zero["wall_s"] else None
        far["rtt0_wall_s"] = zero["wall_s"]
        say(
            f"{base} N={n}: {zero['wall_s']:.2f} s at RTT 0, {far['wall_s']:.2f} s at {self.ms} ms: {far['rtt_ratio']}x"
        )
        return far


def bench_network(args: argparse.Namespace, archives: Archives, work: Path, startup: float) -> list[dict]:
    """The chosen network scenarios (see the module); their rows."""
    net = NetworkArchives(archives, bandwidth=args.bandwidth)
    out: list[dict] = []
    # the syncs retry as a user's do (pacing's default attempts), not as few times as the loopback
    # scenarios ask (measure.child_env: 3): at 20 % SlowDown, 3 attempts give up on ~1 % of the blobs
    retries = os.environ.get("NEUROMIRROR_HTTP_RETRIES")
    os.environ.setdefault("NEUROMIRROR_HTTP_RETRIES", str(pacing.ATTEMPTS))
    try:
        if "dandi" in args.scenarios:
            for n in args.sizes:
                out += _guarded(f"dandi N={n}", n, dandi_sides, args, net, work, startup, n)
        for name, shape in (
            ("zarr-many", (args.many_zarrs, args.many_zarr_objects, args.many_zarr_blobs)),
            ("zarr-dandiset", (args.zarrs, args.zarr_objects, args.zarr_blobs)),
        ):
            if name in args.scenarios:
                out += _guarded(name, shape[0], zarr_sides, args, net, work, startup, name, *shape)
        if "read-nwb" in args.scenarios:
            from neuromirror.bench.scenarios.far.read_nwb import bench_read_nwb

            out += _guarded("read-nwb", args.nwb_mb, bench_read_nwb, args, net, work, startup)
    finally:
        net.close()
        if retries is None:
            os.environ.pop("NEUROMIRROR_HTTP_RETRIES", None)
    return out


def _guarded(what: str, n: int, run: Callable[..., list[dict]], *params: Any) -> list[dict]:
    """``run(*params)``'s rows, or one row with its error (the rest of the run goes on)."""
    try:
        return run(*params)
    except Exception as exc:  # keep the rest of the run
        say(f"network {what}: failed: {exc}")
        return [{"scenario": f"network-{what.split()[0]}", "n": n, "error": str(exc)[-1000:]}]


def dandi_sides(args: argparse.Namespace, net: NetworkArchives, work: Path, startup: float, n: int) -> list[dict]:
    when = datetime(2025, 9, 1, tzinfo=timezone.utc) + timedelta(days=len(str(n)))
    t = time.perf_counter()
    d = net.dandi
    ident = d.create_dandiset(name=f"bench network {n}", created=when)
    be = moto_bucket_backend(d.bucket)
    for aid in d.add_synthetic_assets(ident, n, when=when):
        put_empty_blob(be, d, aid)
    say(f"network N={n}: stand-in dandiset {ident} in {time.perf_counter() - t:.1f} s")
    sides = _Sides(net, work, str(n), f"dandi:{ident}", startup, args.rtt)
    clean = sides.both("dandi-cold", n)
    if args.throttle:
        sides.rows.append(throttled(args, sides, clean, n, ident))
    sides.both("dandi-resync", n)
    change_three(d, ident, when + timedelta(hours=1))
    sides.both("dandi-3changes", n)
    _drop(args, net, sides)
    return sides.rows


def throttled(args: argparse.Namespace, sides: _Sides, clean: dict, n: int, ident: str) -> dict:
    """The cold sync at the RTT again, throttled (see the module), checked against the clean one."""
    net, root = sides.net, sides.roots[sides.rtt].with_name(sides.roots[sides.rtt].name + "-throttled")
    net.set_rtt(sides.rtt)
    net.clean()
    base = "dandi-cold"
    name = f"{base}@{sides.ms}ms+throttle"
    with Burst(net, args.throttle, args.throttle_for, after=max(1, n // 10)) as burst:
        try:
            row = sides.sync(base, n, sides.rtt, root=root)
        except RuntimeError as exc:  # the sync failed: the row says so (a failing target, not a lost run)
            last = str(exc).strip().splitlines()[-1:] or ["?"]
            row = {"scenario": name, "n": n, "outcome": "failed", "failure": last[0][-500:], "wall_s": None}
    injected = net.injected()
    row.update(scenario=name, base=base, side="throttled", throttle=args.throttle, throttle_for_s=args.throttle_for)
    row.update(burst.in_flight())
    answers = sum(injected.values())
    extra = sum(net.requests().values()) - sum(clean["proxy_requests"].values())
    row.update(throttled_answers=answers, throttled_by_endpoint=injected)
    row.update(extra_requests=extra, extra_per_throttled=round(extra / max(1, answers), 2))
    wall = row.get("wall_s")
    if wall:
        row.update(wall_x_clean=round(wall / clean["wall_s"], 2))
    source = f"dandi:{ident}"
    a, b = sides.roots[sides.rtt], root
    rows_a, rows_b = index_rows(a, source), index_rows(b, source)
    differences = int(tree(a / "dandi" / ident) != tree(b / "dandi" / ident)) + int(rows_a != rows_b)
    annex = unpinned_urls(b / "dandi" / ident, net.s3_proxy.url)
    unpinned = annex["annex_unpinned"] + unpinned_in_index(rows_b, net.s3_proxy.url)
    row.update(differences=differences, unpinned=unpinned, annex_s3_urls=annex["annex_urls"])
    before, after = row.get("in_flight_before"), row.get("in_flight_after_burst")
    if before and after is not None:
        row.update(in_flight_after_over_before=round(after / before, 2))
    say(
        f"throttled N={n}: {wall} s ({row.get('wall_x_clean')}x clean), {answers} throttled answers, "
        f"{extra} extra requests, {unpinned} unpinned, {differences} differences, in flight {before} -> {after}"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return row


def zarr_sides(
    args: argparse.Namespace,
    net: NetworkArchives,
    work: Path,
    startup: float,
    name: str,
    zarrs: int,
    objects: int,
    blobs: int,
) -> list[dict]:
    from neuromirror.bench.scenarios.scale import zarr_split

    when = datetime(2025, 10, 1, tzinfo=timezone.utc) + timedelta(days=len(name))
    t = time.perf_counter()
    ident, zarr_ids = zarr_dandiset(net, zarrs, objects, blobs, when, f"bench network {name}")
    say(f"network {name}: {zarrs} Zarrs x {objects} + {blobs} blobs in {time.perf_counter() - t:.1f} s")
    sides = _Sides(net, work, name, f"dandi:{ident}", startup, args.rtt)
    files = zarrs * objects + blobs

    def shape(row: dict) -> None:
        zarr_split(row)
        row.update(size=f"{zarrs}x{objects}+{blobs}", zarrs=zarrs)

    sides.both(f"{name}-cold", zarrs, files=files, extra=shape)
    sides.both(f"{name}-resync", zarrs, files=files, extra=shape)
    change_two_zarrs_and_a_blob(net, ident, zarr_ids, when + timedelta(hours=1))
    sides.both(f"{name}-2zarrs1blob", zarrs, files=files, extra=shape)
    _drop(args, net, sides)
    return sides.rows


def _drop(args: argparse.Namespace, net: NetworkArchives, sides: _Sides) -> None:
    """The roots removed (unless ``--keep``) and the dandiset's objects forgotten in moto."""
    if not args.keep:
        for root in sides.roots.values():
            shutil.rmtree(root, ignore_errors=True)
    net.archives.drop_objects(net.dandi.bucket)

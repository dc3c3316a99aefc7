"""``read`` (issue 31): reading pins in place, through the HTTP view and ``neuromirror://``, against the archive.

One mirror root is synced from the stand-ins (each sync a ``neuromirror sync`` subprocess):

* a dandiset of N synthetic assets (default 10^4: its cold mirror is bound by moto's ~270 HEAD/s,
  so 10^5 costs ~7 min of pinning alone) plus ``sample`` files of 64 KiB and one 8 MiB file with
  real bytes;
* a dandiset of Z small Zarrs (default 2,000 x 20 objects; :func:`.zarr_many.fill`);
* an AIND asset holding one OME-Zarr store of M objects (default 10^5) from the generated S3
  stand-in (a store is a subdataset, as a DANDI Zarr asset is).

Then ``neuromirror --root R serve --http 127.0.0.1:PORT --no-schedule`` runs with a ``git``
wrapper first on its ``PATH`` that logs every git process it starts, and the reader
(:mod:`.read_client`, a process of its own, under the same wrapper) measures, in this order
(memory first, while the view is fresh):

1. ``read-zarrs``: the view's RSS idle, then while it lists the Zarr dandiset's version root and
   its directories and GETs ``.zattrs`` of every Zarr; extrapolated to 20,000 Zarrs with the
   measured slope per Zarr (linear from the idle view: an upper estimate if growth flattens);
2. ``read-ttfb``: time to first byte of the same files from the pinned archive URL, through the
   view (307 followed) and through ``neuromirror://`` (``fsspec.open`` + ``read(1)``): cold first
   request, first request per file, then medians / p95 over ``rounds`` warm rounds; and the git
   processes the view and the reader started during the warm rounds (from the wrapper's logs);
3. ``read-listing``: PROPFIND ``Depth: 1`` and the JSON listing of the dandiset's version root
   (N files under it) and of one of its directories, cold and warm;
4. ``read-readers``: ``readers`` threads of ranged GETs of the 8 MiB file through the view and from
   the archive; errors, throughput;
5. ``read-zarr-big``: PROPFIND and JSON listing of the M-object store's root: time and the view's
   RSS growth, extrapolated to 10^6 objects.

Targets (:func:`read_targets`): first byte <= 20 ms more than the archive's (p50, warm), no git
process on the request path once listed, listing < 200 ms (cold and warm), 64 readers without
error at >= 80 % of the archive's throughput (our reading of "bound by the archive's"), a 10^6-object
Zarr listed in bounded memory (here: view RSS < 300 MB at 10^6, extrapolated), the view under
300 MB with 20,000 Zarrs (extrapolated).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import quote

from neuromirror.bench.archives import Archives, zarr_path
from neuromirror.bench.measure import TreeRSS, child_env, neuromirror_cmd, run_measured, say, stop_process
from neuromirror.bench.scenarios.read_client import pattern
from neuromirror.bench.scenarios.zarr_many import fill as fill_zarrs
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported
from neuromirror.network.ports import free_port

SMALL = 64 * 1024
LARGE = 8 * 2**20
RANGE = 64 * 1024
MANY_ZARRS_TARGET = 20_000
BIG_ZARR_TARGET = 1_000_000
#: (row, field, bound, "min" | "max", what): neuromirror.bench.targets.row_targets
TARGETS = (
    ("read-ttfb", "view_extra_ms", 20.0, "max", "first byte through the view: p50 ms more than the archive's"),
    ("read-ttfb", "fsspec_extra_ms", 20.0, "max", "first byte through neuromirror://: p50 ms more than the archive's"),
    ("read-ttfb", "view_git_processes", 0, "max", "git processes of the view on the request path once listed"),
    ("read-ttfb", "fsspec_git_processes", 0, "max", "git processes of neuromirror:// once listed"),
    ("read-listing", "root_cold_ms", 200.0, "max", "first PROPFIND Depth 1 of the version root (cold): ms"),
    ("read-listing", "dir_cold_ms", 200.0, "max", "first JSON listing of a directory (cold): ms"),
    ("read-listing", "root_propfind_warm_ms", 200.0, "max", "PROPFIND Depth 1 of the version root, warm p50: ms"),
    ("read-listing", "root_json_warm_ms", 200.0, "max", "JSON listing of the version root, warm p50: ms"),
    ("read-readers", "errors", 0, "max", "concurrent readers through the view: errors"),
    ("read-readers", "throughput_ratio", 0.8, "min", "concurrent readers: view throughput / archive's"),
    ("read-zarr-big", "rss_at_1e6_mb", 300.0, "max", "view RSS listing a Zarr of 10^6 objects (extrapolated): MB"),
    ("read-zarrs", "rss_at_20000_mb", 300.0, "max", "view RSS with 20,000 Zarrs (extrapolated): MB"),
)
AIND_BUCKET = "aind-open-data-read"


def git_wrapper(where: Path) -> Path:
    """A directory holding ``git``: logs its arguments to ``$NEUROMIRROR_BENCH_GIT_LOG``, then runs git."""
    real = shutil.which("git")
    if real is None:
        raise RuntimeError("no git on PATH")
    where.mkdir(parents=True, exist_ok=True)
    script = where / "git"
    script.write_text(f'#!/bin/sh\necho "$*" >> "$NEUROMIRROR_BENCH_GIT_LOG"\nexec {real} "$@"\n')
    script.chmod(0o755)
    return where


def wrapped_env(wrapper: Path, log: Path) -> dict:
    env = child_env()
    env["PATH"] = f"{wrapper}{os.pathsep}{env.get('PATH', '')}"
    env["NEUROMIRROR_BENCH_GIT_LOG"] = str(log)
    return env


@contextmanager
def view_server(root: Path, env: dict, address: Optional[str] = None) -> Iterator[tuple[str, int]]:
    """``neuromirror --root R serve --http ADDRESS --no-schedule`` (default 127.0.0.1 on a free port): (base URL,
    pid) once it listens."""
    address = address or f"127.0.0.1:{free_port()}"
    cmd = [*neuromirror_cmd(), "--root", str(root), "serve", "--http", address, "--no-schedule"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def drain() -> None:  # the view's stderr, read to its end so that it never blocks on a full pipe
        for line in proc.stderr or ():
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        while True:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                raise RuntimeError("the view did not say where it listens: " + "".join(seen)[-1000:]) from None
            seen.append(line)
            m = re.search(r"read-only on (http://[\d.]+:\d+/)dav/", line)
            if m:
                break
            if proc.poll() is not None:
                raise RuntimeError("the view exited: " + "".join(seen)[-1000:])
        yield m.group(1), proc.pid
    finally:
        stop_process(proc, 30)


def rss_mb(pid: int) -> float:
    """The RSS of ``pid`` and its children now (MB)."""
    import psutil

    p = psutil.Process(pid)
    total = 0
    for q in (p, *p.children(recursive=True)):
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return round(total / 2**20, 1)


class Reader:
    """Runs phases of :mod:`.read_client` in their own process, the view's RSS polled meanwhile."""

    def __init__(self, work: Path, env: dict, view_pid: int) -> None:
        self.work, self.env, self.view_pid = work, env, view_pid
        self.count = 0

    def run(self, job: dict) -> tuple[dict, dict]:
        """(the phase's JSON, the view's RSS before / peak / after in MB)."""
        self.count += 1
        path = self.work / f"read-job-{self.count}.json"
        path.write_text(json.dumps(job))
        before = rss_mb(self.view_pid)
        poll = TreeRSS(self.view_pid)
        r = run_measured([sys.executable, "-m", "neuromirror.bench.scenarios.read_client", str(path)], env=self.env)
        peak = round(poll.stop() / 2**20, 1)
        return json.loads(r["stdout"]), {"before": before, "peak": peak, "after": rss_mb(self.view_pid)}


def _versions(base: str, archive: str, name: str) -> list[str]:
    import requests

    r = requests.get(f"{base}dav/{archive}/{quote(name)}/", params={"format": "json"}, timeout=60)
    r.raise_for_status()
    return [e["name"] for e in r.json()["entries"]]


def _urls(root: Path, spec: str, path: str) -> list[dict]:
    """``neuromirror urls SPEC PATH --json``, as a user asks for the pinned URLs."""
    r = run_measured([*neuromirror_cmd(), "--root", str(root), "urls", spec, path, "--json"], env=child_env())
    return list(json.loads(r["stdout"]))


def bench_read(
    archives: Archives,
    work: Path,
    startup: float,
    files: int = 10_000,
    sample: int = 20,
    rounds: int = 10,
    readers: int = 64,
    per_reader: int = 10,
    zarrs: int = 2000,
    zarr_objects: int = 100_000,
    keep: bool = False,
) -> list[dict]:
    """The five rows of the scenario (see the module), each with its ``targets``."""
    from neuromirror.standins.s3_generated import GeneratedBucket, GeneratedS3, aind_asset

    when = datetime(2025, 10, 1, tzinfo=timezone.utc)
    d = archives.dandi
    t = time.perf_counter()
    ident, _ = archives.dandiset(files, when)
    for i in range(sample):
        d.put_asset(ident, f"sub-read/sub-read_obj-{i:03d}.nwb", bytes([i % 256]) * SMALL, when=when)
    d.put_asset(ident, "sub-read/sub-read_large.nwb", pattern(0, LARGE), when=when)
    zident, _ = fill_zarrs(archives, zarrs, 20, 10, when) if zarrs else ("", [])
    say(
        f"read: stand-in dandisets {ident} ({files} + {sample + 1} files) and {zident or '-'} ({zarrs} Zarrs) "
        f"in {time.perf_counter() - t:.1f} s"
    )
    root = work / "root-read"
    api = ["--dandi-api", d.api_url]
    total = files + sample + 1
    syncs = [run_sync("read-sync-dandiset", total, root, f"dandi:{ident}", api, archives, startup)]
    if zarrs:
        syncs.append(run_sync("read-sync-zarrs", zarrs * 20 + 10, root, f"dandi:{zident}", api, archives, startup))
    name = f"SmartSPIM_read{zarr_objects}_2024-01-01_00-00-00"
    asset = aind_asset(name, 1, zarr_objects)
    out: list[dict] = []
    with GeneratedS3(GeneratedBucket(AIND_BUCKET, [asset])) as s3:
        extra = ["--bucket", AIND_BUCKET, "--s3-endpoint", s3.endpoint_url]
        syncs.append(run_sync("read-sync-big-zarr", zarr_objects, root, f"aind:{name}", extra, archives, startup))
        wrapper = git_wrapper(work / "read-git-wrapper")
        view_log, client_log = work / "read-view-git.log", work / "read-client-git.log"
        for log in (view_log, client_log):
            log.write_text("")
        client_env = wrapped_env(wrapper, client_log)
        with view_server(root, wrapped_env(wrapper, view_log)) as (base, pid):
            time.sleep(1.0)  # let the interpreter settle before its idle RSS is read
            idle = rss_mb(pid)
            say(f"read: view at {base} (pid {pid}), idle RSS {idle} MB")
            reader = Reader(work, client_env, pid)
            common = {"git_log": str(client_log), "view_git_log": str(view_log), "root": str(root)}
            if zarrs:
                out.append(_zarrs(reader, base, zident, zarrs, idle, common))
            out.append(_ttfb(reader, base, root, ident, sample, rounds, common))
            out.append(_listing(reader, base, ident, files, rounds, common))
            out.append(_readers(reader, base, root, ident, readers, per_reader, common))
            out.append(_big_zarr(reader, base, name, asset.stores[0].name, zarr_objects, common))
            for result in out:
                result.update(view_idle_rss_mb=idle)
            out[0]["view_git_processes_total"] = sum(1 for _ in view_log.open())
    sync_s = {s["scenario"]: s["wall_s"] for s in syncs}
    for result in out:
        result.update(sync_s=sync_s)
    judge(out, TARGETS)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    archives.drop_objects(d.bucket)
    return out


def _zarrs(reader: Reader, base: str, zident: str, zarrs: int, idle: float, common: dict) -> dict:
    (version,) = _versions(base, "dandi", zident)[:1]
    top = f"{base}dav/dandi/{zident}/{version}/"
    dirs = sorted({zarr_path(i).split("/")[0] for i in range(zarrs)})
    say(f"read-zarrs: listing {top} and {len(dirs)} directories, then .zattrs of {zarrs} Zarrs ...")
    t = time.perf_counter()
    listed, rss_list = reader.run(
        {"phase": "get", "urls": [top + "?format=json"] + [f"{top}{x}/?format=json" for x in dirs]}
    )
    list_s = time.perf_counter() - t
    urls = [f"{top}{zarr_path(i)}/.zattrs" for i in range(zarrs)]
    got, rss_get = reader.run({"phase": "get", "urls": urls, "threads": 4})
    peak = max(rss_list["peak"], rss_get["peak"])
    slope = max(0.0, (peak - idle) / zarrs)
    result = {
        "scenario": "read-zarrs",
        "n": zarrs,
        "listing_s": round(list_s, 2),
        "listings_ok": listed["ok"],
        "listings": listed["requests"],
        "zattrs_ok": got["ok"],
        "zattrs_s": got["wall_s"],
        "rss_after_listing_mb": rss_list["after"],
        "rss_peak_mb": peak,
        "rss_after_mb": rss_get["after"],
        "mb_per_zarr": round(slope, 4),
        "rss_at_20000_mb": round(idle + slope * MANY_ZARRS_TARGET, 1),
    }
    say(
        f"read-zarrs: {zarrs} Zarrs: listings {list_s:.1f} s, .zattrs {got['ok']}/{zarrs} in {got['wall_s']} s; "
        f"view RSS idle {idle}, peak {peak} MB -> {result['rss_at_20000_mb']} MB at 20,000 (linear)"
    )
    return result


def _ttfb(reader: Reader, base: str, root: Path, ident: str, sample: int, rounds: int, common: dict) -> dict:
    rows = {r["path"]: r for r in _urls(root, f"dandi:{ident}@draft", "sub-read")}
    files = []
    for i in range(sample):
        path = f"sub-read/sub-read_obj-{i:03d}.nwb"
        r = rows[path]
        if r["served_by"] != "archive":
            raise RuntimeError(f"read-ttfb: {path} is served by {r['served_by']}, not by the archive")
        files.append(
            {
                "direct": r["url"],
                "view": f"{base}dav/dandi/{ident}/draft/{path}",
                "nm": f"neuromirror://dandi/{ident}@draft/{path}",
                "size": r["size"],
            }
        )
    say(f"read-ttfb: {sample} files x {rounds} rounds: archive, view, neuromirror://, fsspec http ...")
    got, rss = reader.run({"phase": "ttfb", "files": files, "rounds": rounds, **common})
    warm = got["warm"]
    result = {
        "scenario": "read-ttfb",
        "n": sample * rounds,
        "cold_ms": got["cold_ms"],
        "first_per_file": got["first_per_file"],
        "warm": warm,
        "view_extra_ms": round(warm["view"]["p50_ms"] - warm["direct"]["p50_ms"], 2),
        "view_extra_p95_ms": round(warm["view"]["p95_ms"] - warm["direct"]["p95_ms"], 2),
        "fsspec_extra_ms": round(warm["neuromirror"]["p50_ms"] - warm["direct"]["p50_ms"], 2),
        "fsspec_extra_p95_ms": round(warm["neuromirror"]["p95_ms"] - warm["direct"]["p95_ms"], 2),
        "fsspec_extra_vs_fsspec_http_ms": round(
            warm["neuromirror"]["p50_ms"] - warm["fsspec_http_direct"]["p50_ms"], 2
        ),
        "view_git_processes": got["git_processes_during_timed"]["view"],
        "fsspec_git_processes": got["git_processes_during_timed"]["neuromirror_fsspec"],
        "view_rss_mb": rss,
    }
    say(
        f"read-ttfb: p50 archive {warm['direct']['p50_ms']} ms, view {warm['view']['p50_ms']} ms, "
        f"neuromirror:// {warm['neuromirror']['p50_ms']} ms (fsspec http {warm['fsspec_http_direct']['p50_ms']} ms); "
        f"cold {got['cold_ms']}; git processes while timed: view {result['view_git_processes']}, "
        f"neuromirror:// {result['fsspec_git_processes']}"
    )
    return result


def _listing(reader: Reader, base: str, ident: str, files: int, rounds: int, common: dict) -> dict:
    top = f"{base}dav/dandi/{ident}/draft/"
    # the directory first: it is then listed cold on its own, before the root's listing covers it
    dirs = {"dir": f"{top}sub-00000/", "root": top, "dandidav_root": f"{base}dandisets/{ident}/draft/"}
    say(f"read-listing: PROPFIND and JSON of {top} ({files} files under it) and of one directory ...")
    first = {"dir": "json", "root": "propfind", "dandidav_root": "propfind"}
    got, rss = reader.run({"phase": "listing", "dirs": dirs, "first": first, "rounds": rounds, **common})
    result: dict[str, Any] = {
        "scenario": "read-listing",
        "n": files,
        "listings": got,
        "view_rss_mb": rss,
        "root_cold_ms": got["root"]["cold_ms"],
        "dir_cold_ms": got["dir"]["cold_ms"],
        "root_entries": got["root"]["json_entries"],
    }
    for kind in ("propfind", "json"):
        result[f"root_{kind}_warm_ms"] = got["root"][f"{kind}_warm"]["p50_ms"]
        result[f"root_{kind}_warm_p95_ms"] = got["root"][f"{kind}_warm"]["p95_ms"]
    say(
        f"read-listing: version root ({result['root_entries']} entries, {files} files under it): first PROPFIND "
        f"{result['root_cold_ms']} ms, then p50 PROPFIND {result['root_propfind_warm_ms']} ms / JSON "
        f"{result['root_json_warm_ms']} ms; a directory's first JSON listing {result['dir_cold_ms']} ms"
    )
    return result


def _readers(reader: Reader, base: str, root: Path, ident: str, readers: int, per: int, common: dict) -> dict:
    path = "sub-read/sub-read_large.nwb"
    (r,) = [x for x in _urls(root, f"dandi:{ident}@draft", path) if x["path"] == path]
    job = {
        "phase": "readers",
        "view": f"{base}dav/dandi/{ident}/draft/{path}",
        "direct": r["url"],
        "size": LARGE,
        "chunk": RANGE,
        "readers": readers,
        "per_reader": per,
    }
    say(
        f"read-readers: {readers} readers x {per} ranged GETs of {RANGE // 1024} KiB, through the view and directly ..."
    )
    got, rss = reader.run(job)
    v, dr = got["view"], got["direct"]
    result = {
        "scenario": "read-readers",
        "n": readers,
        "view": v,
        "direct": dr,
        "errors": v["errors"] + dr["errors"],
        "throughput_ratio": round(v["mb_per_s"] / dr["mb_per_s"], 3) if dr["mb_per_s"] else None,
        "view_rss_mb": rss,
    }
    say(
        f"read-readers: view {v['mb_per_s']} MB/s ({v['errors']} errors), archive {dr['mb_per_s']} MB/s "
        f"({dr['errors']} errors): {result['throughput_ratio']}"
    )
    return result


def _big_zarr(reader: Reader, base: str, name: str, store: str, objects: int, common: dict) -> dict:
    (version,) = _versions(base, "aind", name)[-1:]
    top = f"{base}dav/aind/{quote(name)}/{quote(version)}/{store}/"
    say(f"read-zarr-big: PROPFIND and JSON of a Zarr of {objects} objects ({top}) ...")
    got, rss = reader.run({"phase": "listing", "dirs": {"zarr": top}, "rounds": 2, **common})
    z = got["zarr"]
    growth = max(0.0, rss["peak"] - rss["before"])
    result = {
        "scenario": "read-zarr-big",
        "n": objects,
        "listing": z,
        "propfind_cold_ms": z["cold_ms"],
        "propfind_warm_ms": z["propfind_warm"]["p50_ms"],
        "json_warm_ms": z["json_warm"]["p50_ms"],
        "view_rss_mb": rss,
        "rss_growth_mb": round(growth, 1),
        "rss_at_1e6_mb": round(rss["before"] + growth * BIG_ZARR_TARGET / objects, 1),
    }
    say(
        f"read-zarr-big: {objects} objects: first PROPFIND {z['cold_ms']} ms ({z['propfind_entries']} responses), "
        f"then {result['propfind_warm_ms']} ms, JSON {result['json_warm_ms']} ms; view RSS {rss['before']} -> peak "
        f"{rss['peak']} MB (-> {result['rss_at_1e6_mb']} MB at 10^6, linear)"
    )
    return result


def read_targets(results: list[dict]) -> list[dict[str, Any]]:
    """Issue 31's targets as rows of the run's target report (``{target, value, limit, ok, note}``)."""
    out: list[dict[str, Any]] = []
    for result in results:
        if not str(result.get("scenario", "")).startswith("read-"):
            continue
        out += reported(result, f"{result['scenario']} N={result['n']}")
    return out

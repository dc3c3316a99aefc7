"""``read-nwb`` (issue 50): pynwb reading a slice of an NWB file in place, a round trip away, against remfile.

``scripts/bench --scenarios read-nwb --rtt 50ms [--nwb-mb 64] [--nwb-rounds 3]``.  An NWB file of
``--nwb-mb`` MiB of int16 samples (one ``ElectricalSeries`` of 64 channels, stored as pynwb writes a
numpy array; the same bytes every run) is an asset of a dandiset of the network stand-in
(:class:`~neuromirror.bench.network.NetworkArchives`), mirrored once with ``neuromirror sync`` at RTT 0.
Then, the proxies at ``--rtt``, each round reads 100 rows from the middle of the series twice, the
order alternating from round to round, each read in a fresh process (:mod:`.read_nwb_client`:
open -> read -> close):

* ``remfile``: ``remfile.File`` on the file's pinned URL (``?versionId=``, through the S3 proxy, as
  ``neuromirror urls dandi:ID@draft PATH --json`` gives it), opened with h5py and pynwb;
* ``neuromirror``: ``fsspec.open("neuromirror://dandi/ID@draft/PATH", root=MIRROR)``, the same.

Rows ``read-nwb-remfile@<ms>ms`` and ``read-nwb-neuromirror@<ms>ms`` (``base`` ``read-nwb``, ``side``
the reader, N the file's MiB): the median wall of the reads and of their parts (``open_s``: the
file and ``io.read()``; ``slice_s``), the requests and body bytes the S3 proxy saw during each read
(its stats reset before each); the neuromirror row has ``time_over_remfile``,
``bytes_over_remfile`` and ``requests_over_remfile`` (medians over medians).  Every read's rows are
checked against the samples written: a difference fails the scenario.

* ``reference`` (issue 60; when lindi is there: the overlay ``scripts/_venv.sh`` builds): the same path
  opened through its LINDI reference (``api.Mirror.open_hdf5``), made after the sync at RTT 0 by
  :func:`neuromirror.read.references.batch.make_references` in a process with lindi; its row also has
  ``make_requests``, ``make_bytes`` and ``make_fraction`` (what making the reference read of the file).

* the floor (issue 60): in the same rounds, pynwb reads the same rows from a copy of the file on local disk
  (``h5py.File(path)``): pynwb's own ``io.read()`` CPU, which every reader pays.  Not a row: each other side's
  row has ``floor_wall_s`` and ``beyond_floor_over_remfile``, ``(side - floor) / (remfile - floor)``: how the
  side compares with remfile in the time that is the network's and the reader's, not pynwb's.

The same rounds run first with the proxies at RTT 0: ``rtt0_wall_s`` and ``rtt_cost_s`` (the wall at the
RTT less it) tell the round trips' share from the stand-in's and the reader's own time
(``stand_in_get_ms``: one ranged GET at RTT 0; moto reads the whole object for each).  remfile asks for
the length with a GET of the whole file that it drops after the headers (``whole_gets``); what the proxy
sent before the drop is in its ``bytes_down``, and ``range_bytes`` is what its ranged reads read
(``bytes_over_remfile_ranges`` compares with that).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional
from unittest import mock

import numpy as np

from neuromirror.bench.archives import direct_puts
from neuromirror.bench.measure import child_env, say
from neuromirror.bench.network import NetworkArchives
from neuromirror.bench.scenarios.far.read_nwb_client import digest
from neuromirror.bench.scenarios.read_view import _urls
from neuromirror.bench.syncs import run_sync

NWB_PATH = "sub-bench/sub-bench_ecephys.nwb"
SERIES = "ElectricalSeries"
CHANNELS = 64
ROWS_READ = 100
WHEN = datetime(2025, 11, 1, tzinfo=timezone.utc)
KINDS = ("remfile", "neuromirror")
#: made after the sync, in a process with lindi (:func:`_made_reference`)
MAKE = """
import json, sys
from pathlib import Path
from neuromirror.read.references.batch import make_references
got = make_references(Path(sys.argv[1]), None, [(sys.argv[2], "draft")])
print(json.dumps(got.to_json()))
"""


def samples(rows: int) -> np.ndarray:
    """``rows`` x :data:`CHANNELS` int16 samples, the same every run."""
    return (np.arange(rows * CHANNELS, dtype="int32") % 30_011).astype("int16").reshape(rows, CHANNELS)


def nwb_bytes(mb: float) -> tuple[bytes, int]:
    """An NWB file of ``mb`` MiB of samples (electrodes, the ``ElectricalSeries``), byte for byte the same
    every run (its object ids drawn from a seeded generator); and its rows."""
    import h5py
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries

    rows = max(2 * ROWS_READ, int(mb * 2**20) // (CHANNELS * 2))
    ids = random.Random(50)
    buf = io.BytesIO()
    with mock.patch("hdmf.container.uuid4", lambda: uuid.UUID(int=ids.getrandbits(128), version=4)):
        nwb = NWBFile(
            session_description="neuromirror bench read-nwb",
            identifier="neuromirror-bench-read-nwb",
            session_start_time=WHEN,
            file_create_date=WHEN,
        )
        probe = nwb.create_device(name="probe")
        shank = nwb.create_electrode_group(name="shank", description="one shank", location="CA1", device=probe)
        for _ in range(CHANNELS):
            nwb.add_electrode(group=shank, location="CA1")
        region = nwb.create_electrode_table_region(list(range(CHANNELS)), "all electrodes")
        nwb.add_acquisition(ElectricalSeries(name=SERIES, data=samples(rows), electrodes=region, rate=30_000.0))
        with h5py.File(buf, "w") as h5, NWBHDF5IO(file=h5, mode="w") as out:
            out.write(nwb)
    return buf.getvalue(), rows


def _rounds(
    args: argparse.Namespace,
    net: NetworkArchives,
    work: Path,
    jobs: dict[str, dict],
    want: str,
    kinds: tuple[str, ...],
    reads: dict[tuple[float, str], list[dict]],
) -> None:
    """Every reader in alternating rounds at RTT 0 (first: what the stand-in and the readers' CPU cost
    alone) and at the RTT, each read measured into ``reads``."""
    for rtt in sorted({0.0, args.rtt}):  # RTT 0 first: what the stand-in and the readers' CPU cost alone
        net.set_rtt(rtt)
        for i in range(args.nwb_rounds):
            for kind in kinds if i % 2 == 0 else kinds[::-1]:
                reads[rtt, kind].append(_measured(net, work, jobs[kind], want))
                got = reads[rtt, kind][-1]
                say(
                    f"read-nwb RTT {rtt * 1000:.0f} ms round {i + 1} {kind}: {got['wall_s']:.3f} s, "
                    f"{got['requests']} requests ({got['whole_gets']} whole GETs), {got['bytes_down']:,} B"
                )


def _rows(
    args: argparse.Namespace,
    reads: dict[tuple[float, str], list[dict]],
    rows_of: tuple[str, ...],
    get_ms: float,
    size: int,
    made: Optional[dict],
) -> dict[str, dict]:
    """A row per reader at the RTT: medians, the RTT's cost over RTT 0, ratios to remfile's, and the floor
    (pynwb on a local copy); the reference's row with what making it read."""
    ms = round(args.rtt * 1000)
    out = {k: _side(k, reads[args.rtt, k], ms, args.nwb_mb, size) for k in rows_of}
    for kind, side in out.items():
        rtt0 = round(_median(reads[0.0, kind], "wall_s"), 4)
        side.update(stand_in_get_ms=get_ms, rtt0_wall_s=rtt0, rtt_cost_s=round(side["wall_s"] - rtt0, 4))
    rem = out["remfile"]
    rem["range_bytes"] = _median(reads[args.rtt, "remfile"], "range_bytes")
    floor = round(_median(reads[args.rtt, "local"], "wall_s"), 4)
    for side in (out[k] for k in rows_of if k != "remfile"):
        _over_remfile(side, rem)
        side["floor_wall_s"] = floor  # pynwb on a local copy: what no remote reader can go below
        beyond = rem["wall_s"] - floor
        side["beyond_floor_over_remfile"] = round((side["wall_s"] - floor) / beyond, 2) if beyond > 0 else None
    if made:
        out["reference"].update(made)
        say(f"read-nwb: through the reference {out['reference']['wall_s']:.3f} s, {out['reference']['requests']} "
            f"requests: time {out['reference']['time_over_remfile']}x remfile's; making it read "
            f"{made['make_bytes']:,} B in {made['make_requests']} requests ({made['make_fraction']:.1%} of the file)")  # fmt: skip
    return out


def bench_read_nwb(args: argparse.Namespace, net: NetworkArchives, work: Path, startup: float) -> list[dict]:
    """The scenario (see the module): its two rows."""
    t = time.perf_counter()
    data, rows = nwb_bytes(args.nwb_mb)
    start = rows // 2
    want = digest(samples(rows)[start : start + ROWS_READ])
    d = net.dandi
    ident = d.create_dandiset(name="bench network read-nwb", created=WHEN)
    with direct_puts(net):
        d.put_asset(ident, NWB_PATH, data, when=WHEN)
    say(
        f"read-nwb: {len(data) / 1e6:.1f} MB NWB file ({rows} x {CHANNELS}) in dandiset {ident} in {time.perf_counter() - t:.1f} s"
    )
    root = work / "net-read-nwb"
    net.set_rtt(0.0)
    net.clean()
    spec = f"dandi:{ident}"
    synced = run_sync("read-nwb-sync@0ms", 1, root, spec, ["--dandi-api", net.api_url], net, startup)
    (pinned,) = [x for x in _urls(root, f"{spec}@draft", NWB_PATH) if x["path"] == NWB_PATH]
    url = str(pinned.get("url") or "")
    if not url.startswith(net.s3_proxy.url) or "versionId=" not in url:
        raise RuntimeError(f"read-nwb: {NWB_PATH} has no pinned URL through the S3 proxy: {pinned}")
    say(f"read-nwb: synced in {synced['wall_s']:.2f} s; pinned URL {url}")
    get_ms = _stand_in_get_ms(url)
    say(f"read-nwb: a 1 KiB ranged GET of the file at RTT 0 takes {get_ms} ms (the stand-in's own time per request)")
    common = {"series": SERIES, "start": start, "rows": ROWS_READ}
    made = _made_reference(root, spec)  # None: no lindi here (scripts/_venv.sh builds it)
    kinds = (*KINDS, "reference") if made else KINDS
    jobs = {
        "remfile": {**common, "kind": "remfile", "url": url},
        "neuromirror": {
            **common,
            "kind": "neuromirror",
            "path": f"neuromirror://dandi/{ident}@draft/{NWB_PATH}",
            "root": str(root),
        },
        "reference": {**common, "kind": "reference", "path": f"dandi/{ident}@draft/{NWB_PATH}", "root": str(root)},
        "local": {**common, "kind": "local", "path": str(work / "read-nwb-local.nwb")},
    }
    (work / "read-nwb-local.nwb").write_bytes(data)
    rows_of = kinds
    kinds = (*kinds, "local")  # the floor, read in the same rounds: no row of its own
    reads: dict[tuple[float, str], list[dict]] = {(rtt, k): [] for rtt in {0.0, args.rtt} for k in kinds}
    try:
        _rounds(args, net, work, jobs, want, kinds, reads)
    finally:
        net.set_rtt(0.0)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
            (work / "read-nwb-local.nwb").unlink(missing_ok=True)
        net.archives.drop_objects(d.bucket)
    ms = round(args.rtt * 1000)
    out = _rows(args, reads, rows_of, get_ms, len(data), made)
    ours, rem, floor = out["neuromirror"], out["remfile"], out["neuromirror"]["floor_wall_s"]
    say(
        f"read-nwb at {ms} ms: neuromirror:// {ours['wall_s']:.3f} s ({ours['rtt0_wall_s']:.3f} at RTT 0), "
        f"{ours['requests']} requests, {ours['bytes_down']:,} B; remfile {rem['wall_s']:.3f} s ({rem['rtt0_wall_s']:.3f} "
        f"at RTT 0), {rem['requests']} requests, {rem['bytes_down']:,} B ({rem['range_bytes']:,} B in its ranges): "
        f"time {ours['time_over_remfile']}x, bytes {ours['bytes_over_remfile']}x ({ours['bytes_over_remfile_ranges']}x "
        f"its ranges), the RTT's cost {ours['rtt_cost_over_remfile']}x"
    )
    say(f"read-nwb: pynwb on a local copy (the floor) {floor:.3f} s; beyond it, neuromirror:// "
        f"{ours['beyond_floor_over_remfile']}x remfile's" + (f", the reference {out['reference']['beyond_floor_over_remfile']}x" if made else ""))  # fmt: skip
    return [out[k] for k in rows_of]


def _over_remfile(side: dict, rem: dict) -> None:
    """``side``'s ratios to remfile's row: time, bytes, requests, the RTT's cost."""
    for field, ratio in (
        ("wall_s", "time"),
        ("bytes_down", "bytes"),
        ("requests", "requests"),
        ("rtt_cost_s", "rtt_cost"),
    ):
        side[f"{ratio}_over_remfile"] = round(side[field] / rem[field], 2) if rem[field] else None
    side["bytes_over_remfile_ranges"] = (
        round(side["bytes_down"] / rem["range_bytes"], 2) if rem["range_bytes"] else None
    )


def _made_reference(root: Path, spec: str) -> Optional[dict]:
    """The LINDI reference of the file made (in a process with lindi: the overlay), at RTT 0: what it read;
    None when lindi is not there."""
    from neuromirror.read.references.lindi_env import overlay, with_overlay

    if overlay() is None:
        say("read-nwb: no lindi overlay (scripts/_venv.sh builds it): no reference side")
        return None
    r = subprocess.run(
        [sys.executable, "-c", MAKE, str(root), spec],
        capture_output=True,
        text=True,
        env=with_overlay(child_env()),
        timeout=600,
    )
    if r.returncode != 0:
        raise RuntimeError(f"read-nwb: making the reference failed: {r.stderr.strip()[-1500:]}")
    got = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
    if got["failed"] or len(got["made"]) != 1:
        raise RuntimeError(f"read-nwb: the reference was not made: {got}")
    m = got["made"][0]
    return {
        "make_requests": m["requests"],
        "make_bytes": m["bytes_read"],
        "make_fraction": round(m["bytes_read"] / m["size"], 4),
    }


def _measured(net: NetworkArchives, work: Path, job: dict, want: str) -> dict:
    """One read (:func:`_read`) with what the S3 proxy saw meanwhile; its rows checked against ``want``."""
    net.clean()
    got = _read(work, job)
    log = list(net.s3_proxy.log)
    got.update(requests=net.s3_proxy.requests, bytes_down=net.s3_proxy.bytes_down, api_requests=net.api_proxy.requests)
    # remfile asks for the file's length with a GET of the whole file that it drops once the headers are in:
    # the bytes the proxy sent before the drop count in bytes_down (a real link moves them too)
    got["whole_gets"] = sum(1 for r in log if r.method == "GET" and r.status != 206)  # 200, or None if dropped
    if got["digest"] != want:
        raise RuntimeError(f"read-nwb: {job['kind']} read other rows than were written ({got})")
    return got


def _read(work: Path, job: dict) -> dict:
    """One read by :mod:`.read_nwb_client` in a process of its own: its JSON."""
    from neuromirror.read.references.lindi_env import with_overlay

    path = work / f"read-nwb-{job['kind']}.json"
    path.write_text(json.dumps(job))
    r = subprocess.run(
        [sys.executable, "-m", "neuromirror.bench.scenarios.far.read_nwb_client", str(path)],
        capture_output=True,
        text=True,
        env=with_overlay(child_env()) if job["kind"] == "reference" else child_env(),
        timeout=600,
    )
    if r.returncode != 0:
        raise RuntimeError(f"read-nwb {job['kind']} reader failed: {r.stderr.strip()[-1500:]}")
    return dict(json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1]))  # lindi warns


def _stand_in_get_ms(url: str, n: int = 5) -> float:
    """The median time of a 1 KiB ranged GET of ``url`` (the proxies at RTT 0): what the S3 stand-in spends per
    request on this file, on both sides' every request alike (moto reads the whole object for each range)."""
    import requests

    times = []
    with requests.Session() as s:
        for i in range(n):
            t = time.perf_counter()
            r = s.get(url, headers={"Range": f"bytes={i * 1024}-{i * 1024 + 1023}"}, timeout=60)
            times.append((time.perf_counter() - t) * 1000)
            if r.status_code != 206 or len(r.content) != 1024:
                raise RuntimeError(f"read-nwb: a ranged GET of {url}: HTTP {r.status_code}, {len(r.content)} bytes")
    return round(statistics.median(times), 1)


def _median(reads: list[dict], field: str) -> Any:
    return statistics.median(r[field] for r in reads)


def _side(kind: str, reads: list[dict], ms: int, mb: float, size: int) -> dict:
    return {
        "scenario": f"read-nwb-{kind}@{ms}ms",
        "n": int(mb) if float(mb).is_integer() else mb,
        "base": "read-nwb",
        "side": kind,
        "rtt_ms": ms,
        "rounds": len(reads),
        "file_bytes": size,
        "rows_read": ROWS_READ,
        "data_equal": True,  # else the scenario failed
        "wall_s": round(_median(reads, "wall_s"), 4),
        "open_s": round(_median(reads, "open_s"), 4),
        "slice_s": round(_median(reads, "slice_s"), 4),
        "requests": _median(reads, "requests"),
        "bytes_down": _median(reads, "bytes_down"),
        "walls_s": [r["wall_s"] for r in reads],
        "requests_per_round": [r["requests"] for r in reads],
        "bytes_per_round": [r["bytes_down"] for r in reads],
        "api_requests": max(r["api_requests"] for r in reads),
        "whole_gets": max(r["whole_gets"] for r in reads),
    }

"""``nwb-search`` and ``nwb-references`` (issue 60): a dandiset of ``--nwb-files`` NWB files, searched and referenced.

The files: one pynwb-written NWB file (subject, session, an electrodes table over 8 electrodes), copied
``--nwb-files`` times with its fields rewritten by h5py (subject ``mouse-0000``..., session, identifier, the
electrodes' regions: half the files name ``VISp``), so every file has its own bytes and key; ~100 kB each.
They are assets of one dandiset, mirrored with ``neuromirror sync``.

* ``nwb-search`` (target: < 1 s for 1,000 files): the files' fields go into the index as the sync's
  references hook records them (:func:`neuromirror.read.references.fields.nwb_fields` of each file, opened
  with h5py from its bytes, then :func:`~neuromirror.read.references.fields.record_fields` under the key the
  sync recorded), then ``neuromirror search --nwb-field ... --json`` is timed end to end, ``--nwb-search-rounds``
  times each (half the files match, one file matches two fields), beside ``neuromirror --version`` (the
  start-up every command pays).  Row ``nwb-search``: ``search_s`` (the slowest query's median), each query's
  median and matches, ``version_s``, ``beyond_startup_s``.
* ``nwb-references`` (target: 1,000 at RTT 50 ms in <= 2 minutes; needs lindi: the overlay ``scripts/_venv.sh``
  builds): the same dandiset on the network stand-in (:class:`~neuromirror.bench.network.NetworkArchives`),
  synced at RTT 0; then, the proxies at ``--nwb-refs-rtt``, :func:`neuromirror.read.references.batch.make_references`
  of every file in a process with lindi (``--nwb-jobs`` worker processes).  Row ``nwb-references`` (``rtt_ms``):
  wall, the process tree's CPU, the load average around it, ``s_per_1000`` (the wall scaled to 1,000 files)
  and ``cpu_floor_s_per_1000`` (the CPU over this machine's cores: the wall were the cores all free).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.targets import judge, reported

NWB_SCENARIOS = ("nwb-search", "nwb-references")
WHEN = datetime(2025, 12, 1, tzinfo=timezone.utc)
REGIONS = ("VISp", "CA1")
TARGETS = (
    ("nwb-search", "search_s", 1.0, "under", "nwb-search: search --nwb-field over the files' fields, s"),
    ("nwb-references", "s_per_1000", 120.0, "max", "nwb-references: 1,000 references at the RTT, s"),
)
#: in a process with lindi: every missing reference of the dandiset's draft, timed inside
MAKE = """
import json, sys, time
from pathlib import Path
from neuromirror.read.references.batch import make_references
t = time.perf_counter()
got = make_references(Path(sys.argv[1]), None, [(sys.argv[2], "draft")], jobs=int(sys.argv[3]))
print(json.dumps({"made": len(got.made), "failed": got.failed[:5], "n_failed": len(got.failed),
                  "seconds": time.perf_counter() - t, "bytes": sum(m.bytes_read for m in got.made),
                  "requests": sum(m.requests for m in got.made)}))
"""
#: in a process with lindi: ``N`` of the references made again in this process, one at a time, under cProfile
PROFILE = """
import cProfile, io, json, pstats, sys
from pathlib import Path
from neuromirror.read.fsspec_fs import NeuromirrorFileSystem
from neuromirror.read.references.batch import _one, wanted
root, n = Path(sys.argv[1]), int(sys.argv[3])
for f in sorted((root / ".neuromirror" / "lindi").rglob("*.lindi.json"))[:n]:  # only these n made again
    f.unlink()
fs = NeuromirrorFileSystem(root=str(root))
paths, _ = wanted(fs, [(sys.argv[2], "draft")])
prof = cProfile.Profile()
prof.enable()
for path in paths:  # what one worker does per file (the fields' index write aside), in this thread
    _one(fs, path)
prof.disable()
out = io.StringIO()
stats = pstats.Stats(prof, stream=out)
total = stats.total_tt
stats.sort_stats("cumulative").print_stats(25)
print(out.getvalue(), file=sys.stderr)
rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])[:25]
top = [{"function": f"{Path(k[0]).name}:{k[1]}({k[2]})", "cum_ms_per_file": round(1000 * v[3] / max(1, len(paths)), 1)}
       for k, v in rows]
print(json.dumps({"made": len(paths), "ms_per_file": round(1000 * total / max(1, len(paths)), 1), "top": top}))
"""


def nwb_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("nwb-search, nwb-references (issue 60): a dandiset of N NWB files")
    g.add_argument("--nwb-files", type=int, default=1000, help="nwb-*: NWB files in the dandiset (default 1000)")
    g.add_argument("--nwb-search-rounds", type=int, default=5, help="nwb-search: timed runs of each query (5)")
    g.add_argument("--nwb-refs-rtt", type=float, default=0.05, help="nwb-references: the RTT, s (default 0.05)")
    g.add_argument("--nwb-jobs", type=int, default=4, help="nwb-references: make_references' jobs (default 4)")
    g.add_argument("--nwb-profile", type=int, default=0, help="nwb-references: N made again under cProfile (0)")


def nwb_targets(results: list[dict]) -> list[dict]:
    return [t for r in results if r.get("base") in NWB_SCENARIOS for t in reported(r, "issue 60")]


def template() -> bytes:
    """One NWB file as pynwb writes it: subject, session, 8 electrodes."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject

    nwb = NWBFile(
        session_description="neuromirror bench nwb",
        identifier="neuromirror-bench-nwb",
        session_start_time=WHEN,
        file_create_date=WHEN,
        session_id="ses-0000",
        subject=Subject(subject_id="mouse-0000", species="Mus musculus", sex="F", age="P90D"),
    )
    probe = nwb.create_device(name="probe")
    shank = nwb.create_electrode_group(name="shank", description="one shank", location="brain", device=probe)
    for i in range(8):
        nwb.add_electrode(group=shank, location=REGIONS[i % 2])
    buf = io.BytesIO()
    import h5py

    with h5py.File(buf, "w") as h5, NWBHDF5IO(file=h5, mode="w") as out:
        out.write(nwb)
    return buf.getvalue()


def nwb_files(n: int) -> dict[str, bytes]:
    """``n`` files from :func:`template`, each with its own fields (half of them name VISp)."""
    import h5py
    import numpy as np

    base = template()
    out = {}
    for i in range(n):
        buf = io.BytesIO(base)
        with h5py.File(buf, "r+") as h5:
            h5["identifier"][()] = f"neuromirror-bench-nwb-{i:04d}"
            h5["general/session_id"][()] = f"ses-{i:04d}"
            h5["general/subject/subject_id"][()] = f"mouse-{i:04d}"
            where = REGIONS[0] if i % 2 == 0 else REGIONS[1]
            h5["general/extracellular_ephys/electrodes/location"][...] = np.array([where] * 8, dtype=object)
        out[f"sub-mouse-{i:04d}/sub-mouse-{i:04d}_ses-{i:04d}_ecephys.nwb"] = buf.getvalue()
    return out


def _dandiset(dandi: Any, archives: Any, files: dict[str, bytes]) -> str:
    from neuromirror.bench.archives import direct_puts

    ident = str(dandi.create_dandiset(name="bench nwb", created=WHEN))
    with direct_puts(archives):
        for path, data in files.items():
            dandi.put_asset(ident, path, data, when=WHEN)
    return ident


def _sync(root: Path, spec: str, api: str) -> float:
    r = run_measured([*neuromirror_cmd(), "--root", str(root), "sync", spec, "--dandi-api", api, "-q"], env=child_env())
    return float(r["wall"])


def bench_nwb(name: str, args: argparse.Namespace, archives: Any, work: Path) -> list[dict]:
    """The rows of scenario ``name`` (see the module)."""
    t = time.perf_counter()
    files = nwb_files(args.nwb_files)
    say(
        f"{name}: {len(files)} NWB files ({sum(map(len, files.values())) / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s"
    )
    rows = (
        [_search(args, archives, work, files)] if name == "nwb-search" else [_references(args, archives, work, files)]
    )
    judge(rows, TARGETS)
    return rows


def _record(root: Path, source: str, files: dict[str, bytes]) -> float:
    """Each file's fields into the index as the references hook records them; the seconds it took."""
    import h5py

    from neuromirror.index.schema import ensure_named
    from neuromirror.read.references.fields import nwb_fields, record_fields

    t = time.perf_counter()
    from neuromirror.read.loss import mirror_index

    conn = sqlite3.connect(str(mirror_index(root, None)), timeout=60)
    try:
        ensure_named(conn)
        keys = dict(conn.execute("SELECT path, key FROM entries WHERE source = ?", [source]).fetchall())
        for path, data in files.items():
            with h5py.File(io.BytesIO(data), "r") as h5:
                record_fields(conn, keys[path], nwb_fields(h5))
    finally:
        conn.close()
    return time.perf_counter() - t


def _timed(cmd: list[str], rounds: int) -> tuple[float, Any]:
    """The median wall of ``rounds`` runs of ``cmd``, and what the last printed (JSON, or None: not JSON)."""
    walls, out = [], b""
    for _ in range(rounds):
        r = run_measured(cmd, env=child_env(), check=False)
        walls.append(r["wall"])
        out = r["stdout"]
    return statistics.median(walls), json.loads(out) if out.startswith((b"[", b"{")) else None


def _search(args: argparse.Namespace, archives: Any, work: Path, files: dict[str, bytes]) -> dict:
    root = work / "root-nwb-search"
    ident = _dandiset(archives.dandi, archives, files)
    spec = f"dandi:{ident}"
    synced = _sync(root, spec, archives.dandi.api_url)
    recorded = _record(root, spec, files)
    say(f"nwb-search: synced in {synced:.1f} s; fields recorded in {recorded:.2f} s")
    base = [*neuromirror_cmd(), "--root", str(root)]
    queries = {
        "half": ["--nwb-field", f"location={REGIONS[0]}"],
        "one": ["--nwb-field", "subject_id=mouse-0002", "--nwb-field", f"location={REGIONS[0]}"],
        "species": ["--nwb-field", "species=mus musculus"],
    }
    res: dict[str, Any] = {"scenario": "nwb-search", "base": "nwb-search", "n": len(files)}
    for label, q in queries.items():
        wall, got = _timed([*base, "search", *q, "--json"], args.nwb_search_rounds)
        res[f"{label}_s"], res[f"{label}_matches"] = round(wall, 4), len(got or [])
    version, _ = _timed([*neuromirror_cmd(), "--version"], args.nwb_search_rounds)
    res.update(search_s=max(res[f"{q}_s"] for q in queries), version_s=round(version, 4), record_s=round(recorded, 2))
    res["beyond_startup_s"] = round(res["search_s"] - version, 4)
    if res["half_matches"] != (len(files) + 1) // 2 or res["one_matches"] != 1 or res["species_matches"] != len(files):
        raise RuntimeError(f"nwb-search: wrong matches: {res}")
    say(f"nwb-search: {res['search_s']:.3f} s (neuromirror --version {version:.3f} s) over {len(files)} files")
    return res


def _references(args: argparse.Namespace, archives: Any, work: Path, files: dict[str, bytes]) -> dict:
    from neuromirror.bench.network import NetworkArchives
    from neuromirror.read.references.lindi_env import overlay, with_overlay

    if overlay() is None:
        raise RuntimeError("nwb-references: no lindi overlay (scripts/_venv.sh builds it)")
    net = NetworkArchives(archives)
    root = work / "root-nwb-references"
    try:
        net.set_rtt(0.0)
        ident = _dandiset(net.dandi, net, files)
        spec = f"dandi:{ident}"
        say(f"nwb-references: synced at RTT 0 in {_sync(root, spec, net.api_url):.1f} s")
        net.set_rtt(args.nwb_refs_rtt)
        load = os.getloadavg()[0]
        r = run_measured(
            [sys.executable, "-c", MAKE, str(root), spec, str(args.nwb_jobs)], env=with_overlay(child_env())
        )
        load_after = os.getloadavg()[0]
        profile = _profiled(root, spec, args.nwb_profile) if args.nwb_profile else None
    finally:
        net.set_rtt(0.0)
        net.close()
    got = json.loads([line for line in r["stdout"].decode().splitlines() if line.startswith("{")][-1])
    if got["made"] != len(files) or got["n_failed"]:
        raise RuntimeError(f"nwb-references: {got['made']} of {len(files)} made: {got['failed']}")
    ms, n, cores = round(args.nwb_refs_rtt * 1000), len(files), os.cpu_count() or 1
    res = {
        "scenario": "nwb-references",
        "base": "nwb-references",
        "n": n,
        "rtt_ms": ms,
        "jobs": args.nwb_jobs,
        "wall_s": round(r["wall"], 2),
        "make_s": round(got["seconds"], 2),
        "cpu_s": round(r["cpu"], 2),
        "cpu_ms_per_file": round(1000 * r["cpu"] / n, 1),
        "requests_per_file": round(got["requests"] / n, 1),
        "bytes_per_file": round(got["bytes"] / n),
        "s_per_1000": round(r["wall"] * 1000 / n, 1),
        "cpu_floor_s_per_1000": round(r["cpu"] * 1000 / n / cores, 1),
        "cores": cores,
        "load_before": round(load, 2),
        "load_after": round(load_after, 2),
    }
    if profile:
        res["profile"] = profile
        say(f"nwb-references: under cProfile, one at a time: {profile['ms_per_file']} ms a file (waits included)")
    say(
        f"nwb-references at {ms} ms: {n} in {res['wall_s']} s ({res['s_per_1000']} s per 1,000), CPU {res['cpu_s']} s "
        f"({res['cpu_ms_per_file']} ms a file; {cores} cores: floor {res['cpu_floor_s_per_1000']} s per 1,000), "
        f"load {res['load_before']} -> {res['load_after']}"
    )
    return res


def _profiled(root: Path, spec: str, n: int) -> dict:
    """``n`` references made again one at a time in one process under cProfile (the proxies still at the RTT):
    the CPU per file and the 25 functions of most cumulative time (the full listing on the bench's stderr)."""
    from neuromirror.read.references.lindi_env import with_overlay

    r = run_measured([sys.executable, "-c", PROFILE, str(root), spec, str(n)], env=with_overlay(child_env()))
    sys.stderr.write(r["stderr"].decode(errors="replace")[-8000:])
    return dict(json.loads([line for line in r["stdout"].decode().splitlines() if line.startswith("{")][-1]))

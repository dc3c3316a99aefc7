"""``service-soak`` (issue 59): what ``neuromirror serve`` itself costs, idling through no-change runs.

A soak of the service with a directory store and an S3 store reported 1.9-2.2 CPU-s a minute and
137-161 MiB for three mostly no-change runs a minute, against 0.76 CPU-s and 84-87 MiB with one
directory store: each no-change cycle made five boto3 clients (~0.1 s of CPU each) for a keep that
found every version's mark, and counted what is at risk again (:mod:`neuromirror.service.keeping`).

Two services run side by side, each a ``neuromirror serve`` process of its own, on one dandiset of
``--service-soak-files`` files (one published version, kept by ``keep: published``): one keeps into a
directory store, the other into a directory store and an S3 store (moto, the bench's stand-in) with
``copies: 2``, both at ``--service-soak-runs`` runs a minute.  Once each has made its first (cold) run
and kept it, the soak lasts ``--service-soak-minutes`` (default 2) of no-change runs, while each service
process's CPU time (its own, and its reaped children's: git) and RSS are read from ``/proc`` every
0.5 s.  A row per side (``service-soak-dir``, ``service-soak-dir+s3``), and ``service-soak``: the CPU
seconds per minute of the two-store service over the one-store one's (target <= 1.2x) and its peak RSS
over the soak (target < 120 MB); ``VmHWM`` (the process's peak over its life, the cold run's included)
beside it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import child_env, index_rows, neuromirror_cmd, say, stop_process
from neuromirror.bench.targets import judge, reported

TARGETS = (
    ("service-soak", "x_cpu", 1.2, "max", "service-soak: CPU-s per minute, dir + S3 store over one dir store"),
    ("service-soak", "peak_rss_mb", 120, "under", "service-soak: peak RSS of the dir + S3 service over the soak (MB)"),
)
BUCKET = "service-soak-keep"
_TICK = os.sysconf("SC_CLK_TCK")


def add_options(p: Any) -> None:
    g = p.add_argument_group("service-soak (issue 59): two services side by side, no-change runs")
    g.add_argument("--service-soak-minutes", type=float, default=2.0, help="service-soak: minutes measured (default 2)")
    g.add_argument("--service-soak-runs", type=float, default=3.0, help="service-soak: runs a minute (default 3)")
    g.add_argument(
        "--service-soak-files", type=int, default=50, help="service-soak: files in the dandiset (default 50)"
    )


class Side:
    """One ``neuromirror serve`` process and its samples."""

    def __init__(self, label: str, work: Path, stores: list[str], api: str, spec: str, every: float) -> None:
        self.label, self.root = label, work / f"service-soak-{label.replace('+', '-')}"
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = self.root.parent / f"{self.root.name}.yaml"
        cfg.write_text(
            "contact: bench@example.org\n"
            f"stores: {json.dumps(stores)}\ncopies: {len(stores)}\n"
            f"defaults:\n  schedule: {{interval: {every:g}s}}\n  options: {{dandi_api: {json.dumps(api)}}}\n"
            f"sources:\n  - spec: {json.dumps(spec)}\n    keep: published\n"
        )
        self.log = (self.root.parent / f"{self.root.name}.log").open("w")
        self.proc = subprocess.Popen(
            [*neuromirror_cmd(), "--root", str(self.root), "serve", "--config", str(cfg)],
            env=child_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.spec = spec
        self.start: Optional[tuple[float, float, float]] = None
        self.runs_at_start = 0
        self.peak_kb = 0

    def cpu(self) -> tuple[float, float]:
        """(own, reaped children's) CPU seconds of the service process."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK, (int(fields[13]) + int(fields[14])) / _TICK

    def status_kb(self, name: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        return 0

    def runs(self) -> list[tuple[str, bool]]:
        """(outcome, kept) of each finished run of the source, from the index (read-only)."""
        if not (self.root / ".neuromirror" / "index.sqlite").exists():
            return []
        try:
            rows = index_rows(
                self.root,
                "SELECT outcome, json_extract(report, '$.keep') IS NOT NULL FROM runs WHERE source = ? "
                "AND ended IS NOT NULL ORDER BY id",
                self.spec,
            )
        except sqlite3.OperationalError:  # not made yet
            return []
        return [(str(o), bool(k)) for o, k in rows]

    def warm(self) -> bool:
        """The first run ended and kept (the cold sync and keep are not what the soak measures)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.label}: the service exited {self.proc.returncode}; see {self.log.name}")
        return any(kept for _, kept in self.runs())

    def begin(self) -> None:
        own, children = self.cpu()
        self.start, self.runs_at_start = (time.monotonic(), own, children), len(self.runs())

    def sample(self) -> None:
        self.peak_kb = max(self.peak_kb, self.status_kb("VmRSS"))

    def row(self, n: int) -> dict:
        assert self.start is not None
        minutes = (time.monotonic() - self.start[0]) / 60
        own, children = self.cpu()
        runs = self.runs()[self.runs_at_start :]
        return {
            "scenario": f"service-soak-{self.label}",
            "n": n,
            "minutes": round(minutes, 2),
            "runs": len(runs),
            "outcomes": sorted({o for o, _ in runs}),
            "kept_runs": sum(k for _, k in runs),
            "cpu_s_per_min": round((own - self.start[1] + children - self.start[2]) / minutes, 3),
            "own_cpu_s_per_min": round((own - self.start[1]) / minutes, 3),
            "children_cpu_s_per_min": round((children - self.start[2]) / minutes, 3),
            "peak_rss_mb": round(self.peak_kb / 1024, 1),
            "hwm_mb": round(self.status_kb("VmHWM") / 1024, 1),
        }

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def bench_service_soak(args: Any, archives: Archives, work: Path) -> list[dict]:
    n, minutes, every = args.service_soak_files, args.service_soak_minutes, 60.0 / max(0.1, args.service_soak_runs)
    ident = _dandiset(archives, n)
    archives.s3.create_bucket(BUCKET, versioned=False, public=False)
    os.environ.update(NEUROMIRROR_STORE_ENDPOINT=archives.s3.endpoint_url)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIASERVICESOAK00001")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "service-soak-secret")
    spec, api = f"dandi:{ident}", archives.dandi.api_url
    sides = [
        Side("dir", work, [str(work / "service-soak-store-a")], api, spec, every),
        Side("dir+s3", work, [str(work / "service-soak-store-b"), f"s3://{BUCKET}/keep"], api, spec, every),
    ]
    try:
        _until(lambda: all(s.warm() for s in sides), 600, "the services' first runs")
        for s in sides:
            s.begin()
        say(f"service-soak: both services warm; {minutes:g} min of no-change runs every {every:g} s")
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            for s in sides:
                s.sample()
            time.sleep(0.5)
        rows = [s.row(n) for s in sides]
    finally:
        for s in sides:
            s.stop()
    one, two = rows
    summary = {
        "scenario": "service-soak",
        "n": n,
        "minutes": two["minutes"],
        "runs_per_minute": round(60.0 / every, 2),
        "cpu_s_per_min_one": one["cpu_s_per_min"],
        "cpu_s_per_min_two": two["cpu_s_per_min"],
        "x_cpu": round(two["cpu_s_per_min"] / one["cpu_s_per_min"], 2) if one["cpu_s_per_min"] else None,
        "x_own_cpu": round(two["own_cpu_s_per_min"] / one["own_cpu_s_per_min"], 2)
        if one["own_cpu_s_per_min"]
        else None,
        "peak_rss_mb": two["peak_rss_mb"],
        "peak_rss_mb_one": one["peak_rss_mb"],
        "hwm_mb": two["hwm_mb"],
        "load": round(os.getloadavg()[0], 2),
    }
    for r in rows:
        say(
            f"service-soak {r['scenario'][13:]}: {r['cpu_s_per_min']} CPU-s/min ({r['own_cpu_s_per_min']} its own), "
            f"{r['runs']} runs ({', '.join(r['outcomes'])}), {r['kept_runs']} kept; RSS peak {r['peak_rss_mb']} MB "
            f"(VmHWM {r['hwm_mb']})"
        )
    judge([summary], TARGETS)
    return [*rows, summary]


def service_soak_targets(results: list[dict]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in results:
        if r.get("scenario") == "service-soak":
            out += reported(r, f"{r['minutes']} min, {r['runs_per_minute']} runs/min, a dandiset of {r['n']} files")
    return out


def _dandiset(archives: Archives, n: int) -> str:
    """A dandiset of ``n`` files of 2 kB with real bytes (keep copies them) and one published version."""
    import hashlib

    when = datetime(2024, 9, 1, tzinfo=timezone.utc)
    d = archives.dandi
    ident = d.create_dandiset(name="bench service soak", created=when)
    for i in range(n):
        d.put_asset(
            ident, f"sub-{i // 10:02d}/f{i:04d}.nwb", hashlib.sha256(f"{ident}:{i}".encode()).digest() * 64, when=when
        )
    d.publish(ident, when=when)
    return ident


def _until(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"service-soak: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.5)

"""Issue 59's measured targets, run beside the archive: ``ceiling`` (an operator's cap and name on every
request, judged at the counting proxy: :mod:`.ceiling`, with 2 Dask workers: :mod:`.dask_side`) and
``audit-scale`` (``neuromirror audit`` over 2,000 synced dandisets: :mod:`.audit_scale`, the index's rows
copied from real syncs by :mod:`.audit_rows`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def beside_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "ceiling, audit-scale (issue 59): the per-endpoint ceiling and the User-Agent at the counting proxy; "
        "audit over an index of N synced dandisets"
    )
    for flag, kind, default, text in (
        ("--ceiling-dandisets", int, 20, "ceiling: dandisets of the stand-in (default 20)"),
        ("--ceiling-files", int, 3, "ceiling: blob assets of each (default 3)"),
        ("--ceiling-rate", float, 20.0, "ceiling: --max-rate of the dandi:* sync, per second (default 20)"),
        ("--ceiling-in-flight", int, 4, "ceiling: --max-in-flight of the dandi:* sync (default 4)"),
        ("--ceiling-rounds", int, 3, "ceiling: alternating rounds of the capped resync and its floors (default 3)"),
        ("--ceiling-dask", int, 1, "ceiling: 1 = also sync on 2 real Dask workers under the ceiling, 0 = not"),
        ("--audit-dandisets", int, 2000, "audit-scale: synced dandisets in the index (default 2000)"),
        ("--audit-planted", int, 5, "audit-scale: of them wrong on purpose, 7 findings each (default 5)"),
        ("--audit-runs", int, 500, "audit-scale: runs recorded per dandiset (default 500, what retention keeps)"),
        ("--audit-rounds", int, 3, "audit-scale: timed audit --json runs (default 3)"),
    ):
        g.add_argument(flag, type=kind, default=default, help=text)


def beside_targets(results: list[dict]) -> list[dict]:
    from neuromirror.bench.scenarios.beside.audit_scale import audit_scale_targets
    from neuromirror.bench.scenarios.beside.ceiling import ceiling_targets

    return ceiling_targets(results) + audit_scale_targets(results)


def bench_beside(name: str, args: argparse.Namespace, archives: Any, work: Path) -> list[dict]:
    """The rows of scenario ``name`` (``ceiling`` or ``audit-scale``), its module imported when asked for."""
    if name == "ceiling":
        from neuromirror.bench.scenarios.beside.ceiling import bench_ceiling

        return bench_ceiling(args, archives, work)
    from neuromirror.bench.scenarios.beside.audit_scale import bench_audit_scale

    return bench_audit_scale(args, archives, work)

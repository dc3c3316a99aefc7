"""``/metrics``' families of each source's syncs (runs, outcomes, times, sizes, durations), of the service itself,
its disks, drills and thawing packs, read from the status report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from neuromirror.account.status import SourceStatus, epoch
from neuromirror.service.metrics.backup import audit_family, backup_families, coverage_families
from neuromirror.service.metrics.base import DURATION_BUCKETS, Durations, counter, gauge
from neuromirror.service.metrics.stores import keep_families, risk_families

if TYPE_CHECKING:
    from neuromirror.api.records import Records

#: a gauge by source: its name, help and value of a row (None: left out)
SourceGauge = tuple[str, str, Callable[[SourceStatus], Optional[float]]]

#: how each source's syncs went, after the runs counted by outcome
_RUN_GAUGES: tuple[SourceGauge, ...] = (
    (
        "neuromirror_last_success_timestamp_seconds",
        "End of the last successful sync (Unix time).",
        lambda r: epoch(r.last_success),
    ),
    (
        "neuromirror_last_failure_timestamp_seconds",
        "End of the last failed sync (Unix time).",
        lambda r: epoch(r.last_failure),
    ),
    ("neuromirror_consecutive_failures", "Failed syncs since the last success.", lambda r: r.consecutive_failures or 0),
    ("neuromirror_running", "1 while a sync of the source runs.", lambda r: 1 if r.running_since else 0),
    (
        "neuromirror_source_ok",
        "1 if the source's last sync succeeded and refused nothing (0: failing, refusing or never synced).",
        lambda r: 1 if r.ok else 0,
    ),
    (
        "neuromirror_refused_items",
        "Items (assets, Zarrs, files) the last successful sync refused to mirror (status refusing when > 0).",
        lambda r: r.refused_count or 0,
    ),
)
#: when each source runs next and what it holds
_HELD_GAUGES: tuple[SourceGauge, ...] = (
    (
        "neuromirror_next_run_timestamp_seconds",
        "When the service runs the source next (Unix time).",
        lambda r: epoch(r.next_run),
    ),
    ("neuromirror_versions", "Versions (recorded states) of the source in the index.", lambda r: r.versions),
    ("neuromirror_files", "Files mirrored: those of the source's latest recorded state.", lambda r: r.files),
    ("neuromirror_bytes", "Bytes mirrored: those of the source's latest recorded state.", lambda r: r.bytes),
)


def families(report: dict, durations: Optional[Durations] = None) -> Iterator[Metric]:
    """Every metric family of a status report (and the index's run durations)."""
    rows = [SourceStatus.of(r) for r in report["sources"]]
    yield from _run_families(rows)
    yield from _holding_families(rows, durations)
    yield from keep_families(rows)
    yield from risk_families(rows)
    yield from audit_family(report)
    if "backup" in report:
        yield from backup_families(report["backup"])
    if "coverage" in report:
        yield from coverage_families(report["coverage"])
    yield from _service_families(report.get("service"))
    yield from _disk_families(report.get("disk") or [])
    yield from _drill_families(report.get("drills") or {})
    yield _thaw_family(report.get("thaws") or [])


def _run_families(rows: list[SourceStatus]) -> Iterator[Metric]:
    """The runs by outcome, the last success and failure, failures in a row, running, ok, refused, the status."""
    yield counter(
        "neuromirror_runs",
        "Finished sync runs recorded in the index, by outcome.",
        ["source", "outcome"],
        # in-flight runs are counted once they end
        (([r.source, outcome], n) for r in rows for outcome, n in sorted(r.runs.items()) if outcome != "running"),
    )
    for name, help_text, value in _RUN_GAUGES:
        yield gauge(name, help_text, ((r.source, value(r)) for r in rows))
    state = GaugeMetricFamily(
        "neuromirror_source_status",
        "1 for the source's status as status and the pages show it (ok, refusing, failing, backing off, running...).",
        labels=["source", "status"],
    )
    for r in rows:
        state.add_metric([r.source, r.status], 1)
    yield state


def _holding_families(rows: list[SourceStatus], durations: Optional[Durations]) -> Iterator[Metric]:
    """The next run, what each source holds (versions, files, bytes), the changes, the skips, the durations."""
    for name, help_text, value in _HELD_GAUGES:
        yield gauge(name, help_text, ((r.source, value(r)) for r in rows))
    yield counter(
        "neuromirror_file_changes",
        "Files added, removed and changed by finished syncs, from the index.",
        ["source", "change"],
        (([r.source, change], n) for r in rows for change, n in sorted((r.changes or {}).items())),
    )
    yield counter(
        "neuromirror_skipped",
        "Scheduled syncs skipped by this service process (busy: another process held the source; "
        "backoff: the source is failing).",
        ["source", "reason"],
        (([r.source, reason], n) for r in rows for reason, n in sorted((r.skipped or {}).items())),
    )
    hist = HistogramMetricFamily(
        "neuromirror_sync_duration_seconds",
        "Duration of finished syncs (ok, unchanged, failed, interrupted), from the index.",
        labels=["source"],
    )
    for sid, (counts, count, total) in sorted((durations or {}).items()):
        buckets = [(floatToGoString(b), c) for b, c in zip(DURATION_BUCKETS, counts)] + [("+Inf", count)]
        hist.add_metric([sid], buckets, total)
    yield hist


def _service_families(svc: Optional[dict[str, Any]]) -> Iterator[Metric]:
    """The runs each entry coalesced and when the service started (a running service only), and ``up``."""
    if svc:
        yield counter(
            "neuromirror_coalesced",
            "Scheduled runs merged into a running or queued one (misfires coalesced), per sources: entry.",
            ["entry"],
            (([spec], e.get("coalesced", 0)) for spec, e in sorted((svc.get("entries") or {}).items())),
        )
        start = GaugeMetricFamily("neuromirror_service_start_time_seconds", "When the service started (Unix time).")
        started = epoch(svc.get("started"))
        if started is not None:
            start.add_metric([], started)
        yield start
    yield GaugeMetricFamily("neuromirror_up", "1 if the service answering is running.", value=1 if svc else 0)


def _thaw_family(thaws: list[dict[str, Any]]) -> Metric:
    thawing = GaugeMetricFamily(
        "neuromirror_pack_thaws_outstanding",
        "Cold packs (GLACIER, DEEP_ARCHIVE) whose thaw a read asked for and no read has found done, per store.",
        labels=["store"],
    )
    for url in sorted({t["url"] for t in thaws}):
        thawing.add_metric([url], sum(t["url"] == url for t in thaws))
    return thawing


def _drill_families(drills: dict[str, dict]) -> Iterator[Metric]:
    """The last restore drill of each source (label ``source``; a drill of several sources counts for each):
    when it ended, whether it was ok, the bad copies it found, the objects it restored and could not."""
    for name, help_text, value in (
        ("timestamp_seconds", "End of the source's last restore drill (Unix time).", lambda x: float(x["finished"])),
        (
            "ok",
            "1 if the source's last restore drill restored every object and found no bad copy.",
            lambda x: 1.0 if x["result"] == "ok" else 0.0,
        ),
        ("mismatches", "Stored copies the source's last restore drill found wrong.", lambda x: float(x["mismatches"])),
        ("failed", "Objects the source's last restore drill could not restore.", lambda x: float(x["failed"])),
        ("objects", "Objects the source's last restore drill restored.", lambda x: float(x["objects"])),
    ):
        g = GaugeMetricFamily(f"neuromirror_drill_last_{name}", help_text, labels=["source"])
        for source, d in sorted(drills.items()):
            g.add_metric([source], value(d))
        yield g


def _disk_families(places: list[dict]) -> Iterator[Metric]:
    """Free and total bytes per place (the root, each directory store) and the threshold below which work refuses."""
    free = GaugeMetricFamily(
        "neuromirror_disk_free_bytes", "Free bytes on the file system of the root or a store.", labels=["what", "path"]
    )
    total = GaugeMetricFamily(
        "neuromirror_disk_total_bytes", "Size of the file system of the root or a store.", labels=["what", "path"]
    )
    need = GaugeMetricFamily(
        "neuromirror_disk_min_free_bytes",
        "Free bytes below which a sync, keep or publish refuses to start (min_free).",
        labels=["what", "path"],
    )
    for d in places:
        if d.get("error"):
            continue
        labels = [d["what"], d["path"]]
        free.add_metric(labels, d["free"])
        total.add_metric(labels, d["total"])
        need.add_metric(labels, d["min_free"])
    yield free
    yield total
    yield need


def add_changes(report: dict, records: Records) -> None:
    """Add each row's files added/removed/changed by finished runs (``changes``) from the index."""
    totals = records.change_totals()
    rows: list[SourceStatus] = report["sources"]
    for row in rows:
        row.add(changes=totals.get(row.source, {}))

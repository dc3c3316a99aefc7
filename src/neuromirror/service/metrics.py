"""``/metrics``: the status report as Prometheus metrics, through ``prometheus_client``.

A custom collector builds every family at scrape time from the status report (the
index and the service's state) and the run durations in the index, so the numbers
are the index's — they survive restarts and count syncs run by hand too.  Each
service has a private ``CollectorRegistry``: nothing goes through the library's
global registry (its process and platform collectors included).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from neuromirror.account.status import SourceStatus, epoch
from neuromirror.index.runs import change_totals

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: bounds of the sync-duration histogram, in seconds: a no-change resync .. a whole archive
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0)

#: per source: (cumulative counts per DURATION_BUCKETS bound, count, sum of seconds)
Durations = dict[str, tuple[list[int], int, float]]


def _gauge(name: str, help_text: str, values: Iterable[tuple[str, Optional[float]]]) -> Metric:
    """A gauge by source from (source, value) pairs; a None value is left out."""
    g = GaugeMetricFamily(name, help_text, labels=["source"])
    for sid, v in values:
        if v is not None:
            g.add_metric([sid], float(v))
    return g


def families(report: dict, durations: Optional[Durations] = None) -> Iterator[Metric]:
    """Every metric family of a status report (and the index's run durations)."""
    rows = [SourceStatus.of(r) for r in report["sources"]]
    runs = CounterMetricFamily(
        "neuromirror_runs", "Finished sync runs recorded in the index, by outcome.", labels=["source", "outcome"]
    )
    for r in rows:
        for outcome, n in sorted(r.runs.items()):
            if outcome != "running":  # in-flight runs are counted once they end
                runs.add_metric([r.source, outcome], n)
    yield runs
    yield _gauge(
        "neuromirror_last_success_timestamp_seconds",
        "End of the last successful sync (Unix time).",
        ((r.source, epoch(r.last_success)) for r in rows),
    )
    yield _gauge(
        "neuromirror_last_failure_timestamp_seconds",
        "End of the last failed sync (Unix time).",
        ((r.source, epoch(r.last_failure)) for r in rows),
    )
    yield _gauge(
        "neuromirror_consecutive_failures",
        "Failed syncs since the last success.",
        ((r.source, r.consecutive_failures or 0) for r in rows),
    )
    yield _gauge(
        "neuromirror_running",
        "1 while a sync of the source runs.",
        ((r.source, 1 if r.running_since else 0) for r in rows),
    )
    yield _gauge(
        "neuromirror_source_ok",
        "1 if the source's last sync succeeded and refused nothing (0: failing, refusing or never synced).",
        ((r.source, 1 if r.ok else 0) for r in rows),
    )
    yield _gauge(
        "neuromirror_refused_items",
        "Items (assets, Zarrs, files) the last successful sync refused to mirror (status refusing when > 0).",
        ((r.source, r.refused_count or 0) for r in rows),
    )
    state = GaugeMetricFamily(
        "neuromirror_source_status",
        "1 for the source's status as status and the pages show it (ok, refusing, failing, backing off, running...).",
        labels=["source", "status"],
    )
    for r in rows:
        state.add_metric([r.source, r.status], 1)
    yield state
    yield _gauge(
        "neuromirror_next_run_timestamp_seconds",
        "When the service runs the source next (Unix time).",
        ((r.source, epoch(r.next_run)) for r in rows),
    )
    yield _gauge(
        "neuromirror_versions",
        "Versions (recorded states) of the source in the index.",
        ((r.source, r.versions) for r in rows),
    )
    yield _gauge(
        "neuromirror_files",
        "Files mirrored: those of the source's latest recorded state.",
        ((r.source, r.files) for r in rows),
    )
    yield _gauge(
        "neuromirror_bytes",
        "Bytes mirrored: those of the source's latest recorded state.",
        ((r.source, r.bytes) for r in rows),
    )
    changed = CounterMetricFamily(
        "neuromirror_file_changes",
        "Files added, removed and changed by finished syncs, from the index.",
        labels=["source", "change"],
    )
    for r in rows:
        for change, n in sorted((r.changes or {}).items()):
            changed.add_metric([r.source, change], n)
    yield changed
    skipped = CounterMetricFamily(
        "neuromirror_skipped",
        "Scheduled syncs skipped by this service process (busy: another process held the source; "
        "backoff: the source is failing).",
        labels=["source", "reason"],
    )
    for r in rows:
        for reason, n in sorted((r.skipped or {}).items()):
            skipped.add_metric([r.source, reason], n)
    yield skipped
    hist = HistogramMetricFamily(
        "neuromirror_sync_duration_seconds",
        "Duration of finished syncs (ok, unchanged, failed, interrupted), from the index.",
        labels=["source"],
    )
    for sid, (counts, count, total) in sorted((durations or {}).items()):
        buckets = [(floatToGoString(b), c) for b, c in zip(DURATION_BUCKETS, counts)] + [("+Inf", count)]
        hist.add_metric([sid], buckets, total)
    yield hist
    yield from _keep_families(rows)
    yield from _risk_families(rows)
    yield from _audit_family(report)
    if "backup" in report:
        yield from backup_families(report["backup"])
    svc = report.get("service")
    if svc:
        coalesced = CounterMetricFamily(
            "neuromirror_coalesced",
            "Scheduled runs merged into a running or queued one (misfires coalesced), per sources: entry.",
            labels=["entry"],
        )
        for spec, e in sorted((svc.get("entries") or {}).items()):
            coalesced.add_metric([spec], e.get("coalesced", 0))
        yield coalesced
        start = GaugeMetricFamily("neuromirror_service_start_time_seconds", "When the service started (Unix time).")
        started = epoch(svc.get("started"))
        if started is not None:
            start.add_metric([], started)
        yield start
    yield GaugeMetricFamily("neuromirror_up", "1 if the service answering is running.", value=1 if svc else 0)
    yield from _disk_families(report.get("disk") or [])
    yield from _drill_families(report.get("drills") or {})
    thawing = GaugeMetricFamily(
        "neuromirror_pack_thaws_outstanding",
        "Cold packs (GLACIER, DEEP_ARCHIVE) whose thaw a read asked for and no read has found done, per store.",
        labels=["store"],
    )
    for url in sorted({t["url"] for t in report.get("thaws") or []}):
        thawing.add_metric([url], sum(t["url"] == url for t in report["thaws"]))
    yield thawing


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


def _keep_families(rows: list[SourceStatus]) -> Iterator[Metric]:
    """What the service's keep step did (``keep``, from the runs' reports: :func:`add_keeps`)."""
    kept = [(r.source, r.keep) for r in rows if r.keep]
    last = [(sid, keep["last"] or {}) for sid, keep in kept]
    yield _gauge(
        "neuromirror_kept_files",
        "Files of the versions the keep policy names that the store holds (after the last keep run).",
        ((sid, rec.get("files")) for sid, rec in last),
    )
    yield _gauge(
        "neuromirror_kept_bytes",
        "Bytes of the versions the keep policy names that the store holds (after the last keep run).",
        ((sid, rec.get("bytes")) for sid, rec in last),
    )
    yield _gauge(
        "neuromirror_keep_failed_files",
        "Files the last keep run could not keep (no URL gave the key's bytes).",
        ((sid, rec.get("failed")) for sid, rec in last),
    )
    runs = CounterMetricFamily(
        "neuromirror_keep_runs",
        "Keep runs after syncs, by outcome (ok, budget: stopped by the budget, failed: files failed, error).",
        labels=["source", "outcome"],
    )
    for sid, keep in kept:
        for outcome, n in sorted(keep["runs"].items()):
            runs.add_metric([sid, outcome], n)
    yield runs
    yield from _copies_families(kept)


def _copies_families(kept: list[tuple[str, dict]]) -> Iterator[Metric]:
    """The copies outside the archive (the last keep record), the stores, the rolling check, the keep lag."""
    import time

    from neuromirror.service.keeping import pending_lag

    now = time.time()
    files = GaugeMetricFamily(
        "neuromirror_copies_files",
        "Files of a kept version by verified copies outside the archive: enough (>= the wanted number), fewer, none.",
        labels=["source", "version", "copies"],
    )
    size = GaugeMetricFamily(
        "neuromirror_copies_bytes", "Bytes of those files.", labels=["source", "version", "copies"]
    )
    oldest = GaugeMetricFamily(
        "neuromirror_copies_oldest_check_timestamp_seconds",
        "When the least recently verified copy of a kept version was last read back right (Unix time).",
        labels=["source", "version"],
    )
    up = GaugeMetricFamily(
        "neuromirror_store_up", "1 if the last keep could use the store.", labels=["source", "store"]
    )
    bad = GaugeMetricFamily(
        "neuromirror_verify_bad_copies",
        "Stored copies the last rolling check found wrong or missing (each repaired when another copy had it).",
        labels=["source", "problem"],
    )
    lag = GaugeMetricFamily(
        "neuromirror_keep_lag_seconds",
        "Time from the mirror first recording a version to its last wanted copy (the last version completed).",
        labels=["source"],
    )
    waiting = GaugeMetricFamily(
        "neuromirror_keep_pending_seconds",
        "How long the oldest version still short of its wanted copies has waited (the archive's window is 7 days).",
        labels=["source"],
    )
    for sid, keep in kept:
        last = keep.get("last") or {}
        for v in (last.get("copies") or {}).get("versions", []):
            for k in ("enough", "fewer", "none"):
                files.add_metric([sid, v["version"], k], v[k]["files"])
                size.add_metric([sid, v["version"], k], v[k]["bytes"])
            when = epoch(v.get("oldest_check"))
            if when is not None:
                oldest.add_metric([sid, v["version"]], when)
        for st in last.get("stores") or []:
            up.add_metric([sid, st["url"]], 1 if st["up"] else 0)
        check = last.get("verify")
        if check:
            for k in ("bad", "missing", "unreadable"):
                bad.add_metric([sid, k], len(check.get(k) or []))
        if keep.get("lag"):
            lag.add_metric([sid], keep["lag"]["lag"])
        pending = pending_lag(last, now)
        waiting.add_metric([sid], pending or 0.0)
    yield from (files, size, oldest, up, bad, lag, waiting)


def _risk_families(rows: list[SourceStatus]) -> Iterator[Metric]:
    """What is at risk per source, version and kind (``at_risk_counted``: :func:`.risk.add_risks`).

    kind: ``kept`` (in a store), ``pinned`` (only behind a pinned URL at the archive), ``noncurrent``
    (pinned only by an S3 version the archive overwrote or deleted since: lifecycle expires it),
    ``unpinned`` (only behind URLs that can change or vanish).  Counted after each successful sync.
    """
    labels = ["source", "version", "kind"]
    files = GaugeMetricFamily(
        "neuromirror_at_risk_files",
        "Files of a published version (or the latest draft) by where their bytes are: kept in a store, "
        "only behind a pinned URL, only behind mutable URLs (counted after the last successful sync).",
        labels=labels,
    )
    size = GaugeMetricFamily(
        "neuromirror_at_risk_bytes", "Bytes of those files, as neuromirror_at_risk_files.", labels=labels
    )
    for r in rows:
        for v in (r.at_risk_counted or {}).get("versions", []):
            for kind in ("kept", "pinned", "noncurrent", "unpinned"):
                if kind not in v:  # a record counted before noncurrent pins were told apart
                    continue
                files.add_metric([r.source, v["version"], kind], v[kind]["files"])
                size.add_metric([r.source, v["version"], kind], v[kind]["bytes"])
    yield files
    yield size
    yield from _expiry_families(rows)


def _expiry_families(rows: list[SourceStatus]) -> Iterator[Metric]:
    """Unkept files pinned only by noncurrent S3 versions, the time the oldest has left before the archive's
    noncurrent-version expiry, and 1 when that is under a week (``at_risk_counted["expiry"]``)."""
    expiring = [r for r in rows if (r.at_risk_counted or {}).get("expiry")]

    def of(r: SourceStatus) -> dict:
        return (r.at_risk_counted or {})["expiry"]

    yield _gauge(
        "neuromirror_noncurrent_unkept_files",
        "Files of recorded versions pinned only by a noncurrent S3 version and kept in no store.",
        ((r.source, float(of(r)["unkept"]["files"])) for r in expiring),
    )
    yield _gauge(
        "neuromirror_noncurrent_expiry_seconds_left",
        "Time the oldest unkept noncurrent pin has left before the archive's noncurrent-version expiry.",
        ((r.source, of(r)["time_left_s"]) for r in expiring),
    )
    yield _gauge(
        "neuromirror_noncurrent_expiry_failing",
        "1 when an unkept noncurrent pin has less than a week left before it expires.",
        ((r.source, 1.0 if of(r)["state"] == "failing" else 0.0) for r in expiring),
    )


def add_audit(report: dict, index: Any, config: Any = None) -> None:
    """Add the audit's findings per source and kind (``report["audit"]``: (source, kind, count)) and the backup
    record (``report["backup"]``, the one ``/backup/`` shows, ``keep: {expire_after}`` of ``config`` applied),
    from the index alone; the audit made once, for both."""
    from neuromirror.account.backup import backup, expire_after_of
    from neuromirror.audit.findings import audit

    found = audit(index)
    report["audit"] = sorted((s, k, n) for (s, k), n in found.counts().items())
    report["backup"] = backup(index, expire_after=expire_after_of(config), found=found)


def _audit_family(report: dict) -> Iterator[Metric]:
    """What the mirror saw wrong upstream, per source and kind (:mod:`neuromirror.audit`); a 0 for every
    covered kind of every source, so that an alert can tell "none" from "not counted"."""
    if "audit" not in report:
        return
    g = GaugeMetricFamily(
        "neuromirror_audit_findings",
        "What the mirror saw wrong upstream, from what its syncs recorded (neuromirror audit), by kind.",
        labels=["source", "kind"],
    )
    for sid, kind, n in report["audit"]:
        g.add_metric([sid, kind], float(n))
    yield g


def backup_families(record: Any, now: Optional[float] = None) -> Iterator[Metric]:
    """The backup page's numbers (a :class:`~neuromirror.account.backup_model.Backup`): per source, objects and
    bytes in no store (of the newest state, of older ones only) and those the archive deletes within the
    window, kept nowhere; per store, the age and the result of its last ``verify --stores``."""
    import time

    now = time.time() if now is None else now
    parts = ["source", "state"]
    objects = GaugeMetricFamily(
        "neuromirror_backup_unkept_objects",
        "Objects (annexed files) of the recorded versions in no store (state: current = in the newest state, "
        "noncurrent = only in older ones): lost if the archive loses them.",
        labels=parts,
    )
    size = GaugeMetricFamily("neuromirror_backup_unkept_bytes", "Bytes of those objects.", labels=parts)
    expiring = GaugeMetricFamily(
        "neuromirror_backup_expiring_unkept_objects",
        f"Objects in no store that the archive's lifecycle deletes within {record.window_days} days "
        "(only a noncurrent S3 version serves them).",
        labels=["source"],
    )
    expiring_size = GaugeMetricFamily(
        "neuromirror_backup_expiring_unkept_bytes", "Bytes of those objects.", labels=["source"]
    )
    for b in record.sources:
        for state, count in (("current", b.nowhere.current), ("noncurrent", b.nowhere.noncurrent)):
            objects.add_metric([b.source, state], count.objects)
            size.add_metric([b.source, state], count.bytes)
        expiring.add_metric([b.source], b.expiring_count.objects)
        expiring_size.add_metric([b.source], b.expiring_count.bytes)
    yield from (objects, size, expiring, expiring_size)
    yield from _verification_families(record, now)


def _verification_families(record: Any, now: float) -> Iterator[Metric]:
    """Per store (its URL, else its UUID): how long ago its last ``verify --stores`` ended, and what it found:
    ``ok`` (every copy re-read right), ``repaired`` (wrong or missing copies kept again), ``failed`` (copies
    still wrong, gone or unreadable), ``never`` (not re-read yet: no age)."""
    age = GaugeMetricFamily(
        "neuromirror_store_last_verification_age_seconds",
        "Time since the store's last verify --stores re-read copies.",
        labels=["store"],
    )
    result = GaugeMetricFamily(
        "neuromirror_store_last_verification",
        "1 for the result of the store's last verify --stores (ok, repaired, failed, never).",
        labels=["store", "result"],
    )
    stores = {s.uuid: s for b in record.sources for s in b.stores}
    for s in sorted(stores.values(), key=lambda s: s.url or s.uuid):
        v, name = s.verification, s.url or s.uuid
        when = epoch(v.at) if v is not None else None
        if when is not None:
            age.add_metric([name], max(0.0, now - when))
        word = "never" if v is None else "ok" if v.ok else "failed" if v.unresolved else "repaired"
        result.add_metric([name, word], 1)
    yield age
    yield result


def add_keeps(report: dict, index: Any) -> None:
    """Add each row's keep facts (``keep``: last record and outcome counts) from the runs' reports."""
    from neuromirror.service.keeping import keep_facts

    facts = keep_facts(index)
    rows: list[SourceStatus] = report["sources"]
    for row in rows:
        row.add(keep=facts.get(row.source))


class StatusCollector:
    """A collector reading a fresh (report, durations) pair at every scrape."""

    def __init__(self, read: Callable[[], tuple[dict, Optional[Durations]]]):
        self._read = read

    def collect(self) -> Iterator[Metric]:
        report, durations = self._read()
        return families(report, durations)


def registry_for(read: Callable[[], tuple[dict, Optional[Durations]]]) -> CollectorRegistry:
    """A private registry holding one :class:`StatusCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(read))
    return registry


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def render_metrics(report: dict, durations: Optional[Durations] = None) -> str:
    """The Prometheus text exposition (format 0.0.4) of a status report."""
    return exposition(registry_for(lambda: (report, durations)))


def add_changes(report: dict, index: Any) -> None:
    """Add each row's files added/removed/changed by finished runs (``changes``) from the index."""
    totals = {sid: {"added": a or 0, "removed": r or 0, "changed": c or 0} for sid, a, r, c in change_totals(index)}
    rows: list[SourceStatus] = report["sources"]
    for row in rows:
        row.add(changes=totals.get(row.source, {}))

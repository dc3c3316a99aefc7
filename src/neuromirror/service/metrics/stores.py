"""``/metrics``' families of what the service kept (its keep step, the copies, the keep lag) and of what is at
risk (per version and kind, and the unkept pins on noncurrent S3 versions), from the runs' reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from neuromirror.account.status import SourceStatus, epoch
from neuromirror.service.metrics.base import gauge

if TYPE_CHECKING:
    from neuromirror.api.records import Records


def keep_families(rows: list[SourceStatus]) -> Iterator[Metric]:
    """What the service's keep step did (``keep``, from the runs' reports: :func:`add_keeps`)."""
    kept = [(r.source, r.keep) for r in rows if r.keep]
    last = [(sid, keep["last"] or {}) for sid, keep in kept]
    yield gauge(
        "neuromirror_kept_files",
        "Files of the versions the keep policy names that the store holds (after the last keep run).",
        ((sid, rec.get("files")) for sid, rec in last),
    )
    yield gauge(
        "neuromirror_kept_bytes",
        "Bytes of the versions the keep policy names that the store holds (after the last keep run).",
        ((sid, rec.get("bytes")) for sid, rec in last),
    )
    yield gauge(
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


def risk_families(rows: list[SourceStatus]) -> Iterator[Metric]:
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

    yield gauge(
        "neuromirror_noncurrent_unkept_files",
        "Files of recorded versions pinned only by a noncurrent S3 version and kept in no store.",
        ((r.source, float(of(r)["unkept"]["files"])) for r in expiring),
    )
    yield gauge(
        "neuromirror_noncurrent_expiry_seconds_left",
        "Time the oldest unkept noncurrent pin has left before the archive's noncurrent-version expiry.",
        ((r.source, of(r)["time_left_s"]) for r in expiring),
    )
    yield gauge(
        "neuromirror_noncurrent_expiry_failing",
        "1 when an unkept noncurrent pin has less than a week left before it expires.",
        ((r.source, 1.0 if of(r)["state"] == "failing" else 0.0) for r in expiring),
    )


def add_keeps(report: dict, records: Records) -> None:
    """Add each row's keep facts (``keep``: last record and outcome counts) from the runs' reports."""
    from neuromirror.service.keeping import keep_facts

    facts = keep_facts(records)
    rows: list[SourceStatus] = report["sources"]
    for row in rows:
        row.add(keep=facts.get(row.source))

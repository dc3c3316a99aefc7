"""``/metrics``' families of the audit (what the mirror saw wrong upstream) and of the backup page's numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional

from prometheus_client.core import GaugeMetricFamily, Metric

from neuromirror.account.status import epoch

if TYPE_CHECKING:
    from neuromirror.api import Mirror


def add_audit(report: dict, mirror: Mirror, config: Any = None) -> None:
    """Add the audit's findings per source and kind (``report["audit"]``: (source, kind, count)) and the backup
    record (``report["backup"]``, the one ``/backup/`` shows, ``keep: {expire_after}`` of ``config`` applied),
    from the index alone; the audit made once, for both."""
    from neuromirror.account.backup import expire_after_of

    found = mirror.audit().found
    report["audit"] = sorted((s, k, n) for (s, k), n in found.counts().items())
    report["backup"] = mirror.backup(expire_after=expire_after_of(config), found=found, catalogue=False)


def audit_family(report: dict) -> Iterator[Metric]:
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
    window, kept nowhere; per store, the age and the result of its last ``verify --stores``, whether it is
    reachable here and since when it is not."""
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
        "Time since the store's copies were last re-read and checked.",
        labels=["store"],
    )
    result = GaugeMetricFamily(
        "neuromirror_store_last_verification",
        "1 for what the last re-read of the store's copies found (ok, repaired, failed, never).",
        labels=["store", "result"],
    )
    reachable = GaugeMetricFamily(
        "neuromirror_store_reachable",
        "1 if the store's identity is where it is recorded (it is reachable here); 0 if not: its copies count as none.",
        labels=["store"],
    )
    lost = GaugeMetricFamily(
        "neuromirror_store_unreachable_since_seconds",
        "Unix time the store was first found not reachable here (only stores that are not).",
        labels=["store"],
    )
    stores = {s.uuid: s for b in record.sources for s in b.stores}
    for s in sorted(stores.values(), key=lambda s: s.url or s.uuid):
        v, name = s.verification, s.url or s.uuid
        when = epoch(v.at) if v is not None else None
        if when is not None:
            age.add_metric([name], max(0.0, now - when))
        word = "never" if v is None else "ok" if v.ok else "failed" if v.unresolved else "repaired"
        result.add_metric([name, word], 1)
        reachable.add_metric([name], 0.0 if s.unreachable_since else 1.0)
        since = epoch(s.unreachable_since) if s.unreachable_since else None
        if since is not None:
            lost.add_metric([name], since)
    yield from (age, result, reachable, lost)


#: how long /metrics reuses a coverage record while no run ended (it reads every version's files; the page counts
#: afresh at each request)
COVERAGE_TTL = 300.0
_COVERAGE: dict[tuple, tuple[float, Any]] = {}


def add_coverage(report: dict, mirror: Mirror, config: Any = None) -> None:
    """The coverage record (``report["coverage"]``, the one ``/coverage/`` shows) against the definitions'
    ``covered_by:`` LISTs (none named: the backup's column is 0); the last one reused for :data:`COVERAGE_TTL`
    seconds while the index records no new run."""
    import time

    lists = tuple(getattr(config, "covered_by", None) or ())
    newest = mirror.records.newest_run()
    key = (str(mirror.root), lists, newest)
    cached = _COVERAGE.get(key)
    if cached is not None and time.monotonic() - cached[0] < COVERAGE_TTL:
        report["coverage"] = cached[1]
        return
    _COVERAGE.clear()
    from neuromirror.account.backup import expire_after_of
    from neuromirror.errors import UserError

    try:
        report["coverage"] = mirror.coverage(covered_by=list(lists), expire_after=expire_after_of(config))
    except UserError as exc:  # a LIST gone or broken: the other families still answer, the log says why
        import logging

        logging.getLogger("neuromirror.service").warning("/metrics: the coverage is not counted: %s", exc)
        return
    _COVERAGE[key] = (time.monotonic(), report["coverage"])


def coverage_families(record: Any) -> Iterator[Metric]:
    """The coverage page's numbers: per source, archive prefix and holder (``archive``, ``backup``: the archive's
    own backup, ``kept``: the lab's stores, ``neither``), objects and bytes; what expires in neither."""
    parts = ["source", "prefix", "held_by"]
    objects = GaugeMetricFamily(
        "neuromirror_coverage_objects",
        "Objects of the recorded versions by archive prefix: in the archive, held by its own backup (covered_by), "
        "kept by the lab's stores, in neither (only the archive holds them).",
        labels=parts,
    )
    size = GaugeMetricFamily("neuromirror_coverage_bytes", "Bytes of those objects.", labels=parts)
    expiring = GaugeMetricFamily(
        "neuromirror_coverage_expiring_neither_objects",
        f"Objects in neither that the archive's lifecycle deletes within {record.window_days} days.",
        labels=["source"],
    )
    for s in record.sources:
        for p in s.prefixes.values():
            for held_by in ("archive", "backup", "kept", "neither"):
                count = getattr(p, held_by)
                objects.add_metric([s.source, p.prefix, held_by], count.objects)
                size.add_metric([s.source, p.prefix, held_by], count.bytes)
        expiring.add_metric([s.source], s.expiring.objects)
    yield from (objects, size, expiring)

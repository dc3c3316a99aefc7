"""What is at risk, counted by the service after each successful sync: what the status page and ``/metrics`` show.

Counting reads the git-annex branch's location logs and URLs of every file of every
published version (and the latest draft): cheap for a dandiset, seconds for a source of
millions of files — too slow to do for every page view or every Prometheus scrape. So the
source's worker counts once a sync (and the keep step after it) ended, off the request path,
and records the counts in that run's report in the index (``report["at_risk"]``); pages and
metrics read the newest record. The counts are those of :mod:`neuromirror.verify.risk`
(``neuromirror status`` counts the same, live): per version, files and bytes **kept** in a
store, only behind a **pinned** URL, pinned only by a **noncurrent** S3 version (overwritten or
deleted since: the bucket's lifecycle expires it), and only behind URLs that can change or vanish
(**unpinned**: BOSS cutouts, unversioned buckets).

A sync that found no change, with no keep since the last count (the record's ``basis``: the versions'
digest and the newest keep record's time), cannot have moved the counts: the last record is carried into
the run, recounted at most every :data:`RECOUNT_EVERY` (the expiry's time left, a keep made by hand).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Optional

from neuromirror.account.risk import add_live_risk
from neuromirror.api.records import Records
from neuromirror.service.state import SourceStatus
from neuromirror.util.dates import now_z
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.api import Mirror

log = logging.getLogger("neuromirror.service")

KINDS = ("kept", "pinned", "noncurrent", "unpinned")
#: a cycle with nothing new carries the last count forward for at most this long (seconds)
RECOUNT_EVERY = 3600.0


def count_risk(mirror: Mirror, sid: str, expire_after: Optional[float] = None) -> dict:
    """The at-risk record of source ``sid``: per version its counts, the unkept pins on noncurrent versions
    and the time the oldest has left (``expiry``), and when and how long counting took."""
    started = time.monotonic()
    versions = mirror.at_risk(sid)  # a source not mirrored: NotMirrored
    expiry = mirror.expiry(sid, expire_after or None)
    return {
        "versions": [{**v, "problems": len(v["problems"])} for v in versions],
        "expiry": expiry.to_json(),
        "counted_at": now_z(),
        "seconds": round(time.monotonic() - started, 3),
    }


def risk_after_sync(mirror: Mirror, sid: str, outcome: str, expire_after: Optional[float] = None) -> None:
    """Count ``sid``'s at-risk files after a successful sync and record them in its run; never fails the run."""
    if outcome not in ("ok", "unchanged"):
        return
    try:
        records = mirror.records
        basis = _basis(records, sid)
        last = risk_facts(records, sid).get(sid)
        if outcome == "unchanged" and last is not None and last.get("basis") == basis and _fresh(last):
            record = last  # nothing synced or kept since it was counted (see the module's docstring)
        else:
            record = {**count_risk(mirror, sid, expire_after), "basis": basis}
    except Exception as exc:  # noqa: BLE001 - counting is a view: a failure is logged, the sync stands
        log.warning("%s: counting what is at risk failed: %s", sid, one_line(exc))
        return
    mirror.records.record_in_run(sid, record, field="at_risk")


def _basis(records: Records, sid: str) -> str:
    """What the counts follow: the recorded versions (their digest) and the newest keep record's time."""
    from neuromirror.service.keeping import last_record

    kept = last_record(records, sid) or {}
    return f"{records.versions_digest(sid)} {kept.get('at') or kept.get('store') or ''}"


def _fresh(record: dict) -> bool:
    from neuromirror.util.dates import parse_iso

    when = parse_iso(record.get("counted_at"))
    return when is not None and time.time() - when.timestamp() < RECOUNT_EVERY


def risk_facts(records: Records, source: Optional[str] = None) -> dict[str, dict]:
    """Per source (or only ``source``): its newest at-risk record (from the run reports)."""
    return dict(records.reports("at_risk", source or None))  # the newest per source last, so it stays


def add_risks(report: dict, records: Records) -> None:
    """Add each row's newest at-risk record (``at_risk_counted``) to a status report."""
    facts = risk_facts(records)
    rows: list[SourceStatus] = report["sources"]
    for row in rows:
        row.add(at_risk_counted=facts.get(row.source))


__all__ = ["add_live_risk", "add_risks", "count_risk", "risk_after_sync", "risk_facts"]

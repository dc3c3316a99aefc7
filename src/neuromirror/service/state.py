"""The service's state: what it keeps per source while it runs (written to ``service.json``).

The status report that reads it back (``neuromirror status``, ``/status.json``, the pages, ``/metrics``) is
:mod:`neuromirror.account.status`, below the API; its names are re-exported here for the service's modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

from neuromirror.account.status import (
    STATE_FILE,
    SourceStatus,
    cluster_facts,
    disk_facts,
    epoch,
    now_utc,
    read_service_state,
    report_json,
    short_time,
    status_report,
)
from neuromirror.util.dates import iso_z

SUCCESS = ("ok", "unchanged")

__all__ = [
    "STATE_FILE",
    "SUCCESS",
    "SourceRuntime",
    "SourceStatus",
    "cluster_facts",
    "disk_facts",
    "epoch",
    "now_utc",
    "read_service_state",
    "report_json",
    "short_time",
    "status_report",
]


# -- per source, kept by the running service -----------------------------------


@dataclass
class SourceRuntime:
    source: str
    entry: str  # the spec of the sources: entry it belongs to
    consecutive_failures: int = 0
    backoff_until: Optional[datetime] = None
    last_error: Optional[str] = None
    running_since: Optional[datetime] = None
    stage: Optional[str] = None
    done: Optional[int] = None
    total: Optional[int] = None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (busy, backoff)
    publish_error: Optional[str] = None
    keep_error: Optional[str] = None  # the last keep step's failure (service/keeping.py)
    dask: Optional[str] = None  # executor: {dask: ADDRESS}: its keeps' copies and checks' reads run there too

    def to_json(self) -> dict:
        return {
            "entry": self.entry,
            "consecutive_failures": self.consecutive_failures,
            "backoff_until": iso_z(self.backoff_until),
            "last_error": self.last_error,
            "running_since": iso_z(self.running_since),
            "progress": ({"stage": self.stage, "done": self.done, "total": self.total} if self.stage else None),
            "skipped": dict(self.skipped),
            "publish_error": self.publish_error,
            "keep_error": self.keep_error,
        }

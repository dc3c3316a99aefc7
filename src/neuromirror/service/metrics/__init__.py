"""``/metrics``: the status report as Prometheus metrics, through ``prometheus_client``.

A custom collector builds every family at scrape time from the status report (the
index and the service's state) and the run durations in the index, so the numbers
are the index's — they survive restarts and count syncs run by hand too.  Each
service has a private ``CollectorRegistry``: nothing goes through the library's
global registry (its process and platform collectors included).

:mod:`.sources` each source's syncs and the service's own facts; :mod:`.stores` what the service kept and
what is at risk; :mod:`.backup` the audit and the backup page's numbers; :mod:`.base` what each is made with.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from neuromirror.service.metrics.backup import add_audit, add_coverage, backup_families
from neuromirror.service.metrics.base import CONTENT_TYPE, DURATION_BUCKETS, Durations
from neuromirror.service.metrics.sources import add_changes, families
from neuromirror.service.metrics.stores import add_keeps

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "Durations",
    "StatusCollector",
    "add_audit",
    "add_changes",
    "add_coverage",
    "add_keeps",
    "backup_families",
    "exposition",
    "families",
    "registry_for",
    "render_metrics",
]


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

"""What every ``/metrics`` family is made with: the content type, the duration buckets, a gauge and a counter by label."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: bounds of the sync-duration histogram, in seconds: a no-change resync .. a whole archive
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0)

#: per source: (cumulative counts per DURATION_BUCKETS bound, count, sum of seconds)
Durations = dict[str, tuple[list[int], int, float]]


def gauge(name: str, help_text: str, values: Iterable[tuple[str, Optional[float]]]) -> Metric:
    """A gauge by source from (source, value) pairs; a None value is left out."""
    g = GaugeMetricFamily(name, help_text, labels=["source"])
    for sid, v in values:
        if v is not None:
            g.add_metric([sid], float(v))
    return g


def counter(name: str, help_text: str, labels: Sequence[str], samples: Iterable[tuple[list[str], float]]) -> Metric:
    """A counter from (label values, value) samples, in the order given."""
    c = CounterMetricFamily(name, help_text, labels=list(labels))
    for values, n in samples:
        c.add_metric(values, n)
    return c

"""The paces' counters as a sync reports them: per endpoint, what a sync's requests met.

:func:`snapshot` reads every endpoint's counters (a worker process's included, :func:`absorb`),
:func:`since` is the difference since an earlier snapshot as ``sync --json``'s ``network`` rows:
requests, throttled answers, other errors, retries, give-ups, time held back, the in-flight limit
reached and the rate.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Optional

from neuromirror.network import pacing
from neuromirror.network.stats import EndpointStats

#: what worker processes' requests added, per endpoint (:func:`absorb`): a sync reports them with its own
#: what worker processes' requests added, per endpoint (:func:`absorb`): a sync reports them with its own
_elsewhere: dict[str, EndpointStats] = {}
_lock = threading.Lock()

_COUNTERS = ("requests", "throttled", "errors", "retries", "gave_up", "waited_s")


def snapshot() -> dict[str, EndpointStats]:
    """Every endpoint's counters now (copies), worker processes' included (:func:`absorb`)."""
    found = pacing.counters()
    with _lock:
        for endpoint, other in _elsewhere.items():
            mine = found.get(endpoint)
            if mine is None:
                found[endpoint] = dataclasses.replace(other)
                continue
            for name in _COUNTERS:
                setattr(mine, name, getattr(mine, name) + getattr(other, name))
            mine.limit_min = min(mine.limit_min, other.limit_min)
            mine.ceiling = max(mine.ceiling, other.ceiling)
    return found


def absorb(rows: list[dict]) -> None:
    """Add what another process's requests counted (:func:`since` rows of a worker's job) to this one's."""
    ours = pacing.counters()
    with _lock:
        for row in rows:
            endpoint = row.get("endpoint")
            if not isinstance(endpoint, str):
                continue
            limit = float(row.get("in_flight_limit") or 0.0)
            lowest = float(row.get("in_flight_limit_min") or limit)
            st = _elsewhere.get(endpoint)
            if st is None:
                known = ours.get(endpoint)
                if known is not None and not row.get("requests"):  # no limits of its own: ours
                    limit = lowest = known.limit
                st = _elsewhere[endpoint] = EndpointStats(endpoint, limit=limit, limit_min=lowest)
            for name in _COUNTERS:
                setattr(st, name, getattr(st, name) + (row.get(name) or 0))
            if row.get("requests"):  # a pace of its own (not a handle on ours): its limits say something
                st.limit = limit
                st.limit_min = min(st.limit_min, lowest)
                st.ceiling = max(st.ceiling, int(row.get("in_flight_ceiling") or 0))


def since(before: dict[str, EndpointStats], seconds: Optional[float] = None) -> list[dict]:
    """What each endpoint answered since ``before`` (endpoints that saw no request left out), as JSON.

    ``requests_per_s`` is the rate reached over ``seconds`` (the sync's wall time), where given.
    """
    out = []
    for endpoint, now in snapshot().items():
        was = before.get(endpoint) or EndpointStats(endpoint)
        requests = now.requests - was.requests
        if requests <= 0 and now.retries == was.retries and now.gave_up == was.gave_up:
            continue  # (a worker's handle on a shared pace counts only its retries and give-ups)
        out.append(
            {
                "endpoint": endpoint,
                "requests": requests,
                "throttled": now.throttled - was.throttled,
                "errors": now.errors - was.errors,
                "retries": now.retries - was.retries,
                "gave_up": now.gave_up - was.gave_up,
                "waited_s": round(now.waited_s - was.waited_s, 3),
                "in_flight_limit": round(now.limit, 1),
                "in_flight_limit_min": round(now.limit_min, 1),
                "in_flight_ceiling": now.ceiling,
                **({"requests_per_s": round(requests / seconds, 1)} if seconds and requests > 0 else {}),
            }
        )
    return out

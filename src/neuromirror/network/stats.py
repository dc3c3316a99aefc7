"""What an endpoint answered, as counters: a pace keeps one (:mod:`.pacing`), reports diff two (:mod:`.report`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EndpointStats:
    """What one endpoint answered, as counters (a difference of two snapshots is a sync's share)."""

    endpoint: str
    requests: int = 0
    throttled: int = 0  # 429 / 503 SlowDown answers
    errors: int = 0  # other 5xx, resets, timeouts, refused connections
    retries: int = 0
    gave_up: int = 0
    waited_s: float = 0.0  # time requests spent held back (a slot, a Retry-After)
    limit: float = 0.0  # the in-flight limit now
    limit_min: float = 0.0  # the lowest it reached
    ceiling: int = 0  # the callers' pool: the most the limit may reach

"""``retention: {runs: N, days: D}``: how much run history the index keeps (:mod:`neuromirror.index.retention`).

At the top level it is every source's policy (and that of sources no entry names); on a
source entry it replaces it for the sources the entry names; a key left out takes the top
level's value, else the built-in default.  ``days`` is a number of days or a duration
(``90d``, ``2w``, ``12h``).
"""

from __future__ import annotations

from typing import Any, Optional

from neuromirror.config.reader import Node, Reader
from neuromirror.config.rules import Rule, duration, read_fields, whole
from neuromirror.index.retention import Retention

RETENTION_KEYS = ("runs", "days")
DAY = 86400.0


def _days(raw: Any) -> float:
    """A number of days, or a duration (``90d``, ``12w``) in days."""
    try:
        days = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else duration(raw) / DAY
        if days <= 0:
            raise ValueError(f"expected a positive number of days, got {raw!r}")
    except ValueError as exc:
        raise ValueError(f"{exc} (a number of days or a duration such as 90d)") from None
    return days


RETENTION_RULES = (Rule("runs", whole(1, None, "a number of runs (1 or more)")), Rule("days", _days))


def read_retention(r: Reader, node: Node, path: str, base: Retention) -> Optional[Retention]:
    """The policy of ``node`` over ``base``; None (the error recorded) when it is invalid."""
    m = r.mapping(node, path, RETENTION_KEYS)
    if m is None:
        return None
    given, fields_ok = read_fields(r, m, path, RETENTION_RULES)
    ok = all(k in RETENTION_KEYS for k in m) and fields_ok
    values: dict[str, Any] = {"runs": base.runs, "days": base.days, **given}
    return Retention(**values) if ok else None

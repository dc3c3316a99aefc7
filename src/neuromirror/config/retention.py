"""``retention: {runs: N, days: D}``: how much run history the index keeps (:mod:`neuromirror.index.retention`).

At the top level it is every source's policy (and that of sources no entry names); on a
source entry it replaces it for the sources the entry names; a key left out takes the top
level's value, else the built-in default.  ``days`` is a number of days or a duration
(``90d``, ``2w``, ``12h``).
"""

from __future__ import annotations

from typing import Any, Optional

from neuromirror.config.reader import Node, Reader, kind_of
from neuromirror.config.schedule import parse_duration
from neuromirror.index.retention import Retention

RETENTION_KEYS = ("runs", "days")
DAY = 86400.0


def read_retention(r: Reader, node: Node, path: str, base: Retention) -> Optional[Retention]:
    """The policy of ``node`` over ``base``; None (the error recorded) when it is invalid."""
    m = r.mapping(node, path, RETENTION_KEYS)
    if m is None:
        return None
    values: dict[str, Any] = {"runs": base.runs, "days": base.days}
    ok = all(k in RETENTION_KEYS for k in m)
    if "runs" in m:
        n = m["runs"].value
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            r.error(m["runs"].line, f"{path}.runs", f"expected a number of runs (1 or more), got {kind_of(n)}")
            ok = False
        else:
            values["runs"] = n
    if "days" in m:
        raw = m["days"].value
        try:
            days = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
            if days is None:
                days = parse_duration(raw) / DAY
            if days <= 0:
                raise ValueError(f"expected a positive number of days, got {raw!r}")
            values["days"] = days
        except ValueError as exc:
            r.error(m["days"].line, f"{path}.days", f"{exc} (a number of days or a duration such as 90d)")
            ok = False
    return Retention(**values) if ok else None

"""Timestamps: read as the archives write them (ISO 8601, often with a 'Z'), written one way; durations as text.

What neuromirror writes (reports, JSON, pages, the service state) is UTC to the second with a
'Z': ``2024-03-02T12:00:00Z``, from a datetime (naive ones taken as UTC) or seconds since the epoch.
A number of seconds is shown by :func:`format_duration`, in the shape its reader wants.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Literal, Optional, Union, overload

#: the one shape of a time neuromirror writes
ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def parse_iso(text: Any, *, strict: bool = False) -> Optional[datetime]:
    """An aware datetime (naive ones taken as UTC), or None for anything that is not one.

    With ``strict`` only a missing time (None, "") is None: text that is not ISO 8601 raises ValueError.
    """
    if not isinstance(text, str) or not text:
        if strict and text is not None and text != "":
            raise ValueError(f"not an ISO 8601 time: {text!r}")
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        if strict:
            raise
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def iso_seconds(text: Any) -> Optional[float]:
    """:func:`parse_iso` as seconds since the epoch; None for anything that is not a time."""
    dt = parse_iso(text)
    return None if dt is None else dt.timestamp()


@overload
def iso_z(when: Union[datetime, float]) -> str: ...
@overload
def iso_z(when: None) -> None: ...
@overload
def iso_z(when: Union[datetime, float, None]) -> Optional[str]: ...


def iso_z(when: Union[datetime, float, None]) -> Optional[str]:
    """``2024-03-02T12:00:00Z`` for a datetime or epoch seconds; None for None (never happened)."""
    if when is None:
        return None
    if isinstance(when, datetime):
        aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).strftime(ISO_Z)
    return time.strftime(ISO_Z, time.gmtime(when))


def now_z() -> str:
    """Now, as :func:`iso_z` writes it."""
    return time.strftime(ISO_Z, time.gmtime())


#: the shapes :func:`format_duration` writes
DurationStyle = Literal["exact", "clock", "words"]


def format_duration(seconds: Optional[float], style: DurationStyle = "exact") -> str:
    """Seconds as text, in one of three shapes.

    ``exact`` (a mirror definition's durations: what ``config.schedule.parse_duration`` reads back):
    ``1m30s``, ``1h``, ``1d1m``, ``0.5s``. ``clock`` (get's and reproduce's reports, rounded to the
    second): ``7s``, ``4m05s``, ``2h03m``. ``words`` (the status pages): ``12.3 s``, ``4 min 5 s``,
    ``2 h 3 min``. None (never measured) is ``-``.
    """
    if seconds is None:
        return "-"
    if style == "clock":
        s = int(seconds + 0.5)
        if s < 60:
            return f"{s}s"
        if s < 3600:
            return f"{s // 60}m{s % 60:02d}s"
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if style == "words":
        if seconds < 60:
            return f"{seconds:.1f} s"
        if seconds < 3600:
            return f"{int(seconds // 60)} min {int(seconds % 60)} s"
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    if seconds != int(seconds) or seconds < 1:
        return f"{seconds:g}s"
    whole = int(seconds)
    out = ""
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= n:
            out += f"{whole // n}{unit}"
            whole %= n
    return out or "0s"

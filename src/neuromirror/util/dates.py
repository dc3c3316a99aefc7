"""Timestamps: read as the archives write them (ISO 8601, often with a 'Z'), written one way.

What neuromirror writes (reports, JSON, pages, the service state) is UTC to the second with a
'Z': ``2024-03-02T12:00:00Z``, from a datetime (naive ones taken as UTC) or seconds since the epoch.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Optional, Union, overload

#: the one shape of a time neuromirror writes
ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def parse_iso(text: Any) -> Optional[datetime]:
    """An aware datetime (naive ones taken as UTC), or None for anything that is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


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

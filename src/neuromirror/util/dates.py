"""Timestamps as the archives write them (ISO 8601, often with a 'Z')."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional


def parse_iso(text: Any) -> Optional[datetime]:
    """An aware datetime (naive ones taken as UTC), or None for anything that is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)

"""When a source is synced and how a failing one slows down: :class:`Schedule`, :class:`Backoff`.

Also the notations a definition writes them in: durations (``30m``, ``1h30m``, ``1d``),
5-field crontab lines with standard cron's day-of-week numbering (APScheduler counts from
Monday, which would shift a crontab's ``1-5`` by a day), and time zone names.  APScheduler
is imported only when a trigger is made.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from neuromirror.util.dates import format_duration

DEFAULT_TIMEZONE = "UTC"
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class Schedule:
    """When a source is synced: a cron expression or a fixed interval (seconds)."""

    cron: Optional[str] = None
    interval: Optional[float] = None
    jitter: Optional[float] = None
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule has exactly one of cron and interval")

    def trigger(self, start: Optional[datetime] = None) -> Any:
        """The APScheduler trigger (interval triggers count from ``start``, default now)."""
        from apscheduler.triggers.interval import IntervalTrigger

        if self.cron is not None:
            return cron_trigger(self.cron, self.timezone, self.jitter)
        return IntervalTrigger(seconds=self.interval, start_date=start, timezone=self.timezone, jitter=self.jitter)

    def next_after(self, when: datetime) -> datetime:
        """The first fire time strictly after ``when`` (no jitter), for catching up after a restart."""
        if self.interval is not None:
            return when + timedelta(seconds=self.interval)
        trig = cron_trigger(self.cron or "", self.timezone, None)
        nxt = trig.get_next_fire_time(None, when + timedelta(seconds=1))
        return nxt if nxt is not None else datetime.max.replace(tzinfo=timezone.utc)

    def describe(self) -> str:
        if self.interval is not None:
            text = f"every {format_duration(self.interval)}"
        else:
            text = f"cron '{self.cron}'" + (f" ({self.timezone})" if self.timezone else "")
        if self.jitter:
            text += f" +/- {format_duration(self.jitter)}"
        return text

    def to_json(self) -> dict:
        d: dict[str, Any] = {"cron": self.cron} if self.cron is not None else {"interval": self.interval}
        if self.jitter:
            d["jitter"] = self.jitter
        d["timezone"] = self.timezone
        return d


@dataclass(frozen=True)
class Backoff:
    """How a failing source slows down: after k failures in a row, wait ``min(initial * factor**(k-1), max)``.

    Runs the schedule brings before that are skipped; the first success resets it.
    The delay only ever makes a source rarer than its schedule, never more frequent.
    """

    initial: float = 60.0
    factor: float = 2.0
    max: float = 86400.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        try:
            d = self.initial * self.factor ** (failures - 1)
        except OverflowError:
            d = math.inf
        return float(min(d, self.max))

    def to_json(self) -> dict:
        return {"initial": self.initial, "factor": self.factor, "max": self.max}


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)", re.I)
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90"``, ``"30m"``, ``"1h30m"``, ``"2d"``, ``"1w"``, ``"500ms"``; ValueError otherwise."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a duration like 30m, 6h, 1d or a number of seconds, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2).lower()]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"{value!r} is not a duration: use e.g. 90s, 30m, 6h, 1h30m, 1d, 1w or a number of seconds"
                ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _cron_dow(text: str) -> str:
    """Standard cron day-of-week (0 or 7 = Sunday, names allowed) as APScheduler's explicit day names.

    APScheduler 3 numbers days from Monday = 0, which would silently shift a
    crontab's ``1-5`` by one day; expanding to names keeps the crontab meaning.
    """
    if text == "*":
        return "*"
    days: set[int] = set()

    def num(tok: str) -> int:
        t = tok.strip().lower()
        if t[:3] in _DOW_NAMES and t.isalpha():
            return _DOW_NAMES.index(t[:3])
        if not t.isdigit() or not 0 <= int(t) <= 7:
            raise ValueError(f"day of week {tok!r}: expected 0-7 or sun..sat")
        return int(t) % 7

    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"day of week step {step_text!r} is not a positive number")
            step = int(step_text)
        if part == "*":
            lo, hi = 0, 6
        elif "-" in part:
            a, b = part.split("-", 1)
            lo, hi = num(a), (7 if b.strip() == "7" else num(b))
            if hi < lo:
                raise ValueError(f"day of week range {part!r} runs backwards")
        else:
            lo = hi = num(part)
            if step > 1:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DOW_NAMES[d] for d in sorted(days))


def cron_trigger(expr: str, tz: str = DEFAULT_TIMEZONE, jitter: Optional[float] = None) -> Any:
    """An APScheduler CronTrigger from a 5-field crontab line (or @daily...); ValueError if invalid."""
    from apscheduler.triggers.cron import CronTrigger

    text = CRON_ALIASES.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r}: a cron expression has 5 fields (minute hour day month day-of-week), got {len(fields)}"
        )
    minute, hour, day, month, dow = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_cron_dow(dow), timezone=tz, jitter=jitter
    )


def check_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (e.g. UTC, Europe/Berlin)") from None
    return name

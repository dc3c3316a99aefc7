"""When a source may run: its backoff after failures in a row, and its first run after a start.

The policy — after k failures in a row, nothing until
``min(initial * factor**(k-1), max)`` after the last one — is the mirror
definition's :class:`~neuromirror.config.schedule.Backoff`.  Here it is
applied, in two places that must agree: the source's runtime state (runs the
schedule brings before then are skipped, and ``service.json`` shows why) and
the entry's APScheduler job (moved to its first fire time after the backoff,
so a failing source is not even woken).  On start the streak is read back from
the ``runs`` table, so a restart neither resets a failing source nor forgets a
run it missed while no service ran.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from neuromirror.config.model import SourceConfig
from neuromirror.service.state import SourceRuntime, now_utc
from neuromirror.util.dates import parse_iso as parse_time

if TYPE_CHECKING:
    from neuromirror.api import Mirror

log = logging.getLogger("neuromirror.service")


def first_run(mirror: Mirror, entry: SourceConfig, runtime: Callable[[str, str], SourceRuntime]) -> datetime:
    """Now if a scheduled run was missed while no service ran (coalesced into one), else the next fire time.

    Also restores the failure count (and so the backoff) of each source from the runs table.
    """
    now = now_utc()
    args = [entry.spec, entry.spec + "/*"]  # the spec itself, what it matches, a collection's experiments
    records = mirror.records
    last = parse_time(records.last_success_start(args))
    first = now if last is None else max(now, entry.schedule.next_after(last))
    for streak in records.failure_streaks(args):
        rt = runtime(streak.source, entry.spec)
        rt.consecutive_failures = streak.failures
        rt.last_error = streak.error
        ended = parse_time(streak.last_failure) or now
        rt.backoff_until = ended + timedelta(seconds=entry.backoff.delay(streak.failures))
        if streak.source == entry.spec and rt.backoff_until > first:
            first = rt.backoff_until
    return first


def holds_off(rt: SourceRuntime, entry: SourceConfig, now: datetime) -> bool:
    """Whether a run due ``now`` falls in the source's backoff (a jittered fire time may come a little early)."""
    tolerance = timedelta(seconds=(entry.schedule.jitter or 0) + 0.5)
    return rt.backoff_until is not None and now + tolerance < rt.backoff_until


def record_failure(rt: SourceRuntime, entry: SourceConfig, error: str) -> tuple[datetime, float]:
    """One more failure in a row: its backoff starts now; return its end and the delay (seconds)."""
    rt.consecutive_failures += 1
    rt.last_error = error
    delay = entry.backoff.delay(rt.consecutive_failures)
    rt.backoff_until = now_utc() + timedelta(seconds=delay)
    return rt.backoff_until, delay


def reset(rt: SourceRuntime) -> None:
    """A success (or a source its entry no longer names) ends the streak."""
    rt.consecutive_failures, rt.backoff_until, rt.last_error = 0, None, None


def postpone(sched: Any, spec: str, until: datetime) -> None:
    """Move the job's next run to its first fire time at or after ``until``."""
    try:
        job = sched.get_job(spec)
        if job is None:
            return
        nxt = job.trigger.get_next_fire_time(None, until)
        if nxt is not None and (job.next_run_time is None or nxt > job.next_run_time):
            sched.modify_job(spec, next_run_time=nxt)
    except Exception as exc:  # the scheduler shut down meanwhile
        log.debug("could not postpone %s: %s", spec, exc)

"""The whole archive's quiet hour: a glob's cycle syncs only what the archive's own listing says changed.

A ``dandi:*`` entry names a thousand dandisets; asking the archive about each one every hour
costs thousands of requests and as many runs when only a handful changed.  The glob's
listing (:func:`neuromirror.sources.listed`) already says something of each source's state:
DANDI's dandiset list gives each draft's ``modified`` and the latest published version,
AIND's bucket names each asset (immutable once written).  This module keeps, per source, the
listing's stamp as it was *before* the source's last successful sync (the index's ``cache``
table, namespace ``quiet``: one small row per source), and per entry the cycle's watermark
(namespace ``quiet-cycle``: when the last cycle and the last full pass started, and what they
did), both through the API's :meth:`neuromirror.api.records.Records.remember`.  A cycle then syncs:

* every source the listing names with a stamp other than the recorded one, or none recorded
  (new, changed, never synced by the service, failed, Zarr-holding dandisets whose listing
  cannot see in-place Zarr changes: :func:`neuromirror.sources.listing_covers`);
* a rolling re-check of the unchanged ones, those checked longest ago first: by default a
  share in proportion to the time since the entry's last cycle over ``full_pass`` (an hourly
  cycle of a 30-day ``full_pass``: 1/720, three of 2,000 dandisets, so a no-change cycle stays
  a few requests), so that the rotation asks every source again within about ``full_pass``
  whatever the listings say, spread over the month rather than all at once; with
  ``recheck_cycles: N``, ``1/N`` of them each cycle (every source within N cycles);
* everything, on a full pass: the first cycle, and when the last one is older than ``full_pass``.

``quiet: false`` (a sync option of the entry) asks every source each cycle, as before.
The policy and its defaults are in docs/service.md ("The quiet hour").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.records import SyncReport
from neuromirror.sources import listing_covers
from neuromirror.sources.base import Listed
from neuromirror.util.dates import parse_iso

if TYPE_CHECKING:
    from neuromirror.api import Mirror

#: the index's cache namespaces: per source its stamp and last check, per entry the cycle's watermark
SOURCES = "quiet"
CYCLES = "quiet-cycle"
#: defaults (sync options ``recheck_cycles`` and ``full_pass``, docs/service.md): the rolling re-check
#: is derived from the time since the last cycle and ``full_pass`` unless ``recheck_cycles`` is set;
#: RECHECK_CYCLES stands in for it when the entry has no earlier cycle to measure from (a month of
#: hourly cycles)
RECHECK_CYCLES = 720
FULL_PASS = 30 * 86400.0


@dataclass(frozen=True)
class Policy:
    """How quiet an entry's cycles are (its sync options ``quiet``, ``recheck_cycles``, ``full_pass``)."""

    enabled: bool = True
    #: every unchanged source is asked again within this many cycles (0: never by rotation);
    #: None: a share in proportion to the time since the last cycle over ``full_pass``
    recheck_cycles: Optional[int] = None
    #: seconds between full passes (every source asked); 0: every cycle is one
    full_pass: float = FULL_PASS

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Policy:
        from neuromirror.config.schedule import parse_duration

        enabled = options.get("quiet")
        recheck = options.get("recheck_cycles")
        full = options.get("full_pass")
        return cls(
            enabled=True if enabled is None else bool(enabled),
            recheck_cycles=None if recheck is None else int(recheck),
            full_pass=FULL_PASS if full is None else float(parse_duration(full)),
        )


@dataclass
class Plan:
    """One cycle of one entry: what its listing named and which of those this cycle syncs, and why."""

    spec: str
    started: datetime
    listed: int = 0
    #: the sources to sync, changed ones first, then the re-checks
    sync: list[Listed] = field(default_factory=list)
    #: source id -> why it is synced: new, changed, unstamped, recheck, full pass
    reasons: dict[str, str] = field(default_factory=dict)
    unchanged: int = 0
    full: bool = False
    quiet: bool = True

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for why in self.reasons.values():
            counts[why] = counts.get(why, 0) + 1
        return {
            "started": self.started.isoformat(),
            "listed": self.listed,
            "synced": len(self.sync),
            "unchanged": self.unchanged,
            "full_pass": self.full,
            "why": counts,
        }

    def describe(self) -> str:
        s = self.summary()
        why = ", ".join(f"{n} {k}" for k, n in sorted(s["why"].items())) or "none"
        kind = "full pass" if self.full else ("quiet hour" if self.quiet else "every source")
        return (
            f"{self.spec}: {self.listed} listed, {len(self.sync)} to sync ({why}), {self.unchanged} unchanged ({kind})"
        )


def plan(mirror: Mirror, spec: str, items: list[Listed], policy: Policy, now: datetime) -> Plan:
    """Which of ``items`` this cycle of ``spec`` syncs (see the module's docstring)."""
    p = Plan(spec, now, listed=len(items), quiet=policy.enabled)
    if not policy.enabled:
        p.sync = list(items)
        p.reasons = {i.source.id: "every cycle" for i in items}
        return p
    watermark = _watermark(mirror, spec)
    last_full = parse_iso(watermark.get("full_pass"))
    p.full = last_full is None or now - last_full >= timedelta(seconds=policy.full_pass)
    known = _stamps(mirror, [i.source.id for i in items])
    mirrored = set(mirror.sources())
    unchanged: list[tuple[str, Listed]] = []
    for item in items:
        sid = item.source.id
        seen = known.get(sid, {})
        if item.stamp is None:
            why = "unstamped"
        elif sid not in mirrored or not seen:
            why = "new"
        elif seen.get("stamp") is None:
            why = "retry"  # the last sync failed or left files pending
        elif seen.get("stamp") != item.stamp:
            why = "changed"
        elif p.full:
            why = "full pass"
        else:
            unchanged.append((str(seen.get("checked") or ""), item))
            continue
        p.sync.append(item)
        p.reasons[sid] = why
    share = recheck_share(len(unchanged), policy, parse_iso(watermark.get("started")), now)
    if share:
        unchanged.sort(key=lambda t: (t[0], t[1].source.id))  # checked longest ago first
        for _, item in unchanged[:share]:
            p.sync.append(item)
            p.reasons[item.source.id] = "recheck"
        unchanged = unchanged[share:]
    p.unchanged = len(unchanged)
    return p


def recheck_share(unchanged: int, policy: Policy, last_cycle: Optional[datetime], now: datetime) -> int:
    """How many of ``unchanged`` sources this cycle re-checks.

    ``recheck_cycles: N``: ``ceil(unchanged / N)``.  By default: ``ceil(unchanged * elapsed /
    full_pass)``, ``elapsed`` the time since the entry's last cycle started (at most
    ``full_pass``), so that the rotation goes once round in about ``full_pass`` whatever the
    schedule, and an hourly cycle of 2,000 dandisets re-checks 3 (6 requests) rather than 20;
    with no earlier cycle, as ``recheck_cycles: 720`` (a month of hourly cycles).
    """
    if unchanged <= 0:
        return 0
    if policy.recheck_cycles is not None:
        return math.ceil(unchanged / policy.recheck_cycles) if policy.recheck_cycles > 0 else 0
    if policy.full_pass <= 0:
        return unchanged
    if last_cycle is None:
        return math.ceil(unchanged / RECHECK_CYCLES)
    elapsed = min(max((now - last_cycle).total_seconds(), 0.0), policy.full_pass)
    return min(unchanged, math.ceil(unchanged * elapsed / policy.full_pass))


def synced(mirror: Mirror, item: Listed, report: SyncReport, plan_: Plan) -> None:
    """Remember what the listing said of ``item`` before a successful sync of it (its stamp now the mirror's).

    Not when the sync left something for later (pending or refused files: the next cycle asks
    again), nor when the listing cannot see every change of what was recorded (DANDI's Zarrs).
    """
    if not plan_.quiet or item.stamp is None:
        return
    sid = item.source.id
    if report.outcome not in ("ok", "unchanged") or report.pending or report.refused:
        mirror.records.remember(SOURCES, [(sid, json.dumps({"stamp": None, "checked": plan_.started.isoformat()}))])
        return
    latest = mirror.records.head_version(sid)
    if not listing_covers(item.source.archive, latest.remote_modified if latest else None):
        return
    mirror.records.remember(SOURCES, [(sid, json.dumps({"stamp": item.stamp, "checked": plan_.started.isoformat()}))])


def finish(mirror: Mirror, plan_: Plan, *, complete: bool) -> None:
    """The entry's watermark: this cycle's start, and the full pass's if this one was full and ran to its end."""
    if not plan_.quiet:
        return
    before = _watermark(mirror, plan_.spec)
    mark = {
        **plan_.summary(),
        "full_pass": plan_.started.isoformat() if plan_.full and complete else before.get("full_pass"),
    }
    mirror.records.remember(CYCLES, [(plan_.spec, json.dumps(mark))])


def last_cycle(mirror: Mirror, spec: str) -> Optional[dict[str, Any]]:
    """The watermark of ``spec``'s last cycle (for status), or None."""
    return _watermark(mirror, spec) or None


def _watermark(mirror: Mirror, spec: str) -> dict[str, Any]:
    return _json(mirror.records.remembered(CYCLES, [spec]).get(spec))


def _stamps(mirror: Mirror, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {k: _json(v) for k, v in mirror.records.remembered(SOURCES, ids).items()}


def _json(text: Optional[str]) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

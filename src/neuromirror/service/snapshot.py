"""What the running service says of itself in ``service.json``: per entry and per source, at one moment.

``neuromirror status``, ``/status.json``, the pages and ``/metrics`` read the
service through this snapshot only (merged with the index in
:func:`~neuromirror.service.state.status_report`), so it holds everything they
show that the index cannot know: next run times, backoff, what is running,
runs coalesced or missed.  A source's next run is its entry's, or the end of
its backoff when that is later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

from neuromirror.config.model import SourceConfig
from neuromirror.service.state import SourceRuntime
from neuromirror.util.dates import iso_z
from neuromirror.util.dates import parse_iso as parse_time


def next_runs(sched: Any, specs: Iterable[str]) -> dict[str, Optional[datetime]]:
    """The next fire time of each entry's job (None: no job, or the scheduler is gone)."""
    out: dict[str, Optional[datetime]] = {}
    for spec in specs:
        try:
            job = sched.get_job(spec)
        except Exception:
            job = None
        out[spec] = job.next_run_time if job is not None else None
    return out


def entries_json(
    entries: Mapping[str, SourceConfig],
    nexts: Mapping[str, Optional[datetime]],
    entry_sources: Mapping[str, list[str]],
    events: Mapping[str, dict[str, int]],
) -> dict[str, dict]:
    """Per ``sources:`` entry: its schedule, next run, the sources it expanded to, publish target, event counts."""
    return {
        spec: {
            "schedule": e.schedule.describe(),
            "next_run": iso_z(nexts.get(spec)),
            "sources": list(entry_sources.get(spec, [])),
            "where": e.where,
            "publish": (e.publish or {}).get("to"),
            **events.get(spec, {}),
        }
        for spec, e in entries.items()
    }


def sources_json(
    entry_sources: Mapping[str, list[str]],
    state: Mapping[str, SourceRuntime],
    nexts: Mapping[str, Optional[datetime]],
    entries: Mapping[str, dict],
) -> dict[str, dict]:
    """Per source: its runtime state (or only its entry, before its first run), next run and schedule."""
    sources: dict[str, dict] = {}
    for spec, sids in entry_sources.items():
        for sid in sids:
            sources.setdefault(sid, {"entry": spec})
    for sid, rt in state.items():
        sources[sid] = rt.to_json()
    for d in sources.values():
        nxt = nexts.get(d["entry"])
        until = parse_time(d.get("backoff_until"))
        if nxt is not None and until is not None and until > nxt:
            nxt = until
        d["next_run"] = iso_z(nxt)
        d["schedule"] = entries[d["entry"]]["schedule"] if d["entry"] in entries else None
    return sources

"""The overview page (``/``): summary counts, then every source (failures first) with its strip of runs."""

from __future__ import annotations

from typing import Iterable, Optional

from neuromirror.account.status import SourceStatus, short_time
from neuromirror.api.records import STRIP_RUNS, Run
from neuromirror.service.pages.common import (
    STATUS_ORDER,
    SUMMARY,
    disk,
    e,
    last_run_text,
    legend,
    links,
    page,
    service_line,
    source_href,
    status_badge,
    strip,
)
from neuromirror.service.pages.risk import risk_cell
from neuromirror.util.sizes import human_bytes

#: the overview's columns
COLUMNS = (
    "source",
    "status",
    f"last {STRIP_RUNS} runs",
    "last run",
    "last success",
    "next run",
    "versions",
    "files",
    "bytes",
    "at risk (latest version)",
)


def sort_rows(rows: Iterable[SourceStatus]) -> list[SourceStatus]:
    return sorted(rows, key=lambda r: (STATUS_ORDER.get(r.status, 5), r.source))


def render_html(report: dict, runs: Optional[dict[str, list[Run]]] = None, *, browse_url: Optional[str] = None) -> str:
    """The overview: summary counts, then every source (failures first) with its strip of runs."""
    runs = runs or {}
    rows = sort_rows(SourceStatus.of(r) for r in report["sources"])
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    table = (
        (
            f'<table class="sources"><thead><tr>{head}</tr></thead><tbody>\n'
            + "\n".join(_source_row(r, runs.get(r.source, [])) for r in rows)
            + "\n</tbody></table>"
        )
        if rows
        else "<p>No sources yet.</p>"
    )
    body = (
        f'<h1>neuromirror</h1>\n<p class="meta">root {e(report["root"])}; {e(service_line(report))}. '
        f'{links("", browse_url)}</p>\n<ul class="summary">{_summary(rows)}</ul>\n{disk(report)}'
        f"{_drill(report.get('drills') or {})}{table}\n{legend()}"
    )
    return page("neuromirror status", body, refresh=30)


def _summary(rows: list[SourceStatus]) -> str:
    """The counts at the top: ok, failing, backing off, running; refusing and never synced when there are any."""
    counts = {s: sum(r.status == s for r in rows) for s in SUMMARY}
    summary = "".join(f'<li class="st-{s.replace(" ", "-")}"><b>{counts[s]}</b>{e(s)}</li>' for s in SUMMARY)
    refusing = sum(r.status == "refusing" for r in rows)
    if refusing:  # synced, but an asset was refused: as red as a failure, counted apart
        summary += f'<li class="st-refusing"><b>{refusing}</b>refusing</li>'
    never = sum(r.status == "never synced" for r in rows)
    if never:
        summary += f'<li class="st-never-synced"><b>{never}</b>never synced</li>'
    return summary


def _status_cell(r: SourceStatus) -> str:
    """The badge, with why it fails or refuses; an old failure on hover only."""
    status = status_badge(r)
    if r.last_error and r.status in ("failing", "backing off"):
        return status + f'<div class="err">{e(r.last_error)}</div>'
    if r.status == "refusing":
        return status + f'<div class="err">{e(r.refused_reason)}</div>'
    if r.last_error:
        return f'<span title="last failure: {e(r.last_error)}">{status}</span>'
    return status


def _source_row(r: SourceStatus, mine: list[Run]) -> str:
    href = source_href(r.source)
    clone = (r.publish or {}).get("clone")
    cells = [
        f'<td><a href="{e(href)}">{e(r.source)}</a>'
        + (f'<div class="clone"><code>{e(clone)}</code></div>' if clone else "")
        + "</td>",
        f"<td>{_status_cell(r)}</td>",
        f"<td>{strip(mine, href)}</td>",
        f"<td>{e(last_run_text(mine))}</td>",
        f'<td class="time">{e(short_time(r.last_success))}</td>',
        f'<td class="time">{e(short_time(r.next_run))}</td>',
        f'<td class="num">{e(r.versions)}</td>',
        f'<td class="num">{e("-" if r.files is None else r.files)}</td>',
        f'<td class="num">{e(human_bytes(r.bytes))}</td>',
        f"<td>{risk_cell(r.at_risk_counted)}</td>",
    ]
    return f'<tr id="{e(r.source)}">' + "".join(cells) + "</tr>"


def _drill(drills: dict[str, dict]) -> str:
    """The last restore drill of each source (restore --drill, or the service's drill:), its result and why."""
    items = []
    for source, d in drills.items():
        bad = "".join(f"<li>bad copy {e(b['key'])} in {e(b['store'])}: {e(b['why'])}</li>" for b in d["bad_copies"])
        items.append(
            f'<li class="drill st-{"ok" if d["result"] == "ok" else "failing"}">{e(source)}: <b>{e(d["result"])}</b>'
            + (f" ({e(d['reason'])})" if d.get("reason") else "")
            + f" at {e(d['finished_at'])}: {e(d['objects'])} objects ({e(human_bytes(d['bytes']))}) restored into "
            f"{e(d['target'])}, {e(d['mismatches'])} bad copies found, {e(d['failed'])} failed."
            + (f"<ul>{bad}</ul>" if bad else "")
            + "</li>"
        )
    return f"<p>Last restore drill of each source:</p><ul>{''.join(items)}</ul>" if items else ""

"""What every status page shares: the style, escaping, links, the strip of runs, badges, the page's frame."""

from __future__ import annotations

import html
import math
from typing import Optional
from urllib.parse import quote

from neuromirror.account.status import SourceStatus, short_time
from neuromirror.api.records import Run
from neuromirror.util.dates import format_duration
from neuromirror.util.sizes import human_bytes

#: order of the overview: what needs a person first
STATUS_ORDER = {"failing": 0, "refusing": 1, "backing off": 2, "running": 3, "never synced": 4, "ok": 5}
#: the badge colour of a run's outcome in a history table
OUTCOME_BADGE = {
    "ok": "ok",
    "unchanged": "ok",
    "failed": "failing",
    "interrupted": "backing-off",
    "abandoned": "backing-off",
    "running": "running",
}
#: the summary counts at the top of the overview
SUMMARY = ("ok", "failing", "backing off", "running")

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em 1.5em;color:#1b1b1b;background:#fff}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em}
a{color:#0b57a4}p.meta{color:#555;margin:.2em 0 .8em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}td.time{min-width:6em}
ul.summary{list-style:none;display:flex;gap:.8em;padding:0;margin:.6em 0 1em}
ul.summary li{border:1px solid #ccc;border-radius:6px;padding:.35em .9em;min-width:6em}
ul.summary b{display:block;font-size:1.6em}
.st{display:inline-block;border-radius:4px;padding:0 .45em;white-space:nowrap}
.st-ok{background:#dff3e2}.st-failing,.st-refusing{background:#fbd9d9}.st-backing-off{background:#fde7c8}
.st-running{background:#dbe8fb}.st-never-synced{background:#eee}
.err{color:#8a1010;max-width:22em;font-size:.9em;overflow-wrap:anywhere}
.strip{display:inline-flex;align-items:flex-end;gap:2px;height:26px;padding:2px;background:#fafafa;
border:1px solid #e4e4e4;vertical-align:middle}
.strip a{display:block;width:7px;border-radius:1px;text-decoration:none}
.o-ok{background:#2e9b47}.o-unchanged{background:#a9dcb4}.o-failed{background:#d33131}
.o-interrupted,.o-abandoned{background:#f0a030}.o-running{background:#3b7ddd}
.strip a.same.o-ok{background:#a9dcb4}
.clone code{font-size:.8em;color:#444;overflow-wrap:anywhere}
table.sources td,table.sources th{padding:.3em .45em}table.sources td:first-child{white-space:nowrap}
table.sources td:last-child .nowrap{white-space:normal}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dl.facts dt{color:#555}dl.facts dd{margin:0}
.legend{color:#555;font-size:.9em;margin-top:1em}.legend i{display:inline-block;width:9px;height:9px;margin:0 .2em}
code{font-size:.92em}
.nowrap{white-space:nowrap}.risk-unpinned{color:#8a1010;font-weight:600}.risk-pinned{color:#8a5a00}.risk-kept{color:#1d6b2f}
"""


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def source_href(sid: str, prefix: str = "") -> str:
    """A relative link to a source's page: the id percent-encoded whole (``dandi%3A000027``, ``a%2Fb``)."""
    return f"{prefix}source/{quote(sid, safe='')}"


def _height(seconds: Optional[float]) -> int:
    """Bar height in px: 6 for a second or less, 24 for a day or more, log scale between."""
    if seconds is None:
        return 24
    return 6 + round(18 * min(1.0, math.log10(max(seconds, 1.0)) / math.log10(86400)))


def run_title(run: Run) -> str:
    parts = [short_time(run.started), run.outcome, format_duration(run.duration, "words"), run.changes()]
    if run.versions:
        parts.append("versions " + ", ".join(run.versions))
    if run.error:
        parts.append(run.error)
    return " · ".join(parts)


def strip(runs: list[Run], href: str) -> str:
    """The bars of a source's last runs, oldest left; each links to the run in the source's history."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    label = f"last {len(runs)} runs: " + (", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none")
    bars = "".join(
        f'<a class="o-{e(r.outcome)}{"" if r.changed_anything else " same"}" href="{e(href)}#run-{r.id}"'
        f' style="height:{_height(r.duration)}px" title="{e(run_title(r))}"></a>'
        for r in runs
    )
    return f'<span class="strip" title="{e(label)}">{bars}</span>'


def status_badge(row: SourceStatus) -> str:
    text = row.status + (f" ({row.consecutive_failures}x)" if row.consecutive_failures else "")
    return f'<span class="st st-{e(row.status.replace(" ", "-"))}">{e(text)}</span>'


def last_run_text(runs: list[Run]) -> str:
    if not runs:
        return "-"
    r = runs[-1]
    if r.outcome == "running":
        return f"running since {short_time(r.started)}"
    changes = r.changes()
    return f"{r.outcome}, {format_duration(r.duration, 'words')}" + (f", {changes}" if changes != "-" else "")


def disk(report: dict) -> str:
    """Free space per place (root, directory stores); a place below ``min_free`` is flagged: work refuses there."""
    items = []
    for d in report.get("disk") or []:
        if d.get("error"):
            items.append(f"<li>{e(d['what'])} {e(d['path'])}: {e(d['error'])}</li>")
            continue
        low = ' <b class="err">below min_free: syncs, keeps and publishes refuse to start</b>' if d["low"] else ""
        items.append(
            f"<li>{e(d['what'])} <code>{e(d['path'])}</code>: {e(human_bytes(d['free']))} free of "
            f"{e(human_bytes(d['total']))} (min_free {e(human_bytes(d['min_free']))}){low}</li>"
        )
    return f'<ul class="disk">{"".join(items)}</ul>\n' if items else ""


def page(title: str, body: str, *, refresh: Optional[int] = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{meta}'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def service_line(report: dict) -> str:
    svc = report.get("service")
    if not svc:
        return "no service running"
    return (
        f"service pid {svc['pid']}, started {short_time(svc['started'])}, {svc['jobs']} worker(s), "
        f"config {', '.join(svc.get('config') or [])}"
    )


def legend() -> str:
    items = [
        ("o-ok", "changed files"),
        ("o-unchanged", "ok, no change"),
        ("o-failed", "failed"),
        ("o-interrupted", "interrupted / abandoned"),
        ("o-running", "running"),
    ]
    return (
        '<p class="legend">Runs, oldest left: '
        + ", ".join(f'<i class="{c}"></i>{e(t)}' for c, t in items)
        + "; taller bars took longer (1 s to 1 day, log scale).</p>"
    )


#: the view served beside the pages (:mod:`neuromirror.read.landing` says what each route serves)
VIEW_LINKS = ("dav/", "dandisets/", "zarrs/", "zarr/", "zarr-manifests/")


def links(prefix: str, browse_url: Optional[str]) -> str:
    view = " ".join(f'<a href="{prefix}{v}">/{v}</a>' for v in VIEW_LINKS)
    links = [
        f'<a href="{prefix}status.json">status.json</a>',
        f'<a href="{prefix}metrics">metrics</a>',
        f'<a href="{prefix}backup/">backup: what the stores hold</a>',
        f'<a href="{prefix}audit/">audit</a>',
        f'<span class="nowrap"><a href="{prefix}view/">the view of every pin</a>: {view}</span>',
    ]
    if browse_url:
        links.append(f'<a href="{e(browse_url)}">browse the index</a>')
    return " · ".join(links)

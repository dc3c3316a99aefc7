"""The status pages (``serve --http``): server-rendered HTML, no JavaScript.

* ``/`` — summary counts (ok / failing / backing off / running; refusing: a sync refused an asset),
  then one row per source, failures first, each with a strip of its last 30 runs: one bar per run,
  its colour the outcome, its height the duration (log scale), a full colour when
  the run changed files; hovering a bar (its ``title``) or following it to the
  source's page tells when, how long and what changed.
* ``source/<id>`` — one source: its state, its run history and its versions.

Everything that comes from the index or an archive (ids, errors, labels, DOIs) is
escaped; links to sources use percent-encoded ids relative to the page, so the
pages also work behind a reverse proxy under a sub-path.
"""

from __future__ import annotations

import html
import math
from typing import Iterable, Optional
from urllib.parse import quote, urlencode

from neuromirror.index.rows import VersionRow
from neuromirror.service.history import STRIP_RUNS, Run
from neuromirror.service.keeping import ARCHIVE_WINDOW, LAG_WARNING, pending_lag
from neuromirror.service.state import SourceStatus, short_time
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


def _disk(report: dict) -> str:
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


def _page(title: str, body: str, *, refresh: Optional[int] = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{meta}'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _service_line(report: dict) -> str:
    svc = report.get("service")
    if not svc:
        return "no service running"
    return (
        f"service pid {svc['pid']}, started {short_time(svc['started'])}, {svc['jobs']} worker(s), "
        f"config {', '.join(svc.get('config') or [])}"
    )


def _legend() -> str:
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


#: the at-risk kinds, as the pages name them
RISK_KINDS = (
    ("kept", "kept in a store"),
    ("pinned", "only behind a pinned URL"),
    ("unpinned", "only behind URLs that can change or vanish"),
)


def _risk_class(v: dict) -> str:
    """The colour of a version's counts: what the worst of its files risks."""
    return "risk-unpinned" if v["unpinned"]["files"] else "risk-pinned" if v["pinned"]["files"] else "risk-kept"


def risk_cell(record: Optional[dict]) -> str:
    """The overview's cell: the newest version's files kept / only at the archive / only behind mutable URLs."""
    v = record["versions"][-1] if record and record.get("versions") else None
    if v is None:  # the service counts after its own syncs; the source's page counts it now
        return (
            '<span class="nowrap" title="counted after the service syncs; its page counts now">not counted yet</span>'
        )
    title = f"{v['version']}: " + "; ".join(
        f"{text}: {v[k]['files']} files ({human_bytes(v[k]['bytes'])})" for k, text in RISK_KINDS
    )
    return (
        f'<span class="{_risk_class(v)} nowrap" title="{e(title)}">{v["kept"]["files"]} kept · '
        f"{v['pinned']['files']} pinned · {v['unpinned']['files']} mutable</span>"
    )


def copies_section(facts: Optional[dict], now: Optional[float] = None) -> str:
    """``Copies``: per version the files with the wanted verified copies, fewer, none; the stores (one
    that is down said so); the last rolling check; the keep lag, with a warning near the archive's window."""
    import time

    last = (facts or {}).get("last") or {}
    copies = last.get("copies")
    if not copies:
        return ""
    now = time.time() if now is None else now
    rows = "\n".join(
        f'<tr class="{"risk-kept" if v["ok"] else "risk-pinned" if not v["none"]["files"] else "risk-unpinned"}">'
        f"<td>{e(v['version'])}</td><td>{v['enough']['files']} ({human_bytes(v['enough']['bytes'])})</td>"
        f"<td>{v['fewer']['files']} ({human_bytes(v['fewer']['bytes'])})</td>"
        f"<td>{v['none']['files']} ({human_bytes(v['none']['bytes'])})</td><td>{e(v.get('oldest_check') or 'never')}</td>"
        f"<td>{e(', '.join(a['path'] for a in v['at_risk'][:5]) + (' …' if v['at_risk_count'] > 5 else ''))}</td></tr>"
        for v in copies["versions"]
    )
    stores = "".join(
        f"<li>{e(s['url'])}: "
        + (
            f"{s['files']} file(s) held"
            if s["up"]
            else f'<span class="risk-unpinned">DOWN: {e(s["error"])}</span> (retried next cycle)'
        )
        + "</li>"
        for s in last.get("stores") or []
    )
    check = last.get("verify") or {}
    check_line = (
        f"<p>Last rolling check ({check.get('fraction', 0):.1%} of the stored copies): {check.get('checked', 0)} re-read, "
        f"{len(check.get('bad', []))} bad, {len(check.get('missing', []))} missing, {check.get('repaired', 0)} re-kept.</p>"
        if check
        else ""
    )
    lag = (facts or {}).get("lag")
    pending = pending_lag(last, now)
    worst = max([x for x in (pending, lag["lag"] if lag else None) if x is not None], default=None)
    warn = (
        f'<p class="risk-unpinned">Keep lag {worst / 86400:.1f} days: near the archive\'s {ARCHIVE_WINDOW / 86400:.0f}-day '
        "window after which it drops unreferenced blobs.</p>"
        if worst is not None and worst >= LAG_WARNING
        else ""
    )
    lag_line = (
        "<p>Keep lag: "
        + (f"last {lag['label']}: {lag['lag'] / 3600:.1f} h" if lag else "not measured yet")
        + (f"; waiting for copies: {pending / 3600:.1f} h" if pending is not None else "")
        + "</p>"
    )
    return (
        f"<h2>Copies (wanted: {copies['wanted']})</h2>\n<ul>{stores}</ul>\n"
        '<table class="risk"><thead><tr><th>version</th><th>enough</th><th>fewer</th><th>none</th>'
        f"<th>oldest check</th><th>at risk</th></tr></thead><tbody>\n{rows}\n</tbody></table>\n"
        f"{check_line}\n{lag_line}\n{warn}"
    )


def risk_table(record: Optional[dict]) -> str:
    """The source page's table: per published version and the latest draft, where its files' bytes are."""
    if not record or not record.get("versions"):
        return "<p>Not counted yet (counted after each successful sync of the service).</p>"
    rows = "\n".join(
        f'<tr class="{_risk_class(v)}"><td>{e(v["version"])}</td><td>{e(v["kind"])}</td>'
        + "".join(f'<td class="num">{v[k]["files"]} ({e(human_bytes(v[k]["bytes"]))})</td>' for k, _ in RISK_KINDS)
        + "</tr>"
        for v in record["versions"]
    )
    head = "".join(f"<th>{e(text)}</th>" for _, text in RISK_KINDS)
    return (
        f'<table class="risk"><thead><tr><th>version</th><th>kind</th>{head}</tr></thead><tbody>\n{rows}\n'
        f'</tbody></table>\n<p class="meta">files (bytes); counted {e(short_time(record.get("counted_at")))} '
        f"in {e(record.get('seconds'))} s, {'now, for this page' if record.get('live') else 'after the last sync'}.</p>"
    )


#: the view served beside the pages (:mod:`neuromirror.read.landing` says what each route serves)
VIEW_LINKS = ("dav/", "dandisets/", "zarrs/", "zarr-manifests/")


def _links(prefix: str, browse_url: Optional[str]) -> str:
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


def sort_rows(rows: Iterable[SourceStatus]) -> list[SourceStatus]:
    return sorted(rows, key=lambda r: (STATUS_ORDER.get(r.status, 5), r.source))


def render_html(report: dict, runs: Optional[dict[str, list[Run]]] = None, *, browse_url: Optional[str] = None) -> str:
    """The overview: summary counts, then every source (failures first) with its strip of runs."""
    runs = runs or {}
    rows = sort_rows(SourceStatus.of(r) for r in report["sources"])
    counts = {s: sum(r.status == s for r in rows) for s in SUMMARY}
    never = sum(r.status == "never synced" for r in rows)
    summary = "".join(f'<li class="st-{s.replace(" ", "-")}"><b>{counts[s]}</b>{e(s)}</li>' for s in SUMMARY)
    refusing = sum(r.status == "refusing" for r in rows)
    if refusing:  # synced, but an asset was refused: as red as a failure, counted apart
        summary += f'<li class="st-refusing"><b>{refusing}</b>refusing</li>'
    if never:
        summary += f'<li class="st-never-synced"><b>{never}</b>never synced</li>'
    body_rows = []
    for r in rows:
        href = source_href(r.source)
        mine = runs.get(r.source, [])
        status = status_badge(r)
        if r.last_error and r.status in ("failing", "backing off"):
            status += f'<div class="err">{e(r.last_error)}</div>'
        elif r.status == "refusing":
            status += f'<div class="err">{e(r.refused_reason)}</div>'
        elif r.last_error:  # an old failure: on hover only
            status = f'<span title="last failure: {e(r.last_error)}">{status}</span>'
        clone = (r.publish or {}).get("clone")
        cells = [
            f'<td><a href="{e(href)}">{e(r.source)}</a>'
            + (f'<div class="clone"><code>{e(clone)}</code></div>' if clone else "")
            + "</td>",
            f"<td>{status}</td>",
            f"<td>{strip(mine, href)}</td>",
            f"<td>{e(last_run_text(mine))}</td>",
            f'<td class="time">{e(short_time(r.last_success))}</td>',
            f'<td class="time">{e(short_time(r.next_run))}</td>',
            f'<td class="num">{e(r.versions)}</td>',
            f'<td class="num">{e("-" if r.files is None else r.files)}</td>',
            f'<td class="num">{e(human_bytes(r.bytes))}</td>',
            f"<td>{risk_cell(r.at_risk_counted)}</td>",
        ]
        body_rows.append(f'<tr id="{e(r.source)}">' + "".join(cells) + "</tr>")
    head = "".join(
        f"<th>{e(c)}</th>"
        for c in (
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
    )
    table = (
        (
            f'<table class="sources"><thead><tr>{head}</tr></thead><tbody>\n'
            + "\n".join(body_rows)
            + "\n</tbody></table>"
        )
        if rows
        else "<p>No sources yet.</p>"
    )
    body = (
        f'<h1>neuromirror</h1>\n<p class="meta">root {e(report["root"])}; {e(_service_line(report))}. '
        f'{_links("", browse_url)}</p>\n<ul class="summary">{summary}</ul>\n{_disk(report)}{_drill(report.get("drills") or {})}{table}\n{_legend()}'
    )
    return _page("neuromirror status", body, refresh=30)


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


def _doi_link(doi: Optional[str]) -> str:
    if not doi:
        return "-"
    return f'<a href="https://doi.org/{e(quote(doi, safe="/:"))}">{e(doi)}</a>'


def publish_rows(publish: Optional[dict]) -> list[tuple[str, str]]:
    """The source page's publish facts (service/publishing.py): how to clone it, what was held back and why."""
    p, to = publish or {}, e((publish or {}).get("to"))
    rows = (
        ("clone", p.get("clone"), lambda: f"<code>{e(p['clone'])}</code>"),
        ("held back", p.get("outcome") == "held back", lambda: f"from {to}: {e(p.get('why'))}"),
        ("kept content held back", p.get("content_held_back"), lambda: f"from {to}: {e(p['content_held_back'])}"),
    )
    return [(name, text()) for name, shown, text in rows if shown]


def render_source_page(
    row: SourceStatus | dict,
    history: list[Run],
    versions: list[VersionRow],
    *,
    root: str,
    browse_url: Optional[str] = None,
) -> str:
    """One source: its state, a strip of its last runs, its run history and its versions."""
    row = SourceStatus.of(row)
    sid = row.source
    facts = [
        ("status", status_badge(row)),
        ("schedule", e(row.schedule or "-")),
        ("dataset", e(f"{root}/{row.dataset}" if row.dataset else "-")),
        ("last success", e(short_time(row.last_success))),
        ("last failure", e(short_time(row.last_failure))),
        ("next run", e(short_time(row.next_run))),
        ("versions", e(row.versions)),
        (
            "current state",
            e(f"{row.latest or '-'}: {'-' if row.files is None else row.files} files, {human_bytes(row.bytes)}"),
        ),
    ]
    if row.last_error:
        facts.insert(5, ("last error", f'<span class="err">{e(row.last_error)}</span>'))
    if row.backoff_until:
        facts.append(("backing off until", e(short_time(row.backoff_until))))
    if row.refused_count:
        items = "".join(f"<li>{e(x['path'])}: {e(x['reason'])}</li>" for x in row.refused or [])
        more = row.refused_count - len(row.refused or [])
        tail = f"<p>... and {more} more (sync --json lists them)</p>" if more > 0 else ""
        count = f'<span class="err">{row.refused_count} item(s)</span>'
        facts.append(("refused at the last sync", f'{count}<ul class="err">{items}</ul>{tail}'))
    facts += publish_rows(row.publish)
    if row.publish_error:
        facts.append(("publishing", f'<span class="err">{e(row.publish_error)}</span>'))
    dl = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in facts)
    strip_runs = list(reversed(history[:STRIP_RUNS]))
    run_rows = "\n".join(
        f'<tr id="run-{r.id}"><td class="num">{r.id}</td><td>{e(r.trigger or "-")}</td>'
        f'<td class="time">{e(short_time(r.started))}</td><td class="num">{e(format_duration(r.duration, "words"))}</td>'
        f'<td><span class="st st-{OUTCOME_BADGE.get(r.outcome, "never-synced")}">{e(r.outcome)}</span></td>'
        f"<td>{e(r.changes())}</td><td>{e(', '.join(r.versions) or '-')}</td>"
        f'<td class="err">{e(r.error or "")}</td></tr>'
        for r in history
    )
    runs_table = (
        (
            '<table class="runs"><thead><tr><th>run</th><th>trigger</th><th>started</th><th>duration</th>'
            "<th>outcome</th><th>files</th><th>versions</th><th>error</th></tr></thead><tbody>\n"
            + run_rows
            + "\n</tbody></table>"
        )
        if history
        else "<p>No runs yet.</p>"
    )
    version_rows = []
    for v in versions:
        files_link = e("-" if v.files is None else v.files)
        if browse_url:
            q = urlencode({"source": sid, "version": v.label})
            files_link = f'<a href="{e(browse_url.rstrip("/"))}/version_files?{e(q)}">{files_link}</a>'
        commit = v.commit or ""
        version_rows.append(
            f'<tr><td>{e(v.label)}</td><td>{e(v.kind)}</td><td class="time">{e(short_time(v.date))}</td>'
            f'<td>{_doi_link(v.doi)}</td><td><code title="{e(commit)}">{e(commit[:12] or "-")}</code></td>'
            f'<td>{e(v.tag or "-")}</td><td class="num">{files_link}</td>'
            f'<td class="num">{e(human_bytes(v.bytes))}</td><td class="time">{e(short_time(v.synced_at))}</td></tr>'
        )
    versions_table = (
        (
            '<table class="versions"><thead><tr><th>version</th><th>kind</th><th>date</th><th>DOI</th>'
            "<th>commit</th><th>tag</th><th>files</th><th>bytes</th><th>synced</th></tr></thead><tbody>\n"
            + "\n".join(version_rows)
            + "\n</tbody></table>"
        )
        if versions
        else "<p>No versions yet.</p>"
    )
    browse = ""
    if browse_url:
        q = urlencode({"source": sid})
        browse = f' · <a href="{e(browse_url.rstrip("/"))}/source_versions?{e(q)}">this source in the catalog</a>'
    body = (
        f'<p class="meta"><a href="../">all sources</a> · {_links("../", None)}{browse}'
        f' · <a href="../dav/{e(quote(sid.replace(":", "/", 1)))}/">this source in the view</a>'
        f' · <a href="../backup/#{e(sid)}">its backup</a></p>\n'
        f'<h1>{e(sid)}</h1>\n<dl class="facts">{dl}</dl>\n'
        f"<h2>Last {len(strip_runs)} runs</h2>\n<p>{strip(strip_runs, '')}</p>\n{_legend()}\n"
        f"<h2>Run history</h2>\n{runs_table}\n<h2>Versions</h2>\n{versions_table}\n"
        f"<h2>At risk</h2>\n{risk_table(row.at_risk_counted)}"
        f"\n{copies_section(row.keep)}"
    )
    return _page(f"{sid} · neuromirror", body, refresh=None)

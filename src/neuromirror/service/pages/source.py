"""A source's page (``/source/<id>``): its state, a strip of its last runs, its run history, its versions, what
is at risk and its copies."""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote, urlencode

from neuromirror.account.status import SourceStatus, short_time
from neuromirror.api import Version
from neuromirror.api.records import STRIP_RUNS, Run
from neuromirror.service.pages.common import OUTCOME_BADGE, e, legend, links, page, status_badge, strip
from neuromirror.service.pages.risk import copies_section, risk_table
from neuromirror.util.dates import format_duration
from neuromirror.util.sizes import human_bytes


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
    versions: list[Version],
    *,
    root: str,
    browse_url: Optional[str] = None,
) -> str:
    """One source: its state, a strip of its last runs, its run history and its versions."""
    row = SourceStatus.of(row)
    sid = row.source
    dl = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in _facts(row, root))
    strip_runs = list(reversed(history[:STRIP_RUNS]))
    browse = ""
    if browse_url:
        q = urlencode({"source": sid})
        browse = f' · <a href="{e(browse_url.rstrip("/"))}/source_versions?{e(q)}">this source in the catalog</a>'
    body = (
        f'<p class="meta"><a href="../">all sources</a> · {links("../", None)}{browse}'
        f' · <a href="../dav/{e(quote(sid.replace(":", "/", 1)))}/">this source in the view</a>'
        f' · <a href="../backup/#{e(sid)}">its backup</a></p>\n'
        f'<h1>{e(sid)}</h1>\n<dl class="facts">{dl}</dl>\n'
        f"<h2>Last {len(strip_runs)} runs</h2>\n<p>{strip(strip_runs, '')}</p>\n{legend()}\n"
        f"<h2>Run history</h2>\n{_runs_table(history)}\n<h2>Versions</h2>\n{_versions_table(sid, versions, browse_url)}\n"
        f"<h2>At risk</h2>\n{risk_table(row.at_risk_counted)}"
        f"\n{copies_section(row.keep)}"
    )
    return page(f"{sid} · neuromirror", body, refresh=None)


def _facts(row: SourceStatus, root: str) -> list[tuple[str, str]]:
    """The source's state, name and HTML each: status, schedule, dataset, times, versions, what it refused..."""
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
        facts.append(("refused at the last sync", _refused(row)))
    facts += publish_rows(row.publish)
    if row.publish_error:
        facts.append(("publishing", f'<span class="err">{e(row.publish_error)}</span>'))
    return facts


def _refused(row: SourceStatus) -> str:
    items = "".join(f"<li>{e(x['path'])}: {e(x['reason'])}</li>" for x in row.refused or [])
    more = row.refused_count - len(row.refused or [])
    tail = (
        f"<p>... and {more} more refused (run <code>neuromirror sync --json</code> to list them)</p>"
        if more > 0
        else ""
    )
    count = f'<span class="err">{row.refused_count} item(s)</span>'
    return f'{count}<ul class="err">{items}</ul>{tail}'


def _runs_table(history: list[Run]) -> str:
    if not history:
        return "<p>No runs yet.</p>"
    run_rows = "\n".join(
        f'<tr id="run-{r.id}"><td class="num">{r.id}</td><td>{e(r.trigger or "-")}</td>'
        f'<td class="time">{e(short_time(r.started))}</td><td class="num">{e(format_duration(r.duration, "words"))}</td>'
        f'<td><span class="st st-{OUTCOME_BADGE.get(r.outcome, "never-synced")}">{e(r.outcome)}</span></td>'
        f"<td>{e(r.changes())}</td><td>{e(', '.join(r.versions) or '-')}</td>"
        f'<td class="err">{e(r.error or "")}</td></tr>'
        for r in history
    )
    return (
        '<table class="runs"><thead><tr><th>run</th><th>trigger</th><th>started</th><th>duration</th>'
        "<th>outcome</th><th>files</th><th>versions</th><th>error</th></tr></thead><tbody>\n"
        + run_rows
        + "\n</tbody></table>"
    )


def _versions_table(sid: str, versions: list[Version], browse_url: Optional[str]) -> str:
    if not versions:
        return "<p>No versions yet.</p>"
    return (
        '<table class="versions"><thead><tr><th>version</th><th>kind</th><th>date</th><th>DOI</th>'
        "<th>commit</th><th>tag</th><th>files</th><th>bytes</th><th>synced</th></tr></thead><tbody>\n"
        + "\n".join(_version_row(sid, v, browse_url) for v in versions)
        + "\n</tbody></table>"
    )


def _version_row(sid: str, v: Version, browse_url: Optional[str]) -> str:
    files_link = e("-" if v.file_count is None else v.file_count)
    if browse_url:
        q = urlencode({"source": sid, "version": v.label})
        files_link = f'<a href="{e(browse_url.rstrip("/"))}/version_files?{e(q)}">{files_link}</a>'
    commit = v.commit or ""
    return (
        f'<tr><td>{e(v.label)}</td><td>{e(v.kind)}</td><td class="time">{e(short_time(v.date))}</td>'
        f'<td>{_doi_link(v.doi)}</td><td><code title="{e(commit)}">{e(commit[:12] or "-")}</code></td>'
        f'<td>{e(v.tag or "-")}</td><td class="num">{files_link}</td>'
        f'<td class="num">{e(human_bytes(v.bytes))}</td><td class="time">{e(short_time(v.synced_at))}</td></tr>'
    )

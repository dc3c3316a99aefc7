"""What is at risk on the status pages: the overview's cell, the source page's table per version, and the
``Copies`` section (the verified copies per version, the stores, the rolling check, the keep lag)."""

from __future__ import annotations

from typing import Optional

from neuromirror.account.status import short_time
from neuromirror.service.keeping import ARCHIVE_WINDOW, LAG_WARNING, pending_lag
from neuromirror.service.pages.common import e
from neuromirror.util.sizes import human_bytes

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
    rows = "\n".join(_copies_row(v) for v in copies["versions"])
    return (
        f"<h2>Copies (wanted: {copies['wanted']})</h2>\n<ul>{_stores_list(last)}</ul>\n"
        '<table class="risk"><thead><tr><th>version</th><th>enough</th><th>fewer</th><th>none</th>'
        f"<th>oldest check</th><th>at risk</th></tr></thead><tbody>\n{rows}\n</tbody></table>\n"
        f"{_check_line(last.get('verify') or {})}\n{_lag_lines(facts or {}, last, now)}"
    )


def _copies_row(v: dict) -> str:
    """A version's row: its files with enough verified copies, fewer, none; its oldest check; the first at risk."""
    cls = "risk-kept" if v["ok"] else "risk-pinned" if not v["none"]["files"] else "risk-unpinned"
    at_risk = ", ".join(a["path"] for a in v["at_risk"][:5]) + (" …" if v["at_risk_count"] > 5 else "")
    return (
        f'<tr class="{cls}">'
        f"<td>{e(v['version'])}</td><td>{v['enough']['files']} ({human_bytes(v['enough']['bytes'])})</td>"
        f"<td>{v['fewer']['files']} ({human_bytes(v['fewer']['bytes'])})</td>"
        f"<td>{v['none']['files']} ({human_bytes(v['none']['bytes'])})</td><td>{e(v.get('oldest_check') or 'never')}</td>"
        f"<td>{e(at_risk)}</td></tr>"
    )


def _stores_list(last: dict) -> str:
    """Each store of the last keep: what it holds, or that it was down (retried next cycle); each store found
    not reachable, since when (what it holds was not counted)."""
    lost = "".join(
        f'<li>{e(x["url"] or x["uuid"])} ({e(x["name"])}): <span class="risk-unpinned">NOT REACHABLE since '
        f"{e(x['since'])} ({e(x['why'])})</span>: its copies do not count</li>"
        for x in last.get("unreachable") or []
    )
    return lost + "".join(
        f"<li>{e(s['url'])}: "
        + (
            f"{s['files']} file(s) held"
            if s["up"]
            else f'<span class="risk-unpinned">DOWN: {e(s["error"])}</span> (retried next cycle)'
        )
        + "</li>"
        for s in last.get("stores") or []
    )


def _check_line(check: dict) -> str:
    """The last rolling check of the stores: its share, what it re-read, found bad or missing, re-kept."""
    if not check:
        return ""
    return (
        f"<p>Last rolling check ({check.get('fraction', 0):.1%} of the stored copies): {check.get('checked', 0)} re-read, "
        f"{len(check.get('bad', []))} bad, {len(check.get('missing', []))} missing, {check.get('repaired', 0)} re-kept.</p>"
    )


def _lag_lines(facts: dict, last: dict, now: float) -> str:
    """The keep lag (the last version's, and how long one has waited for its copies); a warning near the
    archive's window after which it drops unreferenced blobs."""
    lag = facts.get("lag")
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
    return f"{lag_line}\n{warn}"


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

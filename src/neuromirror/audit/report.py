"""The audit as a person reads it: lines for ``neuromirror audit``, the ``/audit/`` page of ``serve --http``.

Both say per source what was found, by kind, and which kinds are not covered, so that an empty list is
never read as "nothing wrong" where nothing was looked at.  Everything from the index or an archive is
HTML-escaped; the page has no JavaScript and relative links only.
"""

from __future__ import annotations

import html

from neuromirror.audit.findings import INVENTORY_ONLY, KINDS, RECHECK_ONLY, Audit, Finding


def _where(f: Finding) -> str:
    return f"{f.path} ({f.version})" if f.path and f.version else f.path or f"version {f.version}"


def _when(f: Finding) -> str:
    seen = f"seen {f.first_seen or '?'} .. {f.last_seen or '?'}"
    if f.kind == "noncurrent-only" and f.expires:
        return f"{seen}; expires {'on' if f.expires_exact else 'by'} {f.expires}"
    return seen


def as_text(audit: Audit) -> str:
    """What ``neuromirror audit`` prints: per source its findings by kind, then what is not covered."""
    lines = []
    if not audit.sources:
        lines.append("no sources in the index match")
    for sid in audit.sources:
        mine = [f for f in audit.findings if f.source == sid]
        lines.append(f"{sid}: {len(mine)} finding(s)" if mine else f"{sid}: nothing found")
        for f in mine:
            lines.append(f"  {f.kind}  {_where(f)}")
            lines.append(f"      {f.detail}")
            lines.append(f"      {_when(f)}")
    lines += [f"recheck: {e}" for e in audit.recheck_errors]
    lines.append(_coverage(audit))
    return "\n".join(lines)


def _coverage(audit: Audit) -> str:
    looked_at = audit.looked_at()
    missing = [k for k, (how, _) in KINDS.items() if k not in looked_at and how.startswith(RECHECK_ONLY)]
    unread = [k for k, (how, _) in KINDS.items() if k not in looked_at and how.startswith(INVENTORY_ONLY)]
    asked = (
        "asked the archive again for no-doi and noncurrent-only, and for its Zarr manifests"
        if audit.rechecked
        else "from the syncs' records"
    )
    states = audit.coverage.get("manifest-drift")
    if states:
        asked += (
            f"; Zarr manifests compared for {states['zarr_states_compared']} state(s), "
            f"{len(states['zarr_states_not_published'])} not published by the archive"
        )
    inv = audit.inventory
    if inv is not None:
        asked += (
            f"; {inv['pins']} pinned version(s) looked for in the S3 Inventory of {inv['date']} ({inv['rows']} rows)"
        )
    looked = (
        "; ".join(
            [f"not looked at without a recheck: {', '.join(missing)}"] * bool(missing)
            + [f"not looked at without an S3 Inventory: {', '.join(unread)}"] * bool(unread)
        )
        or "every kind looked at"
    )
    return f"({asked}; {looked}; see docs/service.md, Audit)"


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.kind{font-family:monospace;white-space:nowrap}.none{color:#0a0}.some{color:#b00;font-weight:600}
.detail{font-size:12px;color:#555;max-width:60em;word-break:break-word}.note{color:#666}
"""


def as_html(audit: Audit) -> str:
    """The ``/audit/`` page: counts per source and kind, then every finding."""
    e = html.escape
    covered = audit.looked_at()
    head = "".join(f'<th class="kind">{e(k)}</th>' for k in covered)
    counts = audit.counts()
    rows = "".join(
        f"<tr><td>{e(s)}</td>"
        + "".join(
            f'<td class="{"some" if counts.get((s, k)) else "none"}">{counts.get((s, k), 0)}</td>' for k in covered
        )
        + "</tr>"
        for s in audit.sources
    )
    items = "".join(
        f'<tr class="finding"><td>{e(f.source)}</td><td class="kind">{e(f.kind)}</td><td>{e(_where(f))}</td>'
        f'<td class="detail">{e(f.detail)}</td><td>{e(_when(f))}</td></tr>'
        for f in audit.findings
    )
    kinds = "".join(
        f'<tr><td class="kind">{e(k)}</td><td>{e(what)}</td><td>{e(how)}</td></tr>' for k, (how, what) in KINDS.items()
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>neuromirror audit</title><style>{_CSS}</style></head><body>\n"
        f'<p><a href="../">status</a> · <a href="../audit.json">audit.json</a></p>\n'
        f"<h1>Audit: what the mirror saw wrong upstream</h1>\n"
        f'<p class="note">{e(_coverage(audit))} · generated {e(audit.generated)}</p>\n'
        f'<table class="counts"><tr><th>source</th>{head}</tr>{rows}</table>\n'
        f"<h2>Findings ({len(audit.findings)})</h2>\n"
        + (
            f'<table class="findings"><tr><th>source</th><th>kind</th><th>where</th><th>detail</th><th>when</th></tr>'
            f"{items}</table>\n"
            if audit.findings
            else '<p class="none">nothing found</p>\n'
        )
        + f"<h2>Kinds</h2>\n<table><tr><th>kind</th><th>what</th><th>how it is known</th></tr>{kinds}</table>\n"
        "</body></html>\n"
    )

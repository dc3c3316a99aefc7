"""The ``/coverage/`` page (``serve --http``, the view and the service): the coverage record
(:mod:`neuromirror.account.coverage`) as a person reads it: per source a row per archive prefix, what the archive
holds, what its own backup holds, what the lab keeps, what is in neither.  No script; everything escaped."""

from __future__ import annotations

import html

from neuromirror.account.backup_model import Count
from neuromirror.account.coverage import Coverage, PrefixCoverage, SourceCoverage
from neuromirror.util.sizes import human_bytes

_CSS = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:1.5em;color:#222;max-width:90em}"
    "table{border-collapse:collapse;margin:.4em 0 1.2em}td,th{border-bottom:1px solid #ddd;padding:.35em .7em;"
    "text-align:left}th{background:#f4f4f4}.num{text-align:right;white-space:nowrap}.bad{color:#b00;font-weight:600}"
    ".note{color:#555}"
)


def _cell(cls: str, c: Count, bad: bool = False) -> str:
    klass = f"num {cls}" + (" bad" if bad and c.objects else "")
    return (
        f'<td class="{klass}" data-objects="{c.objects}" data-bytes="{c.bytes}">'
        f"{c.objects:,} objects<br>{html.escape(human_bytes(c.bytes))}</td>"
    )


def _row(p: PrefixCoverage) -> str:
    return (
        f'<tr class="prefix" data-prefix="{html.escape(p.prefix)}"><td>{html.escape(p.prefix)}/</td>'
        + _cell("archive", p.archive)
        + _cell("backup", p.backup)
        + _cell("kept", p.kept)
        + _cell("neither", p.neither, bad=True)
        + "</tr>"
    )


def _section(s: SourceCoverage, window: int) -> str:
    e = html.escape
    rows = "".join(_row(p) for p in s.prefixes.values())
    notes = []
    if s.oldest_neither is not None:
        o = s.oldest_neither
        notes.append(
            f'<p class="oldest">The oldest object in neither: <code>{e(o.path)}</code> of {e(o.version)} '
            f"(recorded {e(o.since or 'at an unknown time')}).</p>"
        )
    if s.expiring.objects:
        notes.append(
            f'<p class="expiring bad" data-objects="{s.expiring.objects}" data-bytes="{s.expiring.bytes}">'
            f"{s.expiring.objects} object(s), {e(human_bytes(s.expiring.bytes))} in neither are deleted by the "
            f"archive within {window} days, the first by {e(s.expiring_first or '')}.</p>"
        )
    else:
        notes.append(
            f'<p class="expiring" data-objects="0" data-bytes="0">Nothing in neither expires within {window} days.</p>'
        )
    return (
        f'<section class="source" id="{e(s.source)}"><h2>{e(s.source)}</h2><table><tr><th>prefix</th>'
        "<th>in the archive</th><th>held by the archive's own backup</th><th>kept by the lab's stores</th>"
        f"<th>in neither</th></tr>{rows}</table>{''.join(notes)}</section>\n"
    )


def coverage_html(record: Coverage) -> str:
    """The page: what the lists say, then a section per source."""
    e = html.escape
    lists = ", ".join(f"<code>{e(n)}</code>" for n in record.lists) or "none named (covered_by: in the definitions)"
    figures = "".join(
        f'<tr class="figure"><td>{e(f.prefix)}</td><td class="num">{f.objects if f.objects is not None else "?"} of '
        f"{f.archive_objects if f.archive_objects is not None else '?'}</td>"
        f'<td class="num">{e(human_bytes(f.bytes))} of {e(human_bytes(f.archive_bytes))}</td></tr>'
        for f in record.figures
    )
    reported = (
        "<h2>What the backup reports of itself</h2><table><tr><th>location</th><th>objects</th><th>bytes</th></tr>"
        f"{figures}</table>"
        if figures
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>neuromirror coverage</title><style>{_CSS}</style></head><body>\n"
        '<p><a href="../">status</a> · <a href="../coverage.json">coverage.json</a></p>\n'
        "<h1>Coverage: who else holds the archive's objects</h1>\n"
        f'<p>The archive\'s own backup: <span class="lists">{lists}</span>. An object counts as held there when '
        "the list names its key at the size (and ETag) the mirror pinned; as kept when a lab's store holds a copy "
        "read back right. Objects <b>in neither</b> exist only in the archive.</p>\n"
        f'<p class="note">generated {e(record.generated)}</p>\n'
        + reported
        + "".join(_section(s, record.window_days) for s in record.sources)
        + "</body></html>\n"
    )

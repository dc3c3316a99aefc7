"""The ``/backup/`` page of ``serve --http``: the backup record (:mod:`neuromirror.account.backup`) in HTML, in the
words of :mod:`neuromirror.account.backup_text` (the lines ``status --backup`` prints).

Everything from the index is HTML-escaped; the page has no JavaScript and relative links only.
"""

from __future__ import annotations

import html
from typing import Optional

from neuromirror.account.backup_model import Backup, Count, SourceBackup, StoreBackup
from neuromirror.account.backup_text import (
    KINDS,
    amount,
    as_text,
    check_class,
    expires_words,
    part_of,
    state_words,
    store_name,
    verification_words,
)
from neuromirror.util.sizes import human_bytes

__all__ = ["as_html", "as_text"]

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:1.5em;color:#222;max-width:90em}
table{border-collapse:collapse;margin:.4em 0 1.2em}td,th{border-bottom:1px solid #ddd;padding:.35em .7em;text-align:left;vertical-align:top}
th{background:#f4f4f4;font-weight:600}.num{text-align:right;white-space:nowrap}.note{color:#555}
.verdict{font-weight:700;padding:.1em .5em;border-radius:.3em;white-space:nowrap}
.at-risk{background:#fdd;color:#900}.partly-kept{background:#fed;color:#840}.kept{background:#dfd;color:#060}
.nothing-to-keep,.not-synced-yet{background:#eee;color:#555}.not-counted{background:#fed;color:#840}.bad{color:#b00;font-weight:600}.good{color:#070}.warn{color:#a60;font-weight:600}
.say{margin:.3em 0 .6em;max-width:70em}code,.path{font-family:monospace;font-size:.95em}section{margin-bottom:2em}
"""


def _cls(verdict: str) -> str:
    return verdict.replace(" ", "-")


def _says(b: SourceBackup) -> list[str]:
    """The source's situation in sentences, the worst first."""
    out = []
    if b.nowhere.current.objects:
        out.append(
            f"{amount(b.nowhere.current)} of the archive's current files are in no store: if the archive loses "
            "them, they are gone."
        )
    if b.expiring:
        out.append(
            f"{amount(b.expiring_count)} that only an old (noncurrent) copy at the archive still serves, and no store "
            f"holds, will be deleted by the archive's lifecycle, the first {expires_words(b.expiring[0])}."
        )
    for s in b.stores:
        v = s.verification
        if v is not None and v.unresolved:
            out.append(
                f"The last check of the store {store_name(s)} found copies it could not repair: {verification_words(s)}."
            )
        elif v is not None and not v.ok:
            out.append(
                f"The last check of the store {store_name(s)} found bad or missing copies and kept them again from "
                f"another copy: {verification_words(s)}."
            )
    if b.nowhere.noncurrent.objects:
        out.append(
            f"{amount(b.nowhere.noncurrent)} held only by older recorded versions are in no store: a pin or citation "
            "of those versions depends on the archive."
        )
    if not out and b.archive.objects:
        out.append(f"Every one of the {amount(b.archive)} the recorded versions hold is in at least one store.")
    if b.zarrs_uncounted:
        out.append(
            f"{b.zarrs_uncounted} Zarr state(s) are not counted here (run `neuromirror status --copies` to count their objects)."
        )
    if not b.versions:
        out.append(f"No state of {b.source} is recorded yet: nothing is counted until its first sync ends.")
    return out


def _lost(s: StoreBackup) -> str:
    """A store not reachable here, said where its holdings would be: they count as no copy."""
    return (
        f'<span class="bad unreachable">NOT REACHABLE since {html.escape(str(s.unreachable_since))} '
        f"({html.escape(str(s.unreachable_why))}): what it holds counts as no copy</span><br>"
    )


def _store_row(b: SourceBackup, s: StoreBackup) -> str:
    e = html.escape
    v = s.verification
    klass = check_class(v)
    lost = _lost(s) if s.unreachable_since is not None else ""
    lacks_new = "bad" if s.missing.current.objects else ""
    lacks_old = "bad" if s.missing.noncurrent.objects else ""
    return (
        f'<tr class="store"><td><code>{e(s.url or s.uuid)}</code><br><span class="note">{e(KINDS.get(s.kind or "", s.kind or ""))}</span></td>'
        f'<td class="num">{lost}{e(part_of(s.kept.current, b.archive.current))}</td>'
        f'<td class="num">{e(part_of(s.kept.noncurrent, b.archive.noncurrent))}</td>'
        f'<td class="num"><span class="{lacks_new}">{e(amount(s.missing.current))} current</span><br>'
        f'<span class="{lacks_old}">{e(amount(s.missing.noncurrent))} older</span></td>'
        f"<td>{e(state_words(s)) if s.missing.objects else 'none: every state is whole'}</td>"
        f'<td class="{klass}">{e(verification_words(s))}</td></tr>'
    )


def _listing(title: str, cls: str, head: list[str], rows: list[list[tuple[str, str]]]) -> str:
    """A titled table of files, one ``<tr class=cls>`` each; a cell is (its class, its text), escaped here."""
    if not rows:
        return ""
    e = html.escape
    ths = "".join(f"<th>{e(h)}</th>" for h in head)
    trs = "".join(
        f'<tr class="{cls}">' + "".join(f'<td class="{c}">{e(t)}</td>' for c, t in row) + "</tr>" for row in rows
    )
    return f"<h3>{e(title)}</h3><table><tr>{ths}</tr>{trs}</table>"


def _expiring_table(b: SourceBackup) -> str:
    rows = [
        [
            ("path", x.path),
            ("", x.version or ""),
            ("num", human_bytes(x.size)),
            ("bad", expires_words(x)),
            ("note", x.why),
        ]
        for x in b.expiring
    ]
    title = f"Deleted by the archive within 30 days, kept nowhere ({len(b.expiring)})"
    return _listing(title, "expiring", ["file", "version", "size", "expires", "why"], rows)


def _unkept_table(b: SourceBackup) -> str:
    n, shown = b.nowhere.current.objects, len(b.unkept)
    rows = [[("path", u.path), ("num", human_bytes(u.size))] for u in b.unkept]
    title = f"Current files in no store ({f'the first {shown} of {n}' if n > shown else shown})"
    return _listing(title, "unkept", ["file", "size"], rows)


def _section(b: SourceBackup) -> str:
    e = html.escape
    says = "".join(f'<p class="say">{e(t)}</p>' for t in _says(b))
    head = (
        "<tr><th>store</th><th>holds of the current files</th><th>holds of older versions' files</th>"
        "<th>lacks</th><th>oldest version not whole there</th><th>last check of the store</th></tr>"
    )
    stores = (
        f'<table class="stores">{head}{"".join(_store_row(b, s) for s in b.stores)}</table>'
        if b.stores
        else '<p class="say bad">No store holds anything of it.</p>'
        if b.archive.objects
        else ""
    )
    return (
        f'<section id="{e(b.source)}"><h2>{e(b.source)} <span class="verdict {_cls(b.verdict)}">{e(b.verdict)}</span></h2>'
        f"{says}{stores}{_expiring_table(b)}{_unkept_table(b)}</section>\n"
    )


def _summary_row(b: SourceBackup) -> str:
    e = html.escape
    return (
        f'<tr class="source"><td><a href="#{e(b.source)}">{e(b.source)}</a></td>'
        f'<td><span class="verdict {_cls(b.verdict)}">{e(b.verdict)}</span></td>'
        f'<td class="num">{e(amount(b.archive.current))}</td><td class="num">{e(amount(b.archive.noncurrent))}</td>'
        f'<td class="num {"bad" if b.nowhere.current.objects else ""}">{e(amount(b.nowhere.current))}</td>'
        f'<td class="num">{e(amount(b.nowhere.noncurrent))}</td>'
        f'<td class="num {"bad" if b.expiring else ""}">{e(amount(b.expiring_count))}</td><td class="num">{len(b.stores)}</td></tr>'
    )


#: past this many sources, the page has a section only for those not wholly kept (the JSON has every one)
MOST_SECTIONS = 50


def _stores_table(backup: Backup) -> str:
    """A row per store over every source: how many sources it holds something of, what it holds, its last check."""
    e = html.escape
    per: dict[str, tuple[StoreBackup, list[SourceBackup]]] = {}
    for b in backup.sources:
        for s in b.stores:
            per.setdefault(s.uuid, (s, []))[1].append(b)
    rows = []
    for s, sources in sorted(per.values(), key=lambda p: p[0].url or p[0].uuid):
        held = Count()
        for b in sources:
            mine = next(x for x in b.stores if x.uuid == s.uuid)
            held.add(mine.kept.bytes, mine.kept.objects)
        v = s.verification
        klass = check_class(v)
        rows.append(
            f'<tr class="store-total"><td><code>{e(s.url or s.uuid)}</code></td><td>{e(KINDS.get(s.kind or "", s.kind or ""))}</td>'
            f'<td class="num">{len(sources)}</td><td class="num">{_lost(s) if s.unreachable_since else ""}'
            f'{e(amount(held))}</td><td class="{klass}">{e(verification_words(s))}</td></tr>'
        )
    if not rows:
        return '<p class="say bad">No store holds anything of any source.</p>\n'
    return (
        "<h2>Stores</h2><table><tr><th>store</th><th>kind</th><th>sources</th><th>holds (summed over sources)</th>"
        f"<th>last check of the store</th></tr>{''.join(rows)}</table>\n"
    )


def as_html(backup: Backup, note: Optional[str] = None) -> str:
    """The ``/backup/`` page: a row per source (the worst first), a row per store, then each source's stores and
    what expires (past :data:`MOST_SECTIONS` sources, only those not wholly kept get a section)."""
    e = html.escape
    order = {"at risk": 0, "partly kept": 1, "not counted": 2, "not synced yet": 3, "kept": 4, "nothing to keep": 5}
    ranked = sorted(backup.sources, key=lambda b: (order.get(b.verdict, 9), b.source))
    rows = "".join(_summary_row(b) for b in ranked)
    counts = {v: sum(b.verdict == v for b in backup.sources) for v in order}
    tally = " · ".join(f"{n} {v}" for v, n in counts.items() if n)
    shown = ranked if len(ranked) <= MOST_SECTIONS else [b for b in ranked if order.get(b.verdict, 9) < 3]
    left = len(ranked) - len(shown)
    sections = "".join(_section(b) for b in shown) + (
        f'<p class="note">{left} source(s) wholly kept or with nothing to keep: their rows are in the table above '
        "(backup.json has every store of each).</p>\n"
        if left
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>neuromirror backup</title><style>{_CSS}</style></head><body>\n"
        '<p><a href="../">status</a> · <a href="../backup.json">backup.json</a></p>\n'
        "<h1>Backup: what the lab's stores hold of the archives</h1>\n"
        '<p class="say">The <b>archive</b> columns count the files (objects) the mirror recorded in each source\'s '
        "versions: the <b>current</b> ones are in its newest version, the <b>older</b> ones only in earlier "
        "versions a paper may cite. A <b>store</b> is a copy the lab owns; a file counts as held there once its "
        "bytes were read back right. Files in <b>no store</b> are lost if the archive loses them; files the "
        "archive <b>deletes within 30 days</b> must be kept before then.</p>\n"
        f'<p class="note">{e(tally or "no sources")} · generated {e(backup.generated)}'
        + (f" · {e(note)}" if note else "")
        + "</p>\n"
        '<table class="summary"><tr><th>source</th><th>verdict</th><th>current files</th><th>older files</th>'
        "<th>current, in no store</th><th>older, in no store</th><th>deleted within 30 days, in no store</th>"
        f"<th>stores</th></tr>{rows}</table>\n" + _stores_table(backup) + sections + "</body></html>\n"
    )

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

:mod:`.overview` the overview, :mod:`.source` a source's page, :mod:`.risk` what is at risk and the copies,
:mod:`.backup` the backup page (``/backup/``: per source and store, what the archive holds against what the
lab's stores hold; its records and numbers are :mod:`neuromirror.account.backup`'s, computed once below the
API, its JSON the records' own, docs/keep.md), :mod:`.coverage` the coverage page, :mod:`.common` what they
share (style, escaping, links, the strip of runs).
"""

from __future__ import annotations

from neuromirror.service.pages.common import e, source_href, status_badge, strip
from neuromirror.service.pages.overview import render_html, sort_rows
from neuromirror.service.pages.risk import copies_section, risk_cell, risk_table
from neuromirror.service.pages.source import publish_rows, render_source_page

__all__ = [
    "copies_section",
    "e",
    "publish_rows",
    "render_html",
    "render_source_page",
    "risk_cell",
    "risk_table",
    "sort_rows",
    "source_href",
    "status_badge",
    "strip",
]

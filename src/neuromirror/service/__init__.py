"""The mirror service (``neuromirror serve``): scheduled syncs of the sources in mirror definitions, status over HTTP.

May import ``api`` (it stands on the API: each cycle's keep, store checks, drills, publishing and at-risk counts
are :class:`neuromirror.api.Mirror` calls), ``account`` (the status report it serves), ``publish`` (its reports'
records) and anything below; must not import ``demo``, ``bench``, ``commands`` or ``cli``.  Of what is below, not
``index`` or ``dataset`` either: the API is its door to those (tests/test_layers.py).

``neuromirror serve --config mirrors/x.yaml`` runs an APScheduler
``BackgroundScheduler`` in the foreground: one job per ``sources:`` entry (its
cron or interval trigger), run by a thread pool of ``jobs`` workers, with
``coalesce=True`` (runs missed while the pool was busy or the machine asleep
become one), ``max_instances=1`` and no misfire limit.  A job expands its SPEC
(a glob asks the archive) and syncs each source through
the API's ``sync_source`` with ``trigger="service"``, on an
:class:`~neuromirror.api.mirror.Mirror` of its own (its own SQLite connection).

Guarantees:

* A source is never synced twice at once: ``sync_source`` takes the source's
  flock (``ROOT/.neuromirror/locks/``) without waiting; a one-off
  ``neuromirror sync`` holding it makes the service skip that run (counted as
  ``busy``), and a one-off sync started while the service holds it waits (or,
  with ``--no-wait``, is refused).  One service per root (``_service`` lock).
* A failing source backs off: after k failures in a row its runs are skipped
  until ``min(initial * factor**(k-1), max)`` after the last failure (the job
  is moved to the first fire time after that).  Other sources carry on.  The
  failure count is rebuilt from the ``runs`` table on start.
* SIGTERM / SIGINT: no new runs start; running syncs stop at their next safe
  point (they raise :class:`Interrupted` from the progress callback: the sync
  records the run, puts the dataset back to its last commit) within
  ``grace`` seconds; whatever is still running then is abandoned (the datasets
  are crash-safe: the next sync recovers them) and recorded as ``interrupted``.
  Exit status 0.  A second signal stops waiting.
* State for ``neuromirror status`` (next run times, backoff, what is running)
  is written to ``ROOT/.neuromirror/service.json``; ``--http`` serves the same
  as ``/status.json``, HTML pages (``/``, ``/source/<id>``) and Prometheus ``/metrics``.

Modules: ``running`` (``serve`` as one call), ``scheduler`` (the :class:`Service`: jobs,
``service.json``, stop), ``cycle`` (an entry's cycle and the steps after a sync), ``backoff``
(when a failing or restarted source may run), ``stopping`` (a running sync's safe points),
``snapshot`` (what ``service.json`` says), ``state`` (per-source runtime state; the status
report itself is :mod:`neuromirror.account.status`), ``keeping`` (the keep step, through
``api.Mirror.keep``), ``pages`` (the HTML), ``metrics`` (prometheus_client collector), ``web`` (the HTTP server).  The runs, the
records its steps add to their reports, the keep marks and the quiet hour's stamps are read and written through
``Mirror.records`` (:class:`neuromirror.api.records.Records`): the service imports no module of the index or the
datasets, and never reads the ``datasets`` or ``index`` a Mirror holds (tests/test_layers.py).
"""

from neuromirror.service.metrics import render_metrics
from neuromirror.service.pages import render_html, render_source_page
from neuromirror.service.scheduler import DEFAULT_GRACE, SERVICE_LOCK, Service
from neuromirror.service.state import (
    STATE_FILE,
    SUCCESS,
    SourceRuntime,
    epoch,
    now_utc,
    read_service_state,
    short_time,
    status_report,
)
from neuromirror.service.stopping import Interrupted, StoppableSource
from neuromirror.service.web import is_loopback, parse_http

__all__ = [
    "DEFAULT_GRACE",
    "SERVICE_LOCK",
    "STATE_FILE",
    "SUCCESS",
    "Interrupted",
    "Service",
    "SourceRuntime",
    "StoppableSource",
    "epoch",
    "is_loopback",
    "now_utc",
    "parse_http",
    "read_service_state",
    "render_html",
    "render_metrics",
    "render_source_page",
    "short_time",
    "status_report",
]

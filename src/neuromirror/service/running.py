"""``neuromirror serve`` as one call: the service on its schedules, or the view of every pin alone, in the foreground.

:func:`serve` takes what the command parsed (:class:`ServeOptions`), loads the mirror definitions, runs the
:class:`~neuromirror.service.scheduler.Service` until SIGTERM/SIGINT and returns the exit status; with
``no_schedule`` it serves only the view (:meth:`neuromirror.api.Mirror.view`) on ``http``.  Log lines carry their
UTC time (a service's log is read hours later).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from neuromirror.api.inputs import jobs_of
from neuromirror.errors import BadInput

#: what serve says to its user (a warning, the view's routes): one line each
Say = Callable[[str], None]


@dataclass(frozen=True)
class ServeOptions:
    """What ``serve`` was asked: the definitions, the root and index, where to serve HTTP and how."""

    config: Sequence[str] = ()
    root: Optional[str] = None
    index: Optional[str] = None
    http: Optional[str] = None
    no_schedule: bool = False
    include_embargoed: bool = False
    browse_url: Optional[str] = None
    jobs: Optional[int] = None
    grace: float = 30.0
    #: ``--covered-by``: the archive's own backup the /coverage/ page counts against (else the definitions')
    covered_by: tuple[str, ...] = ()
    #: the service's INFO lines shown (the command's default; -q/-v change the root logger's level)
    info_log: bool = True


class UTCFormatter(logging.Formatter):
    """``2024-03-02T12:00:00.123Z INFO neuromirror.service: ...``: each line starts with its ISO-8601 UTC time."""

    converter = staticmethod(time.gmtime)
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


def timestamp_log_lines() -> None:
    """The service's log lines carry their time: every handler of the root logger (the CLI's, its filters
    kept) formats with :class:`UTCFormatter`."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(UTCFormatter())


def serve(options: ServeOptions, say: Say) -> int:
    """Run ``serve`` as asked until SIGTERM/SIGINT; the exit status (0).  Bad options are a :class:`UserError`."""
    from neuromirror.service.scheduler import Service

    timestamp_log_lines()
    # until the service installs its own handlers, a SIGTERM/SIGINT ends start-up quietly (nothing runs yet)
    _on_stop_signals(_early_exit)
    if options.no_schedule:
        return serve_view(options, say)
    config = _definitions(options, say)
    if options.info_log:
        logging.getLogger("neuromirror.service").setLevel(logging.INFO)
    service = Service(
        config,
        config.resolve_root(options.root),
        options.index,
        jobs=options.jobs,
        http=options.http,
        grace=max(options.grace, 0.0),
        browse_url=options.browse_url,
        include_embargoed=options.include_embargoed,
    )
    code = service.run()
    if service.abandoned:
        # threads still inside a sync would keep the interpreter alive: leave now, the datasets are crash-safe
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def serve_view(options: ServeOptions, say: Say) -> int:
    """The view of every pin of the mirror (:meth:`neuromirror.api.Mirror.view`), on ``http``, until
    SIGTERM/SIGINT."""
    from neuromirror import api
    from neuromirror.read.landing import routes_line
    from neuromirror.service.web import start_http

    if not options.http:
        raise BadInput("http: give HOST:PORT to serve the view of the pins on (no_schedule serves nothing else)").at(
            "http"
        )
    if options.config:
        say(f"warning: only the view is served: the mirror definitions ({', '.join(options.config)}) are not read")
    root = Path(options.root or "neuromirror-root").absolute()
    with api.open(root, options.index) as mirror:
        view = mirror.view(include_embargoed=options.include_embargoed)
    httpd, url = start_http(
        None, options.http, view=view, covered_by=options.covered_by
    )  # a bad address: HttpAddressError, a UserError
    stop = threading.Event()
    before = _on_stop_signals(lambda signum, frame: stop.set())
    try:
        embargoed = " (embargoed dandisets included)" if options.include_embargoed else ""
        say(f"serving the pins of {root} read-only on {routes_line(url, scheduled=False)}{embargoed}")
        while not stop.wait(1.0):
            pass
    finally:  # a script's (a notebook's) own Ctrl-C handling is its own again once the view stops
        _on_stop_signals(before)
        httpd.shutdown()
        view.tree.close()
    return 0


def _definitions(options: ServeOptions, say: Say) -> Any:
    """The mirror definitions ``config`` names, loaded together; their warnings said."""
    from neuromirror.config.load import load_configs

    if not options.config:
        raise BadInput(
            "config: name the mirror definitions to serve on their schedules (or no_schedule, with an http "
            "address: the view of the pins alone)"
        ).at("config")
    if options.jobs is not None:
        jobs_of(options.jobs, "syncs at once")
    config = load_configs(list(options.config))
    for w in config.warnings:
        say(f"warning: {w}")
    return config


def _on_stop_signals(handler: Any) -> dict[int, Any]:
    """``handler`` for SIGTERM and SIGINT (a dict: each its own); the handlers they had."""
    import signal

    each = handler if isinstance(handler, dict) else dict.fromkeys((signal.SIGTERM, signal.SIGINT), handler)
    return {sig: signal.signal(sig, h) for sig, h in each.items()}


def _early_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)

"""``neuromirror serve --config FILE...``: run the scheduled mirror service in the foreground.

``--http ADDR`` also serves the read-only view of every pin (``/dav/``, ``/dandisets/``);
``serve --http ADDR --no-schedule`` serves that view alone: no mirror definition, no sync.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from neuromirror.commands.common import UserError

if TYPE_CHECKING:
    from neuromirror.config.load import MirrorConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the mirror service (sync on schedules, status pages) and the read-only view of every pin",
        description="Sync every source of the mirror definitions (mirrors/*.yaml) on its cron or interval "
        "schedule until SIGTERM/SIGINT; see docs/service.md. With --http ADDR: the status page at /, "
        "/status.json, /metrics, /source/ID, and the view of every pin: /dav/ (WebDAV, HTML and JSON listings: "
        "/dav/ARCHIVE/NAME/VERSION/PATH), /dandisets/ (dandidav's /dandisets/ID/draft/PATH, "
        "/dandisets/ID/releases/VERSION/PATH), /zarrs/ (dandidav's Zarr states), /zarr-manifests/ (the Zarr "
        "manifests in DANDI's format), /view/ (a page naming them). --no-schedule --http ADDR: the view alone, "
        "its landing page at /; see docs/reading.md.",
    )
    p.add_argument(
        "--config",
        "-c",
        action="extend",
        nargs="+",
        metavar="FILE",
        help="mirror definition file(s) (YAML); repeatable; required unless --no-schedule",
    )
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve / (the status page), /status.json, /metrics and the read-only view of every pin (/dav/, "
        "/dandisets/, /zarrs/, /zarr-manifests/; about them: /view/) on this address, e.g. 127.0.0.1:8642 "
        "(port 0: any free)",
    )
    p.add_argument(
        "--no-schedule",
        action="store_true",
        help="serve only the view of the pins of --root on --http (/ its landing page, /dav/, /dandisets/, /zarrs/, "
        "/zarr-manifests/): no mirror definition, no scheduled sync",
    )
    p.add_argument(
        "--include-embargoed",
        action="store_true",
        help="the view serves embargoed dandisets too (by default they are absent: 404)",
    )
    p.add_argument(
        "--browse-url",
        default=os.environ.get("NEUROMIRROR_BROWSE_URL"),
        metavar="URL",
        help="link the status page to the catalog of the index at this URL (env NEUROMIRROR_BROWSE_URL; "
        "default: the URL of a running 'neuromirror browse' of the same root, if any)",
    )
    p.add_argument("-J", "--jobs", type=int, default=None, help="syncs at once (default: the files' 'jobs', else 2)")
    p.add_argument(
        "--grace",
        type=float,
        default=float(os.environ.get("NEUROMIRROR_GRACE", "30")),
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long running syncs get to stop cleanly before they are abandoned (default 30)",
    )
    p.set_defaults(func=run)


class UTCFormatter(logging.Formatter):
    """``2024-03-02T12:00:00.123Z INFO neuromirror.service: ...``: each line starts with its ISO-8601 UTC time."""

    converter = staticmethod(time.gmtime)
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


def timestamp_log_lines() -> None:
    """The service's log lines carry their time (a service's log is read hours later): every handler of the
    root logger (:func:`neuromirror.cli.setup_logging`'s, its filters kept) formats with :class:`UTCFormatter`."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(UTCFormatter())


def run(args: argparse.Namespace) -> int:
    from neuromirror.service import Service

    timestamp_log_lines()
    # until the service installs its own handlers, a SIGTERM/SIGINT ends start-up quietly (nothing runs yet)
    _on_stop_signals(_early_exit)
    if args.no_schedule:
        return _view_only(args)
    config = _config(args)
    root = config.resolve_root(args.root)
    if args.verbose == 0:
        logging.getLogger("neuromirror.service").setLevel(logging.INFO)
    service = Service(
        config,
        root,
        args.index,
        jobs=args.jobs,
        http=args.http,
        grace=max(args.grace, 0.0),
        browse_url=args.browse_url,
        include_embargoed=args.include_embargoed,
    )
    code = service.run()
    if service.abandoned:
        # threads still inside a sync would keep the interpreter alive: leave now, the datasets are crash-safe
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def _on_stop_signals(handler: Any) -> None:
    """``handler`` for SIGTERM and SIGINT."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def _config(args: argparse.Namespace) -> MirrorConfig:
    """The mirror definitions ``--config`` names, loaded together; their warnings on stderr."""
    from neuromirror.config.load import load_configs

    if not args.config:
        raise UserError("serve: --config FILE is required (or --no-schedule --http ADDR: the view of the pins alone)")
    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    config = load_configs(args.config)
    for w in config.warnings:
        print(f"neuromirror: warning: {w}", file=sys.stderr)
    return config


def _view_only(args: argparse.Namespace) -> int:
    """The view of every pin of the mirror, on ``--http``, until SIGTERM/SIGINT."""
    import threading

    from neuromirror.commands.common import require_mirror
    from neuromirror.publish.ria.publish import embargo_of
    from neuromirror.read.landing import routes_line
    from neuromirror.read.view import View
    from neuromirror.service.web import start_http

    if not args.http:
        raise UserError("serve --no-schedule: give --http HOST:PORT to serve the view on")
    if args.config:
        print("neuromirror: warning: --no-schedule: the mirror definitions are not read", file=sys.stderr)
    mirror = require_mirror(args)
    view = View(
        mirror.root,
        args.index,
        hidden=None if args.include_embargoed else embargo_of,
        cors=not args.include_embargoed,  # embargoed bytes: never to another origin's page
    )
    try:
        httpd, url = start_http(None, args.http, view=view)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    stop = threading.Event()
    _on_stop_signals(lambda signum, frame: stop.set())
    print(
        f"neuromirror: serving the pins of {mirror.root} read-only on {routes_line(url, scheduled=False)}"
        + (" (embargoed dandisets included)" if args.include_embargoed else ""),
        file=sys.stderr,
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    httpd.shutdown()
    view.tree.close()
    return 0


def _early_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)

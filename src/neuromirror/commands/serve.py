"""``neuromirror serve --config FILE...``: run the scheduled mirror service in the foreground.

``--http ADDR`` also serves the read-only view of every pin (``/dav/``, ``/dandisets/``);
``serve --http ADDR --no-schedule`` serves that view alone: no mirror definition, no sync.  The command parses;
:func:`neuromirror.service.running.serve` runs it (the service stands on the API: the view is ``Mirror.view()``).
"""

from __future__ import annotations

import argparse
import os
import sys


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
    p.add_argument(
        "--covered-by",
        action="append",
        default=[],
        metavar="LIST",
        help="the archive's own backup the /coverage/ page counts against, as keep --covered-by takes it "
        "(repeatable; default: the definitions' covered_by:)",
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


def run(args: argparse.Namespace) -> int:
    from neuromirror.api import BadInput
    from neuromirror.service.running import ServeOptions, serve

    # the two ways to serve, said as this command's options (the call says them as ServeOptions' fields)
    if args.no_schedule and not args.http:
        raise BadInput("serve --no-schedule: give --http HOST:PORT to serve the view on")
    if not args.no_schedule and not args.config:
        raise BadInput("serve: --config FILE is required (or --no-schedule --http ADDR: the view of the pins alone)")
    options = ServeOptions(
        config=args.config or (),
        root=args.root,
        index=args.index,
        http=args.http,
        no_schedule=args.no_schedule,
        include_embargoed=args.include_embargoed,
        browse_url=args.browse_url,
        jobs=args.jobs,
        grace=args.grace,
        covered_by=tuple(args.covered_by),
        info_log=args.verbose == 0,
    )
    return serve(options, say)


def say(line: str) -> None:
    """What serve says to its user, on stderr: a warning of the definitions, the view's routes."""
    print(f"neuromirror: {line}", file=sys.stderr, flush=True)

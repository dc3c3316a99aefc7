"""``neuromirror serve --config FILE...``: run the scheduled mirror service in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from neuromirror.commands.common import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the mirror service: sync the sources of mirror definitions on their schedules",
        description="Sync every source of the mirror definitions (mirrors/*.yaml) on its cron or interval "
        "schedule until SIGTERM/SIGINT; see docs/service.md.",
    )
    p.add_argument(
        "--config",
        "-c",
        action="extend",
        nargs="+",
        required=True,
        metavar="FILE",
        help="mirror definition file(s) (YAML); repeatable",
    )
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve /, /status.json and /metrics on this address, e.g. 127.0.0.1:8642 (port 0: any free)",
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


def run(args: argparse.Namespace) -> int:
    import signal

    from neuromirror.config.load import load_configs
    from neuromirror.service import Service

    # until the service installs its own handlers, a SIGTERM/SIGINT ends start-up quietly (nothing runs yet)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _early_exit)
    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    config = load_configs(args.config)
    for w in config.warnings:
        print(f"neuromirror: warning: {w}", file=sys.stderr)
    root = config.resolve_root(args.root)
    if args.verbose == 0:
        logging.getLogger("neuromirror.service").setLevel(logging.INFO)
    service = Service(
        config, root, args.index, jobs=args.jobs, http=args.http, grace=max(args.grace, 0.0), browse_url=args.browse_url
    )
    code = service.run()
    if service.abandoned:
        # threads still inside a sync would keep the interpreter alive: leave now, the datasets are crash-safe
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def _early_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)

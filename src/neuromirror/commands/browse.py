"""``neuromirror browse [--port P]``: the index as a read-only website (Datasette), with canned queries.

Datasette is an optional extra (``pip install 'neuromirror[browse]'``); it runs as a
child process (``python -m datasette serve``), on loopback unless ``--host`` says
otherwise, until Ctrl-C or SIGTERM: one call of ``neuromirror.api.Mirror.browse``.  See
``neuromirror.index.catalog`` and docs/service.md.
"""

from __future__ import annotations

import argparse
import sys

from neuromirror.commands.common import root_of


def register(sub: argparse._SubParsersAction) -> None:
    from neuromirror.api.serving import BROWSE_PORT

    p = sub.add_parser(
        "browse",
        help="browse the index read-only in a web browser (Datasette), with canned queries",
        description="Serve the SQLite index read-only with Datasette: its tables, and canned queries (which "
        "datasets hold a file with this sha256, the versions of a source, the files of a version, the "
        "failed runs of the last week). Needs the 'browse' extra: pip install 'neuromirror[browse]'.",
    )
    p.add_argument(
        "--port",
        "-p",
        type=int,
        default=BROWSE_PORT,
        help=f"port to listen on (default {BROWSE_PORT}; 0: any free port)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; the catalog has no authentication)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror import api

    with api.Mirror(root_of(args), args.index) as mirror:  # no index yet: said by browse, after Datasette
        mirror.browse(host=args.host, port=args.port, verbose=bool(getattr(args, "verbose", 0)), say=say)
    return 0


def say(line: str) -> None:
    """A warning (a host that is not loopback) and the catalog's URL, on stderr."""
    print(f"neuromirror: {line}", file=sys.stderr, flush=True)

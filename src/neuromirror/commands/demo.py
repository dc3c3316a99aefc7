"""``neuromirror demo``: mirror a sample dandiset from loopback stand-ins, then clone, get, pin, cite.

``demo --serve`` keeps the stand-in archive and the view running until Ctrl-C, and prints lines to
paste into another shell (:mod:`neuromirror.demo.serve`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole job offline, on stand-in archives (no arguments needed)")
    p.add_argument("--keep", action="store_true", help="keep the temporary mirror and clone")
    p.add_argument(
        "--serve",
        action="store_true",
        help="keep the stand-in archive and the view (/dav/, /dandisets/...) running until Ctrl-C, with a real NWB "
        "file and a Zarr rewritten in place; print the mirror's path, the view's URL and lines to paste",
    )
    p.add_argument(
        "--http",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="with --serve: the view's address (default 127.0.0.1:0, any free port)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.serve:
        from neuromirror.demo.serve import run_serve

        return run_serve(args.root, keep=args.keep, http=args.http)
    from neuromirror.demo import run_demo

    return run_demo(args.root, keep=args.keep)

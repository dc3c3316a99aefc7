"""``neuromirror demo``: mirror a sample dandiset from loopback stand-ins, then clone, get, pin, cite."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole job offline, on stand-in archives (no arguments needed)")
    p.add_argument("--keep", action="store_true", help="keep the temporary mirror and clone")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neuromirror.demo import run_demo

    return run_demo(args.root, keep=args.keep)

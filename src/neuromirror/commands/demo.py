"""``neuromirror demo``: mirror a sample dandiset from loopback stand-ins, then clone, get, pin, cite.

``demo --serve`` keeps the stand-in archive and the view running until Ctrl-C, and prints lines to
paste into another shell (:mod:`neuromirror.demo.serve`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuromirror.commands.common import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole job offline, on stand-in archives (no arguments needed)",
        description="Run the whole job offline against stand-in archives on loopback (DANDI with its S3 bucket, a "
        "BOSS): mirror a sample dandiset, pin a version, clone the pin and get a file, check its bytes against the "
        "archive's digest, cite it, then mirror a BOSS experiment and read a chunk back; a temporary mirror is removed "
        "afterwards unless --keep.",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary mirror and clone")
    p.add_argument(
        "--serve",
        action="store_true",
        help="keep the stand-in archive and the view (/dav/, /dandisets/...) running until Ctrl-C, with a real NWB "
        "file and a Zarr rewritten in place; print the mirror's path, the view's URL and lines to paste",
    )
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="with --serve: the view's address (default 127.0.0.1:0, any free port)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.http and not args.serve:  # else the demo ran, served nothing, and never said why
        raise UserError(f"--http {args.http}: the view's address is for demo --serve (add --serve)")
    root = Path(args.root) if args.root else None
    if root is not None and root.is_dir() and any(root.iterdir()):
        label = getattr(args, "root_label", f"--root {args.root}")
        raise UserError(f"{label} is not empty: the demo mirrors into a fresh root (give --root NEW_DIR, or none)")
    if args.serve:
        from neuromirror.demo.serve import run_serve

        return run_serve(root, keep=args.keep, http=args.http or "127.0.0.1:0")
    from neuromirror.demo import run_demo

    return run_demo(root, keep=args.keep)

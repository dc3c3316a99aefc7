"""The command line: parse, dispatch, print one-line errors.

Kept thin and cheap to import: each command lives in ``neuromirror.commands``
and imports datalad, dandi, boto3... only when it runs, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

#: commands listed first in --help; every other module in neuromirror.commands follows
FIRST = ["sync", "versions", "pin", "reindex", "demo"]


def command_modules() -> list[str]:
    """Every module of neuromirror.commands with a ``register`` function."""
    import pkgutil

    from . import commands

    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if m.name != "common"]
    return [n for n in FIRST if n in names] + sorted(n for n in names if n not in FIRST)


class UserError(Exception):
    """An error the user can fix; printed as one line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuromirror",
        description="Mirror DANDI, AIND and BOSS into versioned DataLad datasets, with a SQLite index.",
    )
    parser.add_argument("--root", default=os.environ.get("NEUROMIRROR_ROOT"),
                        help="the mirror root, a DataLad superdataset (env NEUROMIRROR_ROOT; default: ./neuromirror-root)")
    parser.add_argument("--index", default=os.environ.get("NEUROMIRROR_INDEX"),
                        help="the SQLite index (env NEUROMIRROR_INDEX; default ROOT/.neuromirror/index.sqlite)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        module = importlib.import_module(f"neuromirror.commands.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def root_of(args: argparse.Namespace) -> Path:
    return Path(args.root or "neuromirror-root").absolute()


def open_mirror(args: argparse.Namespace):  # -> Mirror, imported lazily
    from .mirror import Mirror

    return Mirror(root_of(args), args.index)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .gitutil import IDENTITY

    # the mirror commits as itself (datalad's own commits included), whoever runs it
    for k, v in IDENTITY.items():
        os.environ.setdefault(k, v)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    # what matters of a run is in its report; logs are for -v (ours) and -vv (the libraries' too)
    level = {0: logging.ERROR, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        # libraries (dandi resets its own level on import) speak only with -vv
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: record.name.split(".")[0] == "neuromirror")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("neuromirror: interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"neuromirror: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line, never a traceback, unless -vv
        if args.verbose >= 2:
            raise
        from .sync import one_line

        print(f"neuromirror: error: {one_line(exc)}", file=sys.stderr)
        return 1

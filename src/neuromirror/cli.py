"""The command line: parse, dispatch, print one-line errors.

Kept thin and cheap to import: each command lives in ``neuromirror.commands``
and imports datalad, dandi, boto3... only when it runs, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
import textwrap
from typing import Optional, Sequence

from neuromirror.errors import NeuromirrorError, NotMirrored, UserError

#: commands listed first in --help; every other module in neuromirror.commands follows
FIRST = ["sync", "versions", "pin", "reindex", "demo"]
#: ``neuromirror --help`` lists the commands by job, in this order; a command no group names is
#: listed under "other" (a new command needs no edit here to be shown)
GROUPS: dict[str, tuple[str, ...]] = {
    "mirror": ("sync", "versions", "search", "diff", "reindex", "repair", "forget"),
    "pin and reproduce": ("pin", "lock", "get", "reproduce", "cite"),
    "read": ("urls", "browse", "export"),
    "keep and check": ("keep", "verify", "status", "audit", "restore", "repin", "changes"),
    "operate": ("serve", "publish", "maintain", "check-config", "demo"),
}
OTHER = "other"


def grouped(names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(job, commands) in GROUPS' order, then every command no group names under "other"; empty groups left out."""
    out = [(job, [n for n in members if n in names]) for job, members in GROUPS.items()]
    known = {n for members in GROUPS.values() for n in members}
    out.append((OTHER, [n for n in names if n not in known]))
    return [(job, members) for job, members in out if members]


class GroupedHelp(argparse.HelpFormatter):
    """``neuromirror --help``: the subcommands by job (mirror; pin and reproduce; read; keep and check; operate)."""

    def _format_action(self, action: argparse.Action) -> str:
        if not isinstance(action, argparse._SubParsersAction):
            return super()._format_action(action)
        helps = {a.dest: a.help or "" for a in action._get_subactions()}
        width = max(self._width - 4, 40)
        lines = []
        for job, names in grouped(list(helps)):
            lines.append(f"  {job}:")
            for name in names:
                text = f"    {name:<14} {helps[name]}"
                lines += textwrap.wrap(text, width, subsequent_indent=" " * 19) or [text]
        return "\n".join(lines) + "\n"


def command_modules() -> list[str]:
    """Every module of neuromirror.commands with a ``register`` function."""
    import pkgutil

    from neuromirror import commands

    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if m.name != "common"]
    return [n for n in FIRST if n in names] + sorted(n for n in names if n not in FIRST)


def _log_level(text: str) -> int:
    """``-l`` as dandi's and datalad's: a level name (any case) or a number."""
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    if not isinstance(level, int):
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r} (critical, error, warning, info, debug or a number)"
        )
    return level


def add_global_options(p: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """--root, --index, -v, -l: before the command, or after it (``sync --root DIR SPEC``).

    After the command they default to SUPPRESS, so that a value given before the
    command is kept unless the same option is given again after it.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if after_command else value

    g = p.add_argument_group("global options") if after_command else p
    g.add_argument(
        "--root",
        default=default(os.environ.get("NEUROMIRROR_ROOT")),
        help="the mirror root, a DataLad superdataset (env NEUROMIRROR_ROOT; default: ./neuromirror-root)",
    )
    g.add_argument(
        "--index",
        default=default(os.environ.get("NEUROMIRROR_INDEX")),
        help="the SQLite index (env NEUROMIRROR_INDEX; default ROOT/.neuromirror/index.sqlite)",
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more log output on stderr (-v: ours at info, -vv: the libraries' too, at debug)",
    )
    g.add_argument(
        "-l",
        "--log-level",
        type=_log_level,
        default=default(None),
        metavar="LEVEL",
        help="log level of neuromirror and the libraries it uses: critical, error, warning, info, debug "
        "or a number (default: neuromirror's warnings)",
    )


def build_parser() -> argparse.ArgumentParser:
    from neuromirror import __version__

    parser = argparse.ArgumentParser(
        prog="neuromirror",
        description="Mirror DANDI, AIND and BOSS into versioned DataLad datasets, with a SQLite index.",
        epilog="neuromirror COMMAND --help: what a command does and its options. Try it offline: neuromirror demo "
        "(or demo --serve: a mirror and its view left running, with lines to paste).",
        formatter_class=GroupedHelp,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands, by job")
    for name in command_modules():
        module = importlib.import_module(f"neuromirror.commands.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    for command_parser in set(sub.choices.values()):
        add_global_options(command_parser, after_command=True)
    return parser


def setup_logging(verbose: int, log_level: Optional[int]) -> None:
    """Warnings of neuromirror by default; -v info, -vv debug with the libraries'; -l LEVEL for all."""
    level = log_level if log_level is not None else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if log_level is None and verbose < 2:
        # libraries (dandi resets its own level on import) speak only with -vv or -l
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: record.name.split(".")[0] == "neuromirror")


def _stdout_gone() -> int:
    """The reader of our stdout left (``| head``): stop quietly, as a pipeline expects."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit, no "Exception ignored"
    except (OSError, ValueError, AttributeError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a writer cut off by its reader


def _exit_now_if_a_worker_is_stuck(code: int) -> None:
    """End the process at once when a worker thread is still running after Ctrl-C.

    The interrupted sync has recorded itself and put its dataset back by now, but a thread of it
    (the Zarr list read beside the draft's listing, a pool's worker) can be blocked on a request
    the archive never answers, and Python would wait for it at exit: Ctrl-C would hang until the
    archive gave up.  Only for the command itself, never when ``main`` is called in a process."""
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)


def _check_root(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """A root that is a file (or under one) is one line naming where it came from, before any command
    touches it: else the first ``mkdir`` under it said ``[Errno 20] Not a directory``.  Where it came
    from is kept as ``args.root_label`` (``--root DIR`` or ``NEUROMIRROR_ROOT=DIR``) for other errors."""
    if not getattr(args, "root", None):
        return
    from neuromirror.commands.common import check_folder

    given = any(a == "--root" or a.startswith("--root=") for a in argv)
    args.root_label = f"--root {args.root}" if given else f"NEUROMIRROR_ROOT={args.root} (exported)"
    check_folder(args.root_label, args.root, " (a mirror root is a directory)", writable=False)


def _under_root(args: argparse.Namespace, exc: OSError) -> Optional[str]:
    """How the user named the root (``--root DIR``) when ``exc`` is about a path in it (``--root /proc/x``:
    the root cannot be made there), else None: the mistake is the root's, said as such, exit 2."""
    root, label = getattr(args, "root", None), getattr(args, "root_label", None)
    if (
        not root
        or not label
        or not exc.filename
        or exc.errno not in (errno.ENOENT, errno.EACCES, errno.EROFS, errno.EPERM)
    ):
        return None
    path, top = os.path.abspath(os.fsdecode(exc.filename)), os.path.abspath(root)
    return f"{label}: the mirror root cannot be made or written there" if (path + "/").startswith(top + "/") else None


def _error_line(exc: Exception, args: argparse.Namespace) -> str:
    """An unexpected error as one line; one of neuromirror's about one argument says it as its option; SQLite's
    about the index (damaged past its header, read-only here) says which file and what to do."""
    import sqlite3

    from neuromirror.util.text import one_line

    if isinstance(exc, NeuromirrorError) and exc.argument:
        return exc.cli_line().splitlines()[0]
    if isinstance(exc, sqlite3.DatabaseError):
        from pathlib import Path

        from neuromirror.index.connection import damaged, is_damage

        root = Path(getattr(args, "root", None) or "neuromirror-root").absolute()
        index = Path(getattr(args, "index", None) or root / ".neuromirror" / "index.sqlite")
        if is_damage(exc):
            return str(damaged(index, str(exc)))
        if "readonly database" in str(exc):
            return f"the index {index} is read-only here: `neuromirror {args.command}` writes to it"
    return one_line(exc)


def _user_line(exc: UserError) -> str:
    """A mistake as the command line says it: the argument at fault as its option and, for a root that holds
    no mirror (the API says only where it looked), how to name another one."""
    line = exc.cli_line()
    if isinstance(exc, NotMirrored) and exc.argument == "root":
        hint = "pass --root or set NEUROMIRROR_ROOT"
        line = f"{line[:-1]}; {hint})" if line.endswith(")") else f"{line} ({hint})"
    return line


def _spare_exit_collections() -> None:
    """The command's objects frozen out of the garbage collector: they are freed with the process, and the
    collections the interpreter's shutdown makes would walk every one of them (0.2-0.25 s after a resync of a
    20,000-asset dandiset, 0.02-0.05 s frozen: bench/RUNS.md, 2026-11-29).

    Not once h5py is loaded: an h5py file read through a Python file object leaves a property list whose
    free calls back into Python from HDF5's own exit handler, after the interpreter is gone; frozen, it is
    never collected before that, and the process dies of SIGSEGV at exit (``sync --references``, gdb:
    ``H5FD_fileobj_fapl_free`` -> ``PyGILState_Ensure`` with no interpreter)."""
    import gc

    if "h5py" not in sys.modules:
        gc.freeze()


def main(argv: Optional[Sequence[str]] = None) -> int:
    from neuromirror.util import counts
    from neuromirror.util.toolpath import as_installed

    counts.install()  # NEUROMIRROR_COUNTS=FILE: the work this run does, counted (tests/test_hot_path_budget.py)
    # the git-annex installed with neuromirror, for us and every git/datalad process we start; and the mirror
    # commits as itself (datalad's own commits included), whoever runs it
    as_installed()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    setup_logging(args.verbose, args.log_level)
    try:
        _check_root(args, sys.argv[1:] if argv is None else argv)
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        if argv is None:  # the process ends here
            _spare_exit_collections()
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        print("neuromirror: interrupted", file=sys.stderr)
        if argv is None:
            _exit_now_if_a_worker_is_stuck(130)
        return 130
    except UserError as exc:
        print(f"neuromirror: {_user_line(exc)}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except OSError as exc:
        where = _under_root(args, exc)
        if where is None or args.verbose >= 2:
            raise
        print(f"neuromirror: {where}: {exc.strerror or exc} ({exc.filename})", file=sys.stderr)
        return 2
    except Exception as exc:  # one line, never a traceback, unless -vv
        if args.verbose >= 2:
            raise
        print(f"neuromirror: error: {_error_line(exc, args)}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))  # errors.py: each kind's code, 1 for the rest

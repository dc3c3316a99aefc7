"""Opt-in counts of the work a run does (``NEUROMIRROR_COUNTS=FILE``), for the hot-path guard.

Wall and CPU time on a shared machine move with the load; what a sync *does* does not: the
processes it starts, the files it opens for writing, renames, symlinks, directories, fsyncs.
With ``NEUROMIRROR_COUNTS`` naming a file, :func:`install` (called by the CLI at start-up)
counts those through a Python audit hook (``subprocess.Popen``, ``open``, ``os.rename``, ...:
every call site counted, none edited) plus the explicit :func:`add` of what has no audit event
(``fsync``, ``syncfs``), and appends one JSON line per process to the file at exit.  A Python
child that is neuromirror (a DataLad or special-remote helper started with the same
environment) appends its own line; git and git-annex are counted as processes started (their
own work is what ``tests/test_hot_path_budget.py`` budgets through ``GIT_TRACE2_EVENT`` and
the objects they write).  Without the variable nothing is installed and :func:`add` is one
``None`` test.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from collections import Counter
from typing import Any, Optional

ENV = "NEUROMIRROR_COUNTS"

_counts: Optional[Counter[str]] = None
_lock = threading.Lock()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def add(name: str, n: int = 1) -> None:
    """Count ``n`` of ``name`` (``fsync``, ``syncfs``...) when counting is on; else nothing."""
    if _counts is not None:
        with _lock:
            _counts[name] += n


def install() -> bool:
    """Start counting this process if ``NEUROMIRROR_COUNTS`` is set (once per process)."""
    global _counts
    target = os.environ.get(ENV)
    if not target or _counts is not None:
        return _counts is not None
    _counts = Counter()
    sys.addaudithook(_hook)
    atexit.register(_dump, target)
    return True


def process_name(argv: Any) -> str:
    """``git cat-file``, ``git-annex``, ``datalad create``: a started process as the budget names it."""
    if isinstance(argv, (str, bytes, os.PathLike)):
        argv = [argv]
    words = [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in list(argv or [])]
    if not words:
        return "?"
    prog = os.path.basename(words[0])
    rest = [w for w in words[1:] if not w.startswith("-")]
    if prog == "git":  # git -C DIR -c k=v SUBCOMMAND: the subcommand is the first word no option takes
        skip = False
        for w in words[1:]:
            if skip:
                skip = False
            elif w in ("-C", "-c", "--git-dir", "--work-tree"):
                skip = True
            elif not w.startswith("-"):
                return f"git {w}"
        return "git"
    if prog in ("git-annex", "datalad") and rest:
        return f"{prog} {rest[0]}"
    return prog


def _hook(event: str, args: tuple) -> None:
    counts = _counts
    if counts is None:
        return
    if event == "subprocess.Popen":
        with _lock:
            counts["processes"] += 1
            counts["process:" + process_name(args[1])] += 1
    elif event == "open":
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        if flags & _WRITE_FLAGS or any(c in mode for c in "wax+"):
            with _lock:
                counts["files-written"] += 1
    elif event in ("os.rename", "os.symlink", "os.mkdir", "os.remove", "os.link", "os.truncate"):
        with _lock:
            counts[event[3:]] += 1


def snapshot() -> dict[str, int]:
    """This process's counts so far (empty when counting is off)."""
    with _lock:
        return dict(_counts or {})


def _dump(target: str) -> None:
    line = json.dumps({"pid": os.getpid(), "argv": sys.argv[:3], "counts": snapshot()}, sort_keys=True) + "\n"
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())  # one write of one line: lines of several processes never mix
        finally:
            os.close(fd)
    except OSError:
        pass  # counting never fails a run


def read(target: str) -> dict[str, int]:
    """Every process's counts in ``target`` summed, plus ``neuromirror-processes`` (lines read)."""
    total: Counter[str] = Counter()
    try:
        with open(target, encoding="utf-8") as fh:
            for line in fh:
                total.update(json.loads(line)["counts"])
                total["neuromirror-processes"] += 1
    except FileNotFoundError:
        pass
    return dict(total)

"""The programs installed with neuromirror, found even when their bin directory is not on PATH.

``pip install neuromirror`` puts git-annex (the PyPI wheel), the special remotes
and ``neuromirror`` itself in one bin directory.  A user who runs
``.venv/bin/neuromirror`` without activating the venv has that directory off
PATH, and every git / git-annex / datalad process neuromirror starts would then
fail with "No working git-annex installation".  Putting the directory in front of
PATH for this process (and so for its children) makes the installed set work as
one, without touching the user's shell.
"""

from __future__ import annotations

import os
import sys


def install_bin_dirs() -> list[str]:
    """Where this installation's scripts live: next to the interpreter and to the running script."""
    dirs: list[str] = []
    for exe in (sys.executable, sys.argv[0] if sys.argv else ""):
        if exe and os.path.sep in exe:
            d = os.path.dirname(os.path.abspath(exe))
            if d not in dirs:
                dirs.append(d)
    return dirs


def ensure_tools_on_path(tool: str = "git-annex") -> None:
    """Prepend the install's bin directory holding ``tool`` to PATH, if PATH lacks that directory."""
    path = os.environ.get("PATH", "")
    entries = [os.path.abspath(p) for p in path.split(os.pathsep) if p]
    for d in install_bin_dirs():
        if d not in entries and os.access(os.path.join(d, tool), os.X_OK):
            os.environ["PATH"] = d + (os.pathsep + path if path else "")
            return

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


def as_installed() -> None:
    """This process as the CLI runs: the install's git-annex and DataLad first on PATH when PATH lacks them,
    and the mirror's git identity (``GIT_AUTHOR_*``/``GIT_COMMITTER_*``, where none is set): a clone's
    ``git annex init`` and DataLad's own commits then need no identity of the user's.  The CLI sets these at
    its start, :func:`neuromirror.api.open` at a mirror's opening: a script's ``get``/``reproduce`` then work
    on a fresh machine exactly as the commands do (docs/python-api.md)."""
    from neuromirror.util.gitutil import IDENTITY

    ensure_tools_on_path()
    for k, v in IDENTITY.items():
        os.environ.setdefault(k, v)

"""Where a dataset can be cloned from: a local path, a ``file://`` URL, a network URL or an scp-like address.

``get --from``, ``reproduce`` and ``lock --url`` take the base where
``neuromirror publish --to BASE`` put the datasets (or one dataset's own
URL); ``publish`` takes the same kind of base.  Paths and URLs join
differently, and a local path must not be mistaken for an ``ssh`` host.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from neuromirror.reproduce.retrieve import RetrieveError
from neuromirror.util import gitutil


def is_local(url: str) -> bool:
    """A plain path (or file:// URL) rather than a network URL."""
    if url.startswith("file://"):
        return True
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return False
    # scp-like ssh syntax: user@host:path or host:path (not a Windows drive)
    if re.match(r"^[^/]+:", url) and not re.match(r"^[A-Za-z]:[\\/]", url):
        return False
    return True


def local_path(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url).expanduser().absolute()


def join_url(base: str, relpath: str) -> str:
    """``base`` + ``/relpath``, for paths, URLs and scp-like ssh addresses alike."""
    if is_local(base) and not base.startswith("file://"):
        return str(local_path(base) / relpath)
    return base.rstrip("/") + "/" + relpath


def is_repository(url: str) -> bool:
    """Whether git can talk to a repository at ``url`` (cheap: ``git ls-remote``)."""
    if is_local(url) and not local_path(url).exists():
        return False
    proc = subprocess.run(
        ["git", "ls-remote", "-q", "--heads", url],
        capture_output=True,
        env=gitutil.git_env({"GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")}),
        timeout=120,
    )
    return proc.returncode == 0


def resolve_url(base: str, relpath: str) -> str:
    """The clone URL of dataset ``relpath`` at ``base``: ``base/relpath`` if a repository is there, else ``base``.

    ``base`` is either where ``neuromirror publish --to BASE`` put the
    datasets, or the URL of one dataset itself.
    """
    for candidate in (join_url(base, relpath), base):
        if is_repository(candidate):
            return candidate
    raise RetrieveError(f"no git repository at {join_url(base, relpath)} nor at {base}")


def same_url(a: str, b: str) -> bool:
    if is_local(a) and is_local(b):
        return local_path(a).resolve() == local_path(b).resolve()
    return a.rstrip("/") == b.rstrip("/")

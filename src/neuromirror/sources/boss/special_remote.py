"""The dataset's git-annex special remote: set up by the sync so that clones can get chunks.

The remote's program is :mod:`neuromirror.remotes.boss` (``git-annex-remote-neuromirror``);
here the source only makes sure the dataset has it, autoenabled, with the BOSS URL
in its config (never the token), and that git-annex can find the program.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from neuromirror.sources.boss.api import BossError

REMOTE_NAME = "neuromirror"
EXTERNAL_TYPE = "neuromirror"


def git_output(repo: Path | str, *args: str, check: bool = True) -> str:
    """A git command's output ("" when it answers no, an error when it fails)."""
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and proc.returncode not in (0, 1):
        raise BossError(f"git {' '.join(args[:2])} failed in {repo}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def special_remote_env() -> dict[str, str]:
    """Put ``git-annex-remote-neuromirror`` on PATH (for every git-annex this process runs).

    The console script sits next to the Python running neuromirror (a venv's
    ``bin/``), which need not be on PATH when neuromirror runs as ``python -m``;
    git-annex runs it for ``initremote`` and, with the batch engine, for
    ``registerurl`` (CLAIMURL).
    """
    bindir = os.path.dirname(sys.executable)
    if shutil.which("git-annex-remote-neuromirror") is None and os.path.exists(
        os.path.join(bindir, "git-annex-remote-neuromirror")
    ):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return dict(os.environ)


def _annex(repo: Path, args: list[str], env: dict[str, str]) -> None:
    from neuromirror.util.gitutil import git_env

    proc = subprocess.run(
        ["git", "-C", str(repo), "annex", *args], capture_output=True, text=True, env=git_env({"PATH": env["PATH"]})
    )
    if proc.returncode != 0:
        err = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise BossError(
            f"git annex {args[0]} {REMOTE_NAME} failed in {repo}: {err[-1] if err else proc.returncode}"
            " (is git-annex-remote-neuromirror installed? pip install neuromirror)"
        )


def enable_special_remote(path: Path, url: str) -> str:
    """Make sure the dataset has the ``neuromirror`` special remote (autoenabled in clones); its uuid.

    Its config holds the BOSS URL only; the token is read at retrieval time.
    """
    env = special_remote_env()
    uuid = git_output(path, "config", "--get", f"remote.{REMOTE_NAME}.annex-uuid")
    if not uuid:
        known = git_output(path, "show", "git-annex:remote.log", check=False) or ""
        if re.search(rf"(^|\s)name={REMOTE_NAME}(\s|$)", known):
            _annex(path, ["enableremote", REMOTE_NAME], env)
        else:
            _annex(
                path,
                [
                    "initremote",
                    REMOTE_NAME,
                    "type=external",
                    f"externaltype={EXTERNAL_TYPE}",
                    "encryption=none",
                    "autoenable=true",
                    f"url={url}",
                ],
                env,
            )
        uuid = git_output(path, "config", "--get", f"remote.{REMOTE_NAME}.annex-uuid")
        if not uuid:
            raise BossError(f"could not set up the {REMOTE_NAME} special remote in {path}")
    return uuid

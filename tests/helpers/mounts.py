"""Real file systems a test mounts for what a user meets: a small tmpfs that fills up, a read-only bind mount.

Both need the right to mount (root with CAP_SYS_ADMIN, as in the project's CI container); a test skips with
the reason where it cannot, never passes on a stand-in for the file system."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip() or done.returncode}): needs root and CAP_SYS_ADMIN")


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``4m``) at ``where`` (made), unmounted after."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextmanager
def read_only_bind(source: Path, where: Path) -> Iterator[Path]:
    """``source`` seen read-only at ``where`` (a bind mount, then remounted read-only), unmounted after."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(source), str(where))
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], capture_output=True, text=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot make a bind mount read-only here ({ro.stderr.strip()})")
        assert subprocess.run(["touch", str(where / ".probe")], capture_output=True).returncode != 0, "not read-only"
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path, leave: int) -> Path:
    """A file taking all the free space of ``where``'s file system but ``leave`` bytes."""
    import shutil

    filler = where / "filler"
    free = shutil.disk_usage(where).free
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler

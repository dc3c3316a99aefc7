"""Free disk space: what a sync, keep or publish needs before it starts, and what status shows.

A mirror that runs for years fills its disk one day.  Git, git-annex and SQLite then fail
half-way with errors that name neither the cause nor the cure; refusing to *start* below a
threshold turns that into one line the operator can act on.  The threshold is the entry's
``min_free`` option (a mirror definition), else ``NEUROMIRROR_MIN_FREE``, else 1 GiB; ``0``
turns the check off.  Sizes as :mod:`.sizes` reads them: ``5GiB`` is 5 x 2^30 bytes, ``5G`` and
``5GB`` 5 x 10^9.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Optional

from neuromirror.errors import UserError
from neuromirror.util.sizes import human_bytes, parse_size

ENV = "NEUROMIRROR_MIN_FREE"
DEFAULT_MIN_FREE = 1 << 30


class DiskFull(UserError):
    """Less free space than the threshold: the work did not start (one line, exit 2)."""


def min_free(option: Any = None) -> int:
    """The threshold in bytes: ``option`` (a definition's ``min_free``), else the environment, else 1 GiB."""
    if option is not None and option != "":
        return parse_size(option)
    env = os.environ.get(ENV, "").strip()
    if env:
        try:
            return parse_size(env)
        except ValueError as exc:
            raise UserError(f"{ENV}: {exc}") from None
    return DEFAULT_MIN_FREE


def existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a root not made yet lives on its parent's disk)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def unwritable(path: Path) -> Optional[str]:
    """Why this process cannot write ``path`` (a file that is there or a directory it would be made in), or None.

    A lab's mirror is often seen read-only: a read-only (bind) mount on compute nodes, or a root another user
    owns.  Said as ``read-only file system`` or ``not writable by USER``, for the one line a verb that must
    write says before any work (the verbs that read open the index read-only instead)."""
    place = existing(path)
    for p in (place,) if place.is_dir() else (place, place.parent):
        if not os.access(p, os.W_OK):
            return _why_not(p)
    return None


def _why_not(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = f"uid {os.geteuid()}"
    return f"not writable by {user}"


#: what a file system out of room says (errno ENOSPC/EDQUOT, SQLite, git, git-annex)
FULL = (
    "No space left on device",
    "database or disk is full",
    "Disk quota exceeded",
    "Out of diskspace",
    "not enough free space",  # git-annex's refusal below annex.diskreserve
)


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a file system out of room, whoever said it."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(f in str(exc) for f in FULL)


def filesystem(path: Path) -> str:
    """The file system holding ``path``, as a user finds it in ``df``: its mount point and type (``tmpfs at /mnt``)."""
    place, best = str(existing(path)), ("", "")
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                fields = line.split()
                mount = fields[1].replace("\\040", " ")
                if (place + "/").startswith(mount.rstrip("/") + "/") and len(mount) >= len(best[0]):
                    best = (mount, fields[2])
    except OSError:
        pass
    return f"{best[1]} at {best[0]}" if best[0] else f"the file system of {place}"


def check_room(path: Path, need: int, what: str, *, option: Any = None, reserve: tuple[int, str] = (0, "")) -> None:
    """Raise :class:`DiskFull` when ``need`` bytes (what the work will write, known before it starts) and the
    ``min_free`` threshold (or ``reserve``, bytes and name, a tool's own: git-annex's ``annex.diskreserve``,
    when larger) do not fit in the free space of the file system of ``path``: one line naming it and how much
    more is needed, before anything is written."""
    keep, name = max((min_free(option), "min_free"), reserve)
    du = shutil.disk_usage(existing(path))
    if du.total == 0:  # no disk (/proc, /sys): what cannot be written there is said as that
        return
    free = du.free
    if need + max(keep, 0) > free:
        more = need + max(keep, 0) - free
        left = f" with {name} {human_bytes(keep)} left" if keep > 0 else ""
        raise DiskFull(
            f"not starting {what}: it needs {human_bytes(need)}{left}; {filesystem(path)} has {human_bytes(free)} "
            f"free: {human_bytes(more)} more needed"
        )


def usage(path: Path) -> dict[str, Any]:
    """Free, total and used bytes of the file system holding ``path``."""
    du = shutil.disk_usage(existing(path))
    return {"path": str(path), "free": du.free, "total": du.total, "used": du.used}


def check_free(path: Path, what: str, threshold: Optional[int] = None, *, option: Any = None) -> None:
    """Raise :class:`DiskFull` when the file system of ``path`` has less free space than the threshold."""
    need = min_free(option) if threshold is None else threshold
    if need <= 0:
        return
    free = shutil.disk_usage(existing(path)).free
    if free < need:
        raise DiskFull(
            f"not starting {what}: {filesystem(path)} has {human_bytes(free)} free, below min_free "
            f"{human_bytes(need)}: {human_bytes(need - free)} more needed (or lower min_free / {ENV})"
        )


def space(places: list[tuple[str, Path]], option: Any = None) -> list[dict[str, Any]]:
    """Free space of each ``(what, path)`` (the root, a directory store...): what status shows.

    ``min_free`` is the threshold that applies there, ``low`` whether a sync, keep or
    publish would refuse to start; a place that cannot be read says why instead.
    """
    try:
        need = min_free(option)
    except (UserError, ValueError):
        need = DEFAULT_MIN_FREE
    out: list[dict[str, Any]] = []
    for what, path in places:
        try:
            u = usage(path)
        except OSError as exc:
            out.append({"what": what, "path": str(path), "error": str(exc)})
            continue
        out.append({"what": what, **u, "min_free": need, "low": bool(need) and u["free"] < need})
    return out

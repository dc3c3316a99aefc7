"""The per-UUID logs of a dataset's ``git-annex`` branch as lines: ``uuid.log`` and ``remote.log``.

One module makes and reads these lines for every writer (a store's record, a new dataset's first
branch commit, the RIA publisher): ``<uuid> <value> timestamp=<unix>s``, the newest line per UUID
winning, ``remote.log`` values being ``field=value`` words with git-annex's escape (``&<decimal>;``)
for white space and ``&``.  Only :mod:`.branch_writer` (or a new repository's first commit) writes
them to a branch.
"""

from __future__ import annotations

import re
import time
from typing import Optional


def escape_value(value: str) -> str:
    """A remote.log value as git-annex writes it: white space, ``&`` and control characters as ``&N;``."""
    return "".join(f"&{ord(c)};" if c.isspace() or c == "&" or ord(c) < 0x20 else c for c in value)


def log_lines(existing: Optional[bytes]) -> list[str]:
    return [ln for ln in (existing or b"").decode("utf-8", "surrogateescape").splitlines() if ln.strip()]


def line_stamp(line: str) -> float:
    last = line.rsplit(" ", 1)[-1]
    if last.startswith("timestamp=") and last.endswith("s"):
        try:
            return float(last[len("timestamp=") : -1])
        except ValueError:
            return 0.0
    return 0.0


def newest_line(lines: list[str], uuid: str) -> Optional[str]:
    mine = [ln for ln in lines if ln.split(" ", 1)[0] == uuid]
    return max(mine, key=line_stamp) if mine else None


def line_value(line: str) -> str:
    """What a line says, between the UUID and its timestamp."""
    body = line.split(" ", 1)[1] if " " in line else ""
    head, _, last = body.rpartition(" ")
    return head if last.startswith("timestamp=") else body


def with_line(lines: list[str], uuid: str, value: str, now: Optional[float]) -> bytes:
    old = newest_line(lines, uuid)
    stamp = int(now if now is not None else time.time())
    if old is not None and line_stamp(old) >= stamp:  # a clock behind the last writer's: still newer
        stamp = int(line_stamp(old)) + 1
    kept = [ln for ln in lines if ln.split(" ", 1)[0] != uuid]
    return ("\n".join([*kept, f"{uuid} {value} timestamp={stamp}s"]) + "\n").encode("utf-8", "surrogateescape")


def parse_fields(value: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in value.split() if "=" in w)


def remote_log_with(
    existing: Optional[bytes], uuid: str, fields: dict[str, str], now: Optional[float] = None
) -> Optional[bytes]:
    """``remote.log`` recording the store with ``fields``; None when it says so already."""
    lines = log_lines(existing)
    old = newest_line(lines, uuid)
    if old is not None and parse_fields(line_value(old)) == fields:
        return None
    return with_line(lines, uuid, " ".join(f"{k}={v}" for k, v in sorted(fields.items())), now)


def uuid_log_with(
    existing: Optional[bytes], uuid: str, description: str, now: Optional[float] = None
) -> Optional[bytes]:
    """``uuid.log`` describing the store; None when it does already."""
    description = " ".join(description.split())
    lines = log_lines(existing)
    old = newest_line(lines, uuid)
    if old is not None and line_value(old) == description:
        return None
    return with_line(lines, uuid, description, now)


_ESCAPED = re.compile(r"&(\d+);")


def unescape_value(value: str) -> str:
    """A ``remote.log`` value as git-annex wrote it (``&32;`` for a space) back to text."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1))), value)


def recorded_remotes(remote_log: Optional[bytes]) -> dict[str, dict[str, str]]:
    """uuid -> fields (unescaped) of every special remote in ``remote.log``, the newest line per uuid.

    The one reader of that file for verify, retrieval and publishing, so that they agree on
    which store a dataset records."""
    newest: dict[str, tuple[float, dict[str, str]]] = {}
    for line in (remote_log or b"").decode("utf-8", "surrogateescape").splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        stamp = 0.0
        if words[-1].startswith("timestamp="):
            try:
                stamp = float(words[-1][len("timestamp=") :].rstrip("s"))
            except ValueError:
                pass
            words = words[:-1]
        fields = {k: unescape_value(v) for k, v in (w.split("=", 1) for w in words[1:] if "=" in w)}
        if words[0] not in newest or stamp >= newest[words[0]][0]:
            newest[words[0]] = (stamp, fields)
    return {u: f for u, (_, f) in newest.items()}

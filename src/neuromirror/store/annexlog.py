"""The lines git-annex reads about a store on a dataset's ``git-annex`` branch: ``remote.log``, ``uuid.log``.

``git annex initremote type=directory`` does not keep ``directory=`` in ``remote.log``, so a
clone could not enable the store by itself.  A line written with it does work (checked with
git-annex 10.20261026): with ``autoenable=true`` a clone's ``git annex init`` enables the store
("Auto enabling special remote neuromirror-store... ok"), and ``cost=`` (git-annex honours it in
``remote.log``; a clone's ``remote.NAME.annex-cost`` overrides it) orders the store against the web
remote's 200: a directory store's 150 is tried first for the keys it holds, an S3 store's 300 after the
archive's URLs (:mod:`.base`, ``FIRST_COST``/``AFTER_WEB_COST``).  A clone where the directory is not
readable still initialises; the store is then just not available there.

Both logs have one line per UUID, ``<uuid> <value> timestamp=<unix>s``; the newest line per
UUID wins.  Values in ``remote.log`` are ``field=value`` words, git-annex's escape for white
space and ``&`` in a value being ``&<decimal code>;``.
"""

from __future__ import annotations

import re
import time
from typing import Optional

from neuromirror.store.base import Recorded


def escape_value(value: str) -> str:
    """A remote.log value as git-annex writes it: white space, ``&`` and control characters as ``&N;``."""
    return "".join(f"&{ord(c)};" if c.isspace() or c == "&" or ord(c) < 0x20 else c for c in value)


def remote_fields(store: Recorded) -> dict[str, str]:
    """The store's special-remote configuration, as ``remote.log`` keeps it (fields sorted, like git-annex)."""
    return dict(sorted(store.remote_config().items()))


def _lines(existing: Optional[bytes]) -> list[str]:
    return [ln for ln in (existing or b"").decode("utf-8", "surrogateescape").splitlines() if ln.strip()]


def _stamp(line: str) -> float:
    last = line.rsplit(" ", 1)[-1]
    if last.startswith("timestamp=") and last.endswith("s"):
        try:
            return float(last[len("timestamp=") : -1])
        except ValueError:
            return 0.0
    return 0.0


def _newest(lines: list[str], uuid: str) -> Optional[str]:
    mine = [ln for ln in lines if ln.split(" ", 1)[0] == uuid]
    return max(mine, key=_stamp) if mine else None


def _value(line: str) -> str:
    """What a line says, between the UUID and its timestamp."""
    body = line.split(" ", 1)[1] if " " in line else ""
    head, _, last = body.rpartition(" ")
    return head if last.startswith("timestamp=") else body


def _replace(lines: list[str], uuid: str, value: str, now: Optional[float]) -> bytes:
    old = _newest(lines, uuid)
    stamp = int(now if now is not None else time.time())
    if old is not None and _stamp(old) >= stamp:  # a clock behind the last writer's: still newer
        stamp = int(_stamp(old)) + 1
    kept = [ln for ln in lines if ln.split(" ", 1)[0] != uuid]
    return ("\n".join([*kept, f"{uuid} {value} timestamp={stamp}s"]) + "\n").encode("utf-8", "surrogateescape")


def parse_fields(value: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in value.split() if "=" in w)


def remote_log_with(
    existing: Optional[bytes], uuid: str, fields: dict[str, str], now: Optional[float] = None
) -> Optional[bytes]:
    """``remote.log`` recording the store with ``fields``; None when it says so already."""
    lines = _lines(existing)
    old = _newest(lines, uuid)
    if old is not None and parse_fields(_value(old)) == fields:
        return None
    return _replace(lines, uuid, " ".join(f"{k}={v}" for k, v in sorted(fields.items())), now)


def uuid_log_with(
    existing: Optional[bytes], uuid: str, description: str, now: Optional[float] = None
) -> Optional[bytes]:
    """``uuid.log`` describing the store; None when it does already."""
    description = " ".join(description.split())
    lines = _lines(existing)
    old = _newest(lines, uuid)
    if old is not None and _value(old) == description:
        return None
    return _replace(lines, uuid, description, now)


_ESCAPED = re.compile(r"&(\d+);")
#: special-remote types a store can be (git-annex's names); ``external`` remotes are the mirror's own
STORE_TYPES = ("directory", "S3", "rsync")


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


#: the external special remote of packed stores (``type=external externaltype=...``)
PACK_EXTERNAL = "neuromirror-pack"


def is_store(fields: dict[str, str]) -> bool:
    """A special remote of a store's type, or a packed store's external remote."""
    kind = fields.get("type")
    return kind in STORE_TYPES or (kind == "external" and fields.get("externaltype") == PACK_EXTERNAL)


def recorded_stores(remote_log: Optional[bytes]) -> dict[str, dict[str, str]]:
    """uuid -> fields of each store (a special remote of a store's type) in ``remote.log``."""
    return {u: f for u, f in recorded_remotes(remote_log).items() if is_store(f)}


def with_directory_costs(remote_log: Optional[bytes], cost: int, now: Optional[float] = None) -> Optional[bytes]:
    """``remote.log`` with every directory and S3 store's ``cost=`` at ``cost``; None when each says so already.

    A store recorded before directory stores were read first says ``cost=300`` (after the web) on the
    branches of its datasets until something writes its line again: ``maintain`` brings them up to
    date (docs/keep.md).  Only a store's own line changes; its other fields stay as written."""
    lines = _lines(remote_log)
    changed = False
    for uuid, fields in recorded_stores(remote_log).items():
        if fields.get("type") not in ("directory", "S3") or fields.get("cost") == str(cost):
            continue
        newest = _newest(lines, uuid)
        if newest is None:
            continue
        raw = {**parse_fields(_value(newest)), "cost": str(cost)}
        lines = _lines(_replace(lines, uuid, " ".join(f"{k}={v}" for k, v in sorted(raw.items())), now))
        changed = True
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape") if changed else None

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

from typing import Optional

from neuromirror.annex.branch_logs import (  # noqa: F401  (re-exported: the store's readers name them here)
    escape_value,
    line_value,
    log_lines,
    newest_line,
    parse_fields,
    recorded_remotes,
    remote_log_with,
    unescape_value,
    uuid_log_with,
    with_line,
)
from neuromirror.store.base import Recorded


def remote_fields(store: Recorded) -> dict[str, str]:
    """The store's special-remote configuration, as ``remote.log`` keeps it (fields sorted, like git-annex)."""
    return dict(sorted(store.remote_config().items()))


#: special-remote types a store can be (git-annex's names); ``external`` remotes are the mirror's own
STORE_TYPES = ("directory", "S3", "rsync")


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
    lines = log_lines(remote_log)
    changed = False
    for uuid, fields in recorded_stores(remote_log).items():
        if fields.get("type") not in ("directory", "S3") or fields.get("cost") == str(cost):
            continue
        newest = newest_line(lines, uuid)
        if newest is None:
            continue
        raw = {**parse_fields(line_value(newest)), "cost": str(cost)}
        lines = log_lines(with_line(lines, uuid, " ".join(f"{k}={v}" for k, v in sorted(raw.items())), now))
        changed = True
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape") if changed else None

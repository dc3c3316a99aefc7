"""Which of the mirror's stores are reachable here now, and since when each one that is not has not been.

A store is reachable when its identity (``.neuromirror-store.json``: a directory's file, a bucket's object) is
where the index's store record says, and names the same store.  One that is not — its directory deleted, a mount
point left empty (unmounted), a bucket gone or its credentials refused — is told as it is by every report:
``verify --stores`` names it and exits non-zero, ``status --copies``, ``status --backup``, the pages and
``/metrics`` say since when, and no count of copies (``keep --copies N`` included) counts what it holds: a copy
nobody can read is no backup.  Looking never makes a store (:func:`neuromirror.store.location.open_store`
opens an existing one); the first time a store was found unreachable is kept in the index
(:func:`neuromirror.index.store_checks.note_reach`) until it is found again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.errors import UserError
from neuromirror.index import store_checks
from neuromirror.store.base import Store
from neuromirror.store.location import open_store
from neuromirror.util.dates import iso_z
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.index.db import Index


@dataclass(frozen=True)
class Lost:
    """A store the index records that is not reachable here: what it is, why, and since when."""

    uuid: str
    url: str
    name: str
    since: float
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "url": self.url, "name": self.name, "since": iso_z(self.since), "why": self.why}

    def line(self) -> str:
        return (
            f"store {self.name} at {self.url}: NOT REACHABLE since {iso_z(self.since)} ({self.why}): "
            "its copies do not count"
        )


def probe(store: Store, uuid: Optional[str] = None) -> Optional[str]:
    """Why ``store`` is not reachable (its identity missing or unreadable, or another store's: ``uuid`` the one
    expected); None when it is.  Reads only: a directory, an object, never made."""
    try:
        found = store.identity.uuid
    except (UserError, OSError) as exc:
        return one_line(exc, 300, joined=True).removeprefix(f"{store.url}: ")
    if uuid is not None and found != uuid:
        return f"another store is there now ({found})"
    return None


def survey(index: Index, only: Optional[set[str]] = None) -> dict[str, Lost]:
    """Every store the index records (those of ``only``) looked at now, the result recorded: uuid -> what is
    not reachable, since the first time it was found so."""
    known = store_checks.known_stores(index)
    seen: dict[str, Optional[str]] = {}
    for uuid, rec in known.items():
        if only is not None and uuid not in only:
            continue
        seen[uuid] = _look(str(rec.get("url") or ""), uuid)
    store_checks.note_reach(index, seen)
    return lost_stores(index, {u: why for u, why in seen.items() if why is not None})


def lost_stores(index: Index, why: Optional[dict[str, str]] = None) -> dict[str, Lost]:
    """The stores last found not reachable (``why``: found so just now, where the index could not record it)."""
    known = store_checks.known_stores(index)
    recorded = store_checks.unreachable(index)
    uuids = set(recorded) if why is None else set(why)
    out: dict[str, Lost] = {}
    for uuid in sorted(uuids):
        rec = recorded.get(uuid, {})
        k = known.get(uuid, {})
        since = float(rec.get("since") or _now())
        reason = (why or {}).get(uuid) or str(rec.get("why") or "not reachable")
        out[uuid] = Lost(uuid, str(k.get("url") or ""), str(k.get("name") or uuid), since, reason)
    return out


def _look(url: str, uuid: str) -> Optional[str]:
    if not url:
        return "no place recorded"
    try:
        return probe(open_store(url), uuid)
    except UserError as exc:
        return one_line(exc, 300, joined=True)


def _now() -> float:
    import time

    return time.time()

"""Cold packs: a pack in S3's GLACIER or DEEP_ARCHIVE class is read only after a RestoreObject (hours).

A read that meets one asks for its thaw once (a rerun sees the restore under way on the object's HEAD
and asks nothing again), notes it, and goes on with what it can read; the command then stops with exit
75 (EX_TEMPFAIL: try again later) and one line naming how many packs are thawing and since when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from neuromirror.errors import Unavailable, UserError

#: how long a thawed copy stays readable, and how fast S3 should bring it (Bulk: cheapest, hours)
THAW_DAYS = 7
THAW_TIER = "Bulk"
#: sysexits' EX_TEMPFAIL: the command will succeed if run again later
EXIT_THAWING = 75


class Frozen(Unavailable, OSError):
    """The pack holding a key is in a cold storage class and not thawed yet."""

    def __init__(self, pack: str) -> None:
        super().__init__(
            f"pack {pack} is thawing from cold storage (its thaw is asked for): read again once it is readable"
        )
        self.pack = pack


@dataclass(frozen=True)
class ThawNote:
    pack: str
    storage_class: str
    asked: bool  # this run asked for it (False: under way already)
    since: str  # when it was first asked for, as far as this mirror knows


class Thawing(UserError):
    """Some packs must thaw before the command can finish: exit 75, one line."""

    exit_code = EXIT_THAWING

    def __init__(self, store: str, notes: list[ThawNote], first: Optional[str] = None) -> None:
        since = first or min((n.since for n in notes if n.since), default=now_iso())
        asked = sum(n.asked for n in notes)
        super().__init__(
            f"{len(notes)} pack(s) of {store} thawing from cold storage since {since} "
            f"({asked} asked for by this run): run again once they are readable (hours for DEEP_ARCHIVE)"
        )
        self.notes = notes
        self.store = store

    def since(self, first: float) -> Thawing:
        """The same, saying when the first of these thaws was asked for (an earlier run, as the index says)."""
        return Thawing(
            self.store, self.notes, datetime.fromtimestamp(first, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        )


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

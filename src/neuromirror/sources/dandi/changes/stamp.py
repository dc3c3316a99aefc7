"""The draft stamp's tokens for changes in O(changes): what the version says of itself, and the watermark.

Why in the stamp (``remote_modified``): it is what a resync compares before asking anything more,
and what it recorded is exactly what the last synced state was made from.

* ``assets=N bytes=S``: the draft's ``asset_count`` and ``size`` as the archive gives them (the
  dandiset's JSON, the version record).  A deletion leaves the draft's ``modified`` as it was
  (dandi-archive #1871) but not its count: a stamp with the count in it moves, and the draft is
  listed again.
* ``newest=<modified>,<asset id>``: the newest asset ``modified`` of the synced state and the asset
  that had it, written only when the state holds every asset the version listed (nothing refused,
  pending or held): the watermark a resync reads the ``-modified`` listing down to.
* ``zarrs=modified`` (with the watermark, for a draft holding Zarrs): a Zarr ingest moves its asset's
  ``modified`` (dandi-archive PR #2720), so whether any Zarr changed is one look at the listing's head,
  not the dandiset's Zarr list (``zarrs=<digest>``, :mod:`..zarr_states`: a page per 1,000 Zarrs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from neuromirror.util.dates import parse_iso

ASSETS = "assets="
BYTES = "bytes="
NEWEST = "newest="
ZARRS = "zarrs="
#: the ``zarrs=`` value of a whole draft with Zarrs: their ingests are read from the ``-modified`` head
BY_MODIFIED = "modified"


def counts(asset_count: Any, size: Any) -> str:
    """The tokens of the version's own count and size (" assets=N bytes=S"), "" when it does not give them."""
    if type(asset_count) is not int or type(size) is not int:
        return ""
    return f" {ASSETS}{asset_count} {BYTES}{size}"


def _token(recorded: Optional[str], prefix: str) -> Optional[str]:
    for t in (recorded or "").split(" "):
        if t.startswith(prefix):
            return t[len(prefix) :]
    return None


def recorded_counts(recorded: Optional[str]) -> Optional[tuple[int, int]]:
    """(asset count, bytes) the recorded stamp says the last synced draft had; None when it does not say."""
    n, size = _token(recorded, ASSETS), _token(recorded, BYTES)
    if n is None or size is None or not n.isdigit() or not size.isdigit():
        return None
    return int(n), int(size)


class Mark:
    """The newest asset of a synced state: its ``modified`` and id (the watermark of :mod:`.listing`)."""

    __slots__ = ("when", "asset_id")

    def __init__(self, when: datetime, asset_id: str):
        self.when = when
        self.asset_id = asset_id

    def token(self) -> str:
        return f"{NEWEST}{self.when.isoformat()},{self.asset_id}"

    def later(self, asset: dict) -> Mark:
        """This mark or ``asset``'s, whichever is newer (on equal times: this one)."""
        when = parse_iso(asset.get("modified"))
        return Mark(when, str(asset["asset_id"])) if when is not None and when > self.when else self


def recorded_mark(recorded: Optional[str]) -> Optional[Mark]:
    raw = _token(recorded, NEWEST)
    if not raw or "," not in raw:
        return None
    when, asset_id = raw.rsplit(",", 1)
    parsed = parse_iso(when)
    return Mark(parsed, asset_id) if parsed is not None and asset_id else None


def with_mark(stamp: Optional[str], mark: Optional[Mark]) -> str:
    """``stamp`` with its watermark token replaced by ``mark``'s (dropped when None)."""
    tokens = [t for t in (stamp or "").split(" ") if t and not t.startswith(NEWEST)]
    return _ordered(tokens + ([mark.token()] if mark is not None else []))


def _ordered(tokens: list[str]) -> str:
    """The draft's own tokens, then the watermark, then ``zarrs=`` and ``held=`` (in that order, each kept)."""
    rank = {NEWEST: 1, ZARRS: 2, "held=": 3}
    return " ".join(sorted(tokens, key=lambda t: next((r for p, r in rank.items() if t.startswith(p)), 0)))


def finish(stamp: Optional[str], mark: Optional[Mark], whole: bool, zarrs: bool, by_changes: bool) -> str:
    """The draft's stamp once its entries are made: the watermark when the state is ``whole`` (every listed
    asset in it); for a draft with Zarrs, ``zarrs=modified`` then (their changes are read from the
    ``-modified`` head, no Zarr list is asked), and ``zarrs=recheck`` for a state made from its changes
    but not whole (the next sync looks again); otherwise the Zarr token as the Zarr run stamped it."""
    out = with_mark(stamp, mark if whole else None)
    if not zarrs or not (whole or by_changes):
        return out
    tokens = [t for t in out.split(" ") if t and not t.startswith(ZARRS)]
    return _ordered(tokens + [ZARRS + (BY_MODIFIED if whole else "recheck")])

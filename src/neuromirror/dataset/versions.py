"""The versions a spec names, as every command and the Python API read them.

A version is the index's own record (:class:`~neuromirror.index.rows.Version`: the row with its source and
dataset); :func:`select_versions` is the one reading of "the versions a spec names" that ``keep``,
``verify`` and ``restore`` share, and :class:`Versions` is the API's listing of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from neuromirror.dataset.states import find_state
from neuromirror.index.lookup import not_mirrored, sources_matching
from neuromirror.index.rows import Version
from neuromirror.records import VersionKind
from neuromirror.results import Item, Listing, Status
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.index.db import Index


@dataclass(frozen=True, repr=False)
class Versions(Listing[Version]):
    """The versions ``Mirror.versions`` lists, oldest first: a sequence of :class:`Version` (``vs[-1]``,
    ``for v in vs``, ``len(vs)``) that is also a result (an ``ok`` item per version: a listing fails by
    raising, :class:`~neuromirror.errors.NotMirrored`).  ``to_json()`` is ``versions --json``: a list of rows.
    ``bool()`` is ``.ok`` as for every result: ask ``len(vs)`` whether any is recorded."""

    versions: tuple[Version, ...]

    def records(self) -> tuple[Version, ...]:
        return self.versions

    def items(self) -> list[Item]:
        return [Item(Status.OK, f"{v.source}@{v.label}", f"{v.kind} {v.commit[:12]}") for v in self.versions]

    def to_json(self) -> list[dict[str, Any]]:
        return [v.to_json() for v in self.versions]

    def __repr__(self) -> str:
        return f"<Versions {', '.join(f'{v.source}@{v.label}' for v in self.versions[:5])}{' ...' if len(self) > 5 else ''}>"


def select_versions(
    index: Index, specs: Sequence[Spec], all_versions: bool = False, root: Optional[Path] = None
) -> list[Version]:
    """The versions SPECs name: ``@VERSION`` or ``@COMMIT`` that one; none: every published version and the latest
    draft/snapshot (``all_versions``: every recorded version). Each once, in the order named."""
    out: list[Version] = []
    seen: set[int] = set()
    for spec in specs:
        if spec.is_glob:
            sources = sources_matching(index, [spec])
        elif index.source(spec.source) is None:
            raise not_mirrored(index, spec.source)
        else:
            sources = [spec.source]
        for sid in sources:
            if index.source(sid) is None:  # forgotten since it was matched
                raise not_mirrored(index, sid)
            if spec.version:
                archive, name = sid.split(":", 1)
                rows = [find_state(index, Spec(archive, name, spec.version))]  # @COMMIT: an older draft state too
            else:
                rows = default_versions(index, sid, all_versions)
            for row in rows:
                if row.id not in seen:
                    seen.add(row.id)
                    out.append(row.under(root))
    return out


def default_versions(index: Index, sid: str, all_versions: bool = False) -> list[Version]:
    """What a spec without a version names: every published version (its label's current record) and the
    latest draft/snapshot state, oldest first (``all_versions``: every recorded state)."""
    rows: list[Version] = index.versions(sid)
    if all_versions:
        return rows
    published: dict[str, Version] = {}
    for r in rows:
        if r.kind == VersionKind.PUBLISHED:
            published[r.label] = r  # the last row of a label is its current record
    latest = next((r for r in reversed(rows) if r.kind != VersionKind.PUBLISHED), None)
    return sorted(published.values(), key=lambda r: r.id) + ([latest] if latest else [])

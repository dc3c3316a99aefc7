"""A keep in passes (``keep --covered-by``): the files another backup already holds left out, the rest kept in
phases, what the archive loses first in the first pass.

The plan is made above keep (:mod:`neuromirror.account.gapfill`: the archive's keys against the LIST, the
risk of each); keep asks it only which pass a file belongs to (:class:`Gap`), and says per pass what it kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

from neuromirror.records import VersionFile


class Gap(Protocol):
    """What keep asks of a gap-fill's plan."""

    phases: Sequence[Any]  # one pass each, in order; each has a ``label``

    def phase_of(self, f: VersionFile) -> Optional[int]:
        """The pass ``f`` is kept in; None: another backup holds it, not kept."""

    def to_json(self) -> dict: ...


@dataclass
class Pass:
    """What one pass kept."""

    label: str
    kept: int = 0
    kept_bytes: int = 0

    def to_json(self) -> dict:
        return {"phase": self.label, "kept": self.kept, "kept_bytes": self.kept_bytes}


@dataclass
class GapRun:
    """A store's gap-fill: the plan (its counts) and each pass in the order run."""

    plan: dict
    passes: list[Pass] = field(default_factory=list)

    def to_json(self) -> dict:
        return {**self.plan, "passes": [p.to_json() for p in self.passes]}

    def lines(self) -> list[str]:
        from neuromirror.util.sizes import human_bytes

        covered = self.plan.get("covered") or {}
        out = [
            f"gap-fill ({self.plan.get('order')} order): {covered.get('objects', 0)} object(s), "
            f"{human_bytes(covered.get('bytes', 0))} already held by {', '.join(self.plan.get('covered_by') or [])}"
        ]
        out += [f"  {p.label}: kept {p.kept} ({human_bytes(p.kept_bytes)})" for p in self.passes]
        return out


def passes_of(gap: Optional[Gap]) -> list[Optional[int]]:
    """The passes of a keep: one (None) without a plan."""
    return [None] if gap is None else list(range(len(gap.phases)))


def in_pass(gap: Optional[Gap], phase: Optional[int], f: VersionFile) -> tuple[bool, bool]:
    """(is ``f`` kept in this pass, is it covered by the LIST)."""
    if gap is None:
        return True, False
    got = gap.phase_of(f)
    return got == phase, got is None

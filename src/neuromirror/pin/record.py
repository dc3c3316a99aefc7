"""A pin: the exact, citable state of a source (commit, tag, DOI), as ``pin``, ``lock`` and ``get`` print it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from neuromirror.dataset.states import UNPUBLISHED, find_state
from neuromirror.index.rows import Version
from neuromirror.results import Item, Result, Status
from neuromirror.spec import Spec


def state_row(mirror: Any, spec: Spec) -> Version:
    """The index row of the state SPEC[@VERSION|@COMMIT] names (:func:`neuromirror.dataset.states.find_state`)."""
    src = mirror.index.source(spec.source)
    ds = mirror.root / src.dataset if src is not None else None
    return find_state(mirror.index, spec, ds)


def pin_record(mirror: Any, spec: Spec) -> dict[str, Any]:
    """``version`` is the label, or the commit as given for an older draft state named by its commit
    (``kind`` says which; ``state`` says, for such a commit, that no label names it and it is unpublished)."""
    row = state_row(mirror, spec)
    src = mirror.index.source(spec.source)
    rec = {
        "source": spec.source,
        "version": row.label,
        "dataset": str(mirror.root / src.dataset),
        "commit": row.commit,
        "tag": row.tag,
        "doi": row.doi,
    }
    if row.named_by_commit:
        rec.update(kind=row.kind, state=UNPUBLISHED, recorded_as=row.recorded_as)
    return rec


@dataclass(frozen=True, eq=False)
class Pin(Result):
    """A pin as a typed record (``Mirror.pin``): ``to_json()`` is ``pin --json``; read by field (``.commit``) or
    as the dict it always was (``pin["commit"]``, ``pin == {...}``, ``dict(pin)``).  One ``ok`` item: it names a
    state the index holds (naming one it does not raises)."""

    source: str
    version: str
    dataset: str
    commit: str
    tag: Optional[str] = None
    doi: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)  # an older draft state by commit: kind, state, recorded_as

    @classmethod
    def of(cls, rec: dict[str, Any]) -> Pin:
        known = ("source", "version", "dataset", "commit", "tag", "doi")
        return cls(**{k: rec[k] for k in known}, extra={k: v for k, v in rec.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        base = {k: getattr(self, k) for k in ("source", "version", "dataset", "commit", "tag", "doi")}
        return {**base, **self.extra}

    def items(self) -> list[Item]:
        return [Item(Status.OK, f"{self.source}@{self.version}", f"commit {self.commit}")]

    def lines(self) -> list[str]:
        return [f"{k}: {v if v is not None else '-'}" for k, v in self.to_json().items()]

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def keys(self) -> Iterator[str]:
        return iter(self.to_json())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Pin):
            return self.to_json() == other.to_json()
        return isinstance(other, Mapping) and self.to_json() == dict(other)

    def __hash__(self) -> int:
        return hash((self.source, self.version, self.commit))

    def __repr__(self) -> str:
        return f"<Pin {self.source}@{self.version} {self.commit[:7]}" + (f" {self.doi}>" if self.doi else ">")

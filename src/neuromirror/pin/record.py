"""A pin: the exact, citable state of a source (commit, tag, DOI), as ``pin``, ``lock`` and ``get`` print it."""

from __future__ import annotations

from typing import Any

from neuromirror.dataset.states import UNPUBLISHED, find_state, is_commit_state
from neuromirror.index.rows import VersionRow
from neuromirror.spec import Spec


def state_row(mirror: Any, spec: Spec) -> VersionRow:
    """The index row of the state SPEC[@VERSION|@COMMIT] names (:func:`neuromirror.dataset.states.find_state`)."""
    src = mirror.index.source(spec.source)
    ds = mirror.root / src.dataset if src is not None else None
    return find_state(mirror.index, spec, ds)


def pin_record(mirror: Any, spec: Spec) -> dict:
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
    if is_commit_state(row):
        rec.update(kind=row.kind, state=UNPUBLISHED, recorded_as=row.recorded_as)
    return rec

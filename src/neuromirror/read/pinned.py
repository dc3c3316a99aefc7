"""What a reader names, resolved to a dataset and a commit: ``SPEC@VERSION``, ``@draft``, ``@COMMIT``, a lock.

A lab reads a state it pinned somewhere: a version label the archive gave, the moving draft
(its latest synced commit), a commit it wrote into a paper, or an entry of a lock file.  All of
them come down to one mirror dataset at one commit, which must be in that dataset: reading never
fetches or syncs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from neuromirror.annex.tree import has_commit
from neuromirror.dataset.states import full_commit
from neuromirror.errors import UserError
from neuromirror.index.lookup import not_mirrored
from neuromirror.spec import Spec


@dataclass(frozen=True)
class Pin:
    """One dataset at one commit, and how the reader named it."""

    source: str
    version: str  # the label (``0.230629.1955``, ``draft``) or the commit as given
    dataset: Path
    commit: str


def resolve(mirror: Any, spec: Spec) -> Pin:
    """The pin ``spec`` names: a recorded version's label, else a commit of the source's dataset."""
    index = mirror.index
    src = index.source(spec.source)
    if src is None:
        raise not_mirrored(index, spec.source)
    ds = Path(mirror.root) / src.dataset
    if not spec.version:
        row = index.latest_version(spec.source)
        if row is None:
            raise UserError(f"{spec.source} has no recorded version yet")
        return Pin(spec.source, row.label, ds, row.commit)
    row = index.latest_version(spec.source, spec.version)
    if row is not None:
        return Pin(spec.source, row.label, ds, row.commit)
    full = full_commit(ds, spec.version)  # any commit of the dataset, recorded as a state or not
    if full:
        return Pin(spec.source, spec.version, ds, full)
    labels = sorted({v.label for v in index.versions(spec.source)})
    raise UserError(
        f"{spec.source} has no version or commit {spec.version!r} (known versions: {', '.join(labels) or 'none'})"
    )


def from_lock(mirror: Any, path: str, source: Optional[str] = None) -> list[Pin]:
    """The pins a lock file names (one per dataset; ``source`` picks one), each checked to be in the mirror."""
    from neuromirror.pin.lockfile import LockError, read

    try:
        lock = read(path)
    except LockError as exc:
        raise UserError(str(exc)) from None
    pins = []
    for d in lock.datasets:
        if source is not None and d.source != source:
            continue
        src = mirror.index.source(d.source)
        if src is None:
            raise not_mirrored(mirror.index, d.source)
        ds = Path(mirror.root) / src.dataset
        if not has_commit(ds, d.commit):
            raise UserError(f"{path}: {d.source} commit {d.commit[:12]} is not in this mirror's dataset {ds}")
        pins.append(Pin(d.source, d.version, ds, d.commit))
    if not pins:
        raise UserError(f"{path}: no dataset {source!r} in this lock file" if source else f"{path}: names no dataset")
    return pins

"""Finding what a user named in the index: a source, a version, a glob over sources.

Shared by the commands, the reproduce layer (cite, lock) and the benchmark; the errors are the
one-line messages users see, so they live with the lookup rather than with each caller.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from neuromirror.errors import NoSuchVersion, NotMirrored, UserError
from neuromirror.index.rows import Version
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.index.db import Index


def where(index: Index) -> str:
    """The mirror an index belongs to, for messages: its root, or the index file given by --index."""
    path = Path(index.path)
    return str(path.parent.parent) if path.parent.name == ".neuromirror" else str(path)


def not_mirrored(index: Index, source: str, *, then: Optional[str] = None) -> UserError:
    """``source`` is not in the index: a pattern matched nothing, a name is to be synced first (``then``: what
    to say instead of the sync, when a sync is not what the user wants: ``forget`` of what is not there)."""
    if any(c in source for c in "*?["):  # a pattern: no sync to suggest, it matched nothing
        return NotMirrored(f"no mirrored source matches {source}, in {where(index)}")
    return NotMirrored(
        f"{source} is not mirrored here, in {where(index)} ({then or f'run: neuromirror sync {source}'})"
    )


def find_version(index: Index, spec: Spec) -> Version:
    """The index row a SPEC[@VERSION] names; without a version, the latest recorded."""
    if index.source(spec.source) is None:
        raise not_mirrored(index, spec.source)
    row = index.latest_version(spec.source, spec.version) if spec.version else index.latest_version(spec.source)
    if row is None and spec.version:
        labels = sorted({v.label for v in index.versions(spec.source)})
        raise NoSuchVersion(f"{spec.source} has no version {spec.version!r} (known: {', '.join(labels) or 'none'})")
    if row is None:
        raise UserError(f"{spec.source} has no recorded version yet")
    return row


def sources_matching(index: Index, specs: Iterable[Spec], *, then: Optional[str] = None) -> list[str]:
    known = [s.id for s in index.sources()]
    out: list[str] = []
    for spec in specs:
        hits = [s for s in known if fnmatch.fnmatchcase(s, spec.source)]
        if not hits:
            raise not_mirrored(index, spec.source, then=then)
        out += [h for h in hits if h not in out]
    return out

"""A state named by its commit: ``SPEC@COMMIT`` (7 to 40 hex digits) as ``pin``, ``lock``, ``keep``, ``verify``,
``cite`` and the read paths take it.

A draft changes in place: a Zarr rewritten upstream leaves the mirror with an older draft state
that no label names any more (``@draft`` is the newest).  Each sync recorded that state in the index
at its commit, so the commit a paper or a notebook wrote down names it exactly.  A commit given here
is first a version label (a label is never shadowed), then a commit of the source's dataset.

:func:`find_state` gives the index row of the recorded state a commit names: a published version's
own row (a commit of a published version *is* that version), or a copy of a draft/snapshot row whose
``label`` is the commit as given and whose ``named_by`` is ``"commit"`` (``recorded_as``: the label the
sync gave it, ``draft``), so that every report says the commit and not a label that now names another
state.  :func:`full_commit` resolves any commit of a dataset (the read paths read states no sync recorded
too).  Unknown or ambiguous: one-line :class:`~neuromirror.errors.UserError`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from neuromirror.errors import NoSuchVersion, UserError
from neuromirror.index.lookup import find_version, not_mirrored
from neuromirror.index.rows import Version
from neuromirror.records import VersionKind
from neuromirror.spec import Spec
from neuromirror.util import gitutil

if TYPE_CHECKING:
    from neuromirror.index.db import Index

HEX = re.compile(r"^[0-9a-f]{7,40}$")

#: what a state named by a commit is called where a version label would be (cite, pin, reports)
UNPUBLISHED = "an unpublished state of the archive's draft, named by its mirror commit (not a published version)"


def looks_like_commit(text: Optional[str]) -> bool:
    return bool(text) and bool(HEX.match(str(text)))


def full_commit(ds: Path, given: str) -> Optional[str]:
    """The full commit ``given`` (7-40 hex digits) names in the dataset ``ds``; None when it names none;
    ``UserError`` when a short one names several objects."""
    if not looks_like_commit(given) or not (Path(ds) / ".git").exists():
        return None
    proc = gitutil.run(ds, "rev-parse", "--verify", f"{given}^{{commit}}", check=False)
    full = proc.stdout.decode().strip()
    if proc.returncode == 0 and full:
        return full
    if b"ambiguous" in proc.stderr:
        raise UserError(f"{given!r} is an ambiguous short commit in {ds}: give more hex digits")
    return None


def find_state(index: Index, spec: Spec, ds: Optional[Path] = None) -> Version:
    """The index row of the state ``spec`` names: ``SPEC``, ``SPEC@LABEL``, or ``SPEC@COMMIT``.

    ``ds`` (the source's dataset), when given, tells a commit no sync recorded from one that is not
    in the dataset at all, in the error."""
    if index.source(spec.source) is None:
        raise not_mirrored(index, spec.source)
    if not looks_like_commit(spec.version) or index.latest_version(spec.source, spec.version) is not None:
        return find_version(index, spec)
    given = str(spec.version)
    rows = index.states_by_short_commit(spec.source, given)
    commits = sorted({r.commit for r in rows})
    if len(commits) > 1:
        shown = ", ".join(c[:12] for c in commits)
        raise UserError(f"{spec.source}@{given}: an ambiguous short commit (states {shown}): give more hex digits")
    if not rows:
        labels = sorted({v.label for v in index.versions(spec.source)})
        known = f"known versions: {', '.join(labels) or 'none'}"
        if ds is not None and full_commit(ds, given):
            raise UserError(
                f"{spec.source}@{given}: a commit of the dataset that no sync recorded as a state ({known})"
            )
        raise NoSuchVersion(f"{spec.source} has no version or recorded commit {given!r} ({known})")
    published = [r for r in rows if r.kind == VersionKind.PUBLISHED]
    if published:
        return published[-1]  # the commit of a published version is that version
    return rows[-1].named_as_commit(given)

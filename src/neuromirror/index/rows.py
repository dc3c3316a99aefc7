"""The index's rows as records: what a reader of ``versions`` gets back.

A version row used to travel as the dict sqlite-utils returns, and every reader looked its fields up
by name (``row["label"]``), so a misspelt column was a ``KeyError`` at run time and an editor knew
nothing of it.  :class:`VersionRow` names the columns once, here beside the schema that makes them;
:class:`neuromirror.dataset.versions.Version` carries one with the source's dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Mapping, Optional

from neuromirror.records import VersionKind
from neuromirror.util.dates import parse_iso


@dataclass(frozen=True)
class VersionRow:
    """One recorded state of a source (a row of ``versions``): a published version, a draft or snapshot
    state, or, from :func:`neuromirror.dataset.states.find_state`, an older draft state named by its commit
    (``named_by == "commit"``, ``label`` the commit as given, ``recorded_as`` the label it was synced as)."""

    id: int
    label: str
    kind: VersionKind
    commit: str
    source: Optional[str] = None
    tag: Optional[str] = None
    synced_at: Optional[str] = None  # when the sync that recorded it ran (ISO 8601, UTC)
    remote_modified: Optional[str] = None
    date: Optional[str] = None  # the archive's date of a published version
    files: Optional[int] = None  # files of the dataset's own tree (a subdataset counts once)
    bytes: Optional[int] = None
    doi: Optional[str] = None
    citation: Optional[str] = None
    meta: Optional[str] = None  # JSON
    fileset: Optional[int] = None  # its file list (a keep mark holds for this file list only)
    recorded_as: Optional[str] = None
    named_by: Optional[str] = None

    @classmethod
    def from_sql(cls, row: Mapping[str, Any]) -> VersionRow:
        """A row as sqlite-utils returns it (any subset of the table's columns, ``id`` to ``commit`` included)."""
        given = {k: row[k] for k in _COLUMNS if k in row}
        return cls(**{**given, "kind": VersionKind(given["kind"])})

    def named_as_commit(self, given: str) -> VersionRow:
        """This state as ``SPEC@COMMIT`` names it: an older draft state no label names any more."""
        return replace(self, label=given, recorded_as=self.label, named_by="commit")

    def state_time(self) -> Optional[datetime]:
        """When the archive was in the state this row records: its date, else its modified time, else when
        it was synced (the order in which ``changes --since`` and the noncurrent-risk clock read them)."""
        for stamp in (self.date, self.remote_modified, self.synced_at):
            got = parse_iso(stamp)
            if got is not None:
                return got
        return None


_COLUMNS = frozenset(f.name for f in fields(VersionRow))


@dataclass(frozen=True)
class SourceRow:
    """One mirrored thing (a row of ``sources``): ``dandi:000027``, its archive, the archive's own id for
    it, and its dataset relative to the mirror's root."""

    id: str
    archive: str
    remote_id: str
    dataset: str  # e.g. "dandi/000027"
    created: Optional[str] = None
    meta: Optional[str] = None  # JSON

    @classmethod
    def from_sql(cls, row: Mapping[str, Any]) -> SourceRow:
        return cls(**{k: row[k] for k in _SOURCE_COLUMNS if k in row})


_SOURCE_COLUMNS = frozenset(f.name for f in fields(SourceRow))


@dataclass(frozen=True)
class DrillRow:
    """One restore drill (a row of ``drills``): its id, the recorded columns (``store_checks.DRILL_COLUMNS``:
    when, scope, target, counts, result) and its report, decoded."""

    id: int
    columns: dict[str, Any]
    report: dict[str, Any]


def read_as(versions: list[VersionRow]) -> dict[int, str]:
    """How each recorded state is read, by version id: its label if it is the label's latest state, else
    its short commit.  Two rows both labelled ``draft`` (a Zarr rewritten in place between two syncs)
    were otherwise told apart by nothing a user can type; the view names them the same way."""
    latest = {v.label: v.id for v in versions}  # ordered by id: the last row of each label wins
    return {v.id: v.label if latest[v.label] == v.id else v.commit[:12] for v in versions}

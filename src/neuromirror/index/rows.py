"""The index's rows as records: what a reader of ``versions`` and ``sources`` gets back.

A version row used to travel as the dict sqlite-utils returns, and every reader looked its fields up
by name (``row["label"]``), so a misspelt column was a ``KeyError`` at run time and an editor knew
nothing of it.  :class:`Version` names the columns once, here beside the schema that makes them, with
the source's dataset joined from ``sources``: it is the one record of a version, what the index returns
and what every package and the Python API (``neuromirror.api.Version``) pass on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from neuromirror.annex.tree import iter_version
from neuromirror.records import VersionFile, VersionKind
from neuromirror.spec import Spec
from neuromirror.util.dates import parse_iso


@dataclass(frozen=True)
class Version:
    """One recorded state of a source (a row of ``versions``): a published version, a draft or snapshot
    state, or, from :func:`neuromirror.dataset.states.find_state`, an older draft state named by its commit
    (``named_by == "commit"``, ``label`` the commit as given, ``recorded_as`` the label it was synced as).
    Equal when source and id are (a state named twice is one)."""

    id: int
    label: str = field(compare=False)
    kind: VersionKind = field(compare=False)
    commit: str = field(compare=False)
    source: str = ""  # "dandi:000027"
    relpath: str = field(default="", compare=False)  # its source's dataset, relative to the root ("": none now)
    tag: Optional[str] = field(default=None, compare=False)
    synced_at: Optional[str] = field(default=None, compare=False)  # when the sync that recorded it ran (ISO 8601, UTC)
    remote_modified: Optional[str] = field(default=None, compare=False)
    date: Optional[str] = field(default=None, compare=False)  # the archive's date of a published version
    #: files of the dataset's own tree (a subdataset counts once): the ``files`` column
    file_count: Optional[int] = field(default=None, compare=False)
    bytes: Optional[int] = field(default=None, compare=False)
    doi: Optional[str] = field(default=None, compare=False)
    citation: Optional[str] = field(default=None, compare=False)
    meta: Optional[str] = field(default=None, compare=False, repr=False)  # JSON
    fileset: Optional[int] = field(default=None, compare=False)  # its file list (a keep mark holds for it only)
    recorded_as: Optional[str] = field(default=None, compare=False)
    named_by: Optional[str] = field(default=None, compare=False)
    #: the mirror's root, which ``dataset`` needs (the API's versions carry it; the index knows no root)
    root: Optional[Path] = field(default=None, compare=False, repr=False)
    #: how the state is read (its label if it is the label's latest state, else its short commit): set by the
    #: API's ``versions``, which sees a source's every state; None: not known here
    read_as: Optional[str] = field(default=None, compare=False)
    #: what its subdatasets hold (Zarr assets, AIND Zarr stores): ``{subdatasets, files, bytes, unknown}``
    inside: Optional[dict[str, Any]] = field(default=None, compare=False, repr=False)

    @classmethod
    def from_sql(cls, row: Mapping[str, Any]) -> Version:
        """A row as sqlite-utils returns it (any subset of the table's columns, ``id`` to ``commit`` included;
        ``relpath``: the source's dataset, when the query joined it)."""
        given = {k: row[k] for k in _COLUMNS if k in row}
        if "files" in row:
            given["file_count"] = row["files"]
        known = {
            "kind": VersionKind(given["kind"]),
            "source": given.get("source") or "",
            "relpath": given.get("relpath") or "",
        }
        return cls(**{**given, **known})

    def named_as_commit(self, given: str) -> Version:
        """This state as ``SPEC@COMMIT`` names it: an older draft state no label names any more."""
        return replace(self, label=given, recorded_as=self.label, named_by="commit")

    def under(self, root: Optional[Path]) -> Version:
        """This version read from the mirror at ``root`` (what ``dataset`` and ``files()`` need)."""
        return self if root is None or root == self.root else replace(self, root=root)

    @property
    def named_by_commit(self) -> bool:
        """True for an older draft state named ``SPEC@COMMIT`` (no label names it any more)."""
        return self.named_by == "commit"

    def state_time(self) -> Optional[datetime]:
        """When the archive was in the state this row records: its date, else its modified time, else when
        it was synced (the order in which ``changes --since`` and the noncurrent-risk clock read them)."""
        for stamp in (self.date, self.remote_modified, self.synced_at):
            got = parse_iso(stamp)
            if got is not None:
                return got
        return None

    @property
    def spec(self) -> Spec:
        """``SPEC@LABEL`` (or ``SPEC@COMMIT``): what names this state on the command line."""
        archive, name = self.source.split(":", 1)
        return Spec(archive, name, self.label)

    @property
    def dataset(self) -> Path:
        """The source's dataset on disk (needs ``root``: the API's versions have it)."""
        if self.root is None or not self.relpath:
            raise ValueError(f"{self.source}@{self.label}: a version read without its mirror's root")
        return self.root / self.relpath

    def __repr__(self) -> str:
        return f"<Version {self.source}@{self.label} {self.kind} {self.commit[:7]}>"

    def files(self, *, recurse: bool = True, urls: bool = True, paths: Sequence[str] = ()) -> Iterator[VersionFile]:
        """The version's files, streamed from its tree (subdatasets' files too, with ``recurse``), each with
        its key, size and registered URLs (``urls``); ``paths``: only those files and folders."""
        return iter_version(self.dataset, self.commit, recurse=recurse, urls=urls, paths=paths)

    def to_json(self) -> dict[str, Any]:
        """``versions --json``'s row: files and bytes are the dataset's own tree (a subdataset counts once);
        ``inside_subdatasets`` what its subdatasets hold."""
        return {
            "source": self.source,
            "version": self.label,
            "read_as": self.read_as or self.label,
            "kind": self.kind,
            "commit": self.commit,
            "tag": self.tag,
            "doi": self.doi,
            "synced_at": self.synced_at,
            "files": self.file_count,
            "bytes": self.bytes,
            "meta": json.loads(self.meta) if self.meta else {},
            **({"inside_subdatasets": self.inside} if self.inside else {}),
        }


#: the ``versions`` columns a record takes by name (``files`` is ``file_count``; ``relpath`` is joined)
_COLUMNS = frozenset(f.name for f in fields(Version)) - {"file_count", "root", "read_as", "inside"}


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


def read_as(versions: list[Version]) -> dict[int, str]:
    """How each recorded state is read, by version id: its label if it is the label's latest state, else
    its short commit.  Two rows both labelled ``draft`` (a Zarr rewritten in place between two syncs)
    were otherwise told apart by nothing a user can type; the view names them the same way."""
    latest = {v.label: v.id for v in versions}  # ordered by id: the last row of each label wins
    return {v.id: v.label if latest[v.label] == v.id else v.commit[:12] for v in versions}

"""A version: one recorded state of a source, as every command and the Python API name it.

A version is its index row (:class:`~neuromirror.index.rows.VersionRow`) with the source and the dataset
that hold it, so a reader names ``v.label``, ``v.commit``, ``v.dataset``; :func:`select_versions` is the one
reading of "the versions a spec names" that ``keep``, ``verify`` and ``restore`` share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from neuromirror.dataset.states import find_state, is_commit_state
from neuromirror.dataset.version import iter_version
from neuromirror.index.lookup import not_mirrored, sources_matching
from neuromirror.index.rows import VersionRow
from neuromirror.records import VersionFile, VersionKind
from neuromirror.results import Item, Result, Status
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.index.db import Index


@dataclass(frozen=True)
class Version:
    """One recorded state of a source: a published version, a draft (or snapshot) state, or an older draft
    state named by its commit.  Equal when source and index row are (a state named twice is one)."""

    source: str  # "dandi:000027"
    relpath: str  # the source's dataset, relative to the mirror's root
    row: VersionRow = field(hash=False, compare=False, repr=False)  # its index row (``versions``), as recorded
    root: Optional[Path] = field(default=None, hash=False, compare=False, repr=False)
    #: how the state is read (its label if it is the label's latest state, else its short commit): set by the
    #: API's ``versions``, which sees a source's every state; None: not known here
    read_as: Optional[str] = field(default=None, hash=False, compare=False)
    #: what its subdatasets hold (Zarr assets, AIND Zarr stores): ``{subdatasets, files, bytes, unknown}``
    inside: Optional[dict[str, Any]] = field(default=None, hash=False, compare=False, repr=False)
    id: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", int(self.row.id))

    @property
    def label(self) -> str:
        """The version label (``0.230629.1955``, ``draft``), or the commit as given for an older draft state."""
        return str(self.row.label)

    @property
    def commit(self) -> str:
        return str(self.row.commit)

    @property
    def kind(self) -> VersionKind:
        """Published, draft or snapshot (a ``str`` too: ``"published"``)."""
        return self.row.kind

    @property
    def tag(self) -> Optional[str]:
        return self.row.tag

    @property
    def doi(self) -> Optional[str]:
        return self.row.doi

    @property
    def synced_at(self) -> Optional[str]:
        """When the sync that recorded this state ran (ISO 8601, UTC)."""
        return self.row.synced_at

    @property
    def date(self) -> Optional[str]:
        """The archive's date of a published version (ISO 8601), when it gave one."""
        return self.row.date

    @property
    def named_by_commit(self) -> bool:
        """True for an older draft state named ``SPEC@COMMIT`` (no label names it any more)."""
        return is_commit_state(self.row)

    @property
    def spec(self) -> Spec:
        """``SPEC@LABEL`` (or ``SPEC@COMMIT``): what names this state on the command line."""
        archive, name = self.source.split(":", 1)
        return Spec(archive, name, self.label)

    @property
    def dataset(self) -> Path:
        """The source's dataset on disk (needs ``root``: versions from :func:`select_versions` with a root)."""
        if self.root is None:
            raise ValueError(f"{self.source}@{self.label}: a version made without its mirror's root")
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
            "files": self.row.files,
            "bytes": self.row.bytes,
            "meta": json.loads(self.row.meta) if self.row.meta else {},
            **({"inside_subdatasets": self.inside} if self.inside else {}),
        }


@dataclass(frozen=True, repr=False)
class Versions(Result):
    """The versions ``Mirror.versions`` lists, oldest first: a sequence of :class:`Version` (``vs[-1]``,
    ``for v in vs``, ``len(vs)``) that is also a result (an ``ok`` item per version: a listing fails by
    raising, :class:`~neuromirror.errors.NotMirrored`).  ``to_json()`` is ``versions --json``: a list of rows.
    ``bool()`` is ``.ok`` as for every result: ask ``len(vs)`` whether any is recorded."""

    versions: tuple[Version, ...]

    def __iter__(self) -> Iterator[Version]:
        return iter(self.versions)

    def __len__(self) -> int:
        return len(self.versions)

    def __getitem__(self, i: Any) -> Any:
        return self.versions[i]

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
            known = index.source(sid)
            if known is None:  # forgotten since it was matched
                raise not_mirrored(index, sid)
            relpath = known.dataset
            if spec.version:
                archive, name = sid.split(":", 1)
                rows = [find_state(index, Spec(archive, name, spec.version))]  # @COMMIT: an older draft state too
            else:
                rows = default_versions(index, sid, all_versions)
            for row in rows:
                if row.id not in seen:
                    seen.add(row.id)
                    out.append(Version(sid, relpath, row, root))
    return out


def default_versions(index: Index, sid: str, all_versions: bool = False) -> list[VersionRow]:
    """What a spec without a version names: every published version (its label's current record) and the
    latest draft/snapshot state, oldest first (``all_versions``: every recorded state)."""
    rows: list[VersionRow] = index.versions(sid)
    if all_versions:
        return rows
    published: dict[str, VersionRow] = {}
    for r in rows:
        if r.kind == VersionKind.PUBLISHED:
            published[r.label] = r  # the last row of a label is its current record
    latest = next((r for r in reversed(rows) if r.kind != VersionKind.PUBLISHED), None)
    return sorted(published.values(), key=lambda r: r.id) + ([latest] if latest else [])

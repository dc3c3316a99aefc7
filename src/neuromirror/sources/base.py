"""What every source offers the sync engine.

A source knows one archive and nothing of git-annex: it turns the archive's
listing into :class:`~neuromirror.records.Snapshot` objects, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Protocol

from neuromirror.records import ProgressCallback, Snapshot, SourceState


class Source(Protocol):
    #: "dandi:000027"
    id: str
    #: "dandi" — the archive, also the index's ``sources.archive``
    archive: str
    #: the archive's own name for it ("000027", "collection/experiment")
    remote_id: str
    #: where its dataset lives under the mirror root ("dandi/000027")
    relpath: str
    #: reserved top-level paths the source writes itself ("dandiset.yaml")
    reserved: tuple[str, ...]

    def describe(self) -> str:
        """One line for the dataset description and logs."""

    def snapshots(self, state: SourceState, progress: Optional[ProgressCallback] = None) -> Iterator[Snapshot]:
        """States not yet recorded, oldest first; nothing when the archive is unchanged."""

    def prepare_dataset(self, path: Path) -> Mapping[str, str]:
        """Set up what retrieval needs (special remotes); return URL prefix -> remote uuid."""


@dataclass(frozen=True)
class Listed:
    """A source as a glob's listing names it, with what that listing says of its state.

    ``stamp`` is compared by the service's quiet hour (``neuromirror.service.quiet``) with the
    stamp it saw before the source's last successful sync: equal means unchanged, so the
    archive is not asked about it again this cycle.  None: the listing says nothing (always
    synced).
    """

    source: Source
    stamp: Optional[str] = None

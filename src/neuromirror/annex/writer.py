"""The annex writer: one entry point, ``make_writer(engine, repo)``, for the engines that implement
:class:`~neuromirror.annex.contract.AnnexWriter` (fast-import by default, batch as the reference).

The contract (Put/Delete -> one commit; tags) lives in :mod:`neuromirror.annex.contract`, so that the
engines import it without importing this chooser of engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from neuromirror.annex.contract import (  # noqa: F401  (re-exported: callers import the contract from here)
    QUIET_FILTER_COMMENT,
    QUIET_FILTER_LINE,
    WEB_UUID,
    AnnexWriter,
    Change,
    CommitResult,
    Delete,
    Put,
    epoch,
    log_stamp,
)
from neuromirror.records import AnnexEntry, Entry, GitEntry  # noqa: F401

if TYPE_CHECKING:
    from neuromirror.annex.fastimport import Turns


def make_writer(
    engine: str, repo: Path, *, url_remotes: Optional[Mapping[str, str]] = None, turns: Optional[Turns] = None
) -> AnnexWriter:
    """The writer ``engine`` names; ``turns``: large commits of this process take turns (fast-import only)."""
    if engine in ("fast-import", "fast", "fastimport"):
        from neuromirror.annex.fastimport import FastImportWriter

        writer = FastImportWriter(repo, url_remotes=url_remotes)
        writer.turns = turns
        return writer
    if engine == "batch":
        from neuromirror.annex.batch import BatchWriter

        return BatchWriter(repo, url_remotes=url_remotes)
    raise ValueError(f"unknown annex writer engine {engine!r} (choose fast-import or batch)")


__all__ = [
    "AnnexEntry",
    "AnnexWriter",
    "Change",
    "CommitResult",
    "Delete",
    "GitEntry",
    "Put",
    "WEB_UUID",
    "make_writer",
]

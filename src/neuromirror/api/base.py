"""The mirror the API's verbs share: its root of datasets and its index, opened lazily, closed once."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Optional, TypeVar

from neuromirror.api.inputs import PathLike

_M = TypeVar("_M", bound="MirrorBase")

if TYPE_CHECKING:
    from neuromirror.api.records import Records
    from neuromirror.dataset.mirror import Datasets as _Datasets
    from neuromirror.index.db import Index as _Index


class MirrorBase:
    """A mirror: its root of datasets and its index.  Use as a context manager, or :meth:`close`."""

    def __init__(self, root: PathLike, index: Optional[PathLike] = None, *, readonly_index: bool = False) -> None:
        from neuromirror.dataset.mirror import Datasets as Datasets
        from neuromirror.util.toolpath import as_installed

        as_installed()  # the install's git-annex/DataLad and the mirror's git identity, as the CLI has them

        index_path = Path(index) if index is not None else None
        self.datasets: _Datasets = Datasets(Path(root), index_path, readonly_index=readonly_index)

    @property
    def root(self) -> Path:
        return Path(self.datasets.root)

    @property
    def index(self) -> _Index:
        """The SQLite index (``.db`` is its sqlite-utils Database): the verbs' own; the service never reads it
        (tests/test_layers.py), a script may."""
        return self.datasets.index

    @property
    def records(self) -> Records:
        """The mirror's records of its own work (runs, their reports' records, keep marks): what the service's
        pages and steps read and write (:class:`~neuromirror.api.records.Records`)."""
        from neuromirror.api.records import Records

        return Records(self.datasets.index)

    @property
    def index_path(self) -> Path:
        """Where the index is: the service's pages ask whether it exists and is writable before opening it, and
        the index-time readers open their own connection to it."""
        return Path(self.datasets.index_path)

    def dataset_of(self, source: str) -> Optional[str]:
        """Where the dataset of ``source`` (``dandi:000027``) is under the root (its index row's ``dataset``), None
        when it is not mirrored: the service records an abandoned sync's dataset in the root by it."""
        row = self.datasets.index.source(source)
        return None if row is None else str(row.dataset)

    def _dataset(self, source: str) -> Path:
        """The dataset of the mirrored ``source``; :class:`NotMirrored` when it is not."""
        from neuromirror.index.lookup import not_mirrored

        relpath = self.dataset_of(source)
        if relpath is None:
            raise not_mirrored(self.index, source)
        return self.root / relpath

    def writer_lock(self, name: str, *, wait: bool | float = True) -> AbstractContextManager[None]:
        """The exclusive lock ``name`` (a source's spec, the service's own) that every writer of the mirror takes:
        the service holds it while it records a run, recovers an abandoned one, or runs at all."""
        return self.datasets.lock(name, wait=wait)

    def lock_holder(self, name: str) -> str:
        """Who holds the lock ``name`` (``pid N``, as its holder wrote it), '' when nobody or unknown: the service
        names the other service running on this root in its one-line refusal."""
        try:
            return (self.datasets.state_dir / "locks" / f"{name}.lock").read_text(errors="replace").strip()
        except OSError:
            return ""

    def register_quietly(self, relpath: str, message: str, *, wait: float = 10.0) -> bool:
        """Record the dataset at ``relpath`` in the root after a run that was abandoned (the service, at its next
        start): never raises, never waits longer than ``wait`` for the root; whether it was recorded."""
        return self.datasets.register_quietly(relpath, message, wait=wait)

    def close(self) -> None:
        self.datasets.close()

    def _writes(self, verb: str, *, index_only: bool = False) -> None:
        """Say in one line, before any work, that ``verb`` cannot write this mirror here (a read-only mount of the
        root, a root another user owns): every verb that only reads works there, on the index opened read-only.
        ``index_only``: the verb writes the index alone, which ``index`` (``--index``) may put elsewhere."""
        from neuromirror.errors import ReadOnly
        from neuromirror.util.disk import unwritable

        index = self.datasets.index_path
        if index_only:
            why = unwritable(index)
            if why:
                raise ReadOnly(
                    f"index {index}: read-only here ({why}); {verb} writes to it: name an index on a writable disk"
                ).at("index")
            return
        why = unwritable(self.root) or unwritable(index)
        if why:
            raise ReadOnly(f"the mirror {self.root} is read-only here ({why}): {verb} writes to it")

    def __enter__(self: _M) -> _M:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The API's verbs that read the mirror: what is mirrored, versions and pins, files, changes, citations,
lock files, and NWB files read in place.  None of them changes a dataset."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

from neuromirror.api.base import MirrorBase
from neuromirror.api.inputs import PathLike, each_then_check, moment, spec_of, specs_of
from neuromirror.dataset.versions import Versions, select_versions
from neuromirror.errors import BadInput, NoSuchPath, UserError
from neuromirror.index.rows import Version
from neuromirror.records import VersionFile
from neuromirror.spec import Spec
from neuromirror.store.base import Store
from neuromirror.util.paths import check_path

if TYPE_CHECKING:
    from neuromirror.account.backup_model import Backup
    from neuromirror.audit.findings import Audit
    from neuromirror.pin.changes import Changes, VersionDiff
    from neuromirror.pin.citation import CitationInfo
    from neuromirror.pin.lockfile import Lock
    from neuromirror.pin.record import Pin
    from neuromirror.read.icechunk.export import Exported
    from neuromirror.readers import IndexTimeReader


class Reading(MirrorBase):
    """The verbs that read: none changes a dataset."""

    # -- what is mirrored ---------------------------------------------------------------------------
    def sources(self) -> list[str]:
        """Every mirrored source (``dandi:000027``, ``aind:...``, ``boss:...``), sorted; the ids alone are read (the
        service's quiet hour asks each cycle which sources of a listing are mirrored)."""
        return sorted(self.index.source_ids())

    def versions(self, spec: Union[str, Spec], *, all_versions: bool = True, patterns: bool = True) -> Versions:
        """The recorded versions of a source, oldest first (``all_versions=False``: every published version
        and the latest draft, what ``keep`` and ``restore`` take by default); a pattern (``dandi:*``) names
        several sources (``patterns=False``: a pattern is no source's name, :class:`NotMirrored`, as ``neuromirror
        versions`` says).  ``SPEC@VERSION``: that one.  A sequence of :class:`Version` (``vs[-1]``, ``len(vs)``)
        and a result: ``to_json()`` is ``versions --json``."""
        from dataclasses import replace

        from neuromirror.index.lookup import not_mirrored
        from neuromirror.index.nested import nested_totals
        from neuromirror.index.rows import read_as

        s = spec_of(spec)
        if s.is_glob and not patterns:
            raise not_mirrored(self.index, s.source)
        found = select_versions(self.index, [s], all_versions=all_versions, root=self.root)
        names = {sid: read_as(self.index.versions(sid)) for sid in {v.source for v in found}}
        inside = nested_totals(self.index, [v.id for v in found])
        return Versions(
            tuple(
                replace(v, read_as=names[v.source].get(v.id), inside=inside[v.id].to_json() if v.id in inside else None)
                for v in found
            )
        )

    def version(self, spec: Union[str, Spec]) -> Version:
        """The version ``SPEC[@VERSION|@COMMIT]`` names (without a version: the latest recorded state)."""
        s = spec_of(spec)
        if s.is_glob:
            raise UserError(f"{s}: a version needs a named source, not a pattern")
        from neuromirror.pin.record import state_row

        return state_row(self.datasets, s).under(self.root)

    def pin(self, spec: Union[str, Spec]) -> Pin:
        """What pins a version: source, version, dataset, commit, tag, DOI (a :class:`~neuromirror.pin.record.Pin`,
        read by field or as a dict; ``to_json()`` is ``neuromirror pin SPEC --json``)."""
        from neuromirror.pin.record import Pin, pin_record

        s = spec_of(spec)
        if s.is_glob:
            raise UserError(f"pin {s}: pin names one source, not a pattern (neuromirror status lists the sources)")
        return Pin.of(pin_record(self.datasets, s))

    def diff(self, old: Union[str, Spec], new: Union[str, Spec]) -> VersionDiff:
        """Files added, removed and changed from the version ``old`` names to the one ``new`` names (``neuromirror
        diff``; from the index).  Either may be ``SPEC@COMMIT`` (an older draft state); ``new`` may be just
        ``@VERSION`` for ``old``'s source."""
        from neuromirror.pin.changes import VersionDiff, diff_versions

        a = self.version(old)
        if isinstance(new, str) and ":" not in new:
            new = f"{a.source}@{new.lstrip('@')}"
        b = self.version(new)
        return VersionDiff(a.source, a, b.source, b, diff_versions(self.index, a, b))

    def cite(self, spec: Union[str, Spec]) -> CitationInfo:
        """How to cite the version ``spec`` names (``neuromirror cite``): the archive's citation and DOI where it has
        them, the mirror's commit and how to get exactly that state; ``.render("text"|"bibtex"|"cff"|"json")``."""
        from neuromirror.pin.citation import citation_info

        s = spec_of(spec)
        if s.is_glob:
            raise UserError(f"cite {s}: cite names one source, not a pattern")
        return citation_info(self.datasets, s)

    def lock(
        self,
        specs: Union[str, Spec, Sequence[Union[str, Spec]]],
        *,
        url: Optional[str] = None,
        remote: str = "published",
        files: bool = False,
        store: Optional[Union[PathLike, Store]] = None,
    ) -> Lock:
        """A lock file naming the versions ``specs`` name exactly (``neuromirror lock``): per dataset where to clone
        it from (``url``: the base others clone from; else where it was last published, else the mirror), commit,
        tag, DOI, file list digest, the stores keeping it (``store``: that one; default ``$NEUROMIRROR_STORE``, else
        those the dataset records).  ``.write(path)``, ``.dumps()``, ``.notes``."""
        from neuromirror.pin.lockfile import LockError, build
        from neuromirror.pin.retrieve import RetrieveError
        from neuromirror.store.location import STORE_ENV, open_store, store_name

        chosen = specs_of(specs)
        for s in chosen:
            if s.is_glob:
                raise BadInput(f"{s}: lock names exact sources, not patterns")
        given = store if store is not None else (os.environ.get(STORE_ENV) or "").strip() or None
        if isinstance(given, (str, os.PathLike)):
            given = open_store(store_name(str(given)))
        where = given.url if given is not None else None
        try:
            lock, _ = build(self.datasets, chosen, url_base=url, remote=remote, with_files=files, store=where)
        except (LockError, RetrieveError) as exc:
            raise UserError(str(exc)) from None
        return lock

    def files(self, spec: Union[str, Spec], paths: Union[str, Sequence[str]] = ()) -> Iterator[VersionFile]:
        """The files of the version ``spec`` names, Zarr subdatasets' included, with keys, sizes and the
        URLs a clone gets them from (``paths``: only those files and folders; one the version does not have
        raises :class:`NoSuchPath` once the others are given)."""
        wanted = [paths] if isinstance(paths, str) else list(paths)
        for p in wanted:
            why = check_path(p[:-1] if p.endswith("/") else p)  # the rule a path from an archive meets; a folder's "/"
            if why:
                raise NoSuchPath(f"{p!r}: not a path inside the version ({why})")
        version = self.version(spec)
        return each_then_check(version.files(paths=wanted), wanted, version)

    def changes(
        self, since: Union[str, date, datetime], specs: Union[str, Spec, Sequence[Union[str, Spec]]] = ()
    ) -> Changes:
        """Per source (every one, or those ``specs`` name): what was added, removed and changed between the
        state recorded at or before ``since`` and the newest, from the index (``neuromirror changes``).  Iterates
        as the sources' records (``c["source"]``, ``c.summary``); ``to_json()`` is ``changes --json``."""
        from neuromirror.index.lookup import sources_matching
        from neuromirror.pin.changes import Changes, source_changes

        when = moment(since)
        chosen = [spec_of(s, allow_version=False) for s in ([specs] if isinstance(specs, (str, Spec)) else specs)]
        sources = sources_matching(self.index, chosen) if chosen else self.sources()
        found = (source_changes(self.index, s, when) for s in sources)
        return Changes(when, tuple(c for c in found if c is not None))

    def _sources_named(self, specs: Union[str, Spec, Sequence[Union[str, Spec]]]) -> Optional[list[str]]:
        """The sources ``specs`` name (globs allowed; a version names its source; none: None, every source), each
        a source of the index: a malformed SPEC is :class:`BadInput`, one that names no source :class:`NotMirrored`
        (exit 2 both), never a report of nothing that exits 0 (``audit``, ``status --backup``)."""
        from neuromirror.index.lookup import sources_matching

        chosen = [spec_of(s) for s in ([specs] if isinstance(specs, (str, Spec)) else specs)]
        return sources_matching(self.index, chosen) if chosen else None

    def _backup_of(
        self, sources: Optional[list[str]], expire_after: Optional[dict[str, float]], found: Optional[Audit] = None
    ) -> Backup:
        """The backup record of ``sources`` (None: every one), the objects of their Zarr states counted: the Zarrs
        on this host the index's catalogue has not read yet are read first (once per Zarr state; on a read-only
        index they stay uncounted, and say so)."""
        import sqlite3

        from neuromirror.account.backup import backup
        from neuromirror.annex.tree import iter_version
        from neuromirror.index.zarr_catalog import catalog_states

        try:
            catalog_states(self.index, self.root, iter_version, sources or sorted(self.index.source_ids()))
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):
                raise
        return backup(self.index, sources, expire_after=expire_after, found=found)

    # -- reading in place -----------------------------------------------------------------------------
    def open_hdf5(self, path: str, *, reference: bool = True, make: bool = False, how: bool = False) -> Any:
        """An NWB/HDF5 file of a pin, h5py-compatible (``pynwb.NWBHDF5IO(file=f, mode="r")`` reads it):
        ``path`` is ``[neuromirror://]ARCHIVE/NAME@VERSION/PATH``.  Through the LINDI reference of its key when
        the mirror has one (no request to open it; each chunk one range read of the pinned URL, a store's
        copy when the archive lost it; needs ``neuromirror[references]``), else h5py over ``neuromirror://``.
        ``make``: a file without a reference gets one now, for every later open (its metadata read once).
        ``how``: the :class:`~neuromirror.read.references.reading.Opened` record (``.file``, ``.via``, ``.key``).
        The opener is the registered index-time reader's (:func:`neuromirror.readers.opening`), not named here."""
        opens = _opening().opens
        assert opens is not None  # readers.opening() finds a reader by it
        with _pin_errors():
            opened = opens(path, root=self.root, index=self.datasets.index_path, reference=reference, make=make)
        return opened if how else opened.file

    def reference(self, path: str) -> Optional[Path]:
        """Where the LINDI reference of the file ``path`` (``ARCHIVE/NAME@VERSION/PATH``) is kept; None: not made."""
        made_for = _opening().made_for
        if made_for is None:
            return None  # the reader keeps nothing of its own
        with _pin_errors():
            return made_for(path, root=self.root, index=self.datasets.index_path)

    # -- Icechunk ---------------------------------------------------------------------------------------
    def export_icechunk(
        self,
        target: str,
        to: PathLike,
        *,
        all_states: bool = False,
        view_url: Optional[str] = None,
        store: Optional[Union[PathLike, Store]] = None,
    ) -> Exported:
        """The Zarr state ``target`` names (``SPEC@VERSION/PATH.zarr``) as an Icechunk repository at ``to`` (a
        directory or ``s3://BUCKET/PREFIX``): one snapshot tagged with the state's commit, its metadata copied, every
        chunk a virtual reference to bytes that never change (``neuromirror export --icechunk``).  ``all_states``:
        a snapshot per state of that Zarr the source's versions recorded.  The chunks are read through the view at
        ``view_url`` (default ``$NEUROMIRROR_URL``), or from ``store`` (a pack by offset and length)."""
        from neuromirror.read.icechunk.export import export_icechunk, split_target
        from neuromirror.read.icechunk.metadata import MetadataReader

        if view_url and store is not None:
            raise BadInput("view_url: the chunks are read through the view or from a store, not both").at("view_url")
        spec, path = split_target(target)
        chosen = self.version(spec)
        versions = list(self.versions(chosen.source)) if all_states else [chosen]
        opened = None if store is None else _kept_in(store)
        view = None if opened is not None else view_url or os.environ.get("NEUROMIRROR_URL")
        with MetadataReader(self.root, self.datasets.index_path) as fs:
            return export_icechunk(fs, versions, path, os.fspath(to), view_url=view, store=opened)


def _kept_in(store: Union[PathLike, Store]) -> Store:
    """The store ``--from`` names, one that exists (reading makes none)."""
    from neuromirror.store.base import not_there
    from neuromirror.store.location import open_store, store_name

    opened = store if not isinstance(store, (str, os.PathLike)) else open_store(store_name(os.fspath(store)))
    if not_there(opened):
        raise UserError(f"{opened.url}: not a neuromirror store (nothing kept there)")
    return opened


def _opening() -> IndexTimeReader:
    """The registered reader that opens a pin's files through what it made of them; a one-line error without one."""
    from neuromirror import readers

    reader = readers.opening()
    if reader is None:
        raise UserError("no registered reader opens a pin's HDF5 files")
    return reader


@contextmanager
def _pin_errors() -> Iterator[None]:
    """A reader's errors about the path, as the API says them: not a pin's path (BadInput), no such file (NoSuchPath)."""
    try:
        yield
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise NoSuchPath(str(exc)) from None

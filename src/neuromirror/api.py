"""neuromirror's Python API: what the commands do, for a notebook or a script (as ``datalad.api``).

>>> from neuromirror import api
>>> m = api.open("/data/mirror")                  # an existing mirror: its root (the index inside it)
>>> [v.label for v in m.versions("dandi:000027")]
['0.230629.1955', 'draft']
>>> v = m.version("dandi:000027@0.230629.1955")
>>> v.commit, v.kind
('953ff90ebf7a...', 'published')
>>> for f in v.files():                           # streamed from the dataset's tree
...     print(f.path, f.size, f.urls[:1])

The commands stand on it: ``neuromirror versions``, ``pin``, ``changes`` and ``keep`` are one call
here plus their printing, so what a script gets is what the command line shows (``--json``'s
fields are the records' ``to_json()``).  Errors a user can mend are :class:`UserError` with the
one-line message the command prints.  This module is a contract: docs/python-api.md shows it and
a test runs every example there.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Union

from neuromirror.dataset.versions import Version, select_versions
from neuromirror.errors import (
    BadInput,
    NeuromirrorError,
    NoSuchPath,
    NoSuchVersion,
    NotMirrored,
    Unavailable,
    UserError,
)
from neuromirror.records import VersionFile, VersionKind
from neuromirror.spec import Spec, SpecError, parse_spec
from neuromirror.store.base import Store
from neuromirror.util.paths import check_path

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Forgotten
    from neuromirror.dataset.mirror import Mirror as _Datasets
    from neuromirror.keep.stores import StoresRun
    from neuromirror.pin.changes import VersionDiff
    from neuromirror.pin.citation import CitationInfo
    from neuromirror.pin.lockfile import Lock
    from neuromirror.restore.report import RestoreReport
    from neuromirror.restore.targets import DirTarget, S3Target
    from neuromirror.service.backup.model import Backup
    from neuromirror.verify.report import VerifyReport

__all__ = [
    "BadInput",
    "Mirror",
    "NeuromirrorError",
    "NoSuchPath",
    "NoSuchVersion",
    "NotMirrored",
    "Unavailable",
    "UserError",
    "Version",
    "VersionFile",
    "VersionKind",
    "open",
]

#: where a mirror is when none is named (the commands' ``--root`` default)
ROOT_ENV = "NEUROMIRROR_ROOT"
PathLike = Union[str, "os.PathLike[str]"]


def spec_of(text: Union[str, Spec], *, allow_version: bool = True) -> Spec:
    """``dandi:000027``, ``dandi:000027@0.230629.1955``, ``dandi:000027@COMMIT`` as a :class:`Spec`."""
    if isinstance(text, Spec):
        return text
    try:
        return parse_spec(text, allow_version=allow_version)
    except SpecError as exc:
        raise BadInput(str(exc)) from None


def specs_of(given: Union[str, Spec, Sequence[Union[str, Spec]]]) -> list[Spec]:
    """One spec or several: ``"dandi:000027"`` is one source, never the characters of its name."""
    if given is None:
        raise BadInput("name what to work on: a spec (dandi:000027[@VERSION]) or a list of them")
    if isinstance(given, (str, Spec)):
        return [spec_of(given)]
    return [spec_of(s) for s in given]


def moment(since: Union[str, date, datetime]) -> datetime:
    """A date as ISO text (``2024-05-01``, ``2024-05-01T12:00:00Z``), a ``date`` (its midnight, UTC) or a
    ``datetime`` (one without a zone is taken as UTC): always an aware ``datetime``."""
    from neuromirror.pin.changes import parse_since

    if isinstance(since, datetime):
        return since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=timezone.utc)
    if isinstance(since, str):
        return parse_since(since)
    raise BadInput(f"since {since!r}: not a date (give a date, a datetime or ISO 8601 text)")


def open(root: Optional[PathLike] = None, index: Optional[PathLike] = None) -> Mirror:  # noqa: A001
    """The mirror at ``root`` (default ``$NEUROMIRROR_ROOT``, else ``./neuromirror-root``); ``index``: its
    SQLite index when not the root's own.  A mirror with no index yet is a :class:`UserError`."""
    chosen = Path(root or os.environ.get(ROOT_ENV) or "neuromirror-root").absolute()
    m = Mirror(chosen, index)
    if not m.datasets.index_path.exists():
        raise UserError(f"no mirror at {chosen} (no index {m.datasets.index_path}; pass --root or set {ROOT_ENV})")
    return m


class Mirror:
    """A mirror: its root of datasets and its index.  Use as a context manager, or :meth:`close`."""

    def __init__(self, root: PathLike, index: Optional[PathLike] = None) -> None:
        from neuromirror.dataset.mirror import Mirror as Datasets

        self.datasets: _Datasets = Datasets(Path(root), Path(index) if index is not None else None)

    @property
    def root(self) -> Path:
        return Path(self.datasets.root)

    @property
    def index(self) -> Any:
        """The SQLite index (``neuromirror.index.db.Index``; ``.db`` is its sqlite-utils Database)."""
        return self.datasets.index

    def close(self) -> None:
        self.datasets.close()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what is mirrored ---------------------------------------------------------------------------
    def sources(self) -> list[str]:
        """Every mirrored source (``dandi:000027``, ``aind:...``, ``boss:...``)."""
        return [s.id for s in self.index.sources()]

    def versions(self, spec: Union[str, Spec], *, all_versions: bool = True) -> list[Version]:
        """The recorded versions of a source, oldest first (``all_versions=False``: every published version
        and the latest draft, what ``keep`` and ``restore`` take by default); a pattern (``dandi:*``) names
        several sources.  ``SPEC@VERSION``: that one."""
        return select_versions(self.index, [spec_of(spec)], all_versions=all_versions, root=self.root)

    def version(self, spec: Union[str, Spec]) -> Version:
        """The version ``SPEC[@VERSION|@COMMIT]`` names (without a version: the latest recorded state)."""
        s = spec_of(spec)
        if s.is_glob:
            raise UserError(f"{s}: a version needs a named source, not a pattern")
        from neuromirror.pin.record import state_row

        row = state_row(self.datasets, s)
        return Version(s.source, self.index.source(s.source).dataset, row, self.root)

    def pin(self, spec: Union[str, Spec]) -> dict[str, Any]:
        """What ``neuromirror pin SPEC --json`` prints: source, version, dataset, commit, tag, DOI."""
        from neuromirror.pin.record import pin_record

        s = spec_of(spec)
        if s.is_glob:
            raise UserError(f"pin {s}: pin names one source, not a pattern (neuromirror status lists the sources)")
        return pin_record(self.datasets, s)

    def diff(self, old: Union[str, Spec], new: Union[str, Spec]) -> VersionDiff:
        """Files added, removed and changed from the version ``old`` names to the one ``new`` names (``neuromirror
        diff``; from the index).  Either may be ``SPEC@COMMIT`` (an older draft state); ``new`` may be just
        ``@VERSION`` for ``old``'s source."""
        from neuromirror.pin.changes import VersionDiff, diff_versions

        a = self.version(old)
        if isinstance(new, str) and ":" not in new:
            new = f"{a.source}@{new.lstrip('@')}"
        b = self.version(new)
        return VersionDiff(a.source, a.row, b.source, b.row, diff_versions(self.index, a.row, b.row))

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
        return _each_then_check(version.files(paths=wanted), wanted, version)

    def changes(
        self, since: Union[str, date, datetime], specs: Union[str, Spec, Sequence[Union[str, Spec]]] = ()
    ) -> list[dict[str, Any]]:
        """Per source (every one, or those ``specs`` name): what was added, removed and changed between the
        state recorded at or before ``since`` and the newest, from the index (``neuromirror changes``)."""
        from neuromirror.index.lookup import sources_matching
        from neuromirror.pin.changes import source_changes

        when = moment(since)
        chosen = [spec_of(s, allow_version=False) for s in ([specs] if isinstance(specs, (str, Spec)) else specs)]
        sources = sources_matching(self.index, chosen) if chosen else self.sources()
        return [c for c in (source_changes(self.index, s, when) for s in sources) if c is not None]

    def backup(
        self, specs: Union[str, Sequence[str]] = (), *, expire_after: Optional[dict[str, float]] = None
    ) -> Backup:
        """Per source (every one, or those ``specs`` name: globs) and store: the objects and bytes the recorded
        versions hold against those each store holds, the oldest version not whole there, what the archive deletes
        within 30 days that no store holds, each store's last verification (``status --backup``, ``/backup/``);
        from the index alone.  ``expire_after``: SPEC -> seconds, the archive's noncurrent-version expiry."""
        from neuromirror.service.backup.compute import backup

        chosen = [specs] if isinstance(specs, str) else list(specs)
        return backup(self.index, chosen or None, expire_after=expire_after)

    # -- reading in place -----------------------------------------------------------------------------
    def open_hdf5(self, path: str, *, reference: bool = True, make: bool = False, how: bool = False) -> Any:
        """An NWB/HDF5 file of a pin, h5py-compatible (``pynwb.NWBHDF5IO(file=f, mode="r")`` reads it):
        ``path`` is ``[neuromirror://]ARCHIVE/NAME@VERSION/PATH``.  Through the LINDI reference of its key when
        the mirror has one (no request to open it; each chunk one range read of the pinned URL, a store's
        copy when the archive lost it; needs ``neuromirror[references]``), else h5py over ``neuromirror://``.
        ``make``: a file without a reference gets one now, for every later open (its metadata read once).
        ``how``: the :class:`~neuromirror.read.references.reading.Opened` record (``.file``, ``.via``, ``.key``)."""
        from neuromirror.read.references.reading import open_hdf5

        try:
            opened = open_hdf5(path, root=self.root, index=self.datasets.index_path, reference=reference, make=make)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        except FileNotFoundError as exc:
            raise NoSuchPath(str(exc)) from None
        return opened if how else opened.file

    def reference(self, path: str) -> Optional[Path]:
        """Where the LINDI reference of the file ``path`` (``ARCHIVE/NAME@VERSION/PATH``) is kept; None: not made."""
        from neuromirror.read.references.location import reference_path
        from neuromirror.read.references.reading import filesystem, pin_path

        try:
            f, _ = filesystem(self.root, self.datasets.index_path)._file(pin_path(path))
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NoSuchPath(str(exc)) from None
        where = reference_path(self.root, f.key) if f.key else None
        return where if where is not None and where.is_file() else None

    # -- copies of the content ----------------------------------------------------------------------
    def forget(self, specs: Union[str, Spec, Sequence[Union[str, Spec]]], *, dataset: bool = False) -> list[Forgotten]:
        """Remove every index row of the sources ``specs`` name (patterns too), each under its lock (``neuromirror
        forget``); ``dataset``: also their datasets, from the root superdataset and the disk."""
        from neuromirror.index.lookup import sources_matching

        chosen = [spec_of(s, allow_version=False) for s in specs_of(specs)]
        return [self.datasets.forget(source, dataset=dataset) for source in sources_matching(self.index, chosen)]

    def keep(
        self,
        specs: Union[str, Spec, Sequence[Union[str, Spec]]],
        to: Union[PathLike, Store, Sequence[Union[PathLike, Store]]],
        *,
        copies: Optional[int] = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        max_file_size: Optional[int] = None,
        budget: Optional[int] = None,
        jobs: int = 4,
        all_versions: bool = False,
        locks: Sequence[PathLike] = (),
        progress: bool = False,
        from_stores: Sequence[Union[PathLike, Store]] = (),
        prune: bool = False,
    ) -> StoresRun:
        """Copy the content of the versions ``specs`` name into the store(s) ``to`` (a directory, or
        ``s3://BUCKET[/PREFIX]``) and record them where every clone looks (``neuromirror keep``); ``locks``: the
        versions lock files name, too.
        ``copies``: the verified copies wanted across the stores (None: the count recorded before).
        ``from_stores``: copy from these stores only, with no request to the archive (``keep --from``).
        ``prune``: the versions of these sources a store was given and ``specs`` leave out are dropped from it,
        with the keys no kept version needs (``keep --prune``, :mod:`neuromirror.keep.prune`)."""
        from neuromirror.keep.stores import keep_into
        from neuromirror.keep.versions import KeepOptions
        from neuromirror.store.location import open_store, store_name

        given: list[Any] = list(to) if isinstance(to, (list, tuple)) else [to]
        stores = [open_store(store_name(str(t))) if isinstance(t, (str, os.PathLike)) else t for t in given]
        if len({s.url for s in stores}) != len(stores):
            raise UserError("the same store is named twice")
        sources = [open_store(str(t)) if isinstance(t, (str, os.PathLike)) else t for t in from_stores]
        if {s.url for s in sources} & {s.url for s in stores}:
            raise UserError("a store cannot be kept into from itself: name another with --from")
        if copies is not None and copies < 1:
            raise UserError("copies must be at least 1")
        options = KeepOptions(
            include=list(include),
            exclude=list(exclude),
            max_file_size=max_file_size,
            budget=budget,
            jobs=jobs,
            all_versions=all_versions,
            progress=progress,
            from_stores=sources,
            prune=prune,
        )
        targets = select_versions(self.index, specs_of(specs), options.all_versions, root=self.root)
        if locks:
            from neuromirror.keep.lock import lock_targets

            seen = {t.id for t in targets}
            targets += [t for t in lock_targets(self.datasets, [str(x) for x in locks]) if t.id not in seen]
        return keep_into(self.datasets, stores, targets, options, copies)

    def verify(
        self,
        spec: Union[str, Spec, Version],
        *,
        content: bool = False,
        sample: Optional[int] = None,
        kept: bool = False,
        strict: bool = False,
        store: Union[PathLike, Store, None] = None,
        jobs: int = 4,
        seed: Optional[int] = None,
        archive: bool = False,
        options: Optional[dict[str, Any]] = None,
        timeout: float = 60.0,
        allow_ip: Optional[str] = None,
        content_cache: Optional[dict[str, Any]] = None,
        progress: bool = False,
    ) -> VerifyReport:
        """Check one version (``spec``, or a :class:`Version` as :meth:`versions` gives it): its tree against the
        index and the git-annex branch; ``content``: every file's bytes read back (from the archive, or any store
        the mirror knows) and hashed against its key (``sample``: N random keys, ``seed`` repeatable); ``kept``:
        every annexed file in ``store`` (a directory, ``s3://...`` or a store); ``archive``: the version listed at
        the archive again (``options``: the sources' options, as ``sync`` takes them); ``content_cache``: a dict
        shared between calls, so that versions sharing content download it once (``neuromirror verify``).
        ``.ok``, ``.to_json()``."""
        from neuromirror.store.location import open_store, store_name
        from neuromirror.verify.version import verify_version

        v = spec if isinstance(spec, Version) else self.version(spec)
        opened = open_store(store_name(str(store))) if isinstance(store, (str, os.PathLike)) else store
        return verify_version(
            self.datasets,
            v.source,
            v.row,
            content=content,
            sample=sample,
            seed=seed,
            jobs=jobs,
            progress=progress,
            timeout=timeout,
            archive=archive,
            options=options,
            content_cache=content_cache,
            allow_ip=allow_ip,
            store=opened,
            kept=kept,
            strict=strict,
        )

    def restore(
        self,
        specs: Union[str, Spec, Sequence[Union[str, Spec]]],
        to: Union[PathLike, S3Target, DirTarget],
        *,
        dry_run: bool = False,
        force: bool = False,
        jobs: int = 4,
        stores: Optional[Sequence[str]] = None,
        each: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> RestoreReport:
        """Write the kept content of the versions ``specs`` name back in the archive's own key layout at
        ``to`` (``s3://BUCKET[/PREFIX]`` or a directory, checked here; or a target already opened and checked,
        :func:`neuromirror.restore.targets.open_target`); ``dry_run``: decide only, ``each`` called with each
        object it would write; ``stores``: read only from these (URLs or UUIDs) (``neuromirror restore``)."""
        from neuromirror.restore.report import RestoreReport
        from neuromirror.restore.run import RestoreOptions, plan_iter, restore_objects
        from neuromirror.restore.targets import open_target

        if isinstance(to, (str, os.PathLike)):
            target = open_target(os.fspath(to))
            target.check()
        else:
            target = to
        report = RestoreReport(target.url, dry_run=dry_run, force=force)
        options = RestoreOptions(
            dry_run=dry_run, force=force, jobs=jobs, stores=None if stores is None else list(stores), each=each
        )
        versions = select_versions(self.index, specs_of(specs), root=self.root)
        restore_objects(self.datasets, plan_iter(self.datasets, versions, report), target, options, report)
        return report


def _each_then_check(files: Iterator[VersionFile], wanted: Sequence[str], version: Version) -> Iterator[VersionFile]:
    """``files`` as they stream; then a :class:`NoSuchPath` for a path in ``wanted`` none of them was under."""
    missing = {p.strip("/") for p in wanted}
    for f in files:
        if missing:
            missing = {p for p in missing if not (f.path == p or f.path.startswith(p + "/"))}
        yield f
    if missing:
        raise NoSuchPath(f"{version.source}@{version.label} has no {', '.join(sorted(missing))}")

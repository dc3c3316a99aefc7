"""The API's verbs that keep, check, restore and forget: the lab's copies of the mirror's content.

Each opens the places it is given itself (a store's path or URL, a restore's target), so that a bad place
is said before anything is copied, as a :class:`~neuromirror.errors.UserError` whose message starts with
the place as given (a command puts its option's name before it).  Once started, each returns a
:class:`~neuromirror.results.Result`: what failed makes ``.ok`` False, and ``.check()`` raises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, TextIO, Union

from neuromirror.api.inputs import PathLike, jobs_of, spec_of, specs_of
from neuromirror.api.reading import Reading
from neuromirror.dataset.mirror import Forgotten
from neuromirror.dataset.versions import select_versions
from neuromirror.errors import BadInput, UserError
from neuromirror.index.rows import Version
from neuromirror.records import ProgressCallback
from neuromirror.results import Item, Listing
from neuromirror.spec import Spec
from neuromirror.store.base import Store

if TYPE_CHECKING:
    from neuromirror.account.backup_model import Backup
    from neuromirror.account.coverage import Coverage
    from neuromirror.audit.findings import Audit
    from neuromirror.keep.stores import StoresRun
    from neuromirror.restore.report import DrillRun, RestoreReport
    from neuromirror.restore.targets import DirTarget, S3Target
    from neuromirror.verify.report import VerifyReport

Places = Union[PathLike, Store, Sequence[Union[PathLike, Store]], None]
Size = Union[int, str, None]


class Keeping(Reading):
    """The verbs that keep, check, restore and forget, on top of the reading ones (verify reads a version)."""

    # -- copies of the content ----------------------------------------------------------------------
    def forget(self, specs: Union[str, Spec, Sequence[Union[str, Spec]]], *, dataset: bool = False) -> Forgot:
        """Remove every index row of the sources ``specs`` name (patterns too), each under its lock (``neuromirror
        forget``); ``dataset``: also their datasets, from the root superdataset and the disk.  Iterates as the
        :class:`~neuromirror.dataset.mirror.Forgotten` records; ``to_json()`` is ``forget --json``."""
        from neuromirror.index.lookup import sources_matching

        chosen = [spec_of(s, allow_version=False) for s in specs_of(specs)]
        self._writes("forget")
        return Forgot(
            tuple(
                self.datasets.forget(source, dataset=dataset)
                for source in sources_matching(self.index, chosen, then="nothing to forget")
            )
        )

    def backup(
        self,
        specs: Union[str, Sequence[str]] = (),
        *,
        expire_after: Optional[dict[str, float]] = None,
        found: Optional[Audit] = None,
        catalogue: bool = True,
    ) -> Backup:
        """Per source (every one, or those ``specs`` name: globs) and store: the objects and bytes the recorded
        versions hold against those each store holds, the oldest version not whole there, what the archive deletes
        within 30 days that no store holds, each store's last verification (``status --backup``, ``/backup/``);
        from the index (a Zarr state's objects catalogued from its dataset once).  ``expire_after``: SPEC ->
        seconds, the archive's noncurrent-version expiry.  A SPEC naming no mirrored source: :class:`NotMirrored`.
        ``found``: the findings of :meth:`audit` of the same sources (its ``.found``), when the caller made it
        already (``/metrics`` shows both; the audit is most of the record's time); ``catalogue=False``: from the
        index alone, no dataset read (a Zarr state not catalogued yet uncounted: a ``/metrics`` scrape stays
        quick)."""
        sources = self._sources_named(specs)
        if not catalogue:
            from neuromirror.account.backup import backup

            return backup(self.index, sources, expire_after=expire_after, found=found)
        return self._backup_of(sources, expire_after, found)

    def coverage(
        self,
        specs: Union[str, Sequence[str]] = (),
        *,
        covered_by: Sequence[PathLike] = (),
        expire_after: Optional[dict[str, float]] = None,
    ) -> Coverage:
        """Per source (every one, or those ``specs`` name: globs) and archive prefix (blobs, zarr, the rest): objects
        and bytes the archive holds, those the archive's own backup holds (``covered_by``: LISTs as :meth:`keep`
        takes them), those the lab's stores keep, those in neither; the oldest in neither, what expires in
        neither within 30 days (``status --coverage``, ``/coverage/``)."""
        from fnmatch import fnmatchcase

        from neuromirror.account.coverage import coverage
        from neuromirror.account.covered import read_lists

        chosen = [specs] if isinstance(specs, str) else list(specs)
        cover = read_lists([os.fspath(c) for c in covered_by])
        sources = [s for s in sorted(self.index.source_ids()) if not chosen or any(fnmatchcase(s, c) for c in chosen)]
        return coverage(self.datasets, cover, sources, expire_after=expire_after)

    def keep(
        self,
        specs: Union[str, Spec, Sequence[Union[str, Spec]]],
        to: Places = None,
        *,
        copies: Optional[int] = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        max_file_size: Size = None,
        budget: Size = None,
        jobs: int = 4,
        all_versions: bool = False,
        locks: Sequence[PathLike] = (),
        progress: Optional[ProgressCallback] = None,
        from_stores: Sequence[Union[PathLike, Store]] = (),
        prune: bool = False,
        min_free: Optional[object] = None,
        pack_size: Size = None,
        storage_class: Optional[str] = None,
        covered_by: Sequence[PathLike] = (),
        order: Optional[str] = None,
        dask: Optional[str] = None,
        max_rate: Union[float, str, None] = None,
        max_in_flight: Union[int, str, None] = None,
    ) -> StoresRun:
        """Copy the content of the versions ``specs`` name into the store(s) ``to`` (a directory, ``s3://BUCKET
        [/PREFIX]``, ``pack+file://``/``pack+s3://``, or a store; none: ``$NEUROMIRROR_STORE``) and record them
        where every clone looks (``neuromirror keep``); ``locks``: the versions lock files name, too.
        ``copies``: the verified copies wanted across the stores (None: the count recorded before).
        ``max_file_size``, ``budget``, ``pack_size``: bytes, or text as ``10M``, ``1GiB``.
        ``from_stores``: copy from these stores only, with no request to the archive (``keep --from``).
        ``prune``: the versions of these sources a store was given and ``specs`` leave out are dropped from it,
        with the keys no kept version needs (``keep --prune``, :mod:`neuromirror.keep.prune`).
        ``min_free``: the free space a directory store must keep (as the service's ``min_free`` option).
        ``progress(stage, done, total)``: each version's copies into each store as they go in,
        ``("files SPEC@VERSION -> STORE", files copied, files to copy)`` and ``("keep SPEC@VERSION -> STORE",
        bytes copied, bytes to copy)`` (nothing to copy: no call), at most ten times a second and once at the end.
        ``covered_by``: LISTs of what another backup holds (a key file, a copy's directory, a backup-status
        checkout, an S3 Inventory: :mod:`neuromirror.account.covered`): only what none holds at the pinned size
        (and ETag) is kept, in ``order`` (``risk``, the default with a LIST: what the archive loses first, in
        passes, :mod:`neuromirror.account.gapfill`; ``path``: the versions as named); the plan and each pass
        are in each store's report (``.runs[i].gap``, ``keep --json``'s ``gap``).
        ``dask``: a Dask scheduler's address: the copies made there in batches of keys, the recording here
        (``keep --dask``, :mod:`neuromirror.keep.cluster`).  ``max_rate``, ``max_in_flight``: the ceiling of each
        archive endpoint for the copies' requests, as ``sync`` takes it (one budget across a cluster's workers).
        A store that cannot be named or made raises; one that is down once started is an ``error`` item."""
        from neuromirror.keep.cluster import keep_on
        from neuromirror.keep.stores import keep_into
        from neuromirror.keep.versions import KeepOptions

        jobs_of(jobs)
        if copies is not None and copies < 1:
            raise BadInput("copies must be at least 1")
        self._writes("keep")
        if max_rate is not None or max_in_flight is not None:
            from neuromirror.api.syncing import network_ceilings

            network_ceilings(max_rate, max_in_flight, None)
        stores = open_stores(to, size_of("pack_size", pack_size), storage_class)
        sources = [_existing_store(t) if isinstance(t, str) else t for t in _unique(from_stores)]
        if {s.url for s in sources} & {s.url for s in stores}:
            raise BadInput("a store cannot be kept into from itself: name another to copy from")
        options = KeepOptions(
            include=list(include),
            exclude=list(exclude),
            max_file_size=size_of("max_file_size", max_file_size),
            budget=size_of("budget", budget),
            jobs=jobs,
            all_versions=all_versions,
            progress=progress,
            from_stores=sources,
            prune=prune,
            min_free=min_free,
        )
        targets = self._keep_targets(specs, locks, all_versions)
        if covered_by or order is not None:
            options.gap = self._gap_plan(targets, covered_by, order)
        return keep_on(dask, jobs, stores, options, lambda: keep_into(self.datasets, stores, targets, options, copies))

    def _gap_plan(self, targets: list[Version], covered_by: Sequence[PathLike], order: Optional[str]) -> Any:
        """keep --covered-by's plan: the LISTs read (a bad one said before anything is copied), each key judged."""
        from neuromirror.account.covered import read_lists
        from neuromirror.account.gapfill import ORDERS, plan_gap

        if order is not None and order not in ORDERS:
            raise BadInput(f"order: {order!r} is not one of {', '.join(ORDERS)}")
        cover = read_lists([os.fspath(c) for c in covered_by])
        return plan_gap(self.datasets, targets, cover, order or "risk")

    def _keep_targets(self, specs: Any, locks: Sequence[PathLike], all_versions: bool) -> list[Version]:
        """The versions ``specs`` name, then those the lock files name that they do not."""
        targets = select_versions(self.index, specs_of(specs), all_versions, root=self.root)
        if locks:
            from neuromirror.keep.lock import lock_targets

            seen = {t.id for t in targets}
            targets += [t for t in lock_targets(self.datasets, [str(x) for x in locks]) if t.id not in seen]
        return targets

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
        progress: Optional[ProgressCallback] = None,
    ) -> VerifyReport:
        """Check one version (``spec``, or a :class:`Version` as :meth:`versions` gives it): its tree against the
        index and the git-annex branch; ``content``: every file's bytes read back (from the archive, or any store
        the mirror knows) and hashed against its key (``sample``: N random keys, ``seed`` repeatable); ``kept``:
        every annexed file in ``store`` (a directory, ``s3://...`` or a store; none: ``$NEUROMIRROR_STORE`` where
        kept or content uses it); ``archive``: the version listed at the archive again (``options``: the sources'
        options, as ``sync`` takes them); ``content_cache``: a dict shared between calls, so that versions sharing
        content download it once; ``allow_ip``: default ``$NEUROMIRROR_ALLOW_IP`` (``neuromirror verify``).
        ``progress(stage, done, total)``: the content's copies as they are read and hashed, ``("files
        SPEC@VERSION", files hashed, files)`` and ``("verify SPEC@VERSION", bytes hashed, bytes to hash)``.
        A mismatch is an ``error`` item: ``.ok`` False, ``.check()`` raises."""
        from neuromirror.pin.retrieve import allow_ip_default
        from neuromirror.verify.version import verify_version

        if sample is not None and sample < 1:
            raise BadInput("sample must be at least 1")
        v = spec if isinstance(spec, Version) else self.version(spec)
        opened = verify_store(store, kept=kept, content=content)
        return verify_version(
            self.datasets,
            v.source,
            v,
            content=content,
            sample=sample,
            seed=seed,
            jobs=jobs,
            progress=progress,
            timeout=timeout,
            archive=archive,
            options=options,
            content_cache=content_cache,
            allow_ip=allow_ip_default(allow_ip),
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
        stream: Optional[TextIO] = None,
        progress: Optional[ProgressCallback] = None,
        dask: Optional[str] = None,
    ) -> RestoreReport:
        """Write the kept content of the versions ``specs`` name back in the archive's own key layout at
        ``to`` (``s3://BUCKET[/PREFIX]`` or a directory, checked here; or a target already opened and checked,
        :func:`neuromirror.restore.targets.open_target`); ``dry_run``: decide only, ``each`` called with each
        object it would write; ``stream``: a dry run's JSON document written there as it is decided (each
        object, then the report's ``to_json()``; ``restore --dry-run --json``); ``stores``: read only from these
        (URLs or UUIDs) (``neuromirror restore``).  ``progress(stage, done, total)``: ``("objects TARGET", objects
        done, objects)`` and ``("restore TARGET", bytes done, bytes)`` as each object is written or found right
        already (TARGET: the target's URL; the totals None until every version is listed; a dry run: no call).
        ``dask``: a Dask scheduler's address: the objects fetched and written by its workers in batches.
        An object not restored, or holding other bytes, is a failed item: ``.ok`` False, ``.check()`` raises."""
        from neuromirror.keep.cluster import on_cluster
        from neuromirror.restore.report import RestoreReport, StreamedJson
        from neuromirror.restore.run import RestoreOptions, plan_iter, restore_objects
        from neuromirror.util.text import one_line

        jobs_of(jobs)
        target = self.target(to) if isinstance(to, (str, os.PathLike)) else to
        streamed = StreamedJson(stream) if stream is not None and dry_run else None
        report = RestoreReport(target.url, dry_run=dry_run, force=force)
        chosen = None if stores is None else list(stores)
        told = each if streamed is None else _both(streamed, each)
        options = RestoreOptions(dry_run=dry_run, force=force, jobs=jobs, stores=chosen, each=told, progress=progress)
        versions = select_versions(self.index, specs_of(specs), root=self.root)
        try:
            with on_cluster(dask, jobs) as options.cluster:
                options.index = str(self.index.path)
                restore_objects(self.datasets, plan_iter(self.datasets, versions, report), target, options, report)
                report.tasks = None if options.cluster is None else options.cluster.tasks
        except BaseException as exc:
            if streamed is not None and streamed.n:  # the document begun: ended, so that it still parses
                streamed.close({"error": one_line(exc, 1000, joined=True), "ok": False})
            raise
        if streamed is not None:
            streamed.close(report.to_json())
        return report

    @staticmethod
    def target(to: PathLike, *, check: bool = True) -> Union[S3Target, DirTarget]:
        """The restore target ``to`` names (``s3://BUCKET[/PREFIX]`` or a directory), opened and (``check``) checked
        before any mirror is opened: a bad one raises (``neuromirror restore`` says it first); :meth:`restore` and
        :meth:`drill` take it as it is."""
        from neuromirror.restore.targets import open_target

        opened = open_target(os.fspath(to))
        if check:
            opened.check()
        return opened

    def drill(
        self,
        specs: Union[str, Spec, Sequence[Union[str, Spec]]] = (),
        *,
        to: str,
        sample: Optional[int] = None,
        jobs: int = 4,
    ) -> DrillRun:
        """A restore drill (``restore --drill``): a random sample (``sample``, default 20) of the kept objects of
        the versions ``specs`` name (none: every source) restored into a fresh place under the scratch ``to``,
        every store's copy of each read and checked, the scratch objects removed after, the drill recorded.
        A bad copy or an object not restored is a failed item; ``.result`` is ``ok``, ``mismatch`` or ``failed``."""
        from neuromirror.restore.drills import DEFAULT_SAMPLE, drill, reason_of, result_of
        from neuromirror.restore.report import DrillRun

        if sample is not None and sample < 1:
            raise BadInput("sample must be at least 1")
        jobs_of(jobs)
        self.target(to, check=False)  # a bad target said before anything is read
        self._writes("a restore drill", index_only=True)
        chosen = specs_of(specs) if specs else [spec_of(s, allow_version=False) for s in self.sources()]
        versions = select_versions(self.index, chosen)
        report = drill(self.datasets, versions, to, sample=sample or DEFAULT_SAMPLE, jobs=jobs)
        return DrillRun(report, result_of(report), reason_of(report.to_json()))

    def drill_when_due(
        self, source: Union[str, Spec], *, to: str, every: float, sample: Optional[int] = None
    ) -> Optional[DrillRun]:
        """The service's drill (``drill:`` in a mirror definition): ``source``'s restore drill when its last one
        ended ``every`` seconds ago or more (or never ran), recorded under the source's name so that the next
        call finds it: a :class:`DrillRun` as ``drill`` returns (``.result``, ``.reason``, ``.report``; ``.summary()``
        is what a run's report holds), None when none was due.  A drill that could not run is a run whose
        ``result`` says so (``failed``), not a raise: a failed drill is news about the stores, not a failed call."""
        from neuromirror.restore.drills import DEFAULT_SAMPLE, drill_if_due

        if sample is not None and sample < 1:
            raise BadInput("sample must be at least 1")
        s = spec_of(source, allow_version=False)
        return drill_if_due(self.datasets, s.source, to, every, sample or DEFAULT_SAMPLE)


@dataclass(frozen=True)
class Forgot(Listing[Forgotten]):
    """What ``Mirror.forget`` did: each source forgotten (an ``ok`` item each), iterable as its records;
    ``to_json()`` is ``forget --json``, a list."""

    sources: tuple[Forgotten, ...]

    def records(self) -> tuple[Forgotten, ...]:
        return self.sources

    def items(self) -> list[Item]:
        return [i for f in self.sources for i in f.items()]

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.sources]

    def lines(self) -> list[str]:
        return [f.line() for f in self.sources]

    def __repr__(self) -> str:
        return f"<Forgot {', '.join(f.source for f in self.sources) or 'nothing'}>"


def _both(first: Callable[[dict[str, Any]], None], then: Optional[Callable[[dict[str, Any]], None]]) -> Any:
    if then is None:
        return first

    def each(entry: dict[str, Any]) -> None:
        first(entry)
        then(entry)

    return each


def size_of(what: str, value: Size) -> Optional[int]:
    """A size given as bytes or as text (``10M``, ``1GiB``); a bad one is :class:`BadInput` naming ``what``."""
    from neuromirror.util.sizes import parse_size

    if value is None or isinstance(value, int):
        return value
    try:
        return parse_size(value)
    except ValueError as exc:
        raise BadInput(f"{what}: {exc}") from None


def open_stores(to: Places, pack_size: Optional[int] = None, storage_class: Optional[str] = None) -> list[Store]:
    """The stores ``to`` names (none: ``$NEUROMIRROR_STORE``), each name once; a name's mistake raised with the
    name first (``X: exists and is not a directory``), a directory store's place checked before any work."""
    from neuromirror.store.location import open_store, store_name

    names = _unique(list(to) if isinstance(to, (list, tuple)) else ([] if to is None else [to]))
    try:
        opened = [
            open_store(store_name(n), pack_size=pack_size, storage_class=storage_class, create=True)
            if isinstance(n, str)
            else n
            for n in names or [store_name(None)]
        ]
    except BadInput:
        raise
    except UserError as exc:  # a name that is no store: the caller's input
        raise BadInput(str(exc)) from None
    if len({s.url for s in opened}) != len(opened):
        raise BadInput("the same store is named twice")
    for name, store in zip(names or [store_name(None)], opened):
        getattr(store, "check_settings", lambda: None)()  # a pack size against a store that has its own
        where = store.capabilities.local
        if where is not None:
            _writable(str(name), Path(where))
    return opened


def _unique(given: Sequence[Any]) -> list[Any]:
    """Paths and URLs as text, each once (a store named twice the same way is one); stores as given."""
    out: list[Any] = []
    for t in given:
        t = os.fspath(t) if isinstance(t, os.PathLike) else t
        if not (isinstance(t, str) and t in out):
            out.append(t)
    return out


def _writable(name: str, where: Path) -> None:
    """A directory store's place can be made or written by this user (else the errno of its first key)."""
    parent = where.absolute()
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"{name}: cannot create or write there ({parent} is not writable)")


def _existing_store(name: Any) -> Store:
    """A store to copy from: one already (nothing is made by reading)."""
    from neuromirror.store.location import open_store

    store = open_store(str(name))
    where = getattr(store, "path", None)
    if where is not None and not (where / ".neuromirror-store.json").is_file():
        raise BadInput(f"{name}: not a store (no .neuromirror-store.json there)")
    return store


def verify_store(store: Union[PathLike, Store, None], *, kept: bool, content: bool) -> Optional[Store]:
    """The store verify checks (``kept``) or reads (``content``): the one named, else ``$NEUROMIRROR_STORE``
    only where it is used; a directory with nothing kept yet is no store (named, or for kept: raised)."""
    from neuromirror.store.base import not_there
    from neuromirror.store.location import STORE_ENV, open_store, store_name

    if store is not None and not isinstance(store, (str, os.PathLike)):
        return store
    if store is None and not (os.environ.get(STORE_ENV) and (kept or content)):
        return None
    opened = open_store(store_name(None if store is None else str(store)))
    if not_there(opened):
        if store is not None or kept:
            raise UserError(f"{opened} is not a neuromirror store (nothing kept there yet)")
        return None  # NEUROMIRROR_STORE names a store not made yet: nothing in it to check
    return opened

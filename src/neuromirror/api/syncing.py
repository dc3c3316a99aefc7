"""The API's verb that mirrors: ``sync`` (``neuromirror sync``), sources to datasets, the index and the root.

:meth:`Syncing.sync` is everything the command does: the sources named by specs or by mirror definitions (a
pattern asks the archive), the pace and ceilings of the requests, the writer engine, this host's threads or a
Dask cluster, BOSS chunks kept into a store, LINDI references of the new HDF5 keys; then
:func:`neuromirror.engine.executor.sync_batch`, and its reports as a typed
:class:`~neuromirror.engine.synced.SyncResult` whose ``to_json()`` is ``sync --json``.  Nothing is written before
every input has been checked: a bad spec, engine, rate, store or scheduler leaves the root untouched.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from neuromirror import archives
from neuromirror.api.base import MirrorBase
from neuromirror.api.inputs import PathLike, jobs_of, spec_of
from neuromirror.archives import keeps_at_sync
from neuromirror.engine.synced import EXIT_REFUSED, Outcome, SourceSync, SyncedVersion, SyncResult
from neuromirror.errors import BadInput, NotMirrored
from neuromirror.readers import index_time_readers
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.config.model import MirrorConfig
    from neuromirror.records import SyncReport
    from neuromirror.sources.base import Source
    from neuromirror.store.base import Store

#: ``progress(source, stage, done, total)``: each source's long work (listing, pinning...), its id first; an object
#: that also has ``finished(source)`` is told when each source's sync ends (the command line's bars close there)
SourcesProgress = Callable[[str, str, int, Optional[int]], None]
Specs = Union[str, Spec, Sequence[Union[str, Spec]]]
Definitions = Union[PathLike, Sequence[PathLike], "MirrorConfig"]
#: a target: a spec and the options its sources are read with
Target = tuple[Spec, dict[str, Any]]

__all__ = [
    "EXIT_REFUSED",
    "Outcome",
    "ProgressBars",
    "SourceSync",
    "SourcesProgress",
    "SyncResult",
    "SyncedVersion",
    "Syncing",
    "add_source_options",
    "dandi_options",
    "definitions",
    "parse_rate",
    "source_option_names",
]


class Syncing(MirrorBase):
    """The API's verb that mirrors."""

    def sync(
        self,
        specs: Specs = (),
        *,
        config: Optional[Definitions] = None,
        engine: Optional[str] = None,
        jobs: int = 4,
        dask: Optional[str] = None,
        store: Union[PathLike, Store, None] = None,
        max_rate: Union[float, str, None] = None,
        max_in_flight: Union[int, str, None] = None,
        references: Optional[str] = None,
        wait: bool = True,
        dandi_api: Optional[str] = None,
        dandi_instance: Optional[str] = None,
        options: Optional[Mapping[str, Any]] = None,
        progress: Optional[SourcesProgress] = None,
        reraise: bool = False,
        inventory: Optional[str] = None,
        inventory_date: Optional[str] = None,
    ) -> SyncResult:
        """Mirror the sources ``specs`` name (``dandi:000027``, ``dandi:*``, ``aind:NAME``, ``boss:COLL/EXP``; no
        ``@VERSION``) and/or those of the mirror definitions ``config`` (files, or a loaded definition; with specs:
        only those, each with its entry's options, which win over these).  Each source's new states become commits
        and tags of its dataset under this mirror's root and rows of its index (``neuromirror sync``).

        ``engine``: the annex writer, ``fast-import`` or ``batch`` (None: ``$NEUROMIRROR_ENGINE``, else
        fast-import).  ``jobs``: sources synced at once.  ``dask``: a scheduler's address, each source a task there.
        ``store``: where BOSS sources keep the chunks they read (None: ``$NEUROMIRROR_STORE``).  ``max_rate``
        (requests a second, or ``"300/min"``) and ``max_in_flight``: bounds on each archive endpoint, over the
        definitions' ``network:``.  ``references="nwb"``: a LINDI reference of each new NWB/HDF5 key.  ``wait``:
        False fails a source at once when another process syncs it.  ``dandi_api`` / ``dandi_instance``
        (``dandi``, ``dandi-sandbox``...): which DANDI; ``options``: a source's own options, as a definition's
        ``options:`` (``bucket``, ``prefix``, ``boss_url``, ``channels``...).  ``progress``: see
        :data:`SourcesProgress`.  ``reraise``: a source's error raised, not reported as its failure.  ``inventory``:
        the archive bucket's S3 Inventory (of ``inventory_date``, else the newest) pins DANDI's blobs and lists its
        Zarrs, no HEAD and no ListObjectVersions for what it holds (docs/inventory.md).

        A source that fails is an ``error`` item of the result, never an exception: ``result.ok``,
        ``result.check()``; items refused (a hostile path, a Zarr whose checksum disagrees) are ``impossible``."""
        from neuromirror.dataset.new_root import new_root, unmake_if_full
        from neuromirror.engine.dask_executor import runner_for
        from neuromirror.engine.executor import SyncBatch, sync_batch
        from neuromirror.network import report as netreport

        net_start = netreport.snapshot()  # finding the sources asks the archives too: the report counts it
        engine = _engine(engine)
        jobs_of(jobs, "sources synced at once")
        self._writes("sync")
        made = new_root(self.root)  # what was there before a new root: all else is removed if the disk fills
        loaded = self._definitions(config)
        base = _base_options(options, engine, references, dandi_api, dandi_instance)
        targets = _targets(_specs(specs), loaded, base)
        network_ceilings(max_rate, max_in_flight, loaded)  # before any source asks its archive
        sources, engines, notes = _sources(targets, engine)
        referenced = _referenced(targets, sources, asked=references is not None)  # lindi missing: said at once
        runner = runner_for(dask)  # an unreachable scheduler leaves the root untouched
        kept = _store(store, sources, runner)  # a bad store name too
        index = self._index_given()
        batch = SyncBatch(
            self.root,
            index,
            sources,
            engines,
            engine,
            jobs,
            progress=_per_source(progress),
            lock_wait=True if wait else 0,
            reraise=reraise,
            runner=runner,
            store=kept,
            network_since=net_start,
        )
        try:
            with _inventory(self.root, inventory, inventory_date, notes):
                result = SyncResult.from_reports(sync_batch(batch), notes)
        except Exception as exc:
            unmake_if_full(self.root, made, exc)
            raise
        failed = [s.error for s in result.sources if s.failed]
        if made is not None and failed and len(failed) == len(result.sources):
            unmake_if_full(self.root, made, RuntimeError("; ".join(str(e) for e in failed)))
        return _with_references(result, referenced, self.root, index)

    def sync_source(
        self,
        source: Source,
        *,
        engine: Optional[str] = None,
        progress: Optional[Callable[..., None]] = None,
        trigger: str = "api",
        wait: Union[bool, float] = True,
        runner: Optional[Callable[..., object]] = None,
        on_locked: Optional[Callable[[], None]] = None,
        min_free: Optional[object] = None,
    ) -> SyncReport:
        """One source already made (:func:`neuromirror.sources.expand`: the service lists a definition's sources
        once per cycle, and syncs each as its plan says) brought up to date: its report.  ``progress(stage, done,
        total)``; ``trigger``: who asked, as the run's record says (the service: ``"service"``); ``wait``: how long
        to wait for another process's lock (False: :class:`~neuromirror.errors.LockBusy` at once);
        ``on_locked``: called once the lock is held (only then is the sync under way); ``min_free``: the disk the
        sync must leave free.  Raises as the sync failed; ``Mirror.sync`` is the call that turns that into an
        ``error`` item."""
        from neuromirror.engine.sync import sync_source

        return sync_source(
            self.datasets,
            source,
            engine=_engine(engine),
            progress=progress,
            trigger=trigger,
            lock_wait=wait,
            runner=runner,
            on_locked=on_locked,
            min_free=min_free,
        )

    def _definitions(self, config: Optional[Definitions]) -> Optional[MirrorConfig]:
        """The mirror definitions, loaded as one; their ``root:``, when they name one, must be this mirror's."""
        if config is None:
            return None
        from neuromirror.config.model import MirrorConfig

        loaded = config if isinstance(config, MirrorConfig) else _load(config)
        if loaded.root is not None and Path(loaded.root).absolute() != self.root:
            where = loaded.files[0] if loaded.files else "the mirror definition"
            raise BadInput(f"{where}: root {loaded.root} differs from this mirror's root {self.root}")
        return loaded

    def _index_given(self) -> Optional[Path]:
        """The index when it is not the root's own (None: the root's), as the sync's workers are told."""
        index = Path(self.datasets.index_path)
        return None if index == self.datasets.state_dir / "index.sqlite" else index


def definitions(files: Union[PathLike, Sequence[PathLike]], root: Optional[PathLike] = None) -> tuple[Path, Any]:
    """The mirror definitions in ``files``, loaded as one, and the root a sync of them writes into: their
    ``root:``, else ``root``, else ``./neuromirror-root`` (a root named both ways must be the same)."""
    loaded = _load(files)
    return loaded.resolve_root(None if root is None else str(root)), loaded


def _load(files: Union[PathLike, Sequence[PathLike]]) -> MirrorConfig:
    from neuromirror.config.load import load_configs

    return load_configs([files] if isinstance(files, (str, os.PathLike)) else list(files))


def source_option_names() -> frozenset[str]:
    """The names of every installed source's own options (``dandi_api``, ``bucket``, ``boss_url``...)."""
    from neuromirror.config.options import SYNC_OPTIONS, known_options

    return frozenset(known_options()[0]) - frozenset(SYNC_OPTIONS)


def _engine(engine: Optional[str]) -> str:
    from neuromirror.config.options import ENGINES

    chosen = engine or os.environ.get("NEUROMIRROR_ENGINE") or ENGINES[0]
    if chosen not in ENGINES:
        raise BadInput(f"engine {chosen!r}: not one of {', '.join(ENGINES)}")
    return chosen


def _base_options(
    options: Optional[Mapping[str, Any]],
    engine: str,
    references: Optional[str],
    dandi_api: Optional[str],
    dandi_instance: Optional[str],
) -> dict[str, Any]:
    """The options every source is read with, unless its definition's entry says otherwise."""
    from neuromirror.config.options import known_options, option_dest

    if references not in (None, "nwb"):
        raise BadInput(f"references {references!r}: the one kind made is 'nwb' (LINDI, of NWB/HDF5 keys)")
    known, complete = known_options()
    base: dict[str, Any] = {}
    for name, value in (options or {}).items():
        dest = option_dest(str(name))
        if complete and dest not in known:
            raise BadInput(f"no source has an option {name!r} (options: {', '.join(sorted(source_option_names()))})")
        base[dest] = value
    base.update(engine=engine, references=references)
    if dandi_api is not None:
        base["dandi_api"] = dandi_api
    if dandi_instance is not None:
        base["dandi_instance"] = dandi_instance
    return base


def _specs(specs: Optional[Specs]) -> list[Spec]:
    """One spec or several, each once; a sync names sources, never a version of one."""
    given = [specs] if isinstance(specs, (str, Spec)) else list(specs or ())
    return list(dict.fromkeys(spec_of(s, allow_version=False) for s in given))


def _targets(specs: list[Spec], loaded: Optional[MirrorConfig], base: dict[str, Any]) -> list[Target]:
    """What to sync: each spec with ``base``, or the definitions' entries (see ``config.load.sync_targets``)."""
    if loaded is not None:
        from neuromirror.config.load import sync_targets

        return sync_targets(loaded, specs, base)
    if not specs:
        raise BadInput("nothing to sync: name sources (dandi:000027, 'dandi:*') or mirror definitions")
    return [(spec, base) for spec in specs]


def network_ceilings(
    max_rate: Union[float, str, None], max_in_flight: Union[int, str, None], loaded: Optional[MirrorConfig]
) -> None:
    """The contact and the ceilings of this sync (or keep): the definitions' ``contact:`` and ``network:``, and
    ``max_rate`` / ``max_in_flight`` over the latter's every-endpoint limit (none given: none held)."""
    from neuromirror.network import pacing
    from neuromirror.network.ceiling import Ceilings, Limit, parse_rate

    try:  # the rules the definitions' network: keys are read by (config.network), one way everywhere
        rate = None if max_rate is None else parse_rate(max_rate)
    except ValueError as exc:
        raise BadInput(f"max_rate: {exc}").at("max_rate") from None
    if max_in_flight is not None:
        max_in_flight = _in_flight(max_in_flight)
    settings = (loaded.network if loaded is not None else None) or Ceilings()
    if loaded is not None:
        loaded.apply_network()
    given = Limit(rate, max_in_flight)
    pacing.set_ceilings(Ceilings(given.over(settings.default), settings.endpoints))


def _in_flight(value: Union[int, str]) -> int:
    """``max_in_flight`` (``--max-in-flight``): a whole number of requests, 1 or more."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise BadInput(f"max_in_flight {value!r}: a whole number of requests, 1 or more").at("max_in_flight")
    return int(text)


def _sources(targets: list[Target], default_engine: str) -> tuple[list[Source], dict[str, str], list[str]]:
    """The sources the targets name (a pattern asks the archive), each once, each one's writer engine, and a
    note per pattern that matched nothing."""
    from neuromirror.sources import expand

    sources: list[Source] = []
    engines: dict[str, str] = {}
    notes: list[str] = []
    for spec, opts in targets:
        found = list(expand(spec, dandi_options(spec, opts)))
        if not found and spec.is_glob:
            notes.append(f"{spec} matched nothing")
        for s in found:
            if s.id not in engines:  # 'dandi:000002' and 'dandi:*' name it twice: synced once
                engines[s.id] = opts.get("engine") or default_engine
                sources.append(s)
    if not sources:
        raise NotMirrored("; ".join(["nothing to sync", *notes]))
    return sources, engines, notes


def dandi_options(spec: Spec, options: dict[str, Any]) -> dict[str, Any]:
    """The options a SPEC adds to a sync's, as its archive's record says (the API a DANDI source is read from:
    ``dandi_instance``, else ``dandi_api``, else the instance its URL or DOI named)."""
    archive = archives.get(spec.archive)
    return archive.sync_options(spec, options) if archive and archive.sync_options else options


def _referenced(targets: list[Target], sources: list[Source], *, asked: bool) -> dict[str, set[str]]:
    """Per index-time reader (:mod:`neuromirror.readers`: LINDI references for ``references: nwb``), the sources
    whose options ask for it; asked for by the caller and unable to run here: its UserError, before anything is
    synced."""
    import fnmatch

    chosen: dict[str, set[str]] = {}
    for reader in index_time_readers().values():
        wanting = [spec for spec, opts in targets if reader.asks(opts)]
        ids = {s.id for s in sources if any(fnmatch.fnmatchcase(s.id, spec.source) for spec in wanting)}
        if ids and asked and reader.require is not None:
            reader.require()
        if ids and reader.after_sync is not None:
            chosen[reader.name] = ids
    return chosen


def _store(given: Union[PathLike, Store, None], sources: list[Source], runner: Any) -> Optional[Store]:
    """The store BOSS sources keep their chunks in (None given: ``$NEUROMIRROR_STORE``); None: no BOSS source,
    or no store."""
    from neuromirror.store.location import STORE_ENV, open_store

    if not any(keeps_at_sync(s.archive) for s in sources):
        return None
    if given is None or isinstance(given, (str, os.PathLike)):
        name = str(given or os.environ.get(STORE_ENV) or "").strip()
        if not name:
            return None
        store = open_store(name, create=True)  # a sync that keeps chunks: keep --to's
    else:
        store = given
    if runner is not None:
        runner.close()
        raise BadInput(
            f"BOSS chunks kept into a store ({store.url}) by a sync on a Dask cluster: not supported yet "
            "(sync BOSS sources on this host)"
        )
    return store


def _with_references(result: SyncResult, chosen: dict[str, set[str]], root: Path, index: Optional[Path]) -> SyncResult:
    """Each index-time reader's work on its chosen sources' new versions, in each source's report under the reader's
    name (``references``); a failure is a warning of the source, never a failed sync."""
    for name, ids in chosen.items():
        reader = index_time_readers()[name]
        after = reader.after_sync
        if after is None:  # chosen only with one (_referenced)
            continue
        made: dict[str, tuple[Optional[dict[str, Any]], list[str]]] = {}
        for s in result.sources:
            if s.source not in ids or s.failed or not s.versions:
                continue
            why = reader.why_not()
            if why:
                made[s.source] = (None, [f"{name}: {why}"])
                continue
            got, failed = after(root, index, [(s.source, v.commit) for v in s.versions])
            made[s.source] = (got, [f"{name}: {line}" for line in failed])
        result = result.with_references(made)
    return result


class _SourceProgress:
    """One source's ``progress(stage, done, total)`` for the engine, relayed to the caller's with the source."""

    def __init__(self, to: SourcesProgress, source: str) -> None:
        self.to, self.source = to, source

    def __call__(self, stage: str, done: int, total: Optional[int]) -> None:
        self.to(self.source, stage, done, total)

    def done(self) -> None:
        finished = getattr(self.to, "finished", None)
        if finished is not None:
            finished(self.source)


def _per_source(progress: Optional[SourcesProgress]) -> Union[bool, Callable[[str], _SourceProgress]]:
    return False if progress is None else (lambda source: _SourceProgress(progress, source))


class ProgressBars:
    """The command line's progress: a bar per source and stage on stderr (tqdm; clean lines off a terminal),
    gone when the source's sync ends."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, source: str, stage: str, done: int, total: Optional[int]) -> None:
        from neuromirror.util.progress import Progress

        with self._lock:
            bar = self._bars.get(source)
            if bar is None:
                bar = self._bars[source] = Progress(source)
        bar(stage, done, total)

    def finished(self, source: str) -> None:
        with self._lock:
            bar = self._bars.pop(source, None)
        if bar is not None:
            bar.done()


def add_source_options(parser: Any) -> None:
    """Each installed source's own options (``--dandi-api``, ``--bucket``, ``--boss-url``...) on an argparse
    parser: the command line's ``sync`` (the names :func:`source_option_names` gives)."""
    from neuromirror.sources import add_options

    add_options(parser)


def parse_rate(text: str) -> float:
    """Requests a second in ``20/s``, ``300/min`` or ``20``; a ValueError naming the text otherwise."""
    from neuromirror.network.ceiling import parse_rate as parse

    return parse(text)


@contextmanager
def _inventory(root: Path, url: Optional[str], date: Optional[str], notes: list[str]) -> Iterator[None]:
    """The S3 Inventory ``url`` loaded into the root's pins file for the sync's while (a note says what it read)."""
    if not url:
        if date:
            raise BadInput("inventory_date without inventory: name the inventory (its URL) too").at("inventory_date")
        yield
        return
    from neuromirror.inventory import open_inventory
    from neuromirror.sources.inventory_pins import pins_from

    with pins_from(open_inventory(url, date), root / ".neuromirror" / "inventory-pins.sqlite") as loaded:
        notes.append(loaded.note())
        yield

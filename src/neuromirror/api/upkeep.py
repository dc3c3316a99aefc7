"""The API's verbs that report on and tend the mirror: ``status`` (and its live counts of one source, ``at_risk``
and ``expiry``), ``publish``, ``maintain`` and ``reindex``.

Each command's verb returns a :class:`~neuromirror.results.Result` whose ``to_json()`` is the command's ``--json``
and whose ``lines()`` are what the command prints; ``at_risk`` and ``expiry`` return the counts themselves (the
service records them in a run's report).  ``status`` and ``reindex`` work on a mirror that has no index yet
(``status`` says so; ``reindex`` makes it): construct ``api.Mirror(root)`` for them, since :func:`api.open`
refuses a root without an index.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Sequence, Union, overload

from neuromirror.api.inputs import PathLike, spec_of, specs_of
from neuromirror.api.reading import Reading
from neuromirror.errors import BadInput, NotMirrored
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.api.status import BackupReport, CopiesReport, StatusReport
    from neuromirror.api.upkeep_results import Pruned, Published, Reindexed
    from neuromirror.config.model import MirrorConfig
    from neuromirror.maintain.run import MaintainReport
    from neuromirror.verify.noncurrent import Expiry

Specs = Union[str, Spec, Sequence[Union[str, Spec]]]
#: called with a line as each step of a long verb is done (a dataset published, a source maintained)
Progress = Callable[[str], None]


class Upkeep(Reading):
    """The API's verbs that report on and tend the mirror."""

    @staticmethod
    def definitions(paths: Union[PathLike, Sequence[PathLike]]) -> MirrorConfig:
        """The mirror definitions in these YAML files, as one (what ``--config`` gives ``status`` and ``reindex``);
        ``.resolve_root(root)`` is the mirror's root they name."""
        from neuromirror.config.load import load_configs

        return load_configs([paths] if isinstance(paths, (str, os.PathLike)) else list(paths))

    # -- status ---------------------------------------------------------------------------------------
    # each mode's result its own type for a caller's mypy (the command, passing a bool, gets the union)
    @overload
    def status(
        self,
        specs: Specs = (),
        *,
        config: Optional[MirrorConfig] = None,
        at_risk: bool = True,
        copies: Literal[False] = False,
        backup: Literal[False] = False,
    ) -> StatusReport: ...
    @overload
    def status(
        self,
        specs: Specs = (),
        *,
        config: Optional[MirrorConfig] = None,
        at_risk: bool = True,
        copies: Literal[True],
        backup: bool = False,
    ) -> CopiesReport: ...
    @overload
    def status(
        self,
        specs: Specs = (),
        *,
        config: Optional[MirrorConfig] = None,
        at_risk: bool = True,
        copies: Literal[False] = False,
        backup: Literal[True],
    ) -> BackupReport: ...
    @overload
    def status(
        self,
        specs: Specs = (),
        *,
        config: Optional[MirrorConfig] = None,
        at_risk: bool = True,
        copies: bool = False,
        backup: bool = False,
    ) -> Union[StatusReport, CopiesReport, BackupReport]: ...
    def status(
        self,
        specs: Specs = (),
        *,
        config: Optional[MirrorConfig] = None,
        at_risk: bool = True,
        copies: bool = False,
        backup: bool = False,
    ) -> Union[StatusReport, CopiesReport, BackupReport]:
        """Per source (every one, or those ``specs`` name: globs allowed) its last success and failure, next run
        (``config``: the definitions' schedules, and their sources not run yet), versions, files and bytes, and
        (``at_risk``) the files only a URL holds (``neuromirror status``); the service, the cluster, disks, drills.
        ``copies``: per version the verified copies outside the archive (``status --copies``); ``backup``: per
        source and store what is kept (``status --backup``, :meth:`backup`).  Works without an index."""
        if copies:
            return self.copies(specs)
        patterns = [spec_of(s, allow_version=False).source for s in _listed(specs)]
        self._root_exists(config)
        if backup:
            return self._backup_report(patterns, config)
        return self._status_report(patterns, config, at_risk)

    def copies(self, specs: Specs = ()) -> CopiesReport:
        """Per source and version ``specs`` name (a spec without a version: its published versions and latest
        draft): files and bytes with the wanted number of verified copies outside the archive, fewer, none."""
        from neuromirror.api.status import CopiesReport
        from neuromirror.index.store_checks import known_stores, wanted
        from neuromirror.keep.archive_copies import PerArchive
        from neuromirror.keep.copies import copies_report
        from neuromirror.store.reach import lost_stores
        from neuromirror.util import gitutil

        chosen = specs_of(specs) if _listed(specs) else []
        self._require_index()
        per = PerArchive({s.id: wanted(self.index, s.id) for s in self.index.sources()})
        with gitutil.lean_readers():  # as keep's count: a 10^6-key version's listing held 345 MB of git else
            counts = copies_report(self.datasets, chosen, per)  # the stores looked at first
        stores = known_stores(self.index)
        archives = [a.to_json(stores) for _, a in sorted(per.archives.items())]
        return CopiesReport(counts, archives, list(lost_stores(self.index).values()))

    def at_risk(self, source: str) -> list[dict[str, Any]]:
        """What ``status --at-risk`` counts for ``source`` (a mirrored source's id), live: per published version
        and the latest draft (``version``, ``kind``), files and bytes ``kept`` in a store, only behind a ``pinned``
        URL, pinned only by a ``noncurrent`` S3 version, only behind mutable URLs (``unpinned``), and its
        ``problems``; from the index and the git-annex branch, no network.  The service counts it once a sync
        ended, off the request path.  A source not mirrored: :class:`NotMirrored`."""
        from neuromirror.verify.risk import source_risk

        risks: list[dict[str, Any]] = source_risk(self.index, self._dataset(source), source)
        return risks

    def expiry(self, source: str, expire_after: Optional[float] = None) -> Expiry:
        """The unkept files of ``source``'s recorded versions pinned only by noncurrent S3 versions, the versions
        holding them (``version_ids``: what a keep with ``expire_after`` keeps too) and the time the oldest has
        left before the archive's lifecycle deletes it, ``expire_after`` seconds (default 30 days) after it
        became noncurrent.  A source not mirrored: :class:`NotMirrored`."""
        from neuromirror.verify.noncurrent import DEFAULT_EXPIRE_AFTER, expiry_of

        after = DEFAULT_EXPIRE_AFTER if expire_after is None else expire_after
        return expiry_of(self.index, self._dataset(source), source, after)

    def _status_report(self, patterns: list[str], config: Optional[MirrorConfig], at_risk: bool) -> StatusReport:
        import fnmatch

        from neuromirror.account.risk import add_live_risk
        from neuromirror.account.status import cluster_facts, status_report
        from neuromirror.api.status import StatusReport

        index_path = str(self.datasets.index_path)
        report = status_report(self.root, index_path, config=config)
        if patterns:
            report["sources"] = [
                r for r in report["sources"] if any(fnmatch.fnmatchcase(r.source, p) for p in patterns)
            ]
            for p in patterns:  # a SPEC naming no source (mirrored or defined) is a mistake, not a report of nothing
                if not any(fnmatch.fnmatchcase(r.source, p) for r in report["sources"]):
                    what = f"no mirrored or defined source matches {p}" if any(c in p for c in "*?[") else None
                    raise NotMirrored(what or f"{p} is not mirrored here, in {self.root} (run: neuromirror sync {p})")
        report["cluster"] = cluster_facts(report, config)
        if at_risk:
            add_live_risk(report, self.root, index_path, config)
        return StatusReport(report, self.datasets.index_path)

    def _backup_report(self, patterns: list[str], config: Optional[MirrorConfig]) -> BackupReport:
        from neuromirror.account.backup import expire_after_of
        from neuromirror.api.status import BackupReport

        self._require_index()
        return BackupReport(self._backup_of(self._sources_named(patterns), expire_after_of(config)))

    def _root_exists(self, config: Optional[MirrorConfig]) -> None:
        """A mistyped root is a mistake, not a report of nothing (but a cluster named has a status of its own)."""
        if not self.root.is_dir() and not (getattr(config, "dask", None) or os.environ.get("NEUROMIRROR_DASK")):
            raise NotMirrored(f"no mirror at {self.root}: no such directory").at("root")

    def _require_index(self) -> None:
        if not self.datasets.index_path.exists():
            raise NotMirrored(f"no mirror at {self.root} (no index {self.datasets.index_path})").at("root")

    # -- publish ----------------------------------------------------------------------------------------
    def publish(
        self,
        specs: Specs,
        to: str,
        *,
        name: str = "published",
        force: bool = False,
        with_root: bool = False,
        include_embargoed: bool = False,
        public_url: Optional[str] = None,
        progress: Optional[Progress] = None,
        zarr_org: Optional[str] = None,
        github_api: Optional[str] = None,
        github_metadata: bool = False,
        min_free: Optional[object] = None,
    ) -> Published:
        """Push the datasets of the sources ``specs`` name (globs allowed; whole datasets: no ``@VERSION``) so that
        anyone can clone and get them (``neuromirror publish``): to ``to`` (a BASE directory or URL, a template
        with ``{archive}``, ``{name}``, ``{slug}`` or ``{relpath}``, or a RIA store ``ria+file:///PATH`` or
        ``ria+ssh://HOST/PATH``, or ``github:ORG``: repositories made through GitHub's API, ``zarr_org`` the Zarrs'
        organisation, ``github_api`` the API's base, ``github_metadata`` only re-asserting description, homepage and
        visibility).  ``name``: the git remote recorded in each dataset; ``with_root``: the root
        superdataset too; ``include_embargoed``/``public_url``: a RIA store's.  ``progress``: called with each
        dataset's line (:meth:`Published.lines`) as it is pushed.  ``min_free``: the free space a target on this
        host must keep (as the service's ``min_free`` option; default ``NEUROMIRROR_MIN_FREE``'s)."""
        from neuromirror.api.upkeep_results import Published
        from neuromirror.index.lookup import sources_matching

        chosen = specs_of(specs)
        for s in chosen:
            if s.version:
                raise BadInput(f"{s}: publish pushes whole datasets (every version is a tag); drop @{s.version}")
        if to.startswith("ria+"):
            return self._publish_ria(chosen, to, force, with_root, include_embargoed, public_url, progress, min_free)
        if to.startswith("github:") or zarr_org or github_api or github_metadata:
            if with_root:
                raise BadInput(
                    "with_root: the root superdataset is the mirror's bookkeeping, not published to GitHub"
                ).at("with_root")
            return self._publish_github(chosen, to, zarr_org, github_api, github_metadata, force, name, progress)
        from neuromirror.publish.sibling import PublishResult, publish_siblings

        self._require_index()
        self._writes("publish")

        def each(res: PublishResult) -> None:
            if progress is not None:
                progress(res.line())

        sources = sources_matching(self.index, chosen)
        return Published(
            publish_siblings(
                self.datasets, sources, to, name=name, force=force, with_root=with_root, each=each, min_free=min_free
            )
        )

    def _publish_github(  # noqa: PLR0913
        self,
        chosen: list[Spec],
        to: str,
        zarr_org: Optional[str],
        api: Optional[str],
        metadata_only: bool,
        force: bool,
        name: str,
        progress: Optional[Progress],
    ) -> Published:
        """Into GitHub organisations (:mod:`neuromirror.publish.github`); ``progress`` told each source's line."""
        from neuromirror.api.upkeep_results import Published
        from neuromirror.index.lookup import sources_matching
        from neuromirror.publish.github import target
        from neuromirror.publish.github.client import DEFAULT_API
        from neuromirror.publish.github.publish import GitHubTarget, publish_to_github

        if not target.is_github(to):
            raise BadInput(
                f"to {to!r} is not github:ORG, the only target a Zarr organisation, a GitHub API or re-asserted "
                "GitHub metadata go with"
            ).at("to")
        org = target.org_of(to)
        zorg = target.org_of(f"github:{zarr_org}") if zarr_org else org
        where = GitHubTarget(org, zorg, api or DEFAULT_API, target.token(), force, name, metadata_only)
        self._require_index()
        self._writes("publish")
        sources = sources_matching(self.index, chosen)
        each = (lambda res: progress(res.line())) if progress is not None else None
        return Published(publish_to_github(self.datasets, sources, where, each=each))

    def _publish_ria(  # noqa: PLR0913
        self,
        chosen: list[Spec],
        to: str,
        force: bool,
        with_root: bool,
        include_embargoed: bool,
        public_url: Optional[str],
        progress: Optional[Progress],
        min_free: Optional[object] = None,
    ) -> Published:
        """Into a RIA store (:mod:`neuromirror.publish.ria`); ``progress`` told each line once the store is written."""
        from neuromirror.api.upkeep_results import Published
        from neuromirror.index.lookup import sources_matching
        from neuromirror.publish.ria.layout import RiaStore
        from neuromirror.publish.ria.publish import publish_to_ria

        RiaStore.from_url(to)  # a URL we cannot publish to is a one-line error before anything is opened
        self._require_index()
        self._writes("publish")
        sources = sources_matching(self.index, chosen)
        done = Published(
            publish_to_ria(
                self.datasets,
                sources,
                to,
                with_root=with_root,
                include_embargoed=include_embargoed,
                force=force,
                public_url=public_url,
                min_free=min_free,
            )
        )
        if progress is not None:
            for line in done.lines():
                progress(line)
        return done

    # -- maintain ---------------------------------------------------------------------------------------
    def maintain(
        self,
        specs: Specs = (),
        *,
        to: Sequence[str] = (),
        dry_run: bool = False,
        force: bool = False,
        progress: Optional[Progress] = None,
        with_root: Optional[bool] = None,
    ) -> MaintainReport:
        """Pack loose git objects and small packs where worth it (``neuromirror maintain``): of the sources ``specs``
        name (none: every source, then the root superdataset), their Zarr/AIND subdatasets and their published
        copies (those ``to`` names, as ``publish`` takes them, and those their last publish recorded).  A source
        being synced or published is skipped, and says so.  ``dry_run``: measure only; ``force``: pack every
        repository with a loose object or two packs.  ``progress``: called with each source as it is done.
        ``with_root``: the root superdataset too (default: when no spec is named; the service, after one
        source's sync, asks for it as well, since the sync recorded the source there)."""
        from neuromirror.index.lookup import sources_matching
        from neuromirror.maintain.run import maintain

        chosen = [spec_of(s, allow_version=False) for s in _listed(specs)]
        self._require_index()
        self._writes("maintain")
        sources = sources_matching(self.index, chosen) if chosen else [s.id for s in self.index.sources()]
        return maintain(
            self.datasets,
            sources,
            to=list(to),
            with_root=not chosen if with_root is None else with_root,
            dry_run=dry_run,
            force=force,
            progress=progress,
        )

    # -- reindex ----------------------------------------------------------------------------------------
    @overload
    def reindex(
        self, *, prune: Literal[False] = False, config: None = None, progress: Optional[Progress] = None
    ) -> Reindexed: ...
    @overload
    def reindex(
        self, *, prune: Literal[True], config: Optional[MirrorConfig] = None, progress: Optional[Progress] = None
    ) -> Pruned: ...
    @overload
    def reindex(
        self, *, prune: bool = False, config: Optional[MirrorConfig] = None, progress: Optional[Progress] = None
    ) -> Union[Reindexed, Pruned]: ...
    def reindex(
        self, *, prune: bool = False, config: Optional[MirrorConfig] = None, progress: Optional[Progress] = None
    ) -> Union[Reindexed, Pruned]:
        """Rebuild the index from the datasets, which are the truth (``neuromirror reindex``): every source, version
        and file as their history records them; the index is made when there is none (construct ``api.Mirror(root)``:
        :func:`api.open` wants one).  ``progress``: called with each dataset as it is read.  ``prune``: rebuild
        nothing; remove the run history the retention policy (``config``'s ``retention:``, else the defaults) no
        longer keeps, compact the index, checkpoint its WAL (``reindex --prune``, what the service does hourly)."""
        if prune:
            return self._prune(config)
        if config is not None:
            raise BadInput("a definition's retention applies to pruning only: reindex rebuilds from the datasets")
        from neuromirror.api.upkeep_results import Reindexed
        from neuromirror.dataset.reindex import reindex_all, set_aside_damaged

        if not (self.root / ".git").exists():  # nothing to rebuild from: create no index either
            raise NotMirrored(f"no mirror at {self.root} (not a dataset)").at("root")
        self._writes("reindex", index_only=True)
        aside = set_aside_damaged(self.datasets)
        counts: dict[str, int] = {}
        for rel in self.datasets.subdatasets():  # registered subdatasets of the root and, below them, nested ones
            if progress is not None:
                progress(rel)
            counts.update(reindex_all(self.index, self.root, [rel]))
        return Reindexed(counts, self.datasets.index_path, aside)

    def _prune(self, config: Optional[MirrorConfig]) -> Pruned:
        from neuromirror.api.upkeep_results import Pruned
        from neuromirror.config.model import MirrorConfig
        from neuromirror.index.retention import tidy

        if not self.datasets.index_path.exists():
            raise NotMirrored(f"no index at {self.datasets.index_path}: nothing to prune")
        self._writes("pruning the index", index_only=True)
        done = tidy(self.index, (config or MirrorConfig()).retention_of())
        return Pruned(done, self.datasets.index_path)


def _listed(specs: Specs) -> list[Union[str, Spec]]:
    """``specs`` as a list: one spec string is one spec, never its characters; none is an empty list."""
    if isinstance(specs, (str, Spec)):
        return [specs]
    return list(specs or ())


__all__ = ["Progress", "Upkeep"]

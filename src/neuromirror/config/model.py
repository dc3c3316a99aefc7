"""The typed result of loading definitions: :class:`MirrorConfig` and its :class:`SourceConfig` entries.

This is what the service, ``neuromirror sync --config`` and the publish step read; the
files' syntax stays behind in :mod:`neuromirror.config.validate`.  A source entry knows its
options (defaults merged) and can expand itself into source objects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from neuromirror.config.options import SYNC_OPTIONS, known_options
from neuromirror.config.schedule import Backoff, Schedule
from neuromirror.errors import UserError
from neuromirror.index.retention import Retention, policy_for
from neuromirror.network.ceiling import Ceilings
from neuromirror.sources.base import Listed, Source
from neuromirror.spec import Spec, parse_spec

DEFAULT_JOBS = 2
#: ``keep: {versions: ...}``: which versions the service keeps after a sync
KEEP_VERSIONS = ("published", "all")


@dataclass(frozen=True)
class KeepPolicy:
    """``keep:`` of a source entry: what the service copies into ``store:`` after each successful sync.

    ``published``: every published version (a source without published versions, AIND and BOSS
    snapshots: its latest version); ``all``: every recorded version, drafts too. The filters and
    the budget are ``neuromirror keep``'s ``--include/--exclude/--max-file-size/--budget``.
    ``expire_after`` (the archive's noncurrent-version expiry, e.g. 30d): also keep every recorded
    version holding a file pinned only by a noncurrent S3 version, before it expires
    (:mod:`neuromirror.verify.noncurrent`).
    """

    versions: str = "published"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_size: Optional[int] = None
    budget: Optional[int] = None
    expire_after: Optional[float] = None
    #: ``prune: true``: each cycle's keep drops from the stores the versions this policy no longer selects
    #: (a superseded draft state), with the keys no kept version needs (``keep --prune``)
    prune: bool = False

    def to_json(self) -> dict:
        return {
            "versions": self.versions,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "max_file_size": self.max_file_size,
            "budget": self.budget,
            "expire_after": self.expire_after,
            "prune": self.prune,
        }


#: ``verify: {period: ...}``: every stored byte re-read within this, unless the definition says otherwise
DEFAULT_VERIFY_PERIOD = 30 * 86400.0


@dataclass(frozen=True)
class VerifyPolicy:
    """``verify:``: the slice of each store re-read every cycle (``fraction``; else the share of the
    ``period`` one cycle is), so that every stored byte is re-read within ``period``."""

    fraction: Optional[float] = None
    period: float = DEFAULT_VERIFY_PERIOD

    def slice_of(self, interval: Optional[float]) -> float:
        """The fraction to check this cycle, for a schedule of ``interval`` seconds (None: a cron line, daily)."""
        if self.fraction is not None:
            return self.fraction
        return min(1.0, (interval or 86400.0) / self.period)

    def to_json(self) -> dict:
        return {"fraction": self.fraction, "period": self.period}


#: ``drill: {every: ...}``: how often the service rehearses a restore, unless the definition says otherwise
DEFAULT_DRILL_EVERY = 7 * 86400.0
DEFAULT_DRILL_SAMPLE = 20


@dataclass(frozen=True)
class DrillPolicy:
    """``drill:``: a restore rehearsed by the service (``restore --drill``): ``sample`` kept objects of the
    source restored into a fresh place under the scratch target ``to`` at most every ``every`` seconds."""

    to: str
    every: float = DEFAULT_DRILL_EVERY
    sample: int = DEFAULT_DRILL_SAMPLE

    def to_json(self) -> dict:
        return {"to": self.to, "every": self.every, "sample": self.sample}


@dataclass
class SourceConfig:
    """One entry of ``sources:``: a SPEC (maybe a glob) with its options, schedule and publish target."""

    spec: str  # normalised: "dandi:000027", "dandi:*", "boss:coll/exp"
    schedule: Schedule
    options: dict[str, Any] = field(default_factory=dict)  # set in the file (defaults merged), dest names
    publish: Optional[dict[str, Any]] = None
    backoff: Backoff = field(default_factory=Backoff)
    enabled: bool = True
    file: Optional[str] = None
    line: Optional[int] = None
    #: the lab's store (a path or URL, as ``--store``) and what the service keeps there (docs/service.md)
    store: Optional[str] = None
    keep: Optional[KeepPolicy] = None
    #: ``retention:`` of this entry; None: the top level's (:mod:`neuromirror.config.retention`)
    retention: Optional[Retention] = None
    #: ``stores:`` (``store`` is their first), ``copies:`` wanted and the rolling ``verify:`` (config/stores.py)
    stores: tuple[str, ...] = ()
    copies: Optional[int] = None  # None: no ``copies:`` named; the service's keep leaves the wanted count as it is
    verify: Optional[VerifyPolicy] = None
    drill: Optional[DrillPolicy] = None  # config/stores.py
    #: the top level's ``covered_by:``: what the archive's own backup holds, left out of the service's keeps
    covered_by: tuple[str, ...] = ()

    @property
    def parsed(self) -> Spec:
        return parse_spec(self.spec, allow_version=False)

    @property
    def is_glob(self) -> bool:
        return self.parsed.is_glob

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line else (self.file or "-")

    def sync_options(self) -> dict[str, Any]:
        """Options for ``sources.expand``: every known option's default, then this entry's."""
        defaults, _ = known_options()
        opts = {**defaults, **self.options}
        if opts.get("dandi_instance"):
            from neuromirror.identifiers import instance_api

            opts["dandi_api"] = instance_api(opts["dandi_instance"])
        return opts

    @property
    def engine(self) -> str:
        return str(self.options.get("engine") or os.environ.get("NEUROMIRROR_ENGINE") or SYNC_OPTIONS["engine"])

    def expand(self) -> Iterator[Source]:
        """The source objects this entry names now (a glob asks the archive)."""
        from neuromirror.sources import expand

        yield from expand(self.parsed, self.sync_options())

    def listed(self) -> Iterator[Listed]:
        """The sources this entry names now, with what the archive's listing says of each (the quiet hour)."""
        from neuromirror.sources import listed

        yield from listed(self.parsed, self.sync_options())

    def to_json(self) -> dict:
        return {
            "spec": self.spec,
            "schedule": self.schedule.to_json(),
            "options": self.options,
            "publish": self.publish,
            "backoff": self.backoff.to_json(),
            "enabled": self.enabled,
            "store": self.store,
            "keep": self.keep.to_json() if self.keep else None,
            "retention": self.retention.to_json() if self.retention else None,
            "stores": list(self.stores),
            "copies": self.copies,
            "verify": self.verify.to_json() if self.verify else None,
            "drill": self.drill.to_json() if self.drill else None,
            "where": self.where,
        }


@dataclass
class MirrorConfig:
    """One or more mirror definition files, merged."""

    sources: list[SourceConfig] = field(default_factory=list)
    root: Optional[Path] = None
    jobs: int = DEFAULT_JOBS
    #: ``executor: {dask: ADDRESS}``: the Dask scheduler the sources' syncs run on (docs/scale-out.md)
    dask: Optional[str] = None
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: ``retention:`` at the top level: the run history kept of every source no entry sets it for
    retention: Retention = field(default_factory=Retention)
    #: ``contact:``: whom an archive's operator may ask, in every request's User-Agent (config/network.py)
    contact: Optional[str] = None
    #: ``network:``: the ceilings per archive endpoint (requests per second, in flight)
    network: Optional[Ceilings] = None
    #: ``covered_by:``: the archive's own backup (LISTs), as the coverage page and a gap-fill read it
    covered_by: list[str] = field(default_factory=list)

    def apply_network(self) -> None:
        """This definition's ``contact:`` and ``network:`` for this process's requests from now on (a sync,
        the service): the contact also reaches the processes it starts; the ceilings every pace."""
        from neuromirror.network import identity, pacing

        identity.set_contact(self.contact)
        if self.network:
            pacing.set_ceilings(self.network)

    def retention_of(self) -> Callable[[str], Retention]:
        """A source id -> the run history kept of it (its entry's ``retention``, else the top level's)."""
        return policy_for(((s.spec, s.retention) for s in self.sources), self.retention)

    @property
    def enabled_sources(self) -> list[SourceConfig]:
        return [s for s in self.sources if s.enabled]

    def source(self, spec: str) -> Optional[SourceConfig]:
        for s in self.sources:
            if s.spec == spec:
                return s
        return None

    def resolve_root(self, cli_root: Optional[str]) -> Path:
        """The mirror root: the file's ``root`` or the one given (``--root``/NEUROMIRROR_ROOT on the command
        line, the call's ``root``); both must agree."""
        if self.root is not None:
            if cli_root and Path(cli_root).absolute() != self.root:
                where = self.files[0] if self.files else "config"
                raise UserError(
                    f"root {Path(cli_root).absolute()}: differs from {where}'s root {self.root}; drop one of them"
                ).at("root")
            return self.root
        return Path(cli_root or "neuromirror-root").absolute()

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "root": str(self.root) if self.root else None,
            "jobs": self.jobs,
            "sources": [s.to_json() for s in self.sources],
            "retention": self.retention.to_json(),
            "contact": self.contact,
            "network": self.network.to_json() if self.network else None,
            "covered_by": self.covered_by,
            "warnings": self.warnings,
        }

"""The API's verbs that check: versions and stored copies verified, what the archive did wrong (audit), the
mutable URLs taken off old datasets (repair), and mirror definitions validated (check-config: no mirror needed,
``Mirror.check_config`` is a static method).

Each returns a :class:`~neuromirror.results.Result` whose ``to_json()`` is its command's ``--json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from neuromirror.api.inputs import PathLike, jobs_of, spec_of, specs_of
from neuromirror.api.keeping import Keeping, verify_store
from neuromirror.errors import BadInput, UserError
from neuromirror.records import ProgressCallback
from neuromirror.results import Item, Result, Status
from neuromirror.sources import add_options as source_options  # verify's --archive takes sync's source options
from neuromirror.spec import Spec
from neuromirror.store.base import Store

if TYPE_CHECKING:
    from neuromirror.audit.findings import Audit
    from neuromirror.verify.report import Verified, VerifyReport
    from neuromirror.verify.stores_report import StoresCheck

__all__ = ["Audited", "Checking", "ConfigCheck", "Repaired", "source_options"]

Specs = Union[str, Spec, Sequence[Union[str, Spec]]]


class Checking(Keeping):
    """The verbs that check the mirror, its stores and its definitions."""

    def verify_versions(
        self,
        specs: Specs,
        *,
        all_versions: bool = False,
        each: Optional[Callable[[VerifyReport], None]] = None,
        **options: Any,
    ) -> Verified:
        """:meth:`verify` of every version ``specs`` name (none: the latest state of each; ``all_versions``: every
        recorded one), each SPEC looked up before any is checked, content downloaded once for all of them;
        ``each`` called with each report as it is made.  ``options``: :meth:`verify`'s (``neuromirror verify``)."""
        from neuromirror.verify.report import Verified
        from neuromirror.verify.version import versions_to_verify

        chosen = specs_of(specs)
        jobs_of(options.get("jobs", 1))
        if not chosen:
            raise BadInput("name what to verify: a spec (dandi:000027[@VERSION]) or a list of them")
        options.setdefault("content_cache", {})  # (key, URL) -> result: versions sharing content download it once
        store = options.pop("store", None)
        options["store"] = verify_store(store, kept=bool(options.get("kept")), content=bool(options.get("content")))
        out = Verified()
        for version in versions_to_verify(self.datasets, chosen, all_versions):
            out.reports.append(self.verify(version, **options))
            if each is not None:
                each(out.reports[-1])
        return out

    def verify_stores(
        self,
        specs: Specs = (),
        *,
        fraction: Optional[float] = None,
        older_than_days: Optional[float] = None,
        store: Union[PathLike, Store, None] = None,
        jobs: int = 4,
        progress: Optional[ProgressCallback] = None,
        allow_unreachable: bool = False,
        dask: Optional[str] = None,
    ) -> StoresCheck:
        """Re-read the copies the lab's stores hold of the versions ``specs`` name (none: every source kept) and
        check them against their keys (``fraction``: that share, oldest-checked first; ``older_than_days``: only
        copies not checked for that long; ``store``: only that one); a bad or missing copy is taken off the
        record and kept again from another copy or the archive, and is an ``error`` item (``verify --stores``).
        ``progress(stage, done, total)``: ``("copies stores", copies re-read, copies)`` and ``("verify stores",
        bytes re-read, bytes)``, as each copy is.  A store the branches record that is not reachable here is named
        and its copies counted as unverified: an ``error`` item (``.ok`` False) unless ``allow_unreachable``.
        ``dask``: a Dask scheduler's address: the copies read back by its workers in batches (a packed store's by
        whole packs), the verdicts recorded and repairs made here."""
        from neuromirror.keep.cluster import on_cluster
        from neuromirror.store.location import open_store
        from neuromirror.verify.stores import verify_stores

        jobs_of(jobs)
        if fraction is not None and older_than_days is not None:
            raise BadInput("give a fraction or an age in days, not both")
        if fraction is not None and not 0 < fraction <= 1:
            raise BadInput("fraction must be in (0, 1]").at("fraction")
        if older_than_days is not None and older_than_days < 0:
            raise BadInput("older_than_days must be a number of days, 0 or more").at("older_than_days", "older_than")
        self._writes("checking the stores' copies")
        only = open_store(os.fspath(store)) if isinstance(store, (str, os.PathLike)) else store
        with on_cluster(dask, jobs) as cluster:
            return verify_stores(
                self.datasets,
                specs_of(specs) if specs else [],
                fraction=fraction,
                older_than=None if older_than_days is None else older_than_days * 86400,
                only=only,
                jobs=jobs,
                progress=progress,
                cluster=cluster,
                allow_unreachable=allow_unreachable,
            )

    def audit(
        self,
        specs: Union[str, Sequence[str]] = (),
        *,
        recheck: bool = False,
        dandi_api: Optional[str] = None,
        zarr_manifests: Optional[str] = None,
        inventory: Optional[str] = None,
        inventory_date: Optional[str] = None,
    ) -> Audited:
        """What the mirror saw wrong upstream, per source (``specs``: globs; none: every source), from what its
        syncs recorded (``neuromirror audit``); ``recheck``: the archive asked again (DOIs, noncurrent objects, its
        Zarr manifests at ``zarr_manifests``; ``dandi_api`` where a source's records name none).  A finding is
        the archive's doing, not the audit's failure: an ``ok`` item each (``.ok`` True, as audit exits 0).  A
        malformed SPEC is :class:`BadInput`, one naming no mirrored source :class:`NotMirrored` (exit 2).
        ``inventory``: the archive bucket's S3 Inventory (docs/inventory.md; the newest date, or ``inventory_date``)
        the newest states' pinned S3 versions are looked for in (lost upstream, size or ETag, noncurrent only)."""
        from neuromirror.audit.findings import audit
        from neuromirror.audit.recheck import recheck as ask_again

        found = audit(self.index, self._sources_named(specs))
        if recheck:
            found = ask_again(self.index, found, dandi_api, self.datasets.manifest_root, zarr_manifests)
        if inventory:
            from neuromirror.audit.inventory import compare
            from neuromirror.inventory import open_inventory

            found = compare(self.index, found, open_inventory(inventory, inventory_date), inventory)
        elif inventory_date:
            raise BadInput("inventory_date without inventory: name the inventory (its URL) too").at("inventory_date")
        return Audited(found)

    def repair(self, specs: Specs, *, force: bool = False) -> Repaired:
        """Take the mutable URLs registered beside pinned ones off the datasets of the sources ``specs`` name
        (patterns too) and their subdatasets, each under its source's lock (``neuromirror repair``); ``force``:
        datasets already marked as repaired too.  A dataset's error is an ``error`` item."""
        from neuromirror.engine.repair import repair_tree
        from neuromirror.index.lookup import sources_matching

        chosen = [spec_of(s, allow_version=False) for s in specs_of(specs)]
        self._writes("repair")
        out = Repaired()
        for sid in sources_matching(self.index, chosen):
            ds = self._dataset(sid)
            if not (ds / ".git").exists():
                raise UserError(f"{sid}: its dataset {ds} does not exist")
            with self.datasets.lock(sid):
                out.sources.append({"source": sid, "dataset": str(ds), **repair_tree(ds, force=force).to_json()})
        return out

    @staticmethod
    def check_config(paths: Union[PathLike, Sequence[PathLike]]) -> ConfigCheck:
        """Mirror definition files validated as the service reads them, each alone and then together (a source
        defined twice): every mistake named with its file, line and key; nothing synced, no mirror needed
        (``neuromirror check-config``; ``api.Mirror.check_config(["mirrors/lab.yaml"])``)."""
        from neuromirror.config.load import load_configs
        from neuromirror.config.reader import ConfigError

        files = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
        out = ConfigCheck([_check_file(p) for p in files])
        if out.files_ok and len(files) > 1:  # the files together, as `serve` would load them
            try:
                load_configs(files)
            except ConfigError as exc:
                out.cross = [str(i) for i in exc.issues]
        return out


@dataclass
class Audited(Result):
    """An audit (``Mirror.audit``): the findings (``.found``: :class:`neuromirror.audit.findings.Audit`) per
    source and kind; ``to_json()`` is ``audit --json`` (its schema: docs/service.md, *Audit*)."""

    found: Audit

    def items(self) -> list[Item]:
        return [Item(Status.OK, f.source, f"{f.kind}: {f.path or ''} {f.detail}".strip()) for f in self.found.findings]

    def to_json(self) -> dict[str, Any]:
        return dict(self.found.to_json())

    def __repr__(self) -> str:
        return f"<Audited {len(self.found.sources)} source(s), {len(self.found.findings)} finding(s)>"

    def lines(self) -> list[str]:
        from neuromirror.audit.report import as_text

        return as_text(self.found).split("\n")


@dataclass
class Repaired(Result):
    """A repair (``Mirror.repair``): per source its dataset, the mutable URLs removed, the keys and datasets they
    were on, and errors (an ``error`` item each); ``to_json()`` is ``repair --json``."""

    sources: list[dict[str, Any]] = field(default_factory=list)

    def items(self) -> list[Item]:
        out = []
        for r in self.sources:
            out += [Item(Status.ERROR, r["source"], e) for e in r["errors"]]
            out += [] if r["errors"] else [Item(Status.OK if r["urls_removed"] else Status.NOTNEEDED, r["source"])]
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return self.sources

    def __repr__(self) -> str:
        return (
            f"<Repaired {len(self.sources)} source(s), {sum(r['urls_removed'] for r in self.sources)} URL(s) removed>"
        )

    def lines(self) -> list[str]:
        out = []
        for r in self.sources:
            out.append(
                f"{r['source']}: {r['urls_removed']} mutable URL(s) removed from {r['keys']} key(s) "
                f"in {r['datasets']} dataset(s)"
            )
            out += [f"  error: {e}" for e in r["errors"]]
        return out


@dataclass
class ConfigCheck(Result):
    """Mirror definitions checked (``Mirror.check_config``): each file's verdict (its errors, or its warnings and
    what it defines), then the files' mistakes together; an ``error`` item per mistake.  ``to_json()`` is
    ``check-config --json``; ``lines()`` what it prints on stdout, ``problems()`` what on stderr."""

    files: list[dict[str, Any]]
    cross: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<ConfigCheck {', '.join(r['file'] for r in self.files)} {'ok' if self.ok else 'INVALID'}>"

    @property
    def files_ok(self) -> bool:
        return all(r["ok"] for r in self.files)

    def items(self) -> list[Item]:
        out = [Item(Status.ERROR, r["file"], e) for r in self.files for e in r["errors"]]
        out += [Item(Status.OK, r["file"], "valid") for r in self.files if r["ok"]]
        return out + [Item(Status.ERROR, "together", e) for e in self.cross]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": [{k: v for k, v in r.items() if k != "loaded"} for r in self.files],
            "errors": self.cross,
        }

    def problems(self) -> list[str]:
        """The errors and warnings (stderr), then how many definitions are invalid."""
        out = [line for r in self.files for line in [*r["errors"], *(f"warning: {w}" for w in r["warnings"])]]
        out += self.cross
        if not self.ok:
            bad = sum(not r["ok"] for r in self.files) or 1
            out.append(f"neuromirror: {bad} invalid mirror definition{'s' if bad != 1 else ''}")
        return out

    def lines(self) -> list[str]:
        return [line for r in self.files if r["ok"] for line in _described(r)]


def _check_file(path: str) -> dict[str, Any]:
    """One file's verdict: its errors, or its warnings and what it defines."""
    from neuromirror.config.load import load_config
    from neuromirror.config.reader import ConfigError

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return {"file": path, "ok": False, "errors": [str(i) for i in exc.issues], "warnings": []}
    warnings = cfg.warnings + _contact_warning(path, cfg.contact)
    return {"file": path, "ok": True, "errors": [], "warnings": warnings, "config": cfg.to_json(), "loaded": cfg}


def _contact_warning(path: str, contact: object) -> list[str]:
    """One line when the service's requests would name no one an archive's operator may ask."""
    from neuromirror.network.identity import contact as env_contact

    if contact or env_contact():
        return []
    return [
        f"{path}: no contact: (nor NEUROMIRROR_CONTACT): archive requests name neuromirror only, not whom "
        "an archive's operator may ask; add e.g. contact: you@lab.example.org"
    ]


def _described(r: dict[str, Any]) -> list[str]:
    """What a valid file defines: its sources, their schedules, where each is published and kept."""
    c = r["config"]
    n = len(c["sources"])
    out = [
        f"{r['file']}: ok, {n} source{'s' if n != 1 else ''}"
        + (f", root {c['root']}" if c["root"] else "")
        + f", {c['jobs']} job(s)"
    ]
    if c.get("network"):
        out.append(f"  network: {_ceiling_line(c['network'])}")
    for s in r["loaded"].sources:
        extra = "" if s.enabled else "  (disabled)"
        pub = f"  publish to {s.publish['to']}" if s.publish else ""
        kept = f"  keep {_keep_line(s.keep)} in {_stores_line(s)}" if s.keep else ""
        out.append(f"  {s.spec}  {s.schedule.describe()}{pub}{kept}{extra}")
    return out


def _ceiling_line(network: dict[str, Any]) -> str:
    """``at most 20/s, 2 in flight`` (and each endpoint's own)."""

    def one(d: dict[str, Any]) -> str:
        parts = [f"{d['max_rate']:g}/s"] if d.get("max_rate") else []
        return ", ".join(parts + ([f"{d['max_in_flight']} in flight"] if d.get("max_in_flight") else [])) or "no bound"

    own = "".join(f"; {name}: {one(d)}" for name, d in network.get("endpoints", {}).items())
    return f"at most {one(network)} per archive endpoint{own}"


def _stores_line(s: Any) -> str:
    """``/srv/keep, s3://lab-keep/dandi/ (copies: 2)``: every store named, and the wanted count when given."""
    stores = ", ".join(s.stores or ([s.store] if s.store else [])) or "no store"
    return stores + (f" (copies: {s.copies})" if s.copies is not None else "")


def _keep_line(policy: Any) -> str:
    """``published``, or ``all (include sub-01/*, max 10.0 MB, budget 1.0 TB)``."""
    from neuromirror.util.sizes import human_bytes

    parts = [f"include {' '.join(policy.include)}"] if policy.include else []
    parts += [f"exclude {' '.join(policy.exclude)}"] if policy.exclude else []
    if policy.max_file_size:
        parts.append(f"max {human_bytes(policy.max_file_size)} a file")
    if policy.budget:
        parts.append(f"budget {human_bytes(policy.budget)}")
    return str(policy.versions) + (f" ({', '.join(parts)})" if parts else "")

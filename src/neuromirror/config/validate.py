"""A whole definition file checked: the top level, ``defaults``, and each entry of ``sources:``.

Defaults are merged into every entry here (schedule, options, publish, backoff), and a
SPEC listed twice in one file is refused; across files that is :mod:`neuromirror.config.load`'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from neuromirror.config.model import DEFAULT_JOBS, KeepPolicy, MirrorConfig, SourceConfig
from neuromirror.config.network import read_contact, read_network
from neuromirror.config.options import known_options, option_dest, read_options
from neuromirror.config.reader import Node, Reader, kind_of
from neuromirror.config.retention import read_retention
from neuromirror.config.rules import Rule, flag, read_fields, read_value, text, valid
from neuromirror.config.schedule import DEFAULT_TIMEZONE, Backoff, Schedule
from neuromirror.config.sections import (
    read_backoff,
    read_jobs,
    read_keep,
    read_publish,
    read_schedule,
    read_source_spec,
)
from neuromirror.config.stores import StoreSettings, read_store_settings
from neuromirror.index.retention import Retention

#: keys a source entry may have besides sync options, which a source and ``defaults`` also take directly
STORE_KEYS = ("store", "stores", "copies", "verify", "drill")  # config/stores.py
SOURCE_KEYS = (
    "spec", "archive", "all", "schedule", "options", "publish", "backoff", "enabled", "keep", "retention", *STORE_KEYS,
)  # fmt: skip
DEFAULT_KEYS = ("schedule", "options", "publish", "backoff", "jobs", "keep", *STORE_KEYS)
TOP_KEYS = (
    "root",
    "jobs",
    "executor",
    "contact",
    "network",
    "defaults",
    "sources",
    "retention",
    "covered_by",
    *STORE_KEYS,
)
EXECUTOR_KEYS = ("dask",)


@dataclass
class Defaults:
    """What ``defaults:`` (and the top level, for stores) gives every source entry."""

    schedule: Optional[Schedule] = None
    schedule_given: bool = False  # given but invalid: reported once, not again for every source
    options: dict[str, Any] = field(default_factory=dict)
    publish: Optional[dict] = None
    backoff: Backoff = field(default_factory=Backoff)
    stores: StoreSettings = StoreSettings()
    keep: Optional[KeepPolicy] = None
    retention: Optional[Retention] = None  # this file's top-level ``retention``: over another file's


def validate(r: Reader, top: Optional[Node], base_dir: Path) -> MirrorConfig:
    """The file's top level (:data:`TOP_RULES`, in order), its ``defaults``, then each source entry."""
    cfg = MirrorConfig(files=[r.file])
    if top is None:
        r.error(1, "", "empty file: expected a mapping with 'sources:'")
        return cfg
    m = r.mapping(top, "", TOP_KEYS)
    if m is None:
        return cfg
    for key, read in TOP_RULES:
        if key in m:
            read(r, m[key], cfg, base_dir)
    d = Defaults(stores=read_store_settings(r, m, "", StoreSettings()))
    d.retention = cfg.retention if "retention" in m else None
    if "defaults" in m:
        _read_defaults(r, m, d, cfg)
    _read_sources(r, top, m, d, cfg)
    return cfg


def _root(r: Reader, node: Node, cfg: MirrorConfig, base_dir: Path) -> None:
    root = read_value(r, node, "root", text("a directory path"))
    if valid(root):
        p = Path(os.path.expandvars(os.path.expanduser(root)))
        cfg.root = (p if p.is_absolute() else base_dir / p).absolute()


def _jobs(r: Reader, node: Node, cfg: MirrorConfig, base_dir: Path) -> None:
    cfg.jobs = read_jobs(r, node, "jobs") or DEFAULT_JOBS


def _executor(r: Reader, node: Node, cfg: MirrorConfig, base_dir: Path) -> None:
    em = r.mapping(node, "executor", EXECUTOR_KEYS)
    if em is not None:
        values, _ = read_fields(r, em, "executor", EXECUTOR_RULES)
        cfg.dask = values.get("dask", cfg.dask)


def _contact(r: Reader, node: Node, cfg: MirrorConfig, base_dir: Path) -> None:
    cfg.contact = read_contact(r, node)


def _covered_by(r: Reader, node: Node, cfg: MirrorConfig, base_dir: Path) -> None:
    """``covered_by:`` a LIST or a list of them (the archive's own backup: keep --covered-by's, the coverage page's);
    a path relative to the definition's file is taken from there."""
    given = node.value if isinstance(node.value, list) else [node.value]
    for one in given:
        got = (
            text("a LIST: a key file, a copy's directory, a backup-status checkout or an S3 Inventory")(
                getattr(one, "value", one)
            )
            if isinstance(getattr(one, "value", one), str)
            else None
        )
        if got is None:
            r.error(node.line, "covered_by", "expected a path or URL, or a list of them")
            continue
        p = Path(os.path.expandvars(os.path.expanduser(got)))
        cfg.covered_by.append(got if "://" in got or p.is_absolute() else str(base_dir / p))


def _network(r: Reader, node: Node, cfg: MirrorConfig, base_dir: Path) -> None:
    cfg.network = read_network(r, node)


def _retention(r: Reader, node: Node, cfg: MirrorConfig, base_dir: Path) -> None:
    cfg.retention = read_retention(r, node, "retention", cfg.retention) or cfg.retention


#: the top level's sections other than ``defaults`` and ``sources``, read in this order (stores follow)
TOP_RULES: tuple[tuple[str, Callable[[Reader, Node, MirrorConfig, Path], None]], ...] = (
    ("root", _root),
    ("jobs", _jobs),
    ("executor", _executor),
    ("contact", _contact),
    ("network", _network),
    ("retention", _retention),
    ("covered_by", _covered_by),
)
EXECUTOR_RULES = (Rule("dask", text("a scheduler address (tcp://HOST:8786)")),)
ENABLED = Rule("enabled", flag)


def _read_defaults(r: Reader, m: dict[str, Node], d: Defaults, cfg: MirrorConfig) -> None:
    """``defaults``: schedule, options (also directly as keys), publish, backoff, jobs, stores, keep."""
    dn = m["defaults"]
    dm = r.mapping(dn, "defaults", DEFAULT_KEYS, extra_ok=True)
    if dm is None:
        return
    _defaults_of_runs(r, dn, dm, d)
    _defaults_of_content(r, m, dm, d, cfg)


def _defaults_of_runs(r: Reader, dn: Node, dm: dict[str, Node], d: Defaults) -> None:
    """How a source runs: its schedule, options (also directly as keys), publish target and backoff."""
    if "schedule" in dm:
        d.schedule_given = True
        d.schedule = read_schedule(r, dm["schedule"], "defaults.schedule", DEFAULT_TIMEZONE)
    inline = {k: v for k, v in dm.items() if k not in DEFAULT_KEYS}
    if inline:
        d.options.update(read_options(r, dn, "defaults", inline))
    if "options" in dm:
        d.options.update(read_options(r, dm["options"], "defaults.options"))
    if "publish" in dm and dm["publish"].value is not None:
        d.publish = read_publish(r, dm["publish"], "defaults.publish")
    if "backoff" in dm:
        d.backoff = read_backoff(r, dm["backoff"], "defaults.backoff", Backoff()) or Backoff()


def _defaults_of_content(r: Reader, m: dict[str, Node], dm: dict[str, Node], d: Defaults, cfg: MirrorConfig) -> None:
    """``jobs`` and the stores (each refused when the top level gives it too), and ``keep``."""
    for key in ("jobs", *STORE_KEYS):
        if key in dm and key in m:
            r.error(dm[key].line, f"defaults.{key}", f"'{key}' is given twice (top level and defaults)")
        elif key == "jobs" and key in dm:
            cfg.jobs = read_jobs(r, dm["jobs"], "defaults.jobs") or DEFAULT_JOBS
    d.stores = read_store_settings(r, {k: v for k, v in dm.items() if k not in m}, "defaults", d.stores)
    if "keep" in dm:
        d.keep = read_keep(r, dm["keep"], "defaults.keep")[1]


def _read_sources(r: Reader, top: Node, m: dict[str, Node], d: Defaults, cfg: MirrorConfig) -> None:
    """``sources:``: a list of entries (a string is a SPEC), each over the defaults; a SPEC listed twice is refused."""
    if "sources" not in m:
        r.error(top.line, "", "missing 'sources:' (a list of sources to mirror)")
        return
    sn = m["sources"]
    if not isinstance(sn.value, list):
        r.error(sn.line, "sources", f"expected a list of sources ('- spec: ...'), got {kind_of(sn.value)}")
        return
    if not sn.value:
        r.error(sn.line, "sources", "the list is empty")
    seen: dict[str, int] = {}
    for i, node in enumerate(sn.value):
        if isinstance(node.value, str):  # shorthand: - "dandi:000027"
            node = Node({"spec": node}, node.line, {"spec": node.line})
        source = _read_source(r, node, f"sources[{i}]", d, cfg.retention, seen)
        if source is not None:
            cfg.sources.append(source)


def _read_source(
    r: Reader, node: Node, path: str, d: Defaults, base_retention: Retention, seen: dict[str, int]
) -> Optional[SourceConfig]:
    """One entry of ``sources:`` over the defaults; None when it is invalid (its errors recorded)."""
    sm = r.mapping(node, path, SOURCE_KEYS, extra_ok=True)
    if sm is None:
        return None
    spec = read_source_spec(r, node, sm, path)
    schedule = _source_schedule(r, node, sm, path, d)
    options = dict(d.options)
    options.update(_inline_options(r, node, sm, path))
    if "options" in sm:
        options.update(read_options(r, sm["options"], f"{path}.options"))
    publish = d.publish
    if "publish" in sm:
        publish = read_publish(r, sm["publish"], f"{path}.publish") if sm["publish"].value is not None else None
    backoff = d.backoff
    if "backoff" in sm:
        backoff = read_backoff(r, sm["backoff"], f"{path}.backoff", d.backoff) or d.backoff
    settings = read_store_settings(r, sm, path, d.stores)
    keep = _source_keep(r, node, sm, path, d, settings)
    retention = d.retention
    if "retention" in sm:
        retention = read_retention(r, sm["retention"], f"{path}.retention", base_retention)
    values, _ = read_fields(r, sm, path, (ENABLED,))
    if spec is not None:
        if spec in seen:
            r.error(node.line, path, f"{spec} is listed twice (first on line {seen[spec]})")
            return None
        seen[spec] = node.line
    if spec is None or schedule is None:
        return None
    return SourceConfig(
        spec=spec,
        schedule=schedule,
        options=options,
        publish=publish,
        backoff=backoff,
        enabled=values.get("enabled", True),
        file=r.file,
        line=node.line,
        store=settings.stores[0] if settings.stores else None,
        keep=keep,
        retention=retention,
        stores=settings.stores,
        copies=settings.copies,
        verify=settings.verify,
        drill=settings.drill,
    )


def _inline_options(r: Reader, node: Node, sm: dict[str, Node], path: str) -> dict[str, Any]:
    """Sync options given directly on a source (``references: nwb``), as ``defaults`` takes them; any other
    key is unknown, said with the source's keys as the choices."""
    known, _ = known_options()
    inline = {}
    for key in sm:
        if key in SOURCE_KEYS:
            continue
        if option_dest(key) in known:
            inline[key] = sm[key]
        else:
            r.unknown_key(node, path, key, SOURCE_KEYS)
    return read_options(r, node, path, inline) if inline else {}


def _source_schedule(r: Reader, node: Node, sm: dict[str, Node], path: str, d: Defaults) -> Optional[Schedule]:
    """The entry's schedule (in the defaults' timezone unless it names one), else the defaults'."""
    if "schedule" in sm:
        tz = d.schedule.timezone if d.schedule else DEFAULT_TIMEZONE
        return read_schedule(r, sm["schedule"], f"{path}.schedule", tz)
    if d.schedule is None and not d.schedule_given:
        r.error(
            node.line,
            path,
            "no schedule: set 'schedule' here or in 'defaults' (e.g. {interval: 6h} or {cron: \"0 3 * * *\"})",
        )
    return d.schedule


def _source_keep(
    r: Reader, node: Node, sm: dict[str, Node], path: str, d: Defaults, settings: StoreSettings
) -> Optional[KeepPolicy]:
    """The entry's keep policy, else the defaults'; keeping needs a store named somewhere."""
    keep = d.keep
    if "keep" in sm:
        keep = read_keep(r, sm["keep"], f"{path}.keep")[1]
    if keep is not None and not settings.stores and not settings.given:
        where = sm["keep"].line if "keep" in sm else node.line
        r.error(where, f"{path}.keep", "keeping needs a store: set 'store:' here, in 'defaults' or at the top level")
    return keep

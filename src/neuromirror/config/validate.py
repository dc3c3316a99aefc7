"""A whole definition file checked: the top level, ``defaults``, and each entry of ``sources:``.

Defaults are merged into every entry here (schedule, options, publish, backoff), and a
SPEC listed twice in one file is refused; across files that is :mod:`neuromirror.config.load`'s job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from neuromirror.config.model import DEFAULT_JOBS, KeepPolicy, MirrorConfig, SourceConfig
from neuromirror.config.options import read_options
from neuromirror.config.reader import Node, Reader, kind_of
from neuromirror.config.retention import read_retention
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

#: keys a source entry may have (options may also be given directly in ``defaults``)
STORE_KEYS = ("store", "stores", "copies", "verify", "drill")  # config/stores.py
SOURCE_KEYS = (
    "spec", "archive", "all", "schedule", "options", "publish", "backoff", "enabled", "keep", "retention", *STORE_KEYS,
)  # fmt: skip
DEFAULT_KEYS = ("schedule", "options", "publish", "backoff", "jobs", "keep", *STORE_KEYS)
TOP_KEYS = ("root", "jobs", "executor", "defaults", "sources", "retention", *STORE_KEYS)
EXECUTOR_KEYS = ("dask",)


def validate(r: Reader, top: Optional[Node], base_dir: Path) -> MirrorConfig:
    cfg = MirrorConfig(files=[r.file])
    if top is None:
        r.error(1, "", "empty file: expected a mapping with 'sources:'")
        return cfg
    m = r.mapping(top, "", TOP_KEYS)
    if m is None:
        return cfg
    if "root" in m:
        root = m["root"].value
        if not isinstance(root, str) or not root.strip():
            r.error(m["root"].line, "root", f"expected a directory path, got {kind_of(root)}")
        else:
            p = Path(os.path.expandvars(os.path.expanduser(root.strip())))
            cfg.root = (p if p.is_absolute() else base_dir / p).absolute()
    if "jobs" in m:
        cfg.jobs = read_jobs(r, m["jobs"], "jobs") or DEFAULT_JOBS
    if "executor" in m:
        em = r.mapping(m["executor"], "executor", EXECUTOR_KEYS)
        if em is not None and "dask" in em:
            address = em["dask"].value
            if not isinstance(address, str) or not address.strip():
                r.error(
                    em["dask"].line,
                    "executor.dask",
                    f"expected a scheduler address (tcp://HOST:8786), got {kind_of(address)}",
                )
            else:
                cfg.dask = address.strip()

    if "retention" in m:
        cfg.retention = read_retention(r, m["retention"], "retention", cfg.retention) or cfg.retention
    d_stores = read_store_settings(r, m, "", StoreSettings())
    d_keep: Optional[KeepPolicy] = None

    # defaults: schedule, options (also directly as keys), publish, backoff, jobs, store, keep
    d_schedule: Optional[Schedule] = None
    d_options: dict[str, Any] = {}
    d_publish: Optional[dict] = None
    d_backoff = Backoff()
    d_schedule_given = False  # given but invalid: reported once, not again for every source
    if "defaults" in m:
        dn = m["defaults"]
        dm = r.mapping(dn, "defaults", DEFAULT_KEYS, extra_ok=True)
        if dm is not None:
            if "schedule" in dm:
                d_schedule_given = True
                d_schedule = read_schedule(r, dm["schedule"], "defaults.schedule", DEFAULT_TIMEZONE)
            inline = {k: v for k, v in dm.items() if k not in DEFAULT_KEYS}
            if inline:
                d_options.update(read_options(r, dn, "defaults", inline))
            if "options" in dm:
                d_options.update(read_options(r, dm["options"], "defaults.options"))
            if "publish" in dm and dm["publish"].value is not None:
                d_publish = read_publish(r, dm["publish"], "defaults.publish")
            if "backoff" in dm:
                d_backoff = read_backoff(r, dm["backoff"], "defaults.backoff", Backoff()) or Backoff()
            if "jobs" in dm:
                if "jobs" in m:
                    r.error(dm["jobs"].line, "defaults.jobs", "'jobs' is given twice (top level and defaults)")
                else:
                    cfg.jobs = read_jobs(r, dm["jobs"], "defaults.jobs") or DEFAULT_JOBS
            for key in STORE_KEYS:
                if key in dm and key in m:
                    r.error(dm[key].line, f"defaults.{key}", f"'{key}' is given twice (top level and defaults)")
            d_stores = read_store_settings(r, {k: v for k, v in dm.items() if k not in m}, "defaults", d_stores)
            if "keep" in dm:
                d_keep = read_keep(r, dm["keep"], "defaults.keep")[1]

    if "sources" not in m:
        r.error(top.line, "", "missing 'sources:' (a list of sources to mirror)")
        return cfg
    sn = m["sources"]
    if not isinstance(sn.value, list):
        r.error(sn.line, "sources", f"expected a list of sources ('- spec: ...'), got {kind_of(sn.value)}")
        return cfg
    if not sn.value:
        r.error(sn.line, "sources", "the list is empty")
    seen: dict[str, int] = {}
    for i, node in enumerate(sn.value):
        path = f"sources[{i}]"
        if isinstance(node.value, str):  # shorthand: - "dandi:000027"
            node = Node({"spec": node}, node.line, {"spec": node.line})
        sm = r.mapping(node, path, SOURCE_KEYS)
        if sm is None:
            continue
        spec = read_source_spec(r, node, sm, path)
        schedule = d_schedule
        if "schedule" in sm:
            tz = d_schedule.timezone if d_schedule else DEFAULT_TIMEZONE
            schedule = read_schedule(r, sm["schedule"], f"{path}.schedule", tz)
        elif d_schedule is None and not d_schedule_given:
            r.error(
                node.line,
                path,
                "no schedule: set 'schedule' here or in 'defaults' (e.g. {interval: 6h} or {cron: \"0 3 * * *\"})",
            )
        options = dict(d_options)
        if "options" in sm:
            options.update(read_options(r, sm["options"], f"{path}.options"))
        publish = d_publish
        if "publish" in sm:
            publish = read_publish(r, sm["publish"], f"{path}.publish") if sm["publish"].value is not None else None
        backoff = d_backoff
        if "backoff" in sm:
            backoff = read_backoff(r, sm["backoff"], f"{path}.backoff", d_backoff) or d_backoff
        settings = read_store_settings(r, sm, path, d_stores)
        keep = d_keep
        if "keep" in sm:
            keep = read_keep(r, sm["keep"], f"{path}.keep")[1]
        if keep is not None and not settings.stores and not settings.given:
            where = sm["keep"].line if "keep" in sm else node.line
            r.error(
                where, f"{path}.keep", "keeping needs a store: set 'store:' here, in 'defaults' or at the top level"
            )
        retention = cfg.retention if "retention" in m else None  # this file's, over another file's top level
        if "retention" in sm:
            retention = read_retention(r, sm["retention"], f"{path}.retention", cfg.retention)
        enabled = True
        if "enabled" in sm:
            if not isinstance(sm["enabled"].value, bool):
                r.error(
                    sm["enabled"].line, f"{path}.enabled", f"expected true or false, got {kind_of(sm['enabled'].value)}"
                )
            else:
                enabled = sm["enabled"].value
        if spec is not None:
            if spec in seen:
                r.error(node.line, path, f"{spec} is listed twice (first on line {seen[spec]})")
                continue
            seen[spec] = node.line
        if spec is None or schedule is None:
            continue
        cfg.sources.append(
            SourceConfig(
                spec=spec,
                schedule=schedule,
                options=options,
                publish=publish,
                backoff=backoff,
                enabled=enabled,
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
        )
    return cfg

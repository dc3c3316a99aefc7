"""Loading mirror definitions: one file, several merged, and what ``sync --config`` syncs.

A file looks like this (``docs/service.md`` has the full reference)::

    root: /srv/neuromirror              # optional; else --root / NEUROMIRROR_ROOT
    jobs: 2                             # syncs at once in the service
    defaults:
      schedule: {interval: 6h}
      options: {dandi_api: "https://api.dandiarchive.org/api"}
      backoff: {initial: 5m, max: 1d}
    sources:
      - spec: "dandi:000027"
        schedule: {cron: "0 3 * * *"}
      - spec: "dandi:*"                 # or: {archive: dandi, all: true}
        publish: {to: "ssh://mirror.example.org/srv/dandi"}

Everything is checked on load and every problem is reported with the file, the
line and the field (``mirrors/x.yaml:7: sources[1].schedule: unknown key
'intrval'``), all of them at once.  The typed result is
:class:`~neuromirror.config.model.MirrorConfig`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from neuromirror.config.model import DEFAULT_JOBS, MirrorConfig
from neuromirror.config.reader import ConfigError, ConfigIssue, Reader
from neuromirror.config.validate import validate
from neuromirror.index.retention import Retention
from neuromirror.spec import Spec


def _display(path: Path) -> str:
    """The path as the user will recognise it: relative to the working directory when below it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_config(path: str | os.PathLike) -> MirrorConfig:
    """Read and validate one mirror definition; raise :class:`ConfigError` listing every problem."""
    p = Path(path)
    r = Reader(_display(p), p.absolute().parent)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(r.file, None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(r.file, None, "", f"cannot read: {exc}")]) from None
    top = r.parse(text)
    cfg = MirrorConfig(files=[r.file])
    if not r.issues:
        cfg = validate(r, top, p.absolute().parent)
    if r.issues:
        raise ConfigError(sorted(r.issues, key=lambda i: i.line or 0))
    cfg.warnings = r.warnings
    return cfg


def load_configs(paths: Sequence[str | os.PathLike]) -> MirrorConfig:
    """Several files as one: sources concatenated (each listed once), one root, the largest ``jobs``."""
    issues: list[ConfigIssue] = []
    merged = MirrorConfig(jobs=0)
    for path in paths:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            issues += exc.issues
            continue
        _merge(merged, cfg, issues)
    if issues:
        raise ConfigError(issues)
    merged.jobs = merged.jobs or DEFAULT_JOBS
    for s in merged.sources:  # the service's keeps leave out what the archive's own backup holds
        s.covered_by = tuple(merged.covered_by)
    return merged


#: settings of which a mirror has one: (attribute, field named in an issue, whether the issue names both values);
#: files that set one agree, and the first file that sets it gives it
_ONE_PER_MIRROR = (
    ("root", "root", True),
    ("dask", "executor.dask", True),
    ("contact", "contact", False),
    ("network", "network", False),
)


def _merge(merged: MirrorConfig, cfg: MirrorConfig, issues: list[ConfigIssue]) -> None:
    """Add one file's definition to ``merged``, noting in ``issues`` where it disagrees with the files before."""
    merged.files += cfg.files
    merged.warnings += cfg.warnings
    merged.jobs = max(merged.jobs, cfg.jobs)
    merged.covered_by += [c for c in cfg.covered_by if c not in merged.covered_by]
    if merged.retention == Retention():  # the first file that sets one: for sources no entry names
        merged.retention = cfg.retention
    for attr, field, both in _ONE_PER_MIRROR:
        mine, theirs = getattr(cfg, attr), getattr(merged, attr)
        if mine is None:
            continue
        if theirs is None:
            setattr(merged, attr, mine)
        elif theirs != mine:
            said = f"{mine} differs from {theirs}" if both else f"differs from {attr}:"
            issues.append(ConfigIssue(cfg.files[0], None, field, f"{said} in {merged.files[0]}"))
    for s in cfg.sources:
        other = merged.source(s.spec)
        if other is not None:
            issues.append(ConfigIssue(s.file or "-", s.line, "", f"{s.spec} is also defined at {other.where}"))
            continue
        merged.sources.append(s)


def sync_targets(
    config: MirrorConfig, specs: Sequence[Spec], base: dict[str, Any]
) -> list[tuple[Spec, dict[str, Any]]]:
    """What ``neuromirror sync --config FILE [SPEC...]`` syncs, each SPEC with its options.

    Without SPECs: every enabled entry of the files.  With SPECs: those, each with
    the options of the entry naming it (the same spec, else the first glob entry
    matching it), else the command line's.  File options win over ``base``.
    """
    import fnmatch

    if not specs:
        return [(e.parsed, {**base, **e.options}) for e in config.enabled_sources]
    out = []
    for spec in specs:
        entry = config.source(spec.source) or next(
            (e for e in config.sources if e.is_glob and fnmatch.fnmatchcase(spec.source, e.spec)), None
        )
        out.append((spec, {**base, **entry.options} if entry else dict(base)))
    return out

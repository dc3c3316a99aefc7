"""Mirror definitions: ``mirrors/*.yaml`` files naming sources, options, schedules and publish targets.

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
'intrval'``), all of them at once.  The typed result (:class:`MirrorConfig`,
:class:`SourceConfig`, :class:`Schedule`, :class:`Backoff`) is what the service,
``neuromirror sync --config`` and the publish step read.

Cheap to import: yaml and the standard library only; apscheduler and the source
modules are imported while validating.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from neuromirror.errors import UserError
from neuromirror.spec import Spec, SpecError, parse_spec

__all__ = [
    "Backoff",
    "ConfigError",
    "ConfigIssue",
    "MirrorConfig",
    "Schedule",
    "SourceConfig",
    "load_config",
    "load_configs",
    "parse_duration",
    "format_duration",
    "known_options",
    "cron_trigger",
    "sync_targets",
]

DEFAULT_JOBS = 2
DEFAULT_TIMEZONE = "UTC"
#: keys a source entry may have (options may also be given directly in ``defaults``)
SOURCE_KEYS = ("spec", "archive", "all", "schedule", "options", "publish", "backoff", "enabled")
DEFAULT_KEYS = ("schedule", "options", "publish", "backoff", "jobs")
TOP_KEYS = ("root", "jobs", "executor", "defaults", "sources")
EXECUTOR_KEYS = ("dask",)
SCHEDULE_KEYS = ("cron", "interval", "jitter", "timezone")
BACKOFF_KEYS = ("initial", "factor", "max")
#: options that are not source options but still belong to a sync
#: (dandi_instance: a DANDI instance by name, as ``sync -i``; its API wins over dandi_api)
SYNC_OPTIONS: dict[str, Any] = {"engine": "fast-import", "dandi_instance": None}
ENGINES = ("fast-import", "batch")
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# --------------------------------------------------------------------------
# errors


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: Optional[int]  # 1-based
    field: str  # "sources[1].schedule", "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(UserError):
    """A mirror definition is invalid; ``issues`` lists every problem found, ``str()`` one per line."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


# --------------------------------------------------------------------------
# the typed result


@dataclass(frozen=True)
class Schedule:
    """When a source is synced: a cron expression or a fixed interval (seconds)."""

    cron: Optional[str] = None
    interval: Optional[float] = None
    jitter: Optional[float] = None
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule has exactly one of cron and interval")

    def trigger(self, start: Optional[datetime] = None) -> Any:
        """The APScheduler trigger (interval triggers count from ``start``, default now)."""
        from apscheduler.triggers.interval import IntervalTrigger

        if self.cron is not None:
            return cron_trigger(self.cron, self.timezone, self.jitter)
        return IntervalTrigger(seconds=self.interval, start_date=start, timezone=self.timezone, jitter=self.jitter)

    def next_after(self, when: datetime) -> datetime:
        """The first fire time strictly after ``when`` (no jitter), for catching up after a restart."""
        if self.interval is not None:
            return when + timedelta(seconds=self.interval)
        trig = cron_trigger(self.cron or "", self.timezone, None)
        nxt = trig.get_next_fire_time(None, when + timedelta(seconds=1))
        return nxt if nxt is not None else datetime.max.replace(tzinfo=timezone.utc)

    def describe(self) -> str:
        if self.interval is not None:
            text = f"every {format_duration(self.interval)}"
        else:
            text = f"cron '{self.cron}'" + (f" ({self.timezone})" if self.timezone else "")
        if self.jitter:
            text += f" +/- {format_duration(self.jitter)}"
        return text

    def to_json(self) -> dict:
        d: dict[str, Any] = {"cron": self.cron} if self.cron is not None else {"interval": self.interval}
        if self.jitter:
            d["jitter"] = self.jitter
        d["timezone"] = self.timezone
        return d


@dataclass(frozen=True)
class Backoff:
    """How a failing source slows down: after k failures in a row, wait ``min(initial * factor**(k-1), max)``.

    Runs the schedule brings before that are skipped; the first success resets it.
    The delay only ever makes a source rarer than its schedule, never more frequent.
    """

    initial: float = 60.0
    factor: float = 2.0
    max: float = 86400.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        try:
            d = self.initial * self.factor ** (failures - 1)
        except OverflowError:
            d = math.inf
        return float(min(d, self.max))

    def to_json(self) -> dict:
        return {"initial": self.initial, "factor": self.factor, "max": self.max}


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

    def expand(self) -> Iterator[Any]:
        """The source objects this entry names now (a glob asks the archive)."""
        from neuromirror.sources import expand

        yield from expand(self.parsed, self.sync_options())

    def to_json(self) -> dict:
        return {
            "spec": self.spec,
            "schedule": self.schedule.to_json(),
            "options": self.options,
            "publish": self.publish,
            "backoff": self.backoff.to_json(),
            "enabled": self.enabled,
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

    @property
    def enabled_sources(self) -> list[SourceConfig]:
        return [s for s in self.sources if s.enabled]

    def source(self, spec: str) -> Optional[SourceConfig]:
        for s in self.sources:
            if s.spec == spec:
                return s
        return None

    def resolve_root(self, cli_root: Optional[str]) -> Path:
        """The mirror root: the file's ``root`` or ``--root``/NEUROMIRROR_ROOT; both must agree."""
        if self.root is not None:
            if cli_root and Path(cli_root).absolute() != self.root:
                raise UserError(
                    f"{self.files[0] if self.files else 'config'}: root {self.root} differs from "
                    f"--root/NEUROMIRROR_ROOT {Path(cli_root).absolute()}; drop one of them"
                )
            return self.root
        return Path(cli_root or "neuromirror-root").absolute()

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "root": str(self.root) if self.root else None,
            "jobs": self.jobs,
            "sources": [s.to_json() for s in self.sources],
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------
# durations, cron


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)", re.I)
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90"``, ``"30m"``, ``"1h30m"``, ``"2d"``, ``"1w"``, ``"500ms"``; ValueError otherwise."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a duration like 30m, 6h, 1d or a number of seconds, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2).lower()]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"{value!r} is not a duration: use e.g. 90s, 30m, 6h, 1h30m, 1d, 1w or a number of seconds"
                ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds != int(seconds) or seconds < 1:
        return f"{seconds:g}s"
    s = int(seconds)
    out = ""
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= n:
            out += f"{s // n}{unit}"
            s %= n
    return out or "0s"


_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _cron_dow(text: str) -> str:
    """Standard cron day-of-week (0 or 7 = Sunday, names allowed) as APScheduler's explicit day names.

    APScheduler 3 numbers days from Monday = 0, which would silently shift a
    crontab's ``1-5`` by one day; expanding to names keeps the crontab meaning.
    """
    if text == "*":
        return "*"
    days: set[int] = set()

    def num(tok: str) -> int:
        t = tok.strip().lower()
        if t[:3] in _DOW_NAMES and t.isalpha():
            return _DOW_NAMES.index(t[:3])
        if not t.isdigit() or not 0 <= int(t) <= 7:
            raise ValueError(f"day of week {tok!r}: expected 0-7 or sun..sat")
        return int(t) % 7

    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"day of week step {step_text!r} is not a positive number")
            step = int(step_text)
        if part == "*":
            lo, hi = 0, 6
        elif "-" in part:
            a, b = part.split("-", 1)
            lo, hi = num(a), (7 if b.strip() == "7" else num(b))
            if hi < lo:
                raise ValueError(f"day of week range {part!r} runs backwards")
        else:
            lo = hi = num(part)
            if step > 1:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DOW_NAMES[d] for d in sorted(days))


def cron_trigger(expr: str, tz: str = DEFAULT_TIMEZONE, jitter: Optional[float] = None) -> Any:
    """An APScheduler CronTrigger from a 5-field crontab line (or @daily...); ValueError if invalid."""
    from apscheduler.triggers.cron import CronTrigger

    text = CRON_ALIASES.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r}: a cron expression has 5 fields (minute hour day month day-of-week), got {len(fields)}"
        )
    minute, hour, day, month, dow = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_cron_dow(dow), timezone=tz, jitter=jitter
    )


def _check_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (e.g. UTC, Europe/Berlin)") from None
    return name


# --------------------------------------------------------------------------
# source options


_known_options_cache: Optional[tuple[dict[str, Any], bool]] = None


def known_options() -> tuple[dict[str, Any], bool]:
    """``(dest -> default, complete)`` for every ``neuromirror sync`` option a source module adds.

    ``complete`` is False when a source module could not be imported (then
    unknown option names are accepted with a warning rather than refused).
    """
    global _known_options_cache
    if _known_options_cache is not None:
        return _known_options_cache
    import argparse

    from neuromirror import sources

    parser = argparse.ArgumentParser(add_help=False)
    complete = True
    for archive in sources._MODULES:
        try:
            module = sources.module_for(archive)
        except ImportError:
            complete = False
            continue
        if hasattr(module, "add_options"):
            module.add_options(parser.add_argument_group(archive))
    defaults = {a.dest: a.default for a in parser._actions if a.dest != "help"}
    defaults.update(SYNC_OPTIONS)
    defaults["engine"] = os.environ.get("NEUROMIRROR_ENGINE", SYNC_OPTIONS["engine"])
    _known_options_cache = (defaults, complete)
    return _known_options_cache


def option_dest(name: str) -> str:
    """``--dandi-api``, ``dandi-api`` and ``dandi_api`` all name the option ``dandi_api``."""
    return name.lstrip("-").replace("-", "_")


# --------------------------------------------------------------------------
# YAML with line numbers


class _Node:
    """A parsed YAML value with the line of its node and, for mappings, of each key."""

    __slots__ = ("value", "line", "key_lines")

    def __init__(self, value: Any, line: int, key_lines: Optional[dict[str, int]] = None):
        self.value = value
        self.line = line
        self.key_lines = key_lines or {}


class _Reader:
    def __init__(self, file: str, base_dir: Optional[Path] = None):
        self.file = file
        self.base_dir = base_dir or Path.cwd()
        self.issues: list[ConfigIssue] = []
        self.warnings: list[str] = []

    def error(self, line: Optional[int], fieldname: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, line, fieldname, message))

    def warn(self, line: Optional[int], fieldname: str, message: str) -> None:
        self.warnings.append(str(ConfigIssue(self.file, line, fieldname, message)))

    # -- YAML -> _Node trees --------------------------------------------
    def parse(self, text: str) -> Optional[_Node]:
        import yaml

        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            self.error(line, "", f"not valid YAML: {exc.problem or exc.context}")
            return None
        except yaml.YAMLError as exc:
            self.error(None, "", f"not valid YAML: {exc}")
            return None
        if node is None:
            return None
        return self._convert(node, "")

    def _convert(self, node: Any, path: str) -> _Node:
        import yaml

        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            constructor = yaml.SafeLoader("")
            try:
                constructor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            except yaml.YAMLError as exc:
                self.error(line, path, f"bad merge key: {getattr(exc, 'problem', exc)}")
            out: dict[str, _Node] = {}
            key_lines: dict[str, int] = {}
            for knode, vnode in node.value:
                key = constructor.construct_object(knode, deep=True) if isinstance(knode, yaml.ScalarNode) else None
                kline = knode.start_mark.line + 1
                if not isinstance(key, str):
                    self.error(kline, path, f"keys must be names, got {key!r}")
                    continue
                if key in out:
                    self.error(kline, _join(path, key), f"duplicate key (first on line {key_lines[key]})")
                    continue
                out[key] = self._convert(vnode, _join(path, key))
                key_lines[key] = kline
            return _Node(out, line, key_lines)
        if isinstance(node, yaml.SequenceNode):
            return _Node([self._convert(n, f"{path}[{i}]") for i, n in enumerate(node.value)], line)
        constructor = yaml.SafeLoader("")
        try:
            value = constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.error(line, path, f"cannot read value: {getattr(exc, 'problem', exc)}")
            value = None
        return _Node(value, line)

    # -- helpers --------------------------------------------------------
    def mapping(
        self, node: _Node, path: str, allowed: Iterable[str], *, extra_ok: bool = False
    ) -> Optional[dict[str, _Node]]:
        if not isinstance(node.value, dict):
            self.error(node.line, path, f"expected a mapping (key: value), got {_kind(node.value)}")
            return None
        allowed = tuple(allowed)
        if not extra_ok:
            for key in node.value:
                if key not in allowed:
                    self.unknown_key(node, path, key, allowed)
        return node.value

    def unknown_key(self, node: _Node, path: str, key: str, allowed: Sequence[str]) -> None:
        import difflib

        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(allowed)})"
        self.error(node.key_lines.get(key, node.line), path or "top level", f"unknown key '{key}'{hint}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return f"a {type(value).__name__} ({value!r})"


# --------------------------------------------------------------------------
# validation


def _schedule(r: _Reader, node: _Node, path: str, default_tz: str) -> Optional[Schedule]:
    v = node.value
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        # shorthand: "30m" / 3600 -> interval; "0 3 * * *" / "@daily" -> cron
        text = str(v).strip()
        if isinstance(v, str) and (len(text.split()) > 1 or "*" in text or text.startswith("@")):
            node = _Node({"cron": node}, node.line, {"cron": node.line})
        else:
            node = _Node({"interval": node}, node.line, {"interval": node.line})
    before = len(r.issues)
    m = r.mapping(node, path, SCHEDULE_KEYS)
    if m is None:
        return None
    tz = default_tz
    ok = True
    if "timezone" in m:
        try:
            tz = _check_timezone(str(m["timezone"].value))
        except ValueError as exc:
            r.error(m["timezone"].line, f"{path}.timezone", str(exc))
            ok = False
    jitter = None
    if "jitter" in m:
        try:
            jitter = parse_duration(m["jitter"].value)
        except ValueError as exc:
            r.error(m["jitter"].line, f"{path}.jitter", str(exc))
            ok = False
    if ("cron" in m) == ("interval" in m):
        if len(r.issues) > before and "cron" not in m and "interval" not in m:
            return None  # only misspelt keys: that error says it
        r.error(node.line, path, "give exactly one of 'cron' (e.g. \"0 3 * * *\") and 'interval' (e.g. 6h)")
        return None
    if "cron" in m:
        expr = m["cron"].value
        if not isinstance(expr, str):
            r.error(m["cron"].line, f"{path}.cron", f"expected a cron expression in quotes, got {_kind(expr)}")
            return None
        try:
            cron_trigger(expr, tz)
        except ValueError as exc:
            r.error(m["cron"].line, f"{path}.cron", f"invalid cron expression: {exc}")
            return None
        return Schedule(cron=expr.strip(), jitter=jitter, timezone=tz) if ok else None
    try:
        seconds = parse_duration(m["interval"].value)
    except ValueError as exc:
        r.error(m["interval"].line, f"{path}.interval", str(exc))
        return None
    return Schedule(interval=seconds, jitter=jitter, timezone=tz) if ok else None


def _backoff(r: _Reader, node: _Node, path: str, base: Backoff) -> Optional[Backoff]:
    m = r.mapping(node, path, BACKOFF_KEYS)
    if m is None:
        return None
    values = {"initial": base.initial, "factor": base.factor, "max": base.max}
    ok = True
    for key in ("initial", "max"):
        if key in m:
            try:
                values[key] = parse_duration(m[key].value)
            except ValueError as exc:
                r.error(m[key].line, f"{path}.{key}", str(exc))
                ok = False
    if "factor" in m:
        f = m["factor"].value
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 1 <= f <= 100:
            r.error(m["factor"].line, f"{path}.factor", f"expected a number from 1 to 100, got {_kind(f)}")
            ok = False
        else:
            values["factor"] = float(f)
    if ok and values["max"] < values["initial"]:
        r.error(
            node.line,
            path,
            f"max ({format_duration(values['max'])}) is below initial ({format_duration(values['initial'])})",
        )
        ok = False
    return Backoff(**values) if ok else None


def _options(r: _Reader, node: _Node, path: str, entries: Optional[dict[str, _Node]] = None) -> dict[str, Any]:
    """Validate option names (dest or flag spelling) and values; return dest -> value."""
    known, complete = known_options()
    if entries is None:
        m = r.mapping(node, path, (), extra_ok=True)
        if m is None:
            return {}
    else:
        m = entries
    out: dict[str, Any] = {}
    for key, vnode in m.items():
        dest = option_dest(key)
        if dest not in known:
            if complete:
                r.unknown_key(node, path, key, sorted(known))
                continue
            r.warn(
                node.key_lines.get(key, node.line),
                path,
                f"option '{key}' is not known to the installed source modules; passed on as is",
            )
        value = vnode.value
        if isinstance(value, list):
            bad = [x.value for x in value if isinstance(x.value, (dict, list))]
            value = [x.value for x in value]
        else:
            bad = [value] if isinstance(value, dict) else []
        if bad:
            r.error(vnode.line, _join(path, key), f"expected a value or a list of values, got {_kind(bad[0])}")
            continue
        if dest == "engine" and value not in ENGINES:
            r.error(vnode.line, _join(path, key), f"unknown engine {value!r} (known: {', '.join(ENGINES)})")
            continue
        if dest == "dandi_instance":
            from neuromirror.identifiers import IdentifierError, instance_api

            try:
                instance_api(str(value))
            except IdentifierError as exc:
                r.error(vnode.line, _join(path, key), str(exc))
                continue
        out[dest] = value
    return out


def _publish(r: _Reader, node: _Node, path: str) -> Optional[dict[str, Any]]:
    v = node.value
    if isinstance(v, str):
        v = {"to": _Node(v, node.line)}
        node = _Node(v, node.line, {"to": node.line})
    m = r.mapping(node, path, (), extra_ok=True)
    if m is None:
        return None
    if "to" not in m:
        r.error(node.line, path, "missing 'to' (where to publish, e.g. ssh://host/path or a sibling name)")
        return None
    to = m["to"].value
    if not isinstance(to, str) or not to.strip():
        r.error(m["to"].line, f"{path}.to", f"expected a URL or sibling name, got {_kind(to)}")
        return None
    out = {k: _plain(n) for k, n in m.items()}
    to = to.strip()
    if "{" in to:
        try:
            to.format(archive="dandi", name="000027", relpath="dandi/000027", slug="dandi-000027")
        except (KeyError, IndexError, ValueError) as exc:
            r.error(
                m["to"].line, f"{path}.to", f"bad placeholder {exc} (known: {{archive}} {{name}} {{slug}} {{relpath}})"
            )
            return None
    elif "://" not in to and ":" not in to.split("/", 1)[0] and not os.path.isabs(os.path.expanduser(to)):
        to = str((r.base_dir / to).absolute())  # a local directory relative to this file
    out["to"] = os.path.expanduser(to)
    if "force" in out and not isinstance(out["force"], bool):
        r.error(m["force"].line, f"{path}.force", f"expected true or false, got {_kind(out['force'])}")
        return None
    return out


def _plain(node: _Node) -> Any:
    v = node.value
    if isinstance(v, dict):
        return {k: _plain(n) for k, n in v.items()}
    if isinstance(v, list):
        return [_plain(n) for n in v]
    return v


def _jobs(r: _Reader, node: _Node, path: str) -> Optional[int]:
    v = node.value
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 256:
        r.error(node.line, path, f"expected a whole number from 1 to 256, got {_kind(v)}")
        return None
    return v


def _source_spec(r: _Reader, node: _Node, m: dict[str, _Node], path: str) -> Optional[str]:
    all_flag = m.get("all")
    if all_flag is not None and not isinstance(all_flag.value, bool):
        r.error(all_flag.line, f"{path}.all", f"expected true or false, got {_kind(all_flag.value)}")
        return None
    if "spec" in m:
        if "archive" in m or (all_flag is not None and all_flag.value):
            r.error(node.line, path, "give either 'spec' or 'archive' with 'all: true', not both")
            return None
        text = m["spec"].value
        if not isinstance(text, str):
            r.error(m["spec"].line, f"{path}.spec", f'expected a SPEC like "dandi:000027" in quotes, got {_kind(text)}')
            return None
        try:
            return parse_spec(text.strip(), allow_version=False).source
        except SpecError as exc:
            r.error(m["spec"].line, f"{path}.spec", str(exc))
            return None
    if "archive" in m:
        archive = m["archive"].value
        if all_flag is None or not all_flag.value:
            r.error(node.line, path, "'archive' needs 'all: true' (or give a 'spec' such as \"dandi:000027\")")
            return None
        try:
            return parse_spec(f"{archive}:*", allow_version=False).source
        except SpecError as exc:
            r.error(m["archive"].line, f"{path}.archive", str(exc))
            return None
    r.error(
        node.line, path, 'missing \'spec\' (e.g. spec: "dandi:000027", "dandi:*", "aind:ecephys_*", "boss:COLL/EXP")'
    )
    return None


def _validate(r: _Reader, top: Optional[_Node], base_dir: Path) -> MirrorConfig:
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
            r.error(m["root"].line, "root", f"expected a directory path, got {_kind(root)}")
        else:
            p = Path(os.path.expandvars(os.path.expanduser(root.strip())))
            cfg.root = (p if p.is_absolute() else base_dir / p).absolute()
    if "jobs" in m:
        cfg.jobs = _jobs(r, m["jobs"], "jobs") or DEFAULT_JOBS
    if "executor" in m:
        em = r.mapping(m["executor"], "executor", EXECUTOR_KEYS)
        if em is not None and "dask" in em:
            address = em["dask"].value
            if not isinstance(address, str) or not address.strip():
                r.error(
                    em["dask"].line,
                    "executor.dask",
                    f"expected a scheduler address (tcp://HOST:8786), got {_kind(address)}",
                )
            else:
                cfg.dask = address.strip()

    # defaults: schedule, options (also directly as keys), publish, backoff, jobs
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
                d_schedule = _schedule(r, dm["schedule"], "defaults.schedule", DEFAULT_TIMEZONE)
            inline = {k: v for k, v in dm.items() if k not in DEFAULT_KEYS}
            if inline:
                d_options.update(_options(r, dn, "defaults", inline))
            if "options" in dm:
                d_options.update(_options(r, dm["options"], "defaults.options"))
            if "publish" in dm and dm["publish"].value is not None:
                d_publish = _publish(r, dm["publish"], "defaults.publish")
            if "backoff" in dm:
                d_backoff = _backoff(r, dm["backoff"], "defaults.backoff", Backoff()) or Backoff()
            if "jobs" in dm:
                if "jobs" in m:
                    r.error(dm["jobs"].line, "defaults.jobs", "'jobs' is given twice (top level and defaults)")
                else:
                    cfg.jobs = _jobs(r, dm["jobs"], "defaults.jobs") or DEFAULT_JOBS

    if "sources" not in m:
        r.error(top.line, "", "missing 'sources:' (a list of sources to mirror)")
        return cfg
    sn = m["sources"]
    if not isinstance(sn.value, list):
        r.error(sn.line, "sources", f"expected a list of sources ('- spec: ...'), got {_kind(sn.value)}")
        return cfg
    if not sn.value:
        r.error(sn.line, "sources", "the list is empty")
    seen: dict[str, int] = {}
    for i, node in enumerate(sn.value):
        path = f"sources[{i}]"
        if isinstance(node.value, str):  # shorthand: - "dandi:000027"
            node = _Node({"spec": node}, node.line, {"spec": node.line})
        sm = r.mapping(node, path, SOURCE_KEYS)
        if sm is None:
            continue
        spec = _source_spec(r, node, sm, path)
        schedule = d_schedule
        if "schedule" in sm:
            tz = d_schedule.timezone if d_schedule else DEFAULT_TIMEZONE
            schedule = _schedule(r, sm["schedule"], f"{path}.schedule", tz)
        elif d_schedule is None and not d_schedule_given:
            r.error(
                node.line,
                path,
                "no schedule: set 'schedule' here or in 'defaults' (e.g. {interval: 6h} or {cron: \"0 3 * * *\"})",
            )
        options = dict(d_options)
        if "options" in sm:
            options.update(_options(r, sm["options"], f"{path}.options"))
        publish = d_publish
        if "publish" in sm:
            publish = _publish(r, sm["publish"], f"{path}.publish") if sm["publish"].value is not None else None
        backoff = d_backoff
        if "backoff" in sm:
            backoff = _backoff(r, sm["backoff"], f"{path}.backoff", d_backoff) or d_backoff
        enabled = True
        if "enabled" in sm:
            if not isinstance(sm["enabled"].value, bool):
                r.error(
                    sm["enabled"].line, f"{path}.enabled", f"expected true or false, got {_kind(sm['enabled'].value)}"
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
            )
        )
    return cfg


# --------------------------------------------------------------------------
# entry points


def _display(path: Path) -> str:
    """The path as the user will recognise it: relative to the working directory when below it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_config(path: str | os.PathLike) -> MirrorConfig:
    """Read and validate one mirror definition; raise :class:`ConfigError` listing every problem."""
    p = Path(path)
    r = _Reader(_display(p), p.absolute().parent)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(r.file, None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(r.file, None, "", f"cannot read: {exc}")]) from None
    top = r.parse(text)
    cfg = MirrorConfig(files=[r.file])
    if not r.issues:
        cfg = _validate(r, top, p.absolute().parent)
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
        merged.files += cfg.files
        merged.warnings += cfg.warnings
        if cfg.root is not None:
            if merged.root is not None and merged.root != cfg.root:
                issues.append(
                    ConfigIssue(
                        cfg.files[0], None, "root", f"{cfg.root} differs from {merged.root} in {merged.files[0]}"
                    )
                )
            merged.root = merged.root or cfg.root
        merged.jobs = max(merged.jobs, cfg.jobs)
        if cfg.dask is not None:
            if merged.dask is not None and merged.dask != cfg.dask:
                issues.append(
                    ConfigIssue(
                        cfg.files[0],
                        None,
                        "executor.dask",
                        f"{cfg.dask} differs from {merged.dask} in {merged.files[0]}",
                    )
                )
            merged.dask = merged.dask or cfg.dask
        for s in cfg.sources:
            other = merged.source(s.spec)
            if other is not None:
                issues.append(ConfigIssue(s.file or "-", s.line, "", f"{s.spec} is also defined at {other.where}"))
                continue
            merged.sources.append(s)
    if issues:
        raise ConfigError(issues)
    merged.jobs = merged.jobs or DEFAULT_JOBS
    return merged


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

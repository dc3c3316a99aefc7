"""The sections of a source entry (and of ``defaults``): schedule, backoff, publish, jobs, the SPEC.

Each reader takes a :class:`~neuromirror.config.reader.Node`, records what is wrong with
its file, line and field, and returns the typed value, or None when the section is
invalid (the issue is recorded: the file will not load).  Shorthands are expanded here:
``schedule: 6h`` or ``schedule: "0 3 * * *"``, ``publish: URL``.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from neuromirror.config.reader import Node, Reader, kind_of
from neuromirror.config.schedule import Backoff, Schedule, check_timezone, cron_trigger, format_duration, parse_duration
from neuromirror.spec import SpecError, parse_spec

SCHEDULE_KEYS = ("cron", "interval", "jitter", "timezone")
BACKOFF_KEYS = ("initial", "factor", "max")


def read_schedule(r: Reader, node: Node, path: str, default_tz: str) -> Optional[Schedule]:
    v = node.value
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        # shorthand: "30m" / 3600 -> interval; "0 3 * * *" / "@daily" -> cron
        text = str(v).strip()
        if isinstance(v, str) and (len(text.split()) > 1 or "*" in text or text.startswith("@")):
            node = Node({"cron": node}, node.line, {"cron": node.line})
        else:
            node = Node({"interval": node}, node.line, {"interval": node.line})
    before = len(r.issues)
    m = r.mapping(node, path, SCHEDULE_KEYS)
    if m is None:
        return None
    tz = default_tz
    ok = True
    if "timezone" in m:
        try:
            tz = check_timezone(str(m["timezone"].value))
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
            r.error(m["cron"].line, f"{path}.cron", f"expected a cron expression in quotes, got {kind_of(expr)}")
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


def read_backoff(r: Reader, node: Node, path: str, base: Backoff) -> Optional[Backoff]:
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
            r.error(m["factor"].line, f"{path}.factor", f"expected a number from 1 to 100, got {kind_of(f)}")
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


def read_publish(r: Reader, node: Node, path: str) -> Optional[dict[str, Any]]:
    v = node.value
    if isinstance(v, str):
        v = {"to": Node(v, node.line)}
        node = Node(v, node.line, {"to": node.line})
    m = r.mapping(node, path, (), extra_ok=True)
    if m is None:
        return None
    if "to" not in m:
        r.error(node.line, path, "missing 'to' (where to publish, e.g. ssh://host/path or a sibling name)")
        return None
    to = m["to"].value
    if not isinstance(to, str) or not to.strip():
        r.error(m["to"].line, f"{path}.to", f"expected a URL or sibling name, got {kind_of(to)}")
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
        r.error(m["force"].line, f"{path}.force", f"expected true or false, got {kind_of(out['force'])}")
        return None
    return out


def _plain(node: Node) -> Any:
    v = node.value
    if isinstance(v, dict):
        return {k: _plain(n) for k, n in v.items()}
    if isinstance(v, list):
        return [_plain(n) for n in v]
    return v


def read_jobs(r: Reader, node: Node, path: str) -> Optional[int]:
    v = node.value
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 256:
        r.error(node.line, path, f"expected a whole number from 1 to 256, got {kind_of(v)}")
        return None
    return v


def read_source_spec(r: Reader, node: Node, m: dict[str, Node], path: str) -> Optional[str]:
    all_flag = m.get("all")
    if all_flag is not None and not isinstance(all_flag.value, bool):
        r.error(all_flag.line, f"{path}.all", f"expected true or false, got {kind_of(all_flag.value)}")
        return None
    if "spec" in m:
        if "archive" in m or (all_flag is not None and all_flag.value):
            r.error(node.line, path, "give either 'spec' or 'archive' with 'all: true', not both")
            return None
        text = m["spec"].value
        if not isinstance(text, str):
            r.error(
                m["spec"].line, f"{path}.spec", f'expected a SPEC like "dandi:000027" in quotes, got {kind_of(text)}'
            )
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

"""The sections of a source entry (and of ``defaults``): schedule, backoff, publish, jobs, the SPEC.

Each reader takes a :class:`~neuromirror.config.reader.Node`, records what is wrong with
its file, line and field, and returns the typed value, or None when the section is
invalid (the issue is recorded: the file will not load).  Shorthands are expanded here:
``schedule: 6h`` or ``schedule: "0 3 * * *"``, ``publish: URL``.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from neuromirror.config.model import KEEP_VERSIONS, KeepPolicy
from neuromirror.config.reader import Node, Reader, kind_of
from neuromirror.config.schedule import Backoff, Schedule, check_timezone, cron_trigger, format_duration, parse_duration
from neuromirror.spec import SpecError, parse_spec

SCHEDULE_KEYS = ("cron", "interval", "jitter", "timezone")
KEEP_KEYS = ("versions", "include", "exclude", "max_file_size", "budget", "expire_after")
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
    if to.startswith("ria+"):
        return out if _read_ria_publish(r, m, path, to, out) else None
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


def _read_ria_publish(r: Reader, m: dict[str, Node], path: str, to: str, out: dict[str, Any]) -> bool:
    """``publish: {to: ria+file:///PATH, public_url: https://HOST/PATH, include_embargoed: false}``: a DataLad
    RIA store the service writes on this host (served over HTTP by any web server) after each sync."""
    if not to.startswith("ria+file:///") or "#" in to or "?" in to:
        r.error(
            m["to"].line,
            f"{path}.to",
            f"{to}: the service publishes into a RIA store on this host only: ria+file:///ABSOLUTE/PATH",
        )
        return False
    out["to"] = to
    url = out.get("public_url")
    if url is not None:
        ok = isinstance(url, str) and url.startswith(("http://", "https://", "ria+http://", "ria+https://"))
        if not ok or "@" in str(url).split("://", 1)[1].split("/", 1)[0] or "#" in str(url):
            r.error(
                m["public_url"].line,
                f"{path}.public_url",
                "expected the URL clones reach the store at, e.g. https://data.lab.org/ria (no credentials, no #)",
            )
            return False
    for key in ("include_embargoed", "force"):
        if key in out and not isinstance(out[key], bool):
            r.error(m[key].line, f"{path}.{key}", f"expected true or false, got {kind_of(out[key])}")
            return False
    return True


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


def read_store(r: Reader, node: Node, path: str) -> Optional[str]:
    """``store:``: a directory (relative to this file) or a URL ``neuromirror keep --store`` accepts."""
    from neuromirror.errors import UserError
    from neuromirror.store.location import open_store

    v = node.value
    if not isinstance(v, str) or not v.strip():
        r.error(node.line, path, f"expected a store: a directory or a URL such as s3://BUCKET, got {kind_of(v)}")
        return None
    name = os.path.expandvars(os.path.expanduser(v.strip()))
    if "://" not in name and not os.path.isabs(name):
        name = str((r.base_dir / name).absolute())  # a local directory relative to this file
    try:
        open_store(name)  # the kind checked; nothing is created
    except UserError as exc:
        r.error(node.line, path, str(exc))
        return None
    return name


def read_keep(r: Reader, node: Node, path: str) -> tuple[bool, Optional[KeepPolicy]]:
    """``keep:``: ``none`` | ``published`` | ``all``, or ``{versions, include, exclude, max_file_size, budget}``.

    Returns (valid, policy); ``none`` is a valid None (nothing kept).
    """
    from neuromirror.util.sizes import parse_size

    choices = (
        "none, published, all or a mapping {versions: published|all, include, exclude, max_file_size, budget, "
        "expire_after}"
    )
    v = node.value
    if v is None or v is False or (isinstance(v, str) and v.strip().lower() == "none"):
        return True, None
    if isinstance(v, str):
        word = v.strip().lower()
        if word in KEEP_VERSIONS:
            return True, KeepPolicy(versions=word)
        r.error(node.line, path, f"unknown keep policy {v!r}: expected {choices}")
        return False, None
    m = r.mapping(node, path, KEEP_KEYS) if isinstance(v, dict) else None
    if m is None:
        if not isinstance(v, dict):
            r.error(node.line, path, f"expected {choices}, got {kind_of(v)}")
        return False, None
    ok = all(k in KEEP_KEYS for k in m)  # an unknown key is reported by r.mapping
    values: dict[str, Any] = {}
    if "versions" in m:
        word = m["versions"].value
        if not isinstance(word, str) or word.strip().lower() not in KEEP_VERSIONS:
            r.error(m["versions"].line, f"{path}.versions", f"expected published or all, got {kind_of(word)}")
            ok = False
        else:
            values["versions"] = word.strip().lower()
    for key in ("include", "exclude"):
        if key in m:
            globs = m[key].value
            if isinstance(globs, str) and globs.strip():
                values[key] = (globs.strip(),)
            elif isinstance(globs, list) and all(isinstance(n.value, str) and n.value.strip() for n in globs):
                values[key] = tuple(n.value.strip() for n in globs)
            else:
                r.error(m[key].line, f"{path}.{key}", f"expected a path glob or a list of them, got {kind_of(globs)}")
                ok = False
    for key in ("max_file_size", "budget"):
        if key in m:
            raw = m[key].value
            try:
                if isinstance(raw, bool) or raw is None:
                    raise ValueError(f"not a size: {raw!r}")
                size = parse_size(raw)
                if size <= 0:
                    raise ValueError(f"not a size: {raw!r}")
                values[key] = size
            except ValueError as exc:
                r.error(m[key].line, f"{path}.{key}", str(exc))
                ok = False
    if "expire_after" in m:
        from neuromirror.config.schedule import parse_duration

        try:
            values["expire_after"] = parse_duration(m["expire_after"].value)
        except ValueError as exc:
            r.error(m["expire_after"].line, f"{path}.expire_after", str(exc))
            ok = False
    return ok, (KeepPolicy(**values) if ok else None)

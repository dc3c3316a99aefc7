"""The sections of a source entry (and of ``defaults``): schedule, backoff, publish, jobs, the SPEC.

Each reader takes a :class:`~neuromirror.config.reader.Node`, records what is wrong with
its file, line and field, and returns the typed value, or None when the section is
invalid (the issue is recorded: the file will not load).  Shorthands are expanded here:
``schedule: 6h`` or ``schedule: "0 3 * * *"``, ``publish: URL``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

from neuromirror.config.model import KEEP_VERSIONS, KeepPolicy
from neuromirror.config.reader import Node, Reader, kind_of
from neuromirror.config.rules import Rule, duration, flag, number, read_fields, read_value, size, valid, whole
from neuromirror.config.schedule import Backoff, Schedule, check_timezone, cron_trigger
from neuromirror.spec import SpecError, parse_spec
from neuromirror.util.dates import format_duration

SCHEDULE_KEYS = ("cron", "interval", "jitter", "timezone")
KEEP_KEYS = ("versions", "include", "exclude", "max_file_size", "budget", "expire_after", "prune")
BACKOFF_KEYS = ("initial", "factor", "max")


def _timezone(value: Any) -> str:
    return check_timezone(str(value))


def _versions(word: Any) -> str:
    if not isinstance(word, str) or word.strip().lower() not in KEEP_VERSIONS:
        raise ValueError(f"expected published or all, got {kind_of(word)}")
    return word.strip().lower()


def _globs(globs: Any) -> tuple[str, ...]:
    if isinstance(globs, str) and globs.strip():
        return (globs.strip(),)
    if isinstance(globs, list) and all(isinstance(n.value, str) and n.value.strip() for n in globs):
        return tuple(n.value.strip() for n in globs)
    raise ValueError(f"expected a path glob or a list of them, got {kind_of(globs)}")


#: each section's fields, in the order their errors are reported
SCHEDULE_RULES = (Rule("timezone", _timezone), Rule("jitter", duration))
BACKOFF_RULES = (
    Rule("initial", duration),
    Rule("max", duration),
    Rule("factor", number(lambda f: 1 <= f <= 100, "a number from 1 to 100")),
)
KEEP_RULES = (
    Rule("versions", _versions),
    Rule("include", _globs),
    Rule("exclude", _globs),
    Rule("max_file_size", size(positive=True)),
    Rule("budget", size(positive=True)),
    Rule("expire_after", duration),
    Rule("prune", flag),
)
JOBS = whole(1, 256, "a whole number from 1 to 256")
PUBLISH_RULES = (Rule("force", flag),)
RIA_PUBLISH_RULES = (Rule("include_embargoed", flag), Rule("force", flag))


def _github_org(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}", value):
        raise ValueError(f"expected a GitHub organisation's name (letters, digits, -), got {value!r}")
    return value


def _api_url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")) or "@" in value:
        raise ValueError(f"expected GitHub's API URL (https://HOST/api/v3, no credentials), got {value!r}")
    return value


#: ``publish: {to: github:ORG, zarr_org: ORG2, github_api: URL}`` (the token: GITHUB_TOKEN or hub.oauthtoken)
GITHUB_PUBLISH_RULES = (Rule("zarr_org", _github_org), Rule("github_api", _api_url), Rule("force", flag))


def _schedule_shorthand(node: Node) -> Node:
    """``schedule: "30m"`` / ``3600`` is ``{interval: ...}``; ``"0 3 * * *"`` / ``"@daily"`` is ``{cron: ...}``."""
    v = node.value
    if not isinstance(v, (int, float, str)) or isinstance(v, bool):
        return node
    text = str(v).strip()
    key = (
        "cron" if isinstance(v, str) and (len(text.split()) > 1 or "*" in text or text.startswith("@")) else "interval"
    )
    return Node({key: node}, node.line, {key: node.line})


def _cron(expr: Any, tz: str) -> str:
    """A cron line, checked in the schedule's time zone."""
    if not isinstance(expr, str):
        raise ValueError(f"expected a cron expression in quotes, got {kind_of(expr)}")
    try:
        cron_trigger(expr, tz)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression: {exc}") from None
    return expr.strip()


def read_schedule(r: Reader, node: Node, path: str, default_tz: str) -> Optional[Schedule]:
    node = _schedule_shorthand(node)
    before = len(r.issues)
    m = r.mapping(node, path, SCHEDULE_KEYS)
    if m is None:
        return None
    values, ok = read_fields(r, m, path, SCHEDULE_RULES)
    tz, jitter = values.get("timezone", default_tz), values.get("jitter")
    if ("cron" in m) == ("interval" in m):
        if len(r.issues) > before and "cron" not in m and "interval" not in m:
            return None  # only misspelt keys: that error says it
        r.error(node.line, path, "give exactly one of 'cron' (e.g. \"0 3 * * *\") and 'interval' (e.g. 6h)")
        return None
    if "cron" in m:
        expr = read_value(r, m["cron"], f"{path}.cron", lambda v: _cron(v, tz))
        return Schedule(cron=expr, jitter=jitter, timezone=tz) if ok and valid(expr) else None
    seconds = read_value(r, m["interval"], f"{path}.interval", duration)
    if not valid(seconds):
        return None
    return Schedule(interval=seconds, jitter=jitter, timezone=tz) if ok else None


def read_backoff(r: Reader, node: Node, path: str, base: Backoff) -> Optional[Backoff]:
    m = r.mapping(node, path, BACKOFF_KEYS)
    if m is None:
        return None
    given, ok = read_fields(r, m, path, BACKOFF_RULES)
    values = {"initial": base.initial, "factor": base.factor, "max": base.max, **given}
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
    if to.startswith("github:"):
        return out if _read_github_publish(r, m, path, to, out) else None
    plain = _git_target(r, m, path, to)
    if plain is None:
        return None
    out["to"] = plain
    return out if read_fields(r, m, path, PUBLISH_RULES)[1] else None


def _git_target(r: Reader, m: dict[str, Node], path: str, to: str) -> Optional[str]:
    """A BASE or URL template as ``publish --to`` takes it (a relative directory: from this file's), None: bad."""
    if "{" in to:
        try:
            to.format(archive="archive", name="name", relpath="archive/name", slug="archive-name")
        except (KeyError, IndexError, ValueError) as exc:
            r.error(
                m["to"].line, f"{path}.to", f"bad placeholder {exc} (known: {{archive}} {{name}} {{slug}} {{relpath}})"
            )
            return None
    elif "://" not in to and ":" not in to.split("/", 1)[0] and not os.path.isabs(os.path.expanduser(to)):
        to = str((r.base_dir / to).absolute())  # a local directory relative to this file
    return os.path.expanduser(to)


def _read_github_publish(r: Reader, m: dict[str, Node], path: str, to: str, out: dict[str, Any]) -> bool:
    """``publish: {to: github:ORG, zarr_org: ORG2, github_api: URL}``: repositories made through GitHub's API."""
    try:
        out["to"] = "github:" + _github_org(to[len("github:") :])
    except ValueError as exc:
        r.error(m["to"].line, f"{path}.to", str(exc))
        return False
    return read_fields(r, m, path, GITHUB_PUBLISH_RULES, stop=True)[1]


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
    return read_fields(r, m, path, RIA_PUBLISH_RULES, stop=True)[1]


def _plain(node: Node) -> Any:
    v = node.value
    if isinstance(v, dict):
        return {k: _plain(n) for k, n in v.items()}
    if isinstance(v, list):
        return [_plain(n) for n in v]
    return v


def read_jobs(r: Reader, node: Node, path: str) -> Optional[int]:
    v = read_value(r, node, path, JOBS)
    return v if valid(v) else None


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
    """``keep:``: ``none`` | ``published`` | ``all``, or ``{versions, include, exclude, max_file_size, budget,
    expire_after, prune}``.

    Returns (valid, policy); ``none`` is a valid None (nothing kept).
    """
    choices = (
        "none, published, all or a mapping {versions: published|all, include, exclude, max_file_size, budget, "
        "expire_after, prune}"
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
    values, fields_ok = read_fields(r, m, path, KEEP_RULES)
    ok = all(k in KEEP_KEYS for k in m) and fields_ok  # an unknown key is reported by r.mapping
    return ok, (KeepPolicy(**values) if ok else None)

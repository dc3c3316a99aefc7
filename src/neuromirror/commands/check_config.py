"""``neuromirror check-config FILE...``: validate mirror definitions and say what they define."""

from __future__ import annotations

import argparse
import sys

from neuromirror.commands.common import add_json, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-config",
        help="validate mirror definition files (mirrors/*.yaml); nothing else",
        description="Validate mirror definition files (mirrors/*.yaml) as the service would read them: every "
        "mistake named with its file, line and key, nothing synced and nothing written.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="mirror definition file(s)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = [_check(path) for path in args.files]
    failed = not all(r["ok"] for r in results)
    cross: list[str] = []
    if not failed and len(args.files) > 1:  # the files together, as `serve` would load them
        failed, cross = _check_together(args.files)
    if args.json:
        print_json({"ok": not failed, "files": results, "errors": cross})
        return 1 if failed else 0
    for r in results:
        _print_result(r)
    for e in cross:
        print(e, file=sys.stderr)
    if failed:
        bad = sum(not r["ok"] for r in results) or 1
        print(f"neuromirror: {bad} invalid mirror definition{'s' if bad != 1 else ''}", file=sys.stderr)
    return 1 if failed else 0


def _check(path: str) -> dict:
    """One file's verdict: its errors, or its warnings and what it defines."""
    from neuromirror.config.load import load_config
    from neuromirror.config.reader import ConfigError

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return {"file": path, "ok": False, "errors": [str(i) for i in exc.issues], "warnings": []}
    warnings = cfg.warnings + _contact_warning(path, cfg.contact)
    return {"file": path, "ok": True, "errors": [], "warnings": warnings, "config": cfg.to_json()}


def _contact_warning(path: str, contact: object) -> list[str]:
    """One line when the service's requests would name no one an archive's operator may ask."""
    from neuromirror.network.identity import contact as env_contact

    if contact or env_contact():
        return []
    return [
        f"{path}: no contact: (nor NEUROMIRROR_CONTACT): archive requests name neuromirror only, not whom "
        "an archive's operator may ask; add e.g. contact: you@lab.example.org"
    ]


def _check_together(paths: list[str]) -> tuple[bool, list[str]]:
    """Whether the files loaded together fail (a source defined twice...), and why."""
    from neuromirror.config.load import load_configs
    from neuromirror.config.reader import ConfigError

    try:
        load_configs(paths)
    except ConfigError as exc:
        return True, [str(i) for i in exc.issues]
    return False, []


def _print_result(r: dict) -> None:
    from neuromirror.config.load import load_config

    for e in r["errors"]:
        print(e, file=sys.stderr)
    for w in r["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if not r["ok"]:
        return
    c = r["config"]
    n = len(c["sources"])
    print(
        f"{r['file']}: ok, {n} source{'s' if n != 1 else ''}"
        + (f", root {c['root']}" if c["root"] else "")
        + f", {c['jobs']} job(s)"
    )
    if c.get("network"):
        print(f"  network: {_ceiling_line(c['network'])}")
    for s in load_config(r["file"]).sources:
        extra = "" if s.enabled else "  (disabled)"
        pub = f"  publish to {s.publish['to']}" if s.publish else ""
        kept = f"  keep {_keep_line(s.keep)} in {_stores_line(s)}" if s.keep else ""
        print(f"  {s.spec}  {s.schedule.describe()}{pub}{kept}{extra}")


def _ceiling_line(network: dict) -> str:
    """``at most 20/s, 2 in flight`` (and each endpoint's own)."""

    def one(d: dict) -> str:
        parts = [f"{d['max_rate']:g}/s"] if d.get("max_rate") else []
        return ", ".join(parts + ([f"{d['max_in_flight']} in flight"] if d.get("max_in_flight") else [])) or "no bound"

    own = "".join(f"; {name}: {one(d)}" for name, d in network.get("endpoints", {}).items())
    return f"at most {one(network)} per archive endpoint{own}"


def _stores_line(s) -> str:  # noqa: ANN001
    """``/srv/keep, s3://lab-keep/dandi/ (copies: 2)``: every store named, and the wanted count when given."""
    stores = ", ".join(s.stores or ([s.store] if s.store else [])) or "no store"
    return stores + (f" (copies: {s.copies})" if s.copies is not None else "")


def _keep_line(policy) -> str:  # noqa: ANN001
    """``published``, or ``all (include sub-01/*, max 10.0 MB, budget 1.0 TB)``."""
    from neuromirror.util.sizes import human_bytes

    parts = [f"include {' '.join(policy.include)}"] if policy.include else []
    parts += [f"exclude {' '.join(policy.exclude)}"] if policy.exclude else []
    if policy.max_file_size:
        parts.append(f"max {human_bytes(policy.max_file_size)} a file")
    if policy.budget:
        parts.append(f"budget {human_bytes(policy.budget)}")
    return policy.versions + (f" ({', '.join(parts)})" if parts else "")

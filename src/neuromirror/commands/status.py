"""``neuromirror status``: per source, the last success and failure, the next run, versions, files, bytes."""

from __future__ import annotations

import argparse

from .common import add_json, human_bytes, print_json, print_table, root_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="one row per source: last success/failure, next run, versions, files, bytes")
    p.add_argument("specs", nargs="*", metavar="SPEC", help="only these sources (globs allowed, e.g. 'dandi:*')")
    p.add_argument("--config", "-c", action="append", metavar="FILE",
                   help="also list the sources of this mirror definition (repeat for more) that have not run yet, "
                        "with their schedules")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import fnmatch

    from ..service import short_time, status_report

    config = None
    root = root_of(args)
    if args.config:
        from ..config import load_configs

        config = load_configs(args.config)
        root = config.resolve_root(args.root)
    report = status_report(root, args.index, config=config)
    if args.specs:
        from ..spec import SpecError, parse_spec
        from .common import UserError

        try:
            pats = [parse_spec(s, allow_version=False).source for s in args.specs]
        except SpecError as exc:
            raise UserError(str(exc)) from None
        report["sources"] = [r for r in report["sources"] if any(fnmatch.fnmatchcase(r["source"], p) for p in pats)]
    if args.json:
        print_json(report)
        return 0
    svc = report["service"]
    if svc:
        print(f"service: running (pid {svc['pid']}, since {short_time(svc['started'])}"
              + (f", {svc['http']}" if svc.get("http") else "") + ")")
    else:
        print("service: not running")
    if not report["sources"]:
        from ..mirror import Mirror

        index = Mirror(root, args.index).index_path
        print(f"no sources in {report['root']}" + ("" if index.exists() else f" (no index {index}: nothing mirrored there)"))
        return 0
    rows = []
    for r in report["sources"]:
        status = r["status"]
        if r["consecutive_failures"]:
            status += f" ({r['consecutive_failures']}x)"
        rows.append({
            "source": r["source"],
            "status": status,
            "last_success": short_time(r["last_success"]) if r["last_success"] else None,
            "last_failure": short_time(r["last_failure"]) if r["last_failure"] else None,
            "reason": _clip(r["last_error"]),
            "next_run": short_time(r["next_run"]) if r["next_run"] else None,
            "versions": r["versions"],
            "files": r["files"],
            "bytes": human_bytes(r["bytes"]) if r["bytes"] is not None else None,
        })
    print_table(rows, ["source", "status", "last_success", "last_failure", "reason", "next_run", "versions",
                       "files", "bytes"])
    return 0


def _clip(text, n: int = 60):  # noqa: ANN001
    if not text:
        return None
    return text if len(text) <= n else text[: n - 3] + "..."

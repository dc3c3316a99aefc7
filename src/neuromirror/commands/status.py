"""``neuromirror status``: per source, the last success and failure, the next run, versions, files, bytes."""

from __future__ import annotations

import argparse
import os
from typing import Optional

from neuromirror.commands.common import add_json, human_bytes, print_json, print_table, root_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="one row per source: last success/failure, next run, versions, files, bytes")
    p.add_argument("specs", nargs="*", metavar="SPEC", help="only these sources (globs allowed, e.g. 'dandi:*')")
    p.add_argument(
        "--config",
        "-c",
        action="append",
        metavar="FILE",
        help="also list the sources of this mirror definition (repeat for more) that have not run yet, "
        "with their schedules",
    )
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import fnmatch

    from neuromirror.service import short_time, status_report

    config = None
    root = root_of(args)
    if args.config:
        from neuromirror.config.load import load_configs

        config = load_configs(args.config)
        root = config.resolve_root(args.root)
    report = status_report(root, args.index, config=config)
    if args.specs:
        from neuromirror.commands.common import UserError
        from neuromirror.spec import SpecError, parse_spec

        try:
            pats = [parse_spec(s, allow_version=False).source for s in args.specs]
        except SpecError as exc:
            raise UserError(str(exc)) from None
        report["sources"] = [r for r in report["sources"] if any(fnmatch.fnmatchcase(r["source"], p) for p in pats)]
    report["cluster"] = _cluster(report, config)
    if args.json:
        print_json(report)
        return 0
    svc = report["service"]
    if svc:
        print(
            f"service: running (pid {svc['pid']}, since {short_time(svc['started'])}"
            + (f", {svc['http']}" if svc.get("http") else "")
            + ")"
        )
    else:
        print("service: not running")
    cluster = report["cluster"]
    if cluster:
        if cluster.get("error"):
            print(f"cluster: dask {cluster['address']}: {cluster['error']}")
        else:
            workers = cluster["workers"]
            print(
                f"cluster: dask {cluster['address']}: {len(workers)} worker(s), "
                f"{sum(w['tasks'] for w in workers)} task(s) running"
            )
            for w in workers:
                print(f"  worker {w['address']} ({w['name']}): {w['threads']} thread(s), {w['tasks']} task(s)")
    if not report["sources"]:
        from neuromirror.dataset.mirror import Mirror

        index = Mirror(root, args.index).index_path
        print(
            f"no sources in {report['root']}"
            + ("" if index.exists() else f" (no index {index}: nothing mirrored there)")
        )
        return 0
    rows = []
    for r in report["sources"]:
        status = r["status"]
        if r["consecutive_failures"]:
            status += f" ({r['consecutive_failures']}x)"
        rows.append(
            {
                "source": r["source"],
                "status": status,
                "last_success": short_time(r["last_success"]) if r["last_success"] else None,
                "last_failure": short_time(r["last_failure"]) if r["last_failure"] else None,
                "reason": _clip(r["last_error"]),
                "next_run": short_time(r["next_run"]) if r["next_run"] else None,
                "versions": r["versions"],
                "files": r["files"],
                "bytes": human_bytes(r["bytes"]) if r["bytes"] is not None else None,
            }
        )
    print_table(
        rows, ["source", "status", "last_success", "last_failure", "reason", "next_run", "versions", "files", "bytes"]
    )
    return 0


def _cluster(report: dict, config: object) -> Optional[dict]:
    """The Dask cluster: as the running service sees it, else asked directly when one is
    configured (``executor: {dask: ...}`` in --config, or NEUROMIRROR_DASK)."""
    svc = report.get("service") or {}
    if svc.get("cluster"):
        return svc["cluster"]
    address = getattr(config, "dask", None) or os.environ.get("NEUROMIRROR_DASK")
    if not address:
        return None
    from neuromirror.engine.dask_executor import SchedulerUnreachable, cluster_status, connect

    try:
        client = connect(address)
    except SchedulerUnreachable as exc:
        return {"executor": "dask", "address": address, "error": str(exc)}
    try:
        return cluster_status(client, address)
    finally:
        client.close()


def _clip(text, n: int = 60):  # noqa: ANN001
    if not text:
        return None
    return text if len(text) <= n else text[: n - 3] + "..."

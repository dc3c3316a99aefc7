"""``neuromirror status``: per source, the last success and failure, the next run, versions, files, bytes."""

from __future__ import annotations

import argparse
import fnmatch
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.commands.common import UserError, add_json, human_bytes, print_json, print_table, root_of

if TYPE_CHECKING:
    from neuromirror.service.state import SourceStatus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="one row per source: last success/failure, next run, versions, files, bytes",
        description="One row per mirrored source: its last success and failure, its next scheduled run (with "
        "--config), its versions, files and bytes; with --copies, how many verified copies its files have.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="only these sources (globs allowed, e.g. 'dandi:*')")
    p.add_argument(
        "--config",
        "-c",
        action="append",
        metavar="FILE",
        help="also list the sources of this mirror definition (repeat for more) that have not run yet, "
        "with their schedules",
    )
    p.add_argument(
        "--no-at-risk",
        dest="at_risk",
        action="store_false",
        help="skip the at-risk counts (files kept in a store / only behind a pinned URL / only behind mutable URLs)",
    )
    p.add_argument(
        "--copies",
        action="store_true",
        help="per source and version (SPEC[@VERSION] narrows): files and bytes with at least the wanted number "
        "of verified copies outside the archive, with fewer, with none; the oldest check; the keys at risk",
    )
    p.add_argument(
        "--backup",
        action="store_true",
        help="per source and store: objects and bytes the archive holds against those kept (current and older "
        "versions), the oldest version not yet kept, what the archive deletes within 30 days that no store holds, "
        "each store's last verification (from the index: no dataset or store is read)",
    )
    add_json(p)
    p.set_defaults(func=run)


def _backup(args: argparse.Namespace) -> int:
    """``status --backup``: the backup record (:mod:`neuromirror.service.backup`), as lines or its JSON."""
    from neuromirror.api import open as open_mirror
    from neuromirror.service.backup.render import as_text

    config, root = _config_and_root(args)
    expire_after = {
        e.spec: e.keep.expire_after
        for e in getattr(config, "sources", None) or []
        if e.keep is not None and e.keep.expire_after is not None
    }
    with open_mirror(root, args.index) as m:
        got = m.backup(_source_patterns(args.specs), expire_after=expire_after)
    if args.json:
        print_json(got.to_json())
    else:
        print(as_text(got))
    return 0


def _copies(args: argparse.Namespace) -> int:
    """``status --copies``: the copies counted live from the datasets' branches and the index's check times."""
    from neuromirror.commands.common import require_mirror, spec_arg
    from neuromirror.index.store_checks import known_stores, wanted
    from neuromirror.keep.archive_copies import PerArchive
    from neuromirror.keep.copies import copies_report

    mirror = require_mirror(args)
    try:
        per = PerArchive({s.id: wanted(mirror.index, s.id) for s in mirror.index.sources()})
        counts = copies_report(mirror, [spec_arg(s) for s in args.specs], per)
        stores = known_stores(mirror.index)
    finally:
        mirror.close()
    if args.json:
        archives = [a.to_json(stores) for _, a in sorted(per.archives.items())]
        print_json({"versions": [c.to_json() for c in counts], "archives": archives, "ok": all(c.ok for c in counts)})
        return 0
    for c in counts:
        print(c.line())
        for line in c.risk_lines():
            print(line)
    if not counts:
        print("no versions to count")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.copies:
        return _copies(args)
    if args.backup:
        return _backup(args)

    from neuromirror.service import status_report
    from neuromirror.service.risk import add_live_risk
    from neuromirror.service.state import cluster_facts, report_json

    config, root = _config_and_root(args)
    report = status_report(root, args.index, config=config)
    if args.specs:
        report["sources"] = _only(report["sources"], args.specs)
    report["cluster"] = cluster_facts(report, config)
    if getattr(args, "at_risk", True):
        add_live_risk(report, root, args.index, config)
    if args.json:
        print_json(report_json(report))
        return 0
    _print_report(report, root, args.index)
    return 0


def _config_and_root(args: argparse.Namespace) -> tuple[Any, Path]:
    """--config's definitions (None without) and the root; a root that is no directory is a mistake."""
    config = None
    root = root_of(args)
    if args.config:
        from neuromirror.config.load import load_configs

        config = load_configs(args.config)
        root = config.resolve_root(args.root)
    cluster_named = getattr(config, "dask", None) or os.environ.get("NEUROMIRROR_DASK")
    # a mistyped root: one line, exit 2, not a report of nothing that exits 0 (a cluster named: its status)
    if not root.is_dir() and not cluster_named:
        raise UserError(f"no mirror at {root}: no such directory (pass --root or set NEUROMIRROR_ROOT)")
    return config, root


def _only(rows: list[SourceStatus], specs: list[str]) -> list[SourceStatus]:
    """The rows of the sources the SPECs (globs allowed) name."""
    pats = _source_patterns(specs)
    return [r for r in rows if any(fnmatch.fnmatchcase(r.source, p) for p in pats)]


def _source_patterns(specs: list[str]) -> list[str]:
    """The sources (globs allowed) the SPECs name; a SPEC that is none is a usage error."""
    from neuromirror.spec import SpecError, parse_spec

    try:
        return [parse_spec(s, allow_version=False).source for s in specs]
    except SpecError as exc:
        raise UserError(str(exc)) from None


def _print_report(report: dict, root: Path, index_path: Optional[str]) -> None:
    """The report as text: the service, the cluster, disks and drills, then a row per source and what it said."""
    _print_service(report["service"])
    _print_cluster(report["cluster"])
    for d in report.get("disk") or []:
        print(_disk_line(d))
    for d in (report.get("drills") or {}).values():  # the last drill of each source
        print(drill_line(d))
    if report.get("thaws"):
        print(thaws_line(report["thaws"]))
    sources = report["sources"]
    if not sources:
        print(_no_sources_line(report, root, index_path))
        return
    print_table([_source_row(r) for r in sources], SOURCE_COLUMNS)
    risk_rows = [_risk_row(r, v) for r in sources for v in (r.at_risk or [])]
    for r in sources:
        line = expiry_line(r)
        if line:
            print(line)
    for lines in (refused_lines, network_lines):
        for r in sources:
            for line in lines(r):
                print(line)
    if risk_rows:
        print("\nat risk (published versions and the latest draft; files, bytes):")
        print_table(risk_rows, RISK_COLUMNS)


SOURCE_COLUMNS = [
    "source",
    "status",
    "last_success",
    "last_failure",
    "reason",
    "next_run",
    "versions",
    "files",
    "bytes",
]
RISK_COLUMNS = ["source", "version", "kept", "pinned_url_only", "noncurrent_pin_only", "mutable_url_only"]


def _print_service(svc: Optional[dict]) -> None:
    from neuromirror.service import short_time

    if svc:
        print(
            f"service: running (pid {svc['pid']}, since {short_time(svc['started'])}"
            + (f", {svc['http']}" if svc.get("http") else "")
            + ")"
        )
    else:
        print("service: not running")


def _print_cluster(cluster: Optional[dict]) -> None:
    if not cluster:
        return
    if cluster.get("error"):
        print(f"cluster: dask {cluster['address']}: {cluster['error']}")
        return
    workers = cluster["workers"]
    print(
        f"cluster: dask {cluster['address']}: {len(workers)} worker(s), "
        f"{sum(w['tasks'] for w in workers)} task(s) running"
    )
    for w in workers:
        print(f"  worker {w['address']} ({w['name']}): {w['threads']} thread(s), {w['tasks']} task(s)")


def _no_sources_line(report: dict, root: Path, index_path: Optional[str]) -> str:
    from neuromirror.dataset.mirror import Mirror

    index = Mirror(root, index_path).index_path
    return f"no sources in {report['root']}" + (
        "" if index.exists() else f" (no index {index}: nothing mirrored there)"
    )


def _source_row(r: SourceStatus) -> dict:
    """A source's row of the table: its status (with the failures in a row), times, why, counts."""
    from neuromirror.service import short_time

    status = r.status
    if r.consecutive_failures:
        status += f" ({r.consecutive_failures}x)"
    return {
        "source": r.source,
        "status": status,
        "last_success": short_time(r.last_success) if r.last_success else None,
        "last_failure": short_time(r.last_failure) if r.last_failure else None,
        "reason": _clip(r.refused_reason if r.status == "refusing" else r.last_error),
        "next_run": short_time(r.next_run) if r.next_run else None,
        "versions": r.versions,
        "files": r.files,
        "bytes": human_bytes(r.bytes) if r.bytes is not None else None,
    }


def _risk_row(r: SourceStatus, v: dict) -> dict:
    """A version's row of the at-risk table: files and bytes kept, only behind a pinned URL..."""
    return {
        "source": r.source,
        "version": v["version"],
        "kept": _count(v["kept"]),
        "pinned_url_only": _count(v["pinned"]),
        "noncurrent_pin_only": _count(v.get("noncurrent") or {"files": 0, "bytes": 0}),
        "mutable_url_only": _count(v["unpinned"]),
    }


def expiry_line(r: SourceStatus) -> Optional[str]:
    """The files pinned only by noncurrent S3 versions and kept nowhere, and when the oldest expires; None: none."""
    x = r.expiry or {}
    if not x.get("unkept", {}).get("files"):
        return None
    left = x["time_left_s"]
    return (
        f"{r.source}: {x['unkept']['files']} file(s) ({human_bytes(x['unkept']['bytes'])}) pinned only by "
        f"noncurrent S3 versions, kept nowhere; the oldest expires in "
        + (f"{left / 86400:.1f} days" if left is not None else "an unknown time")
        + (" -- FAILING: under a week" if x["state"] == "failing" else "")
    )


def network_lines(r: SourceStatus) -> list[str]:
    """The last sync's dealings with a slow or throttling archive, and what it held back (if any)."""
    lines = []
    for n in r.network or []:
        if n.get("throttled") or n.get("retries") or n.get("gave_up"):
            lines.append(
                f"{r.source}: {n['endpoint']}: {n['throttled']} throttled answer(s), {n['errors']} error(s), "
                f"{n['retries']} retries, {n['gave_up']} given up; in flight at most {n['in_flight_limit_min']:g}"
                f"..{n['in_flight_limit']:g} of {n['in_flight_ceiling']}"
                + (f", {n['requests_per_s']:g} requests/s" if n.get("requests_per_s") else "")
            )
    for u in r.unreachable or []:
        lines.append(f"{r.source}: held back {u['path']}: {u['reason']}")
    return lines


def refused_lines(r: SourceStatus, most: int = 5) -> list[str]:
    """What the last successful sync refused (the source is ``refusing``, not ok): the first few, each with why."""
    items = r.refused or []
    lines = [f"{r.source}: refused {x['path']!r}: {x['reason']}" for x in items[:most]]
    left = (r.refused_count or 0) - len(lines)
    if lines and left > 0:
        lines.append(f"{r.source}: ... and {left} more refused (sync --json lists them)")
    return lines


def thaws_line(thaws: list[dict]) -> str:
    """``3 cold pack(s) thawing (asked since ...) in pack+s3://...``: what restore is waiting for."""
    from datetime import datetime, timezone

    since = datetime.fromtimestamp(min(t["asked"] for t in thaws), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    stores = ", ".join(sorted({t["url"] for t in thaws}))
    return f"{len(thaws)} cold pack(s) thawing (asked since {since}) in {stores}: rerun the restore once thawed"


def drill_line(d: dict) -> str:
    """``last drill of dandi:000027: ok at ...: 20 objects (1.2 MiB) into ...; 0 mismatches, 0 failed``; not ok:
    why after the result."""
    bad = "".join(f"\n  bad copy: {b['key']} in {b['store']}: {b['why']}" for b in d.get("bad_copies") or [])
    of = f" of {d['source']}" if d.get("source") else f" ({d['scope']})"
    why = f" ({d['reason']})" if d.get("reason") else ""
    return (
        f"last drill{of}: {d['result']}{why} at {d['finished_at']}: {d['objects']} objects "
        f"({human_bytes(d['bytes'])}) into {d['target']}; {d['mismatches']} mismatches, {d['failed']} failed" + bad
    )


def _disk_line(d: dict) -> str:
    """``disk: root /srv/mirror: 75.0 GiB free of 252.0 GiB (min_free 1.0 GiB)``, LOW when below."""
    if d.get("error"):
        return f"disk: {d['what']} {d['path']}: {d['error']}"
    low = "; LOW: syncs, keeps and publishes refuse to start" if d["low"] else ""
    return (
        f"disk: {d['what']} {d['path']}: {human_bytes(d['free'])} free of {human_bytes(d['total'])} "
        f"(min_free {human_bytes(d['min_free'])}){low}"
    )


def _count(c: dict) -> str:
    return f"{c['files']} ({human_bytes(c['bytes'])})"


def _clip(text, n: int = 60):  # noqa: ANN001
    if not text:
        return None
    return text if len(text) <= n else text[: n - 3] + "..."

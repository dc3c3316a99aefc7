"""What ``Mirror.status`` returns, in each of its modes, and how each reads as text (``neuromirror status``).

The report itself is the account's (:func:`neuromirror.account.status.status_report`: one row per source,
merged from the index, the running service's state file and the definitions); here it becomes a
:class:`~neuromirror.results.Result` whose JSON is ``status --json``'s and whose :meth:`~StatusReport.lines` are
what ``status`` prints: the service, the cluster, disks, drills and thaws, a table of sources, what each
source's last sync refused or met on the network, and the at-risk table.  ``--copies`` and ``--backup``
have results of their own (:class:`CopiesReport`, :class:`BackupReport`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from neuromirror.results import Item, Result, Status
from neuromirror.util.sizes import human_bytes

if TYPE_CHECKING:
    from neuromirror.account.backup_model import Backup
    from neuromirror.account.status import SourceStatus
    from neuromirror.keep.copies import VersionCopies
    from neuromirror.store.reach import Lost

#: a source row's status as an item's: failing and backing off failed, refusing could not be done whole
ITEM_STATUS = {
    "ok": Status.OK,
    "running": Status.OK,
    "never synced": Status.NOTNEEDED,
    "refusing": Status.IMPOSSIBLE,
    "failing": Status.ERROR,
    "backing off": Status.ERROR,
}

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


@dataclass
class StatusReport(Result):
    """``status``: the service's facts and one :class:`~neuromirror.account.status.SourceStatus` per source
    (``.sources``); an item per source with its status (a failing source is an ``error`` item)."""

    report: dict[str, Any]
    index_path: Path

    @property
    def sources(self) -> list[SourceStatus]:
        rows: list[SourceStatus] = self.report["sources"]
        return rows

    def items(self) -> Iterable[Item]:
        for r in self.sources:
            why = r.refused_reason if r.status == "refusing" else r.last_error
            yield Item(ITEM_STATUS.get(r.status, Status.OK), r.source, r.status + (f": {why}" if why else ""))

    def to_json(self) -> dict[str, Any]:
        """``status --json``: the report, each row as its ``to_json()``."""
        from neuromirror.account.status import report_json

        return report_json(self.report)

    def lines(self) -> list[str]:
        """The service, the cluster, disks and drills, then a row per source and what each said."""
        report = self.report
        out = [service_line(report["service"]), *cluster_lines(report["cluster"])]
        out += [disk_line(d) for d in report.get("disk") or []]
        out += [drill_line(d) for d in (report.get("drills") or {}).values()]  # the last drill of each source
        if report.get("thaws"):
            out.append(thaws_line(report["thaws"]))
        if not self.sources:
            return out + [self._no_sources_line()]
        return out + self._source_lines()

    def _source_lines(self) -> list[str]:
        sources = self.sources
        out = table_lines([source_row(r) for r in sources], SOURCE_COLUMNS)
        out += [line for r in sources if (line := expiry_line(r))]
        out += [line for said in (refused_lines, network_lines) for r in sources for line in said(r)]
        risk_rows = [risk_row(r, v) for r in sources for v in (r.at_risk or [])]
        if risk_rows:
            out.append("\nat risk (published versions and the latest draft; files, bytes):")
            out += table_lines(risk_rows, RISK_COLUMNS)
        return out

    def _no_sources_line(self) -> str:
        there = "" if self.index_path.exists() else f" (no index {self.index_path}: nothing mirrored there)"
        return f"no sources in {self.report['root']}{there}"


@dataclass
class CopiesReport(Result):
    """``status --copies``: per version, its files with enough verified copies outside the archive, fewer, none."""

    versions: list[VersionCopies] = field(default_factory=list)
    archives: list[dict[str, Any]] = field(default_factory=list)
    unreachable: list[Lost] = field(default_factory=list)  # stores not reachable here: their copies not counted

    def items(self) -> Iterable[Item]:
        for x in self.unreachable:
            yield Item(Status.ERROR, x.url or x.uuid, x.line())
        for c in self.versions:
            yield Item(Status.OK if c.ok else Status.ERROR, c.label, c.line())

    def to_json(self) -> dict[str, Any]:
        return {
            "versions": [c.to_json() for c in self.versions],
            "archives": self.archives,
            "unreachable": [x.to_json() for x in self.unreachable],
            "ok": self.ok,
        }

    def lines(self) -> list[str]:
        out = [x.line() for x in self.unreachable]
        out += [line for c in self.versions for line in (c.line(), *c.risk_lines())]
        return out or ["no versions to count"]


@dataclass
class BackupReport(Result):
    """``status --backup``: the backup record (:class:`~neuromirror.account.backup_model.Backup`, ``.backup``)."""

    backup: Backup

    def items(self) -> Iterable[Item]:
        for b in self.backup.sources:
            yield Item(Status.OK, b.source)

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = self.backup.to_json()
        return record

    def lines(self) -> list[str]:
        from neuromirror.account.backup_text import as_text

        return as_text(self.backup).split("\n")


# -- the report as text ---------------------------------------------------------------------------------


def table_lines(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """Rows as a table: a heading of the column names, each cell padded to its column's widest."""
    if not rows:
        return []
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    heading = [c.upper() for c in columns]
    return ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [heading, *cells]]


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


def service_line(svc: Optional[dict[str, Any]]) -> str:
    from neuromirror.account.status import short_time

    if not svc:
        return "service: not running"
    http = f", {svc['http']}" if svc.get("http") else ""
    return f"service: running (pid {svc['pid']}, since {short_time(svc['started'])}{http})"


def cluster_lines(cluster: Optional[dict[str, Any]]) -> list[str]:
    if not cluster:
        return []
    if cluster.get("error"):
        return [f"cluster: dask {cluster['address']}: {cluster['error']}"]
    workers = cluster["workers"]
    tasks = sum(w["tasks"] for w in workers)
    return [f"cluster: dask {cluster['address']}: {len(workers)} worker(s), {tasks} task(s) running"] + [
        f"  worker {w['address']} ({w['name']}): {w['threads']} thread(s), {w['tasks']} task(s)" for w in workers
    ]


def source_row(r: SourceStatus) -> dict[str, Any]:
    """A source's row of the table: its status (with the failures in a row), times, why, counts."""
    from neuromirror.account.status import short_time

    status = r.status + (f" ({r.consecutive_failures}x)" if r.consecutive_failures else "")
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


def risk_row(r: SourceStatus, v: dict[str, Any]) -> dict[str, Any]:
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
        f"noncurrent S3 versions, kept nowhere; the oldest "
        + _expires(left)
        + (" -- FAILING: under a week" if x["state"] == "failing" else "")
    )


def _expires(left: Optional[float]) -> str:
    """When the oldest such file expires: in N days, or N days ago (the archive's lifecycle rule may have
    removed it already), or an unknown time."""
    if left is None:
        return "expires in an unknown time"
    if left < 0:
        return f"was due to expire {-left / 86400:.1f} days ago (it may be gone already)"
    return f"expires in {left / 86400:.1f} days"


def network_lines(r: SourceStatus) -> list[str]:
    """The last sync's dealings with a slow or throttling archive, and what it held back (if any)."""
    lines = [
        _endpoint_line(r.source, n)
        for n in r.network or []
        if n.get("throttled") or n.get("retries") or n.get("gave_up")
    ]
    return lines + [f"{r.source}: held back {u['path']}: {u['reason']}" for u in r.unreachable or []]


def _endpoint_line(source: str, n: dict[str, Any]) -> str:
    return (
        f"{source}: {n['endpoint']}: {n['throttled']} throttled answer(s), {n['errors']} error(s), "
        f"{n['retries']} retries, {n['gave_up']} given up; in flight at most {n['in_flight_limit_min']:g}"
        f"..{n['in_flight_limit']:g} of {n['in_flight_ceiling']}"
        + (f", {n['requests_per_s']:g} requests/s" if n.get("requests_per_s") else "")
    )


def refused_lines(r: SourceStatus, most: int = 5) -> list[str]:
    """What the last successful sync refused (the source is ``refusing``, not ok): the first few, each with why."""
    items = r.refused or []
    lines = [f"{r.source}: refused {x['path']!r}: {x['reason']}" for x in items[:most]]
    left = (r.refused_count or 0) - len(lines)
    if lines and left > 0:
        lines.append(f"{r.source}: ... and {left} more refused (run `neuromirror sync --json` to list them)")
    return lines


def thaws_line(thaws: list[dict[str, Any]]) -> str:
    """``3 cold pack(s) thawing (asked since ...) in pack+s3://...``: what restore is waiting for."""
    from datetime import datetime, timezone

    since = datetime.fromtimestamp(min(t["asked"] for t in thaws), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    stores = ", ".join(sorted({t["url"] for t in thaws}))
    return f"{len(thaws)} cold pack(s) thawing (asked since {since}) in {stores}: rerun the restore once thawed"


def drill_line(d: dict[str, Any]) -> str:
    """``last drill of dandi:000027: ok at ...: 20 objects (1.2 MiB) into ...; 0 mismatches, 0 failed``; not ok:
    why after the result."""
    bad = "".join(f"\n  bad copy: {b['key']} in {b['store']}: {b['why']}" for b in d.get("bad_copies") or [])
    of = f" of {d['source']}" if d.get("source") else f" ({d['scope']})"
    why = f" ({d['reason']})" if d.get("reason") else ""
    return (
        f"last drill{of}: {d['result']}{why} at {d['finished_at']}: {d['objects']} objects "
        f"({human_bytes(d['bytes'])}) into {d['target']}; {d['mismatches']} mismatches, {d['failed']} failed" + bad
    )


def disk_line(d: dict[str, Any]) -> str:
    """``disk: root /srv/mirror: 75.0 GiB free of 252.0 GiB (min_free 1.0 GiB)``, LOW when below."""
    if d.get("error"):
        return f"disk: {d['what']} {d['path']}: {d['error']}"
    low = "; LOW: syncs, keeps and publishes refuse to start" if d["low"] else ""
    return (
        f"disk: {d['what']} {d['path']}: {human_bytes(d['free'])} free of {human_bytes(d['total'])} "
        f"(min_free {human_bytes(d['min_free'])}){low}"
    )


def _count(c: dict[str, Any]) -> str:
    return f"{c['files']} ({human_bytes(c['bytes'])})"


def _clip(text: Optional[str], n: int = 60) -> Optional[str]:
    if not text:
        return None
    return text if len(text) <= n else text[: n - 3] + "..."

"""The status report, from the index, the running service's state file and the mirror definitions.

Shared by ``neuromirror status`` (``api.Mirror.status``), ``/status.json``, the service's HTML pages and
``/metrics``: one row per source (:class:`SourceStatus`), merged from the index (the runs and versions tables:
the truth, also without a service), the running service's ``service.json`` (next runs, backoff, what is
running) and the definitions.  It reads what the service writes and never runs it: so it sits below the API,
which the service stands on.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.config.model import MirrorConfig
from neuromirror.index import runs
from neuromirror.util.dates import parse_iso as parse_time
from neuromirror.util.processes import pid_alive

if TYPE_CHECKING:
    from neuromirror.index.db import Index

STATE_FILE = "service.json"


# -- time --------------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def epoch(text: Optional[str]) -> Optional[float]:
    dt = parse_time(text)
    return dt.timestamp() if dt else None


def short_time(text: Optional[str]) -> str:
    dt = parse_time(text)
    return dt.strftime("%Y-%m-%d %H:%M:%SZ") if dt else "-"


def read_service_state(root: Path) -> Optional[dict]:
    """The running service's state file, or None if no service runs on this root."""
    path = Path(root) / ".neuromirror" / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("stopped"):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    return data


# -- the status report -----------------------------------------------------------


def _index_facts(index: Index) -> dict[str, dict]:
    """Per source: run counts by outcome, last run/success/failure, versions, files and bytes of the head."""
    facts: dict[str, dict] = {}

    def f(sid: str) -> dict:
        return facts.setdefault(sid, {"runs": {}})

    for sid, outcome, n in runs.outcome_counts(index):
        f(sid)["runs"][outcome] = n
    for sid, started, outcome, trigger, report in runs.last_runs(index):
        f(sid).update(last_run=started, last_outcome=outcome, last_trigger=trigger, **_network_facts(report))
    for sid, ended in runs.last_success_ends(index):
        f(sid)["last_success"] = ended
    for sid, n, report in runs.refused_in_last_success(index):
        f(sid).update(_refused_facts(n, report))
    for sid, ended, error in runs.last_failures(index):
        f(sid).update(last_failure=ended, last_error=error)
    for sid, n in runs.failures_since_success(index):
        f(sid)["consecutive_failures"] = n
    for sid, started in runs.running_since(index):
        f(sid)["running_since"] = started
    for sid, dataset in index.source_datasets():
        f(sid)["dataset"] = dataset
    for sid, n in index.version_counts():
        f(sid)["versions"] = n
    # the dataset's HEAD: the last draft/snapshot row, else the last published one
    for sid, label, files, nbytes, _kind in index.heads():
        f(sid).update(latest=label, files=files, bytes=nbytes)
    return facts


def _network_facts(report: Optional[str]) -> dict:
    """What the last run's report says of the network: per endpoint its requests, throttled answers,
    retries and in-flight limit (:func:`neuromirror.network.report.since`), and the items it held back."""
    try:
        rep = json.loads(report) if report else {}
    except ValueError:
        rep = {}
    if not isinstance(rep, dict):
        return {}
    return {"network": rep.get("network") or [], "unreachable": rep.get("unreachable") or []}


#: refused items a status row names (the count is always whole)
REFUSED_NAMED = 20


def _refused_facts(n: int, report: Optional[str]) -> dict:
    """What the last successful sync refused (a Zarr whose checksum never matches, an unsafe path...): the
    count, the first :data:`REFUSED_NAMED` items ``{path, reason}``, and one line naming the first and why."""
    try:
        rep = json.loads(report) if report else {}
    except ValueError:
        rep = {}
    items = [
        {"path": str(x.get("path")), "reason": str(x.get("reason"))}
        for x in (rep.get("refused") if isinstance(rep, dict) else None) or []
        if isinstance(x, dict)
    ]
    first = f": {items[0]['path']!r}: {items[0]['reason']}" if items else ""
    more = f" (and {n - 1} more)" if n > 1 else ""
    return {"refused": items[:REFUSED_NAMED], "refused_count": n, "refused_reason": f"refused{first}{more}"}


#: what later steps add to a row (each only once it ran), in the order they add them
ADDED = ("at_risk", "at_risk_error", "expiry", "expiry_error", "at_risk_counted", "publish", "keep", "changes")


@dataclass
class SourceStatus:
    """One source's row of the status report, as ``status --json``, ``/status.json``, the pages and ``/metrics``
    read it.  Its JSON (:meth:`to_json`) is the contract scripts read; the code reads attributes, so a misspelt
    field is mypy's error, not a ``KeyError`` on a page.  The fields in :data:`ADDED` are filled by later steps
    (the at-risk counts, the publish, keep and change records) through :meth:`add`, and written only once added."""

    source: str
    status: str  # running | backing off | failing | refusing | ok | never synced
    schedule: Optional[str] = None
    entry: Optional[str] = None
    dataset: Optional[str] = None
    last_run: Optional[str] = None
    last_outcome: Optional[str] = None
    last_success: Optional[str] = None
    last_failure: Optional[str] = None
    last_error: Optional[str] = None
    consecutive_failures: int = 0
    backoff_until: Optional[str] = None
    next_run: Optional[str] = None
    running_since: Optional[str] = None
    progress: Optional[dict] = None
    skipped: dict = field(default_factory=dict)
    publish_error: Optional[str] = None
    versions: int = 0
    latest: Optional[str] = None
    files: Optional[int] = None
    bytes: Optional[int] = None
    runs: dict = field(default_factory=dict)
    network: list = field(default_factory=list)
    unreachable: list = field(default_factory=list)
    refused: list = field(default_factory=list)
    refused_count: int = 0
    refused_reason: Optional[str] = None
    ok: bool = False  # mirrored whole at its last sync: a success, no failure since, nothing refused
    at_risk: Optional[list] = None  # status's live counts per version (risk.add_live_risk)
    at_risk_error: Optional[str] = None
    expiry: Optional[dict] = None  # unkept pins on noncurrent S3 versions
    expiry_error: Optional[str] = None
    at_risk_counted: Optional[dict] = None  # the service's newest at-risk record (risk.add_risks)
    publish: Optional[dict] = None  # what the service published (publishing.add_publishes)
    keep: Optional[dict] = None  # the service's keep step (keeping.keep_facts)
    changes: Optional[dict] = None  # files added/removed/changed by finished runs (metrics.add_changes)
    added: list[str] = field(default_factory=list, repr=False)  # which of ADDED were filled, in order

    def add(self, **facts: Any) -> None:
        """Fill fields of :data:`ADDED` (a value may be None: "counted, nothing found" is written as null)."""
        for name, value in facts.items():
            if name not in ADDED:
                raise ValueError(f"{name} is not a field later steps add to a status row")
            setattr(self, name, value)
            if name not in self.added:
                self.added.append(name)

    @classmethod
    def of(cls, row: SourceStatus | dict[str, Any]) -> SourceStatus:
        """A row as it is, or read back from its JSON (``/status.json``, ``status --json``): the pages and
        ``/metrics`` render either."""
        if isinstance(row, SourceStatus):
            return row
        known = {f.name for f in fields(cls)} - {"added"} - set(ADDED)
        out = cls(**{k: v for k, v in row.items() if k in known})
        out.add(**{k: row[k] for k in row if k in ADDED})
        return out

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ADDED and f.name != "added"}
        out.update((name, getattr(self, name)) for name in self.added)
        return out


def report_json(report: dict) -> dict:
    """The status report as JSON: its rows as their :meth:`SourceStatus.to_json`."""
    return {**report, "sources": [r.to_json() if isinstance(r, SourceStatus) else r for r in report["sources"]]}


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def status_report(
    root: Path, index_path: Optional[str] = None, *, state: Optional[dict] = None, config: Optional[MirrorConfig] = None
) -> dict:
    """One row per source (index, service state and configuration merged) plus the service's own facts."""
    root = Path(root).absolute()
    if state is None:
        state = read_service_state(root)
    facts, drill, drills, thaws = _mirror_facts(root, index_path)
    sstate = (state or {}).get("sources", {})
    entries = (state or {}).get("entries", {})
    schedules = _schedules(entries, config)
    rows = [
        _row(sid, facts.get(sid, {"runs": {}}), sstate.get(sid, {}), bool(state), schedules)
        for sid in sorted(_source_ids(facts, sstate, schedules))
    ]
    service = None
    if state:
        service = {k: state.get(k) for k in ("pid", "started", "updated", "http", "config", "jobs", "cluster")}
        service["entries"] = entries
    return {
        "root": str(root),
        "service": service,
        "sources": rows,
        "disk": disk_facts(root, config),
        "drill": drill,
        "drills": drills,
        "thaws": [vars(t) for t in thaws],
    }


def _mirror_facts(root: Path, index_path: Optional[str]) -> tuple[dict[str, dict], Any, dict, list]:
    """From the index (none yet: nothing): per source its facts, the last drill (restore --drill, the
    service's), the last drill of each source, the cold packs asked back."""
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.index.store_checks import outstanding
    from neuromirror.restore.drills import last_drill, last_drills

    mirror = Datasets(root, index_path)
    try:
        if not mirror.index_path.exists():
            return {}, None, {}, []
        index = mirror.index
        return _index_facts(index), last_drill(index), last_drills(index), outstanding(index)
    finally:
        mirror.close()


def _schedules(entries: dict[str, dict], config: Optional[MirrorConfig]) -> dict[str, Optional[str]]:
    """Each ``sources:`` entry's schedule in words: the running service's, else the definitions' (disabled too)."""
    schedules: dict[str, Optional[str]] = {spec: e.get("schedule") for spec, e in entries.items()}
    for e in config.sources if config is not None else []:
        schedules.setdefault(e.spec, e.schedule.describe() if e.enabled else "disabled")
    return schedules


def _source_ids(facts: dict, sstate: dict, schedules: dict) -> set[str]:
    """Every source known anywhere: index, service, configuration (globs only once they matched something)."""
    ids = set(facts) | set(sstate) | {s for s in schedules if not _is_glob(s)}
    return ids | {g for g in schedules if _is_glob(g) and (g in facts or g in sstate)}


def _entry_of(sid: str, st: dict, schedules: dict) -> Optional[str]:
    """The ``sources:`` entry a source belongs to: the service's word, else itself or the first glob naming it."""
    if st.get("entry"):
        return str(st["entry"])
    if sid in schedules:
        return sid
    return next((g for g in schedules if fnmatch.fnmatchcase(sid, g) or fnmatch.fnmatchcase(sid, g + "/*")), None)


def _status_word(running_since: Optional[str], backoff_until: Optional[str], consecutive: int, fa: dict) -> str:
    if running_since:
        return "running"
    if backoff_until and (parse_time(backoff_until) or now_utc()) > now_utc():
        return "backing off"
    if consecutive:
        return "failing"
    if fa.get("refused_count"):  # the last sync succeeded but held items back: not ok until they mirror
        return "refusing"
    return "ok" if fa.get("last_success") else "never synced"


def _row(sid: str, fa: dict, st: dict, served: bool, schedules: dict) -> SourceStatus:
    """A source's row: the index's facts, with what the running service (``served``) says over them."""
    entry = _entry_of(sid, st, schedules)
    live = st if served else {}
    running_since = live.get("running_since") if served else fa.get("running_since")
    consecutive = live.get("consecutive_failures", fa.get("consecutive_failures", 0))
    backoff_until = live.get("backoff_until")
    return SourceStatus(
        source=sid,
        status=_status_word(running_since, backoff_until, consecutive, fa),
        schedule=schedules.get(entry) if entry else None,
        entry=entry,
        consecutive_failures=consecutive,
        backoff_until=backoff_until,
        next_run=live.get("next_run"),
        running_since=running_since,
        progress=live.get("progress"),
        skipped=live.get("skipped", {}),
        publish_error=live.get("publish_error"),
        versions=fa.get("versions", 0),
        runs=fa.get("runs", {}),
        network=fa.get("network", []),
        unreachable=fa.get("unreachable", []),
        refused=fa.get("refused", []),
        refused_count=fa.get("refused_count", 0),
        # mirrored whole at its last sync: a success, no failure since, nothing refused
        ok=bool(fa.get("last_success")) and not consecutive and not fa.get("refused_count"),
        dataset=fa.get("dataset"),
        last_run=fa.get("last_run"),
        last_outcome=fa.get("last_outcome"),
        last_success=fa.get("last_success"),
        last_failure=fa.get("last_failure"),
        last_error=fa.get("last_error"),
        latest=fa.get("latest"),
        files=fa.get("files"),
        bytes=fa.get("bytes"),
        refused_reason=fa.get("refused_reason"),
    )


def cluster_facts(report: dict, config: Optional[MirrorConfig] = None) -> Optional[dict]:
    """The Dask cluster: as the running service sees it (the report's ``service``), else asked directly when
    one is configured (``executor: {dask: ...}`` in the definitions given, or NEUROMIRROR_DASK); None: none."""
    import os

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


def disk_facts(root: Path, config: Optional[MirrorConfig] = None) -> list[dict]:
    """Free space on the root and each directory store the configuration (or NEUROMIRROR_STORE) names."""
    import os

    from neuromirror.util import disk

    places: list[tuple[str, Path]] = [("root", root)]
    names = [e.store for e in (config.sources if config else []) if e.store]
    names += [os.environ["NEUROMIRROR_STORE"]] if os.environ.get("NEUROMIRROR_STORE") else []
    for name in dict.fromkeys(names):
        path = _directory_store(name)
        if path is not None and all(p != path for _, p in places):
            places.append(("store", path))
    options = [e.options.get("min_free") for e in (config.sources if config else []) if e.options.get("min_free")]
    return disk.space(places, options[0] if options else None)


def _directory_store(name: str) -> Optional[Path]:
    """The directory of a directory store (``--store`` as given); None for an S3 store or a bad name."""
    from neuromirror.errors import UserError
    from neuromirror.store.location import open_store

    try:
        store = open_store(name)
    except UserError:
        return None
    path = getattr(store, "path", None)
    return Path(path) if path is not None else None

"""The service's keep step: ``keep:`` of an entry run into its ``store:`` after a successful sync.

Like :mod:`.publishing`, it runs in the source's worker thread once the sync ended (the source's
lock is free again: ``keep`` takes it only to record what the store holds), and a failed keep is
not a failed sync. Which versions: ``published`` — every published version (a source that has
none, AIND and BOSS snapshots: its latest version); ``all`` — every recorded version. A rerun
copies only what the store lacks, so keeping after every sync costs little once all is kept.

The outcome goes into the run's report in the index (``report["keep"]``: the store, the
versions, the files and bytes of those versions held in the store, what this run copied, the
failures and why) — the run history the status page and ``/metrics`` read
(:func:`neuromirror.service.metrics.add_keeps`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from neuromirror.config.model import KeepPolicy, SourceConfig
from neuromirror.service.state import SourceRuntime
from neuromirror.sources.base import Source

log = logging.getLogger("neuromirror.service")

#: failures listed in a run's report (the count is always whole)
MAX_NOTES = 20


def keep_after_sync(mirror: Any, entry: SourceConfig, source: Source, report: Any, rt: SourceRuntime) -> None:
    """Keep the source's versions the entry's policy names in its store; the outcome in the run's report."""
    if entry.keep is None or not entry.store or report.outcome not in ("ok", "unchanged"):
        return
    from neuromirror.engine.sync import one_line

    try:
        outcome = run_policy(mirror, source.id, entry.store, entry.keep, min_free=entry.options.get("min_free"))
        rt.keep_error = None if outcome["outcome"] in ("ok", "budget") else outcome.get("error") or "files failed"
    except Exception as exc:
        outcome = {"store": entry.store, "outcome": "error", "error": one_line(exc)}
        rt.keep_error = outcome["error"]
    record_in_run(mirror.index, source.id, outcome)
    if outcome["outcome"] == "error":
        log.warning("%s: keeping in %s failed: %s", source.id, entry.store, outcome["error"])
    else:
        log.info(
            "%s: kept in %s: %d file(s) held, %d copied (%d bytes), %d failed%s",
            source.id,
            entry.store,
            outcome["files"],
            outcome["transferred"]["files"],
            outcome["transferred"]["bytes"],
            outcome["failed"],
            "; stopped by the budget" if outcome["outcome"] == "budget" else "",
        )


def run_policy(mirror: Any, sid: str, store_name: str, policy: KeepPolicy, min_free: Any = None) -> dict:
    """``neuromirror keep`` for one source as the policy says; the report's ``keep`` record."""
    from neuromirror.keep.versions import KeepOptions, keep, select_versions
    from neuromirror.spec import Spec
    from neuromirror.store.location import open_store

    archive, name = sid.split(":", 1)
    targets = select_versions(mirror.index, [Spec(archive, name)], all_versions=policy.versions == "all")
    if policy.versions == "published":
        targets = [t for t in targets if t.row["kind"] == "published"] or targets[-1:]
    options = KeepOptions(
        include=policy.include,
        exclude=policy.exclude,
        max_file_size=policy.max_file_size,
        budget=policy.budget,
        progress=False,
        min_free=min_free,
    )
    store = open_store(store_name)
    run = keep(mirror, store, targets, options)
    failed = [(v, n) for v in run.versions for n in v.failed]
    held_files = sum(v.kept + v.already for v in run.versions)
    held_bytes = sum(v.kept_bytes + v.already_bytes for v in run.versions)
    return {
        "store": store.url,
        "policy": policy.versions,
        "outcome": "failed" if failed else "budget" if run.budget_stopped else "ok",
        "versions": [v.label for v in run.versions],
        "files": held_files,
        "bytes": held_bytes,
        "transferred": {"files": run.transferred, "bytes": run.transferred_bytes},
        "skipped": sum(len(v.skipped) for v in run.versions),
        "failed": len(failed),
        "failures": [
            {"version": v.version, "path": n.path, "size": n.size, "why": n.why} for v, n in failed[:MAX_NOTES]
        ],
    }


def record_in_run(index: Any, sid: str, outcome: dict, *, field: str = "keep") -> None:
    """Add ``outcome`` as ``field`` to the report of the source's last finished run (the sync just ended)."""
    row = index.db.conn.execute(
        "SELECT id, report FROM runs WHERE source=? AND ended IS NOT NULL ORDER BY id DESC LIMIT 1", [sid]
    ).fetchone()
    if row is None:
        return
    report: dict = json.loads(row[1]) if row[1] else {}
    report[field] = outcome
    with index.transaction():
        index.db.conn.execute("UPDATE runs SET report=? WHERE id=?", [json.dumps(report), row[0]])


def keep_facts(index: Any) -> dict[str, dict]:
    """Per source that the service kept: ``last`` (the last run's ``keep`` record) and ``runs``
    (how many keep runs ended in each outcome: ok, budget, failed, error)."""
    out: dict[str, dict] = {}
    rows = index.db.conn.execute(
        "SELECT source, json_extract(report, '$.keep') FROM runs "
        "WHERE json_extract(report, '$.keep') IS NOT NULL ORDER BY id"
    )
    for sid, raw in rows:
        record = json.loads(raw)
        facts = out.setdefault(sid, {"last": None, "runs": {}})
        facts["last"] = record
        outcome = str(record.get("outcome") or "error")
        facts["runs"][outcome] = facts["runs"].get(outcome, 0) + 1
    return out

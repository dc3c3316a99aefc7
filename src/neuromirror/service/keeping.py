"""The service's keep step: ``keep:`` of an entry run into its ``store:`` after a successful sync.

Like :mod:`.publishing`, it runs in the source's worker thread once the sync ended (the source's
lock is free again: ``keep`` takes it only to record what the store holds), and a failed keep is
not a failed sync. Which versions: ``published`` — every published version (a source that has
none, AIND and BOSS snapshots: its latest version); ``all`` — every recorded version. A rerun
copies only what the store lacks, so keeping after every sync costs little once all is kept.  The keep and
the stores' rolling check are calls of the API (:meth:`neuromirror.api.Mirror.keep`,
:meth:`~neuromirror.api.Mirror.verify_stores`) on the worker's own mirror, so that the service does what
``neuromirror keep`` and ``verify --stores`` do.

The outcome goes into the run's report in the index (``report["keep"]``: the store, the
versions, the files and bytes of those versions held in the store, what this run copied, the
failures and why) — the run history the status page and ``/metrics`` read
(:func:`neuromirror.service.metrics.add_keeps`).

**A cycle with nothing new keeps nothing** (issue 59): a sync that found no change, after a keep that
ended ``ok`` over the same recorded versions (their ids and commits:
:meth:`neuromirror.api.records.Records.versions_digest`, whoever synced them) with the same stores, policy and copies, has nothing to copy; opening an S3 store costs a
boto3 client (~0.1 s of CPU each, five a cycle) for a keep that would find every version's mark.  So the
step is skipped (no record: the last one stands) unless the stores' rolling check is due
(:data:`ROLLING_EVERY`); the check then covers the time since the last one, so that every copy is still
re-read within ``verify: {period}``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Optional, Sequence

from neuromirror.api.records import Records
from neuromirror.config.model import KeepPolicy, SourceConfig
from neuromirror.records import SyncReport, VersionKind
from neuromirror.service.state import SourceRuntime
from neuromirror.sources.base import Source
from neuromirror.spec import Spec
from neuromirror.util.dates import now_z

if TYPE_CHECKING:
    from neuromirror.api import Mirror, StoresRun, Version
    from neuromirror.store.base import Store

log = logging.getLogger("neuromirror.service")

#: failures listed in a run's report (the count is always whole)
MAX_NOTES = 20
#: a cycle with nothing new re-reads its stores' slice at most this often (seconds): the slice then covers
#: the time since the last check, so a copy is re-read within the period all the same
ROLLING_EVERY = 3600.0


def keep_after_sync(mirror: Mirror, entry: SourceConfig, source: Source, report: SyncReport, rt: SourceRuntime) -> bool:
    """Keep the source's versions the entry's policy names in its store; the outcome in the run's report.
    True when a key was newly recorded on a git-annex branch (what the lab publishes must then name it)."""
    stores = list(entry.stores or ([entry.store] if entry.store else []))
    if entry.keep is None or not stores or report.outcome not in ("ok", "unchanged"):
        return False
    from neuromirror.util.text import one_line

    records = mirror.records
    last = last_record(records, source.id)
    if report.outcome == "unchanged" and not keep_due(last, keep_state(records, source.id, stores, entry), entry):
        return False  # nothing new since a whole keep of the same versions: the last record stands
    try:
        outcome = run_policy(
            mirror,
            source.id,
            stores,
            entry.keep,
            copies=entry.copies,
            min_free=entry.options.get("min_free"),
            covered_by=entry.covered_by,
            dask=rt.dask,
        )
        outcome["verify"] = rolling_check(mirror, source.id, entry, since=_checked_at(last), dask=rt.dask)
        # as this keep left it: a keep or sync by hand since (another wanted count, new marks) changes it
        outcome["state"], outcome["at"] = keep_state(records, source.id, stores, entry), now_z()
        rt.keep_error = None if outcome["outcome"] in ("ok", "budget") else outcome.get("error") or "files failed"
        if not outcome["verify"]["ok"] and rt.keep_error is None:
            v = outcome["verify"]
            rt.keep_error = f"{len(v['bad'])} bad, {len(v['missing'])} missing stored copies ({v['repaired']} re-kept)"
    except Exception as exc:
        outcome = {"store": stores[0], "outcome": "error", "error": one_line(exc)}
        rt.keep_error = outcome["error"]
    records.record_in_run(source.id, outcome)
    if outcome["outcome"] == "error":
        log.warning("%s: keeping in %s failed: %s", source.id, ", ".join(stores), outcome["error"])
    else:
        log.info("%s: %s", source.id, keep_line(outcome))
    return bool(outcome.get("recorded"))


def keep_line(outcome: dict) -> str:
    """The log's keep line: each store by name with what it holds and copied, and the copies against the
    wanted count (issue 59: with two stores the line named the first and counted copies to both)."""
    per = [
        f"{s['url']}: {s['files']} file(s) held, {s['transferred']['files']} copied "
        f"({s['transferred']['bytes']} bytes)" + ("" if s["up"] else f", DOWN: {s['error']}")
        for s in outcome.get("stores") or []
    ]
    copies = outcome.get("copies") or {}
    short = sum(1 for v in copies.get("versions", []) if not v.get("ok"))
    return (
        f"kept in {len(per)} store(s): {'; '.join(per)}; copies wanted {copies.get('wanted', 1)}"
        + (f", {short} version(s) short of them" if short else ", every version has them")
        + f"; {outcome['failed']} failed"
        + ("; stopped by the budget" if outcome["outcome"] == "budget" else "")
        + _gap_words(outcome.get("gap"))
    )


def _gap_words(gap: Optional[dict]) -> str:
    """A gap-fill's passes in the order they ran, for the log's keep line."""
    if not gap:
        return ""
    passes = ", then ".join(f"{p['phase']}: {p['kept']}" for p in gap.get("passes") or [])
    return f"; gap-fill ({gap['covered']['objects']} held by the archive's own backup): {passes}"


def keep_state(records: Records, sid: str, stores: Sequence[str], entry: SourceConfig) -> str:
    """The recorded versions, their keep marks and wanted count, and the definition a keep follows (stores,
    policy, copies, the check's policy): a keep that ended ok in the state of now left nothing to copy."""
    import hashlib

    assert entry.keep is not None
    what = [list(stores), entry.keep.to_json(), entry.copies, entry.verify.to_json() if entry.verify else None]
    what.append(records.wanted(sid))
    digest = hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()[:16]
    return records.versions_digest(sid, marks=True) + digest


def last_record(records: Records, sid: str) -> Optional[dict]:
    """The source's newest keep record (the step's outcome in a run's report), or None."""
    rows = records.reports("keep", sid)
    return rows[-1][1] if rows else None


def keep_due(last: Optional[dict], state: str, entry: SourceConfig, now: Optional[float] = None) -> bool:
    """Whether a cycle whose sync found no change must keep: the last keep did not end ok, followed another
    state (versions synced since by hand, the definition changed), or the stores' rolling check is due."""
    if last is None or last.get("outcome") != "ok" or last.get("state") != state:
        return True
    if entry.verify is not None and entry.verify.fraction is not None:
        return True  # a fixed share each cycle, as the definition asks
    checked = _checked_at(last)
    return checked is None or (now if now is not None else time.time()) - checked >= ROLLING_EVERY


def _checked_at(last: Optional[dict]) -> Optional[float]:
    from neuromirror.util.dates import parse_iso

    when = parse_iso(((last or {}).get("verify") or {}).get("at"))
    return when.timestamp() if when is not None else None


def drill_after_sync(mirror: Mirror, entry: SourceConfig, source: Source, report: SyncReport) -> None:
    """``drill:`` of the entry rehearsed when due (:func:`neuromirror.restore.drills.drill_if_due`); its
    summary in the run's report (``report["drill"]``). A failed drill is not a failed sync: it is logged."""
    if entry.drill is None or report.outcome not in ("ok", "unchanged"):
        return

    outcome = mirror.drill_when_due(source.id, to=entry.drill.to, every=entry.drill.every, sample=entry.drill.sample)
    if outcome is None:
        return
    mirror.records.record_in_run(source.id, outcome.summary(), field="drill")
    if outcome.result == "ok":
        log.info("%s: drill ok: %d objects restored into %s", source.id, outcome.report.objects, outcome.report.target)
    else:
        log.warning("%s: drill %s: %s", source.id, outcome.result, outcome.reason)


def run_policy(
    mirror: Mirror,
    sid: str,
    store_names: Sequence[str],
    policy: KeepPolicy,
    *,
    copies: Optional[int] = None,
    min_free: Any = None,
    covered_by: Sequence[str] = (),
    dask: Optional[str] = None,
) -> dict:
    """``neuromirror keep`` for one source as the policy says, into each store -- one call of
    :meth:`neuromirror.api.Mirror.keep`, on the worker's own mirror -- and the report's ``keep`` record.

    ``copies``: the wanted count the definition's ``copies:`` names, recorded for the source; None (none
    named): the recorded one (``keep --copies N``'s, or 1) is counted against and left as it is.

    A store that is down is in ``stores`` with its error (outcome ``error``: retried next cycle);
    ``copies`` has each version's count of verified copies, ``lags`` the keep lag of versions that
    got their last wanted copy in this run.  ``covered_by``: the definitions' ``covered_by:`` LISTs: a gap-fill in
    risk order, its plan and passes in the record's ``gap``.  ``dask``: the service's ``executor: {dask:
    ADDRESS}``, where the copies are made (``keep --dask``)."""
    from neuromirror.store.location import open_store

    targets = policy_versions(mirror, sid, policy)
    stores = [open_store(n, create=True) for n in store_names]  # the definition's stores: keep --to's
    result = mirror.keep(
        policy_specs(sid, targets, policy),
        stores,
        copies=copies,
        include=policy.include,
        exclude=policy.exclude,
        max_file_size=policy.max_file_size,
        budget=policy.budget,
        all_versions=policy.versions == "all",
        min_free=min_free,
        prune=policy.prune,
        covered_by=covered_by,
        dask=dask,
    )
    record = keep_record(result, stores, [f"{t.source}@{t.label}" for t in targets], policy.versions)
    if result.runs and result.runs[0].gap is not None:
        record["gap"] = result.runs[0].gap.to_json()
    if result.tasks is not None:  # on the cluster: how many tasks made the copies
        record["cluster_tasks"] = len(result.tasks)
    if policy.expire_after is not None:
        record["expiry"] = mirror.expiry(sid, policy.expire_after).to_json()
    return record


def policy_versions(mirror: Mirror, sid: str, policy: KeepPolicy) -> list[Version]:
    """The versions a keep policy names: ``published`` -- every published version (none: the latest state);
    ``all`` -- every recorded one; with ``expire_after``, every state holding an unkept pin on a noncurrent
    S3 version too."""

    targets = list(mirror.versions(sid, all_versions=policy.versions == "all", patterns=False))
    if policy.versions == "published":
        targets = [t for t in targets if t.kind == VersionKind.PUBLISHED] or targets[-1:]
    if policy.expire_after is not None:
        targets += _expiring(mirror, sid, targets, policy.expire_after)
    return targets


def policy_specs(sid: str, targets: Sequence[Version], policy: KeepPolicy) -> list[Spec]:
    """The specs naming exactly ``targets`` for :meth:`~neuromirror.api.Mirror.keep`: ``all`` -- the source
    (with ``all_versions``); a published version by its label (its current record, as the policy's); the
    latest state, when nothing is published, by the bare source; an older state by its commit."""
    archive, name = sid.split(":", 1)
    if policy.versions == "all":
        return [Spec(archive, name)]
    published = [t for t in targets if t.kind == VersionKind.PUBLISHED]
    chosen = [Spec(archive, name, t.label) for t in published] or [Spec(archive, name)]
    # nothing published: the bare source names its latest state, the first of targets
    named = {t.id for t in published} or {t.id for t in targets[:1]}
    return chosen + [Spec(archive, name, t.commit) for t in targets if t.id not in named]


def keep_record(result: StoresRun, stores: Sequence[Store], targets: Sequence[str], policy: str) -> dict:
    """The run report's ``keep`` record of a :class:`~neuromirror.keep.stores.StoresRun`: per store what it holds
    and copied, the failures (the first few named), the copies counted and the lags."""
    runs = result.runs
    first = runs[0]
    failed = [(r, v, n) for r in runs for v in r.versions for n in v.failed]
    down = [r for r in runs if r.error is not None]
    return {
        "store": stores[0].url,
        "policy": policy,
        "outcome": _outcome(runs, failed, down),
        "error": "; ".join(f"store {r.store} down: {r.error}" for r in down) or None,
        "versions": [v.label for v in first.versions] or list(targets),
        **_held(first.versions),
        "transferred": _transferred(runs),
        "skipped": sum(len(v.skipped) for v in first.versions),
        "recorded": sum(v.recorded for r in runs for v in r.versions),
        "failed": len(failed),
        "failures": _failures(failed),
        "stores": [_store_record(s, r) for s, r in zip(stores, runs)],
        "copies": copies_record(result.counts, result.copies),
        "unreachable": [x.to_json() for x in getattr(result, "lost", [])],  # stores whose copies did not count
        "lags": result.lags,
    }


def _held(versions: Sequence[Any]) -> dict[str, int]:
    """The files and bytes of these versions a store holds: kept by this run, or there already."""
    return {
        "files": sum(v.kept + v.already for v in versions),
        "bytes": sum(v.kept_bytes + v.already_bytes for v in versions),
    }


def _transferred(runs: Sequence[Any]) -> dict[str, int]:
    return {"files": sum(r.transferred for r in runs), "bytes": sum(r.transferred_bytes for r in runs)}


def _outcome(runs: Sequence[Any], failed: Sequence[Any], down: Sequence[Any]) -> str:
    """error: a store was down; failed: files failed; budget: the budget stopped a store's run; else ok."""
    if down:
        return "error"
    if failed:
        return "failed"
    return "budget" if any(r.budget_stopped for r in runs) else "ok"


def _failures(failed: Sequence[tuple[Any, Any, Any]]) -> list[dict]:
    """The first :data:`MAX_NOTES` files that failed: store, version, path, size and why."""
    return [
        {"store": r.store, "version": v.version, "path": n.path, "size": n.size, "why": n.why}
        for r, v, n in failed[:MAX_NOTES]
    ]


def _store_record(store: Any, r: Any) -> dict:
    return {
        "url": store.url,
        "name": r.name or None,
        "up": r.error is None,
        "error": r.error,
        **_held(r.versions),
        "transferred": {"files": r.transferred, "bytes": r.transferred_bytes},
        "failed": sum(len(v.failed) for v in r.versions),
        "prune": r.pruned.to_json() if r.pruned is not None else None,
    }


def _expiring(mirror: Mirror, sid: str, targets: Sequence[Version], expire_after: float) -> list[Version]:
    """The versions (beyond ``targets``) holding files pinned only by noncurrent S3 versions, not kept yet."""
    ids = mirror.expiry(sid, expire_after).version_ids
    have = {t.id for t in targets}
    rows = {r.id: r for r in mirror.versions(sid, patterns=False)}
    return [rows[i] for i in ids if i not in have and i in rows]


def rolling_check(
    mirror: Mirror, sid: str, entry: SourceConfig, *, since: Optional[float] = None, dask: Optional[str] = None
) -> dict:
    """This cycle's slice of ``verify --stores`` for the source (:meth:`neuromirror.api.Mirror.verify_stores`):
    the share of its stored copies whose last check is oldest, so that every copy is re-read within the period
    (``verify:``; default 30 days): the share of the period since the last check (``since``, epoch seconds),
    else one schedule interval's.
    Bad or missing copies are repaired and named in the record (and the log); ``dask``: read back there."""
    from neuromirror.config.model import VerifyPolicy

    policy = entry.verify or VerifyPolicy()
    span = max(time.time() - since, entry.schedule.interval or 0.0) if since is not None else entry.schedule.interval
    fraction = policy.slice_of(span)
    check = mirror.verify_stores(sid, fraction=fraction, dask=dask)  # verify --stores, this cycle's slice
    for f in check.findings:
        log.warning("%s: %s", sid, f.line())
    record = check.to_json()
    record["fraction"], record["at"] = fraction, now_z()
    if check.tasks is not None:  # the rows are the keep's business; the count says where the reads ran
        record["tasks"] = len(check.tasks)
    for name in ("bad", "missing", "unreadable"):
        record[name] = record[name][:MAX_NOTES]
    return record


def copies_record(counts: Sequence[Any], wanted: int) -> dict:
    """The versions' copy counts as the run's report keeps them (keys at risk: the first few named)."""
    versions = []
    for c in counts:
        j = c.to_json()
        j["at_risk"] = j["at_risk"][:MAX_NOTES]
        versions.append(j)
    return {"wanted": wanted, "versions": versions}


def keep_facts(records: Records) -> dict[str, dict]:
    """Per source that the service kept: ``last`` (the last run's ``keep`` record) and ``runs``
    (how many keep runs ended in each outcome: ok, budget, failed, error)."""
    out: dict[str, dict] = {}
    for sid, record in records.reports("keep"):
        facts = out.setdefault(sid, {"last": None, "runs": {}, "lag": None})
        facts["last"] = record
        outcome = str(record.get("outcome") or "error")
        facts["runs"][outcome] = facts["runs"].get(outcome, 0) + 1
    for lag in records.lags():  # oldest first: the last one per source stays
        if lag["source"] in out:
            out[lag["source"]]["lag"] = lag
    return out


#: the archive drops an unreferenced blob 7 days after it is replaced: a keep lag near it is a warning
ARCHIVE_WINDOW = 7 * 86400.0
LAG_WARNING = 5 * 86400.0


def pending_lag(record: Optional[dict], now: float) -> Optional[float]:
    """How long the oldest version of the last keep record still short of its wanted copies has waited."""
    from neuromirror.util.dates import parse_iso

    waits = []
    for v in ((record or {}).get("copies") or {}).get("versions", []):
        if not v.get("ok") and (seen := parse_iso(v.get("seen"), strict=True)) is not None:
            waits.append(now - seen.timestamp())
    return max(waits, default=None)

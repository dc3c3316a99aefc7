"""Drills: a sample of the kept objects restored into a scratch target, every stored copy of each checked.

An operator trusts a backup whose restores are rehearsed.  ``restore --drill`` picks ``--sample N``
objects at random among those some store holds (a fresh sample each drill, so that drills cover the
whole over time), restores them into a fresh ``neuromirror-drill-<time>/`` under the scratch target —
reading and hashing *every* store's copy of each, so that a bad copy is found even where a good one
would have been read first — and removes the scratch objects again.  A bad copy is named, its good
check forgotten in the index (``status --copies`` no longer counts it; ``verify --stores`` repairs it)
and the object restored from another store.  The result (objects, bytes, rate, mismatches, failures)
is recorded in the index's ``drills`` table, which ``status``, the status page and ``/metrics`` read
(:func:`last_drills`: the last drill of each source; one that is not ok says why, :func:`reason_of`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
from typing import TYPE_CHECKING, Optional, Sequence

from neuromirror.index.rows import DrillRow, Version
from neuromirror.index.store_checks import drill_rows, drill_scopes, forget, record_drill
from neuromirror.restore.copies import Copies
from neuromirror.restore.objects import ArchiveObject
from neuromirror.restore.report import DrillRun, RestoreReport
from neuromirror.restore.run import RestoreOptions, plan, restore_objects
from neuromirror.restore.targets import DirTarget, S3Target, open_target
from neuromirror.util.dates import iso_z
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.index.db import Index

DEFAULT_SAMPLE = 20


def result_of(report: RestoreReport) -> str:
    """``ok``; ``mismatch`` (a bad copy found, the object restored from another); ``failed`` (not restored)."""
    if report.failed or report.error:
        return "failed"
    return "mismatch" if report.bad_copies else "ok"


def reason_of(report: dict) -> Optional[str]:
    """Why a drill (its report's JSON) was not ok, in one line: the error that stopped it (the scratch target
    missing...), else the first object it could not restore, else the first bad copy; None when ok."""
    failed, bad = report.get("failed") or [], report.get("bad_copies") or []
    if report.get("error"):
        return str(report["error"])
    if failed:
        f = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return f"{len(failed)} object(s) not restored: {f.get('archive_key') or f.get('path')}: {f.get('why')}{more}"
    if bad:
        return f"{len(bad)} bad store copies: {bad[0]['key']} in {bad[0]['store']}: {bad[0]['why']}"
    return None


def scratch(name: str, stamp: str) -> S3Target | DirTarget:
    """A fresh place under the scratch target for this drill."""
    sub = f"neuromirror-drill-{stamp}"
    return open_target(name.rstrip("/") + "/" + sub)


def _clear(target: S3Target | DirTarget) -> None:
    if isinstance(target, DirTarget):
        shutil.rmtree(target.root, ignore_errors=True)
        return
    client = target.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=target.prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=target.bucket, Delete={"Objects": keys, "Quiet": True})


def drill(
    mirror: Datasets,
    versions: Sequence[Version],
    to: str,
    *,
    sample: int = DEFAULT_SAMPLE,
    jobs: int = 4,
    scope: str = "",
    rng: Optional[random.Random] = None,
) -> RestoreReport:
    """Restore a sample of ``versions``' kept objects into a scratch place under ``to``; the report, recorded."""
    started = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started)) + f"-{random.randrange(1 << 16):04x}"
    target = scratch(to, stamp)
    report = RestoreReport(target.url, drill=True)
    objs = plan(mirror, versions, report)
    report.skipped = []  # what has no archive key is restore's news, not a drill's
    copies = Copies(mirror.index)
    copies.prime([o.key for o in objs])
    kept = [o for o in objs if copies.checks.get(o.key)]
    chosen = (rng or random.Random()).sample(kept, min(sample, len(kept)))
    try:
        target.check()  # a scratch bucket that is not there: one reason, not one failure per object
        restore_objects(mirror, chosen, target, RestoreOptions(jobs=jobs, every=True), report, copies)
    except Exception as exc:  # the scratch target missing or down: the drill failed, said so
        report.error = one_line(exc, 300, joined=True)
    finally:
        try:
            _clear(target)
        except Exception:  # what is left in scratch is harmless; the next drill uses a fresh place
            pass
    by_store: dict[str, list[str]] = {}
    for b in report.bad_copies:
        if b.uuid:
            by_store.setdefault(b.uuid, []).append(b.key)
    for uuid, keys in by_store.items():
        forget(mirror.index, uuid, keys)
    sources = sorted({v.source for v in versions})
    if scope or len(sources) < 2:
        record(mirror.index, report, scope or ", ".join(sources), started)
    else:  # a drill over several sources: each source's part filed under it, never another's mismatches
        for source in sources:
            record(mirror.index, part_of(report, source, chosen), source, started)
    return report


def part_of(report: RestoreReport, source: str, chosen: Sequence[ArchiveObject]) -> RestoreReport:
    """The part of a drill over several sources that checked ``source``'s objects: its versions, objects, bad
    copies and failures (an error that stopped the whole drill is each source's)."""
    mine = [o for o in chosen if o.source == source]
    keys = {o.key for o in mine}
    failed = _failed_of(report, mine)
    unwritten = {n.archive_key for n in failed}
    written = [o for o in mine if o.archive_key not in unwritten]
    return dataclasses.replace(
        report,
        versions=[v for v in report.versions if v.get("source") == source],
        objects=len(mine),
        bytes=sum(o.size or 0 for o in mine),
        written=len(written),
        written_bytes=sum(o.size or 0 for o in written),
        failed=failed,
        bad_copies=[b for b in report.bad_copies if b.key in keys],
    )


def _failed_of(report: RestoreReport, mine: list[ArchiveObject]) -> list:
    """The objects of ``mine`` the drill could not restore."""
    keys, archive_keys = {o.key for o in mine}, {o.archive_key for o in mine}
    return [n for n in report.failed if n.archive_key in archive_keys or n.key in keys]


def drill_if_due(
    mirror: Datasets, source: str, to: str, every: float, sample: int = DEFAULT_SAMPLE, now: Optional[float] = None
) -> Optional[DrillRun]:
    """The service's drill of ``source`` (``drill:`` in its definition) when its last one ended ``every``
    seconds ago or more (or never ran), None when none was due (``.summary()`` is what the run's report holds)."""
    from neuromirror.dataset.versions import select_versions
    from neuromirror.spec import parse_spec

    last = last_drill(mirror.index, source)
    now = time.time() if now is None else now
    if last is not None and now - float(last["finished"]) < every:
        return None
    try:
        versions = select_versions(mirror.index, [parse_spec(source, allow_version=False)])
        done = drill(mirror, versions, to, sample=sample, scope=source)
    except Exception as exc:  # the index or a dataset unreadable: the drill failed, said so (and recorded)
        done = RestoreReport(to, drill=True, error=one_line(exc, 300, joined=True))
        record(mirror.index, done, source, now)
    return DrillRun(done, result_of(done), reason_of(done.to_json()))


def record(index: Index, report: RestoreReport, scope: str, started: float) -> None:
    """The drill's result in the index's ``drills`` table (nothing on a read-only index)."""
    record_drill(
        index,
        started=started,
        finished=time.time(),
        scope=scope,
        target=report.target,
        objects=report.objects,
        size=report.written_bytes,
        seconds=report.seconds,
        mismatches=len(report.bad_copies),
        failed=len(report.failed),
        result=result_of(report),
        report=json.dumps(report.to_json()),
    )


def last_drill(index: Index, scope: Optional[str] = None) -> Optional[dict]:
    """The newest drill recorded (of ``scope``: a source id, as the service records them), or None.

    Read only (no table made): ``status``, every page and scrape call it, also while a sync writes."""
    rows = _shaped(drill_rows(index, scope=scope, limit=1))
    return rows[0] if rows else None


def last_drills(index: Index) -> dict[str, dict]:
    """The last drill of each source (source id -> :func:`last_drill`'s record), by source id: a drill of
    several sources (``restore --drill`` with no or several SPECs) is the last of each of them, so one
    source's failed drill stays shown when another drills fine later."""
    newest: dict[str, int] = {}
    for i, scope in drill_scopes(index):
        for source in (scope or "").split(", "):
            newest.setdefault(source, i)
    ids = sorted(set(newest.values()))
    by_id = {r["id"]: r for r in _shaped(drill_rows(index, ids=ids))} if ids else {}
    return {source: {**by_id[i], "source": source} for source, i in sorted(newest.items()) if i in by_id}


def _shaped(rows: list[DrillRow]) -> list[dict]:
    """The index's drill rows as ``status`` and the pages show them: the first bad copies, the reason, the age."""
    out = []
    for drill in rows:
        d = dict(drill.columns)
        d["bad_copies"] = drill.report.get("bad_copies", [])[:20]
        d["reason"] = reason_of(drill.report) if d["result"] != "ok" else None
        d["age_s"] = round(time.time() - float(d["finished"]), 1)
        d["finished_at"] = iso_z(float(d["finished"]))
        d["id"] = drill.id
        out.append(d)
    return out

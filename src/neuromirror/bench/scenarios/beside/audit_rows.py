"""The index of ``audit-scale``: the rows of two real syncs, copied to N dandisets through the index's own writers.

Syncing 2,000 dandisets cold takes ~15 minutes here (0.42 s each, ``archive-quiet``), and the audit reads the
index alone, so two template dandisets are synced for real from the DANDI stand-in, twice, as
``tests/test_audit.py`` does (:mod:`neuromirror.standins.dandi.planted`): ``wrong`` with the seven kinds the
audit covers planted, a Zarr rewritten in place between the syncs, and ``clean``.  Each template's
recorded state (its source row, its versions with their file lists, its runs with their reports, its pending
items) is then written again under other dandiset ids through :class:`~neuromirror.index.db.Index`'s writers,
the ones a sync calls (``record_version``, ``start_run``/``end_run``, ``set_pending``): the rows are what a
sync writes, the dandiset id changed.  Each dandiset's run history is grown to ``runs`` with the newest run's
report again (a service's no-change runs; the retention keeps 500 a source by default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Optional

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.standins.dandi.planted import plant, rewrite

if TYPE_CHECKING:
    from neuromirror.index.db import Index


@dataclass
class Template:
    """One synced dandiset's recorded state, read once, written again under other ids."""

    source: Any  # SourceRow
    versions: list[tuple[Any, list[Any]]]  # (Version, its files)
    runs: list[dict]  # oldest first
    pending: list[dict]


def sync_templates(archives: Archives, root: Path) -> tuple[str, str]:
    """``wrong`` and ``clean`` planted and synced twice by ``neuromirror sync``, a Zarr rewritten in place
    between the syncs (neither the asset's nor the draft's ``modified`` moves); their source ids."""
    d = archives.dandi
    planted = plant(d)
    sids = [f"dandi:{planted.wrong}", f"dandi:{planted.clean}"]
    for k in range(2):
        if k:
            rewrite(d, planted)
        cmd = [*neuromirror_cmd(), "--root", str(root), "sync", *sids, "--dandi-api", d.api_url, "--json", "-q"]
        r = run_measured(cmd, env=child_env(), check=False)
        if r["rc"] not in (0, 3):  # 3: synced, items refused (the planted ones)
            raise RuntimeError(f"audit-scale: template sync failed ({r['rc']}): {r['stderr'][-1500:]!r}")
    return sids[0], sids[1]


def read_template(index: Index, sid: str) -> Template:
    versions = [(v, list(index.version_files(v.id))) for v in index.versions(sid)]
    runs = list(reversed(index.runs(sid, limit=10_000)))
    return Template(index.source(sid), versions, runs, index.pending(sid))


def write_copy(index: Index, t: Template, dst: Optional[str], runs: int) -> None:
    """``t`` recorded again as source ``dst`` (None: only its run history grown to ``runs``)."""
    old = t.source.id.split(":", 1)[1]
    new = dst.split(":", 1)[1] if dst else old

    def sub(text: Optional[str]) -> Optional[str]:
        return text.replace(old, new) if text else text

    history = list(t.runs) if dst else []
    history += [t.runs[-1]] * max(0, runs - len(t.runs))
    if dst:
        s = t.source
        index.ensure_source(dst, s.archive, new, sub(s.dataset) or "", json.loads(sub(s.meta) or "{}"))
        for v, files in t.versions:
            index.record_version(
                dst, label=v.label, kind=v.kind.value, commit=v.commit, tag=v.tag, remote_modified=v.remote_modified,
                date=v.date, entries=files, doi=sub(v.doi), citation=sub(v.citation),
                meta=json.loads(sub(v.meta) or "{}"), synced_at=v.synced_at,
            )  # fmt: skip
        index.set_pending(dst, [SimpleNamespace(**p) for p in t.pending])
    with index.transaction():
        for r in history:
            rid = index.start_run(dst or t.source.id, r["trigger"] or "cli")
            index.end_run(rid, json.loads(sub(r["report"]) or "{}"))


def build(archives: Archives, root: Path, n: int, planted: int, runs: int) -> tuple[list[str], list[str]]:
    """The index under ``root``: ``n`` dandisets, ``planted`` of them wrong; (wrong ids, clean ids)."""
    from neuromirror.index.db import Index

    wrong, clean = sync_templates(archives, root)
    say(f"audit-scale: templates {wrong} (wrong) and {clean} (clean) synced; copying to {n} dandisets ...")
    index = Index(root / ".neuromirror" / "index.sqlite")
    try:
        templates = {wrong: read_template(index, wrong), clean: read_template(index, clean)}
        ids = {wrong: [wrong], clean: [clean]}
        for k in range(max(0, n - 2)):
            tid = wrong if k < planted - 1 else clean
            dst = f"dandi:{800000 + k}"
            write_copy(index, templates[tid], dst, runs)
            ids[tid].append(dst)
        for t in templates.values():
            write_copy(index, t, None, runs)
    finally:
        index.close()
    return ids[wrong], ids[clean]

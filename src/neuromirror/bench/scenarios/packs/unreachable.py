"""``unreachable-store`` (issue 76): a clone's ``datalad get`` of lost files with one reachable and one unreachable
packed store, against ``git annex get --from`` the reachable one.

Why: a clone enabled every packed store its dataset records, and one it could not reach answered "holds no copy"
per key, which git-annex retried (``annex.retry=3``): 3.1-3.4 s a file.  The remote now refuses to be enabled
where its store is not reachable, and a ``pack+file://`` store that goes away after enabling is skipped by
git-annex (:mod:`neuromirror.remotes.pack`).

The 24 blobs of ``lost-get`` (4 kB to 1 MiB) are published on the stand-in archive, synced into one root and kept
into two ``pack+file://`` stores, ``near`` and ``far`` (1 MiB packs); then every S3 version of the blobs is
deleted (the mirror never told).  Each get is in a fresh ``datalad clone`` (the version checked out,
``annex.security.allowed-ip-addresses all``):

* ``annex``: ``git annex get --from NEAR`` of the 24 files (both stores there): the reference;
* ``gone-before``: the far store's directory moved away before the clone (a disk mounted elsewhere): ``datalad get``;
* ``gone-after``: the clone made with both stores there, the far one preferred (``annex-cost 100``: tried first)
  and then moved away: ``datalad get``;
* ``both``: both stores there: ``datalad get`` (DataLad's own cost over git-annex's, for reading the others).

The kinds alternate for ``--unreachable-rounds`` rounds (who goes first too); each row carries the kind's median
wall, DataLad's start-up (``datalad --version`` in the same clone, just after) and the keys left missing;
``x_annex`` = (wall - start-up) / the ``annex`` kind's wall: the issue's target, "<= 1.5x ``git annex get
--from`` the reachable one plus DataLad's own start-up"; ``x_both`` = the same over the ``both`` kind's: what the
unreachable store itself costs a ``datalad get`` (1.0: nothing), beside DataLad's own cost over git-annex's
(the ``both`` row's ``x_annex``: its floor, ``lost-get``'s ``ratio_floor``).
"""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import neuromirror_cmd, run_measured, say
from neuromirror.bench.scenarios.lost.lost_get import BLOBS, _present, blobs_dandiset
from neuromirror.bench.scenarios.packs.restore import blob_keys, lose
from neuromirror.bench.scenarios.restore import _env
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported

KINDS = ("annex", "gone-before", "gone-after", "both")
TARGETS = (
    ("unreachable-store-gone-before", "x_annex", 1.5, "max", "unreachable store (never reachable here): datalad get over git annex get --from the reachable one, beyond start-up"),
    ("unreachable-store-gone-after", "x_annex", 1.5, "max", "unreachable store (gone after enabling): datalad get over git annex get --from the reachable one, beyond start-up"),
    *[(f"unreachable-store-{k}", "missing", 0, "max", f"unreachable store, {k}: keys left without content") for k in KINDS],
)  # fmt: skip


class _World:
    """The lost dandiset's dataset and version, and its two stores (their remote names)."""

    def __init__(self, archives: Archives, work: Path, startup: float, env: dict) -> None:
        d = archives.dandi
        when = datetime(2026, 3, 3, tzinfo=timezone.utc)
        ident, blobs = blobs_dandiset(archives, "unreachable packed store", when)
        self.version = d.publish(ident, when=when + timedelta(hours=1))
        root = work / "root-unreachable-store"
        run_sync("unreachable-store-sync", BLOBS, root, f"dandi:{ident}", ["--dandi-api", d.api_url], archives, startup)
        self.ds, self.paths = root / "dandi" / ident, sorted(blobs)
        self.near, self.far, self.moved = (
            work / "unreachable-near",
            work / "unreachable-far",
            work / "unreachable-moved",
        )
        for store in (self.near, self.far):
            keep = ["keep", f"dandi:{ident}@{self.version}", "--to", f"pack+file://{store}", "--pack-size", "1M", "-q"]
            run_measured([*neuromirror_cmd(), "--root", str(root), *keep], env=env)
        self.names = {s: json.loads((s / ".neuromirror-store.json").read_text())["name"] for s in (self.near, self.far)}
        say(f"unreachable-store: deleted {lose(archives, blob_keys(archives, ident))} S3 versions of the 24 blobs")

    def far_away(self, away: bool) -> None:
        """The far store's directory moved away (a disk unmounted), or back."""
        if away:
            self.far.rename(self.moved)
        elif self.moved.exists():
            self.moved.rename(self.far)


def bench_unreachable_store(archives: Archives, work: Path, startup: float, rounds: int) -> list[dict]:
    """The scenario's rows (see the module), judged."""
    env = _env(archives)
    w = _World(archives, work, startup, env)
    clones = itertools.count()

    def get(kind: str) -> dict:
        clone = work / f"unreachable-clone-{next(clones)}"
        w.far_away(kind == "gone-before")
        try:
            run_measured(["datalad", "clone", str(w.ds), str(clone)], env=env)
            for cmd in (["config", "annex.security.allowed-ip-addresses", "all"], ["checkout", "-q", w.version]):
                subprocess.run(["git", *cmd], cwd=clone, check=True, capture_output=True)
            if kind == "gone-after":
                cfg = [f"remote.{w.names[w.far]}.annex-cost", "100"]
                subprocess.run(["git", "config", *cfg], cwd=clone, check=True)
                w.far_away(True)
            get = ["git", "annex", "get", "--from", w.names[w.near]] if kind == "annex" else ["datalad", "get"]
            r = run_measured([*get, "--", *w.paths], env=env, cwd=clone, check=False)
            _got, missing = _present(clone, *w.paths)
            out = {"wall_s": round(r["wall"], 3), "cpu_s": round(r["cpu"], 2), "missing": missing}
            out["startup_s"] = round(run_measured(["datalad", "--version"], env=env, cwd=clone)["wall"], 3)
            if r["rc"]:
                out["error"] = r["stderr"].decode(errors="replace").strip()[-300:]
            return out
        finally:
            w.far_away(False)
            shutil.rmtree(clone, ignore_errors=True)

    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
    for i in range(rounds):
        for kind in KINDS if i % 2 == 0 else tuple(reversed(KINDS)):
            say(f"unreachable-store: round {i + 1} of {rounds}: {kind} ...")
            runs[kind].append(get(kind))
            say(f"unreachable-store {kind}: {runs[kind][-1]}")
    rows = [_row(kind, r) for kind, r in runs.items()]
    annex, both = rows[0]["wall_s"], rows[-1]["wall_s"] - rows[-1]["startup_s"]
    for res in rows:
        beyond = res["wall_s"] - res["startup_s"]
        res.update(annex_s=annex, x_annex=round(beyond / annex, 2) if annex > 0 else None)
        res["x_both"] = round(beyond / both, 2) if both > 0 else None  # what the far store costs a datalad get
    judge(rows, TARGETS)
    for store in (w.near, w.far):
        shutil.rmtree(store, ignore_errors=True)
    return rows


def _row(kind: str, runs: list[dict]) -> dict:
    """A kind's medians over its rounds (wall, CPU, start-up), the most keys missing, every round."""

    def median(f: str) -> float:
        return round(statistics.median(r[f] for r in runs), 3)

    res: dict[str, Any] = {"scenario": f"unreachable-store-{kind}", "n": BLOBS, "rounds": runs}
    res.update(wall_s=median("wall_s"), cpu_s=median("cpu_s"), startup_s=median("startup_s"))
    res["missing"] = max(r["missing"] for r in runs)
    errors = [r["error"] for r in runs if r.get("error")]
    if errors:
        res["error_seen"] = errors[0]
    return res


def unreachable_store_targets(results: list[dict]) -> list[dict[str, Any]]:
    """:data:`TARGETS` as rows of the run's target report."""
    out: list[dict[str, Any]] = []
    for result in results:
        if str(result.get("scenario", "")).startswith("unreachable-store-"):
            out += reported(result, f"{result['n']} files, median of the rounds, two pack+file:// stores")
    return out

"""``publish-github`` (issue 78): a superdataset's dandisets published to a fresh GitHub organisation, beside the
same publish into pre-made bare repositories.

D stand-in dandisets (``--publish-dandisets``, default 200; two small blobs each) are synced (``sync 'dandi:*'``),
then published by ``neuromirror publish 'dandi:*'`` in a subprocess, as a user runs it:

1. ``publish-github-bare``: ``--to 'BASE/{slug}.git'`` into bare repositories made beforehand (``git init
   --bare``; a URL template needs them made), the wall the GitHub side is held to; its remote is named
   ``bare`` (``--name``), so the GitHub publish after it finds no remote of its own, as a first publish;
2. ``publish-github``: ``--to github:ORG --github-api URL`` against the project's GitHub stand-in
   (:class:`~neuromirror.standins.github.server.GitHubStandIn`, on loopback, token from ``GITHUB_TOKEN``): wall,
   API calls per endpoint (the stand-in's ``calls``), creates per repository;
3. ``publish-github-nochange``: again with nothing new: its API calls;
4. ``publish-github-retitled``: after one dandiset's title changed upstream and was resynced: its write calls.

Steps 1 and 2 alternate over :data:`ROUNDS` rounds, each into fresh repositories; their rows are the medians
(``walls_s``, ``cpus_s``: each round's; ``x_bare_rounds``: each round's ratio).

Targets: GitHub <= 1.2x the bare repositories' wall, exactly one create per repository, 0 calls on the rerun, 1 edit.

The stand-in runs in a process of its own (:class:`StandInProcess`): ``cpu_s`` of each row is the publish's own
tree (the client and its git children; the bare side's includes the receiving ``git receive-pack``, which runs on
this host), ``standin_cpu_s`` GitHub's side (its API and its ``git http-backend`` children), which github.com
spends on its own machines but here shares this host's cores with the client and so is in the wall.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from neuromirror.bench.archives import Archives, direct_puts, put_empty_blob
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.moto_patch import moto_bucket_backend
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge

TARGETS = (
    ("publish-github", "x_bare", 1.2, "max", "publish-github: wall over publish to pre-made bare repositories"),
    ("publish-github", "creates_per_repo", 1.0, "max", "publish-github: creates per repository (exactly 1)"),
    ("publish-github", "creates_short", 0, "max", "publish-github: repositories not created (exactly 1 each)"),
    ("publish-github-nochange", "api_calls", 0, "max", "publish-github rerun with nothing new: API calls"),
    ("publish-github-retitled", "edits", 1, "max", "publish-github after a changed title: write calls (1 PATCH)"),
    ("publish-github-retitled", "patches", 1, "min", "publish-github after a changed title: PATCH calls"),
)
ORG = "bench"
#: cold publishes to each side, alternating; the rows are the medians
ROUNDS = 3
FIRST = 780_000


class StandInProcess:
    """The GitHub stand-in served by a child process (``python -m`` this module): its CPU is not the publish's
    (nor this process's: its ``git http-backend`` children are reaped by it, not by the bench), its counts are
    read over HTTP (``GET /_calls``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._proc: Optional[subprocess.Popen] = None
        self.api_url = self.token = ""

    def __enter__(self) -> StandInProcess:
        cmd = [sys.executable, "-m", __name__, str(self.root)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env())
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode().split()
        if len(line) != 2:
            raise RuntimeError(f"the GitHub stand-in did not start ({self._proc.wait(30)})")
        self.api_url, self.token = line
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.communicate(timeout=60)  # stdin closed: it stops

    def calls(self) -> dict[str, int]:
        from neuromirror.network.identity import session

        with session() as http:
            return dict(http.get(f"{self.api_url}/_calls", timeout=30).json())

    def cpu(self) -> float:
        """Seconds of CPU the stand-in and its reaped children spent so far."""
        import psutil

        assert self._proc is not None
        t = psutil.Process(self._proc.pid).cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def repos(self) -> int:
        return sum(1 for _ in (self.root / ORG).glob("*.git"))


def _serve(root: Path) -> None:
    """The child's side of :class:`StandInProcess`: serve until stdin closes."""
    from neuromirror.standins.github.server import GitHubStandIn

    with GitHubStandIn(root) as gh:
        print(gh.api_url, gh.token, flush=True)
        sys.stdin.read()


def _dandisets(archives: Archives, n: int, when: datetime) -> list[str]:
    d = archives.dandi
    be = moto_bucket_backend(d.bucket)
    ids = []
    with direct_puts(archives):
        for i in range(n):
            ident = d.create_dandiset(identifier=f"{FIRST + i}", name=f"publish-github {i}", created=when)
            for aid in d.add_synthetic_assets(ident, 2, when=when):
                put_empty_blob(be, d, aid)
            ids.append(ident)
    return ids


def _publish(name: str, root: Path, to: list[str], env: dict, n: int) -> dict:
    say(f"{name}: neuromirror publish 'dandi:*' {' '.join(to)} ...")
    r = run_measured([*neuromirror_cmd(), "--root", str(root), "publish", "dandi:*", *to, "--json"], env=env)
    report = json.loads(r["stdout"])
    if not report.get("ok"):
        raise RuntimeError(f"{name}: publish failed: {report.get('errors')}")
    res = {
        "scenario": name,
        "n": n,
        "wall_s": round(r["wall"], 3),
        "cpu_s": round(r["cpu"], 2),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "published": len(report["published"]),
    }
    say(f"{name}: {res['wall_s']} s wall for {res['published']} datasets")
    return res


def _bare(root: Path, base: Path, ids: list[str], n: int) -> dict:
    """Bare repositories made beforehand, one per dandiset, then the URL-template publish into them."""
    base.mkdir(parents=True, exist_ok=True)
    for ident in ids:
        subprocess.run(["git", "init", "-q", "--bare", str(base / f"dandi-{ident}.git")], check=True)
    to = ["--to", f"{base}/{{slug}}.git", "--name", "bare"]
    return dict(_publish("publish-github-bare", root, to, child_env(), n), load=os.getloadavg()[0])


def _on_github(gh: StandInProcess, name: str, root: Path, n: int) -> dict:
    before, cpu = gh.calls(), gh.cpu()
    env = {**child_env(), "GITHUB_TOKEN": gh.token}
    res = _publish(name, root, ["--to", f"github:{ORG}", "--github-api", gh.api_url], env, n)
    calls = {k: v - before.get(k, 0) for k, v in gh.calls().items() if v > before.get(k, 0)}
    writes = sum(v for k, v in calls.items() if not k.startswith("GET "))
    res.update(calls=calls, api_calls=sum(calls.values()), edits=writes, standin_cpu_s=round(gh.cpu() - cpu, 2))
    return dict(res, load=os.getloadavg()[0])


def _cold_pairs(work: Path, root: Path, ids: list[str], n: int, stack: ExitStack) -> tuple[dict, dict, Any]:
    """:data:`ROUNDS` cold publishes to each side, alternating (bare, GitHub, bare, ...), each into fresh
    repositories (a new directory; a new stand-in, a fresh organisation): the medians' rows, and the last round's
    stand-in, open for the reruns.  Why rounds: the shared host's load moves within a minute."""
    bares, colds, gh = [], [], None
    for i in range(ROUNDS):
        bares.append(_bare(root, work / f"publish-github-bare-{i}", ids, n))
        gh = stack.enter_context(StandInProcess(work / f"publish-github-standin-{i}"))
        cold = _on_github(gh, "publish-github", root, n)
        creates, repos = cold["calls"].get("POST /orgs/{org}/repos", 0), gh.repos()
        cold.update(creates=creates, creates_per_repo=round(creates / max(repos, 1), 3), repos=repos)
        colds.append(dict(cold, creates_short=n - creates))
    bare, cold = (sorted(rows, key=lambda r: r["wall_s"])[len(rows) // 2] for rows in (bares, colds))
    pairs = [round(c["wall_s"] / b["wall_s"], 2) for b, c in zip(bares, colds)]
    bare = dict(bare, walls_s=[b["wall_s"] for b in bares], cpus_s=[b["cpu_s"] for b in bares])
    cold = dict(cold, walls_s=[c["wall_s"] for c in colds], cpus_s=[c["cpu_s"] for c in colds], x_bare_rounds=pairs)
    cold.update(
        creates_per_repo=max(c["creates_per_repo"] for c in colds),
        creates_short=max(c["creates_short"] for c in colds),
        standin_cpus_s=[c["standin_cpu_s"] for c in colds],
        x_bare=round(cold["wall_s"] / bare["wall_s"], 2),
        x_bare_cpu=round(statistics.median(cold["cpus_s"]) / max(statistics.median(bare["cpus_s"]), 0.01), 2),
    )
    return bare, cold, gh


def bench_publish_github(
    archives: Archives, work: Path, startup: float, n: int = 200, keep: bool = False
) -> list[dict]:
    """The four rows of the scenario (see the module), judged."""
    when = datetime(2025, 9, 1, tzinfo=timezone.utc)
    ids = _dandisets(archives, n, when)
    d = archives.dandi
    root = work / "root-publish-github"
    api = ["--dandi-api", d.api_url]
    sync = run_sync("publish-github-sync", 2 * n, root, "dandi:*", api, archives, startup)
    datasets = sum(1 for _ in (root / "dandi").iterdir() if _.is_dir())
    with ExitStack() as stack:
        bare, cold, gh = _cold_pairs(work, root, ids, datasets, stack)
        out = [bare, dict(cold, sync_s=sync["wall_s"])]
        out.append(_on_github(gh, "publish-github-nochange", root, datasets))
        d.set_metadata(ids[0], {"name": "publish-github 0, retitled"})
        run_sync("publish-github-resync", 2, root, f"dandi:{ids[0]}", api, archives, startup)
        retitled = _on_github(gh, "publish-github-retitled", root, datasets)
        retitled["patches"] = retitled["calls"].get("PATCH /repos/{owner}/{repo}", 0)
        out.append(retitled)
    for r in out:
        r["note"] = f"{datasets} dandisets, GitHub stand-in beside pre-made bare repositories in one run"
    out[1]["note"] += f"; medians of {ROUNDS} alternating rounds"
    judge(out, TARGETS)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
        for i in range(ROUNDS):
            shutil.rmtree(work / f"publish-github-bare-{i}", ignore_errors=True)
            shutil.rmtree(work / f"publish-github-standin-{i}", ignore_errors=True)
    archives.drop_objects(d.bucket)
    return out


def bench(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    return bench_publish_github(archives, work, startup, int(args.publish_dandisets), bool(args.keep))


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))

"""The sync's hot path has a budget (issue 40): the work of a small fixed sync, counted, may not grow.

Each feature added to the sync was right on its own, and together they tripled its CPU without a
test noticing.  Time is no guard on a shared machine; what a sync *does* is: processes started
(git, git-annex, DataLad), fsyncs, files opened for writing, renames, symlinks, requests to the
archive per object, git objects written.  A stand-in dandiset of a few Zarrs (one past
``DIRECT_MAX``, set to 1,000 by ``NEUROMIRROR_ZARR_DIRECT_MAX``, so the streamed commit runs too) and blobs is mirrored cold and resynced with no
change, as a user runs it (``python -m neuromirror sync``, a process of its own), with

* ``NEUROMIRROR_COUNTS`` (:mod:`neuromirror.util.counts`): what neuromirror's own processes did;
* ``GIT_TRACE2_EVENT``: every git process, including the ones git-annex starts;
* the stand-ins' request logs (the DANDI API and S3);
* the objects in every dataset's ``.git/objects``.

and each count is compared with ``tests/budgets.json``.  A count over its budget fails with its
name, the budget and what it was; a count well under its budget says so, so that the budget is
tightened with the change that earned it (``NEUROMIRROR_BUDGET_REPORT=1`` prints every count;
``NEUROMIRROR_BUDGET_TREE=/path/to/other/src`` counts another commit's sync the same way).
The budgets are those of the release before issue 40's regression or tighter.  Where ``strace``
is installed, the fsync/syncfs calls of the whole process tree (git's and git-annex's included)
are budgeted too; CI without it still has every other count.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Optional

import pytest

from helpers.dandi_full import T0, user_env
from neuromirror.util import counts as nm_counts

BUDGETS = Path(__file__).with_name("budgets.json")
ZARRS = {"sub-01/sub-01_small.ome.zarr": 20, "sub-02/sub-02_small.ome.zarr": 20, "sub-03/sub-03_large.ome.zarr": 1100}
BLOBS = 4
OBJECTS = sum(ZARRS.values()) + BLOBS
SYNC_SYSCALLS = "fsync,fdatasync,syncfs,sync_file_range,msync"
#: what a checkout of annexed files costs: one symbolic link each (issue 40: a Zarr dataset is sparse)
LINK_SYSCALLS = "symlink,symlinkat"


def zarr_files(n: int, seed: int) -> dict[str, bytes]:
    files = {".zgroup": b'{"zarr_format": 2}', "0/.zarray": b'{"chunks": [1, 8], "zarr_format": 2}'}
    for i in range(n - 2):
        files[f"0/{i // 100}/{i % 100}"] = f"chunk {seed}.{i}\n".encode()
    return files


@pytest.fixture(scope="module")
def archive(s3):  # noqa: ANN001, ANN201
    from neuromirror.standins.dandi.server import DandiStandIn

    with DandiStandIn(s3, bucket="nm-hot-path") as a:
        ident = a.create_dandiset(name="hot path budget", created=T0)
        for i in range(BLOBS):
            a.put_asset(ident, f"sub-0{i}/sub-0{i}_blob.nwb", f"blob {i}\n".encode(), when=T0)
        for seed, (path, n) in enumerate(ZARRS.items()):
            a.add_zarr_asset(ident, path, zarr_files(n, seed), when=T0 + timedelta(seconds=seed))
        a.ident = ident
        yield a


def git_objects(root: Path) -> int:
    """Objects in every repository under ``root`` (loose and packed), as git counts them."""
    total = 0
    for git_dir in root.rglob(".git"):
        if not git_dir.is_dir():
            continue
        out = subprocess.run(
            ["git", "--git-dir", str(git_dir), "count-objects", "-v"], capture_output=True, text=True, check=True
        ).stdout
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        total += int(fields.get("count", 0)) + int(fields.get("in-pack", 0))
    return total


def git_starts(trace: Path) -> Counter[str]:
    """git processes a GIT_TRACE2_EVENT file saw start, by subcommand."""
    seen: Counter[str] = Counter()
    if trace.exists():
        for line in trace.read_text().splitlines():
            e = json.loads(line)
            if e.get("event") == "start":
                seen[nm_counts.process_name(e["argv"])] += 1
    return seen


def strace_calls(out: Path, syscalls: str) -> Optional[int]:
    """Calls of ``syscalls`` (comma-separated) in an ``strace -f -c`` summary (None: strace not used)."""
    if not out.exists():
        return None
    n = 0
    for line in out.read_text().splitlines():
        cols = line.split()
        if cols and cols[-1] in syscalls.split(",") and len(cols) >= 5:
            n += int(cols[3])
    return n


def counting_site(tmp: Path) -> Path:
    """A ``sitecustomize`` that counts any neuromirror (one without :mod:`neuromirror.util.counts` too)."""
    site = tmp / "counting-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('nm_counts', {nm_counts.__file__!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "mod.install()\n"
    )
    return site


def sync_counted(archive, s3, root: Path, tmp: Path, name: str) -> dict[str, float]:  # noqa: ANN001
    """One ``neuromirror sync`` of the stand-in dandiset, every count of its work."""
    counts_file, trace = tmp / f"{name}.counts", tmp / f"{name}.trace2"
    env = user_env(archive)
    env.update({nm_counts.ENV: str(counts_file), "GIT_TRACE2_EVENT": str(trace), "DANDI_CACHE": "ignore"})
    # the 1,100-object Zarr through the annex writer's stream, as the budgets were measured: with a sparse
    # checkout a new Zarr of up to 20,000 objects is written with its dataset, whose path the small ones take
    env["NEUROMIRROR_ZARR_DIRECT_MAX"] = "1000"
    cmd = [sys.executable, "-m", "neuromirror", "--root", str(root), "sync", f"dandi:{archive.ident}", "--json", "-q"]
    other = os.environ.get("NEUROMIRROR_BUDGET_TREE")
    if other:  # another commit's src/ (a budget measured for it): counted by this tree's counts module
        env["PYTHONPATH"] = os.pathsep.join([other, str(counting_site(tmp))])
    strace_out = tmp / f"{name}.strace"
    if shutil.which("strace") and os.environ.get("NEUROMIRROR_BUDGET_STRACE", "1") == "1":
        cmd = ["strace", "-f", "-c", "-e", f"trace={SYNC_SYSCALLS},{LINK_SYSCALLS}", "-o", str(strace_out), *cmd]
    before_objects = git_objects(root) if root.exists() else 0
    archive.reset_request_log()
    s3_log = s3.log_requests(True)
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        s3.log_requests(False)
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads(p.stdout)
    assert report["outcome"] in ("ok", "unchanged"), report
    own = nm_counts.read(str(counts_file))
    git = git_starts(trace)
    got: dict[str, float] = {
        "processes": own.get("processes", 0),
        "git processes incl. git-annex's (trace2)": sum(git.values()),
        "git-annex processes": sum(v for k, v in own.items() if k.startswith("process:git-annex")),
        "datalad processes": sum(v for k, v in own.items() if k.startswith("process:datalad")),
        "neuromirror processes": own.get("neuromirror-processes", 0),
        "files written": own.get("files-written", 0),
        "renames": own.get("rename", 0),
        "symlinks (python)": own.get("symlink", 0),
        "directories made": own.get("mkdir", 0),
        "fsync (python)": own.get("fsync", 0) + own.get("syncfs", 0),
        "dandi api requests": archive.request_count,
        "s3 requests": len(s3_log),
        "s3 requests per object": round(len(s3_log) / OBJECTS, 3),
        "git objects written": git_objects(root) - before_objects,
    }
    syncs = strace_calls(strace_out, SYNC_SYSCALLS)
    if syncs is not None:
        got["fsync-like syscalls (strace, whole tree)"] = syncs
        got["symlinks (strace, whole tree)"] = strace_calls(strace_out, LINK_SYSCALLS) or 0
    for k, v in sorted(own.items()):
        if k.startswith("process:"):
            got["started: " + k[len("process:") :]] = v
    return got


def dataset_cost(ds: Path) -> dict[str, int]:
    """What one dataset costs the disk, counted: files, directories and symlinks below it (its .git
    included; what git-annex makes when it first runs there, ``.git/annex``, aside; loose objects on
    their own, as their fan-out directories depend on the hashes), and its index's entries for files
    below the top level (a sparse index has one per directory left out instead)."""
    files = dirs = links = loose = 0
    for where, subdirs, names in os.walk(ds):
        here = Path(where)
        if here == ds / ".git":
            subdirs[:] = [d for d in subdirs if d != "annex"]
        if here == ds / ".git" / "objects":  # loose objects: counted as such (their directories follow the hashes)
            fanout = [d for d in subdirs if len(d) == 2]
            loose += sum(len(os.listdir(here / d)) for d in fanout)
            subdirs[:] = [d for d in subdirs if d not in fanout]
        if here != ds and (here / ".git").exists() and here.parent != ds / ".git":
            subdirs[:] = []  # a subdataset: counted on its own
            continue
        dirs += len([d for d in subdirs if not (here / d).is_symlink()])
        for name in names:
            if (here / name).is_symlink():
                links += 1
            else:
                files += 1
        links += len([d for d in subdirs if (here / d).is_symlink()])
    entries = subprocess.run(
        ["git", "-C", str(ds), "ls-files", "--sparse"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    below = [e for e in entries if "/" in e.rstrip("/") and not e.endswith("/")]
    return {
        "files": files,
        "directories": dirs,
        "symlinks": links,
        "loose objects": loose,
        "index entries below the top level": len(below),
    }


def datasets_counted(ds: Path, cold: dict[str, float]) -> dict[str, float]:
    """Per new dataset (a small Zarr written directly, the large one through the stream, the dandiset's)
    and per object of the cold sync."""
    got: dict[str, float] = {}
    for label, path in (
        ("new Zarr dataset, 20 objects", ds / "sub-01/sub-01_small.ome.zarr"),
        ("new Zarr dataset, 1,100 objects", ds / "sub-03/sub-03_large.ome.zarr"),
        ("dandiset dataset", ds),
    ):
        for name, value in dataset_cost(path).items():
            got[f"{label}: {name}"] = value
    got["hooks in any dataset"] = sum(1 for hooks in ds.rglob(".git/hooks") for p in hooks.iterdir() if p.is_file())
    for name in ("files written", "directories made", "processes", "symlinks (python)"):
        got[f"{name} per object"] = round(cold[name] / OBJECTS, 3)
    if "fsync-like syscalls (strace, whole tree)" in cold:
        got["fsync-like syscalls per object"] = round(cold["fsync-like syscalls (strace, whole tree)"] / OBJECTS, 3)
    return got


def over_budget(phase: str, got: dict[str, float]) -> list[str]:
    """What grew past its budget in ``phase`` (each line names the count, its budget and its value)."""
    budgets: dict[str, float] = json.loads(BUDGETS.read_text()).get(phase, {})
    if os.environ.get("NEUROMIRROR_BUDGET_REPORT"):
        print(f"\n{phase}: " + json.dumps(got, indent=1, sort_keys=True))
    over = [
        f"{phase}: {name} grew to {got[name]} (budget {limit})"
        for name, limit in budgets.items()
        if name in got and got[name] > limit
    ]
    new = sorted(k for k in got if k.startswith("started: ") and k not in budgets)
    over += [f"{phase}: a new kind of process {k} x {got[k]} (no budget)" for k in new]
    missing = [
        k for k in budgets if k not in got and not k.startswith(("started: ", "fsync-like", "symlinks (strace", "_"))
    ]
    over += [f"{phase}: the budget names {k!r}, which is no longer measured" for k in missing]
    return over


def check(*phases: tuple[str, dict[str, float]]) -> None:
    over = [line for phase, got in phases for line in over_budget(phase, got)]
    assert not over, "the hot path's work grew:\n  " + "\n  ".join(over)


def test_cold_and_no_change_resync_within_budget(archive, s3, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path / "mirror"
    cold = sync_counted(archive, s3, root, tmp_path, "cold")
    ds = root / "dandi" / archive.ident
    for path, n in ZARRS.items():  # the counted sync did the whole job: every Zarr mirrored
        listed = subprocess.run(
            ["git", "-C", str(ds / path), "ls-files", "--", ":!.datalad", ":!.gitattributes"],
            capture_output=True,
            text=True,
        ).stdout
        assert len(listed.splitlines()) == n, path
    datasets = datasets_counted(ds, cold)
    resync = sync_counted(archive, s3, root, tmp_path, "resync")
    check(("cold", cold), ("resync", resync), ("datasets", datasets))
    assert resync["git objects written"] <= cold["git objects written"]


def test_counts_name_what_grew(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The guard's message names the count that grew and its budget."""
    budgets = tmp_path / "budgets.json"
    budgets.write_text(json.dumps({"cold": {"processes": 3, "started: git cat-file": 1}}))
    monkeypatch.setattr(sys.modules[__name__], "BUDGETS", budgets)
    with pytest.raises(AssertionError, match=re.escape("cold: processes grew to 4 (budget 3)")):
        check(("cold", {"processes": 4, "started: git cat-file": 1}))
    with pytest.raises(AssertionError, match="a new kind of process started: git gc x 1"):
        check(("cold", {"processes": 3, "started: git cat-file": 1, "started: git gc": 1}))
    check(("cold", {"processes": 3, "started: git cat-file": 1}))

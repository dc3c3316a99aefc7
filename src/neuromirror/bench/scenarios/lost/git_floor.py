"""git's own floor under ``inventory-cold``: the Zarr datasets' objects written by ``git fast-import``.

Why: the 3x ``inventory-cold`` asks of a cold Zarr sync leaves it a third of the listing path's wall, for
everything: start-up, the pins, and writing every object's git objects (its symlink blob, its location and URL
logs on the git-annex branch, the trees, the commits).  :mod:`.zarr_floor` measures neuromirror's own writing of
them; this measures git's: the same datasets' objects (``git fast-export --all`` of each dataset the floor wrote,
both branches, not timed) imported by ``git fast-import`` into empty bare repositories, as many at once as the
sync's Zarr worker processes, timed as a process tree.  It is less than a sync writes (no work tree, no index,
no Zarr checksum, no manifest, no start-up), so a 3x budget below it is below what git itself takes to write
these objects: the brief's "a target below a tool's own floor", measured beside it.

glibc's heap trimming is turned off for the import (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``): with
its default, fast-import spent most of its system time in ``brk`` (39,000 calls for one 5,000-key dataset), and
the floor is the fastest git was seen to go, not its default.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from neuromirror.bench.measure import child_env, run_measured
from neuromirror.util import gitutil

#: the fast-import's environment beyond the bench's: glibc's heap kept, not trimmed and regrown at each object
FAST_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(256 << 20), "MALLOC_TOP_PAD_": str(64 << 20)}


def datasets_under(root: Path) -> list[Path]:
    """The git datasets below ``root`` (a Zarr dataset nests in its dandiset's: each found by its ``.git``)."""
    return sorted(p.parent for p in root.rglob(".git") if p.is_dir() and p.parent != root)


def git_floor(root: Path, work: Path, jobs: int) -> dict:
    """``git fast-import`` of every dataset under ``root`` (the floor's Zarr datasets), ``jobs`` at once: the
    row's wall, CPU and the objects written."""
    work.mkdir(parents=True, exist_ok=True)
    pairs: list[bytes] = []
    objects = 0
    for i, ds in enumerate(datasets_under(root)):
        stream, repo = work / f"{i}.fi", work / f"{i}.git"
        with stream.open("wb") as f:
            subprocess.run(
                ["git", "-C", str(ds), "fast-export", "--all", "--reencode=no", "--signed-tags=strip"],
                stdout=f,
                check=True,
            )
        subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
        objects += _count(ds)
        pairs += [str(repo).encode(), str(stream).encode()]
    cmd = ["xargs", "-0", "-P", str(max(1, jobs)), "-n", "2", "sh", "-c", 'exec git -C "$0" fast-import --quiet < "$1"']
    r = run_measured(cmd, env={**child_env(), **FAST_MALLOC}, input=b"\0".join(pairs))
    written = sum(_count(work / f"{i}.git") for i in range(len(pairs) // 2))
    shutil.rmtree(work, ignore_errors=True)
    if written != objects:
        raise RuntimeError(
            f"inventory-cold-git-floor: fast-import wrote {written} objects, the datasets hold {objects}"
        )
    return {
        "datasets": len(pairs) // 2,
        "git_objects": objects,
        "jobs": jobs,
        "wall_s": round(r["wall"], 3),
        "cpu_s": round(r["cpu"], 2),
        "cpu_sys_s": round(r["cpu_sys"], 2),
    }


def _count(repo: Path) -> int:
    """The objects in ``repo``'s packs and loose (``git count-objects -v``)."""
    got = dict(line.split(": ", 1) for line in gitutil.out(repo, "count-objects", "-v").splitlines() if ": " in line)
    return int(got.get("count", 0)) + int(got.get("in-pack", 0))

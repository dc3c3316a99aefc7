"""A packed store's writers killed by SIGKILL at each named point of a pack's life (``NEUROMIRROR_CRASH_AT``): a
``PackStore`` from a script, a repack, and ``neuromirror keep`` on a directory and a bucket.  No index names bytes
that are not durable, no live key is lost, and the rerun converges, clean for ``verify --stores --fraction 1``.

Why: a backup is written by runs that die (a node reclaimed, a quota hit, an OOM kill).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.keep import clone_gets_every_byte, lose_blobs, make_dandiset
from helpers.packs import indexed
from neuromirror.store.packs.layout import INDEX
from neuromirror.store.packs.store import PackStore

WRITE = """
import sys
from neuromirror.store.packs.layout import INDEX
from neuromirror.store.packs.store import PackStore
s = PackStore.directory(sys.argv[1], pack_size=4096)
s.begin_task(sys.argv[2]) if len(sys.argv) > 2 else s.clean_stale()  # a cluster task's attempt, or a keep
for n in range(1, 6):
    key = "MD5E-s" + str(n * 1000) + "--" + "0" * 32
    if s.has(key):
        continue
    with s.receive(key) as inc:
        inc.write(bytes([n]) * (n * 1000))
        inc.commit()
s.sync()
"""

PRUNE = """
import hashlib, sys
from neuromirror.store.packs.layout import INDEX
from neuromirror.store.packs.store import PackStore
s = PackStore.directory(sys.argv[1], pack_size=8192)
s.clean_stale()
keys = {}
for i in range(12):
    data = (b"%d-" % i) * 700
    key = "MD5E-s%d--%s.bin" % (len(data), hashlib.md5(data).hexdigest())
    keys[key] = data
    if not s.has(key):
        with s.receive(key) as inc:
            inc.write(data)
            inc.commit()
s.sync()
live = set(list(keys)[::4])  # a quarter of the keys stay needed
s.prune(live)
"""


def killed_then_rerun(script: str, where: Path, point: str) -> None:
    """The script killed at ``point`` (none: it runs through), then run again to the end."""
    env = {**os.environ, "NEUROMIRROR_CRASH_AT": point} if point else dict(os.environ)
    first = subprocess.run([sys.executable, "-c", script, str(where)], env=env, capture_output=True, text=True)
    assert first.returncode == (-9 if point else 0), first.stderr
    if point and script == WRITE:  # what the killed run left: every key an index names reads back whole
        for pack, offset, length in indexed(where).values():
            assert (where / "packs" / f"{pack}.pack").stat().st_size >= offset + length
    again = subprocess.run([sys.executable, "-c", script, str(where)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert {p.stem for p in (where / "packs").iterdir()} == {p.stem for p in (where / "index").iterdir()}


@pytest.mark.parametrize("point", ["pack-write", "pack-staged", "pack-sealed", "pack-indexed"])
def test_a_kill_at_each_point_of_a_pack_converges(tmp_path: Path, point: str) -> None:
    killed_then_rerun(WRITE, tmp_path / "s", point)
    s = PackStore.directory(str(tmp_path / "s"))
    for n in range(1, 6):
        with s.open_key("MD5E-s" + str(n * 1000) + "--" + "0" * 32) as fh:
            assert fh.read() == bytes([n]) * (n * 1000)
    assert not [p for p in (tmp_path / "s" / "tmp").iterdir() if p.suffix == ".pack"]


@pytest.mark.parametrize("point", ["pack-sealed", "pack-indexed"])
def test_a_cluster_tasks_rerun_catches_up_on_one_listing_after_a_kill(tmp_path: Path, point: str) -> None:
    """A task's start (``begin_task``: what ``keep --dask``'s workers do).  A first attempt claims the task and
    reads nothing of the store; the rerun of a killed attempt finds the claim: the killed writer's sealed pack
    adopted (its keys known); later, the packs another writer sealed read in on one listing of the index folder."""
    where = tmp_path / "s"
    task = PackStore.directory(str(where), pack_size=4096)
    task.identity  # noqa: B018 - made by the submitter, before any task
    assert not task.has("MD5E-s1000--" + "0" * 32)  # this worker's key map read (empty) before the others ran
    listed: list[str] = []
    real = task.backend.listing
    task.backend.listing = lambda folder: (listed.append(folder), real(folder))[1]  # type: ignore[method-assign]
    assert task.begin_task("neuromirror-keep-other") == 0 and listed == []  # a first attempt reads nothing
    assert (where / "tasks" / "neuromirror-keep-other").is_file()  # its claim, until it ends well
    task.end_task("neuromirror-keep-other")
    assert not (where / "tasks" / "neuromirror-keep-other").exists()
    env = {**os.environ, "NEUROMIRROR_CRASH_AT": point}
    killed = subprocess.run(
        [sys.executable, "-c", WRITE, str(where), "neuromirror-keep-1"], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    assert not task.has("MD5E-s1000--" + "0" * 32)  # a first attempt's view would not see it
    assert task.begin_task("neuromirror-keep-1") == (1 if point == "pack-sealed" else 0)  # a rerun: adopted
    assert task.has("MD5E-s1000--" + "0" * 32)  # the killed writer's first pack, known either way
    with pytest.raises(ValueError, match="not a task name"):
        task.begin_task("../index/x")
    killed_then_rerun(WRITE, where, "")  # another writer seals the rest
    listed.clear()
    assert task.catch_up() == 0
    assert listed.count(INDEX) == 1, listed
    for n in range(1, 6):
        assert task.read_range("MD5E-s" + str(n * 1000) + "--" + "0" * 32) == bytes([n]) * (n * 1000)


@pytest.mark.parametrize("point", ["", "repack-sealed", "repack-unindexed"])
def test_prune_drops_dead_keys_and_never_a_live_one_even_when_killed(tmp_path: Path, point: str) -> None:
    killed_then_rerun(PRUNE, tmp_path / "s", point)
    s = PackStore.directory(str(tmp_path / "s"))
    for i in range(0, 12, 4):
        data = (b"%d-" % i) * 700
        assert s.read_range(f"MD5E-s{len(data)}--{hashlib.md5(data).hexdigest()}.bin") == data  # a live key reads
    assert sum(p.stat().st_size for p in (tmp_path / "s" / "packs").iterdir()) < 12 * 2100 // 2  # most dead gone


#: each keep killed at one point (``#k``: the k-th time the point is reached), one after another
KILLS = ["pack-write#2", "pack-staged", "pack-sealed#2", "pack-indexed"]


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_a_keep_killed_at_each_point_of_a_pack_converges_and_verifies_clean(
    dandi_archive, tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:  # noqa: ANN001
    bucket = request.getfixturevalue("bucket") if backend == "s3" else ""
    url = f"pack+s3://{bucket}/killed" if bucket else f"pack+file://{tmp_path / 'packed'}"
    sizes = {f"sub-{i:02d}/f.nwb": 5_000 + 700 * i for i in range(1, 9)}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    keep = [sys.executable, "-m", "neuromirror", "--root", str(d.run.root), "keep", d.spec, "--to", url]
    keep += ["--pack-size", "16K", "-J", "2"]
    for point in KILLS:
        killed = subprocess.run(keep, env={**os.environ, "NEUROMIRROR_CRASH_AT": point}, capture_output=True, text=True)
        assert killed.returncode == -9, (point, killed.stdout, killed.stderr)

    done = subprocess.run([*keep, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (version,) = json.loads(done.stdout)["versions"]
    assert version["kept"] + version["already"] == len(sizes) and version["failed"] == []
    again = json.loads(subprocess.run([*keep, "--json"], capture_output=True, text=True, check=True).stdout)
    assert again["transferred"]["files"] == 0  # converged: nothing left to do
    code, out, err = d.run("verify", "--stores", "--store", url, "--fraction", "1")
    assert code == 0, out + err
    lose_blobs(d, list(sizes))  # every S3 version deleted: the packs are all that is left
    clone_gets_every_byte(d, tmp_path / "clone")

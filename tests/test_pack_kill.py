"""``neuromirror keep`` into a packed store killed by SIGKILL at each named point of a pack's life, on a directory
and on a bucket, one kill after another into the same store: the rerun converges, ``verify --stores --fraction 1``
finds the store clean, and a plain clone gets every byte from it after the archive lost them.

Why: a backup is written by runs that die (a node reclaimed, a quota hit, an OOM kill); what a killed run leaves
must never be named by an index before it is durable, and the next run must go on from it as if nothing happened.
The store class's own kill tests (test_pack_store.py) drive ``PackStore`` from a script; this is the command a lab
runs, with git-annex's records and the index in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.keep import clone_gets_every_byte, lose_blobs, make_dandiset

#: each run killed at one point (``#k``: the k-th time the point is reached), one after another
KILLS = ["pack-write#2", "pack-staged", "pack-sealed#2", "pack-indexed"]


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_a_keep_killed_at_each_point_of_a_pack_converges_and_verifies_clean(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    url = (
        f"pack+s3://{request.getfixturevalue('bucket')}/killed"
        if backend == "s3"
        else f"pack+file://{tmp_path / 'packed'}"
    )
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

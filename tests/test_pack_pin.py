"""A pin read back from a packed store: ``lock`` names the store, ``reproduce`` and ``get`` read every byte
from its packs after the archive lost them — as a paper's reader would, with the mirror moved away.

Why: a pin is only worth citing if it reproduces after the archive's garbage collection; a lab that moved
its backup into a packed store (tape, an inode quota, Deep Archive) must still be able to give the pinned
bytes back through the same commands.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import clone, git
from helpers.keep import lose_blobs, make_dandiset, sha256
from helpers.retrieve import data_files


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_a_lock_names_the_packed_store_and_reproduces_from_it(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 70_000, "sub-02/b.nwb": 9_000})
    if backend == "s3":  # the bucket's endpoint and credentials in the process's environment, as a lab's
        url = f"pack+s3://{request.getfixturevalue('bucket')}/pinned"
    else:
        url = f"pack+file://{tmp_path / 'packed'}"
    published = clone(d.ds, tmp_path / "published")  # a copy published before the keep: it records no store
    assert d.run("keep", d.spec, "--to", url, "--pack-size", "1M")[0] == 0
    lock = tmp_path / "data.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    named = re.search(r'^store = "(.*)"$', lock.read_text(), re.M)
    assert named and named.group(1).rstrip("/") == url, lock.read_text()  # an S3 prefix is said with its "/"

    lose_blobs(d, list(d.files))
    code, out, err = d.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    got = data_files(tmp_path / "work" / "dandi" / d.id)
    for path, data in d.files.items():
        assert sha256(got[path]) == sha256(data), path

    # a clone of the copy published before the keep knows no store: --store names the packed one
    log = subprocess.run(["git", "show", "git-annex:remote.log"], cwd=published, capture_output=True, text=True)
    assert "neuromirror-pack" not in log.stdout
    got = tmp_path / "got"
    code, out, err = d.run(
        "get", d.spec, "--from", str(published), "--to", str(got), "--store", url, "--allow-ip", "all"
    )
    assert code == 0, out + err
    for path, data in d.files.items():
        assert sha256((got / path).read_bytes()) == sha256(data), path
    assert "externaltype=neuromirror-pack" in git(got, "show", "git-annex:remote.log")

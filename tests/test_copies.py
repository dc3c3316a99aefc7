"""Several stores and a number of copies: kept into two stores, a version is counted, checked, repaired.

Used as a lab would: a dandiset mirrored from the stand-in, kept into two stores (directories
and moto buckets, read back through git-annex), the archive's bytes then really deleted.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import clone, git
from test_keep import keep_json, lose_blobs, make_dandiset, sha256
from test_retrieve import data_files


def test_two_stores_each_a_remote_of_its_own_and_reproduce_fetches_from_one(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 20_000, "sub-01/b.nwb": 7_001})
    one, two = tmp_path / "store-one", tmp_path / "store-two"
    for store in (one, two):
        code, report, err = keep_json(d, store, d.spec)
        assert code == 0, err
    lock = tmp_path / "data.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    names = {
        line.split("name=", 1)[1].split()[0]
        for line in git(d.ds, "show", "git-annex:remote.log").splitlines()
        if "name=" in line
    }
    assert len(names) == 2, names  # each store's remote has a name of its own

    lose_blobs(d, list(d.files))
    code, out, err = d.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    got = data_files(tmp_path / "work" / "dandi" / d.id)
    for path, data in d.files.items():
        assert sha256(got[path]) == sha256(data), path

    # a plain clone enables both stores by itself
    work = clone(d.ds, tmp_path / "clone")
    for name in names:
        assert git(work, "config", f"remote.{name}.annex-uuid").strip()
    assert json.loads(git(work, "annex", "info", "--json", "--fast"))["success"]


def test_a_dataset_kept_before_stores_had_names_of_their_own_still_reproduces(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """Two stores recorded under the one old name (what keep wrote before): reproduce still gets every byte."""
    import re

    from neuromirror.store.record import BRANCH, _commit_top_files

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 9_000})
    for store in (tmp_path / "s1", tmp_path / "s2"):
        assert keep_json(d, store, d.spec)[0] == 0
    lock = tmp_path / "data.lock"
    d.run.ok("lock", d.spec, "-o", str(lock))
    assert "stores = [" in lock.read_text()  # both stores named in the lock
    old = re.sub(
        r"name=neuromirror-store-[0-9a-f]{8}", "name=neuromirror-store", git(d.ds, "show", "git-annex:remote.log")
    )
    _commit_top_files(d.ds, git(d.ds, "rev-parse", BRANCH).strip(), {"remote.log": old.encode()})
    assert git(d.ds, "show", "git-annex:remote.log").count("name=neuromirror-store ") == 2

    lose_blobs(d, list(d.files))
    code, out, err = d.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all")
    assert code == 0, out + err
    assert data_files(tmp_path / "work" / "dandi" / d.id)["sub-01/a.nwb"] == d.files["sub-01/a.nwb"]

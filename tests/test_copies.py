"""Several stores and a number of copies: kept into two stores, a version is counted, checked, repaired.

Used as a lab would: a dandiset mirrored from the stand-in, kept into two stores (directories
and moto buckets, read back through git-annex), the archive's bytes then really deleted.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import clone, git
from test_keep import keep_json, lose_blobs, make_dandiset, sha256
from test_keep_s3 import bucket as lab_bucket  # noqa: F401  (the fixture: an empty bucket, the store's env)
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


def test_a_store_down_during_keep_shows_one_of_two_copies_and_the_next_keep_fills_it(
    dandi_archive,
    s3,
    lab_bucket,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 15_000, "sub-02/b.nwb": 4_000})
    disk, cloud = tmp_path / "store", f"s3://{lab_bucket}/keep"
    s3.client().delete_bucket(Bucket=lab_bucket)  # the lab's bucket is gone (down) while keep runs

    code, out, err = d.run("keep", d.spec, "--to", str(disk), "--to", cloud, "--copies", "2", "--json")
    assert code == 1
    report = json.loads(out)
    up, down = report["stores"]
    assert up["ok"] and up["transferred"]["files"] == 2
    assert not down["ok"] and "NoSuchBucket" in down["error"]
    assert f"store {cloud}" in err and "down" in err  # shown, never skipped silently
    (counted,) = report["counts"]
    assert (counted["files"], counted["enough"]["files"], counted["fewer"]["files"]) == (2, 0, 2)

    status = json.loads(d.run.ok("status", "--copies", d.spec, "--json"))
    (v,) = status["versions"]
    assert v["wanted"] == 2 and v["fewer"] == {"files": 2, "bytes": 19_000} and v["none"]["files"] == 0
    assert {a["path"] for a in v["at_risk"]} == set(d.files) and all(a["copies"] == 1 for a in v["at_risk"])
    text = d.run.ok("status", "--copies", d.spec)
    assert "0/2 file(s) with >= 2 verified copies" in text and "at risk: sub-01/a.nwb" in text
    code, out, err = d.run("verify", d.spec, "--kept", "--store", str(disk))
    assert code == 1 and "1 of 2 verified copies" in out + err

    # the bucket is back: the next keep fills it, and the version has its two copies
    s3.client().create_bucket(Bucket=lab_bucket)
    code, out, err = d.run("keep", d.spec, "--to", str(disk), "--to", cloud, "--copies", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [s["transferred"]["files"] for s in report["stores"]] == [0, 2]
    assert report["counts"][0]["enough"] == {"files": 2, "bytes": 19_000} and report["counts"][0]["ok"]
    assert d.spec in report["lags"]  # the keep lag: first seen by the mirror -> last wanted copy
    assert d.run("verify", d.spec, "--kept", "--store", str(disk))[0] == 0
    assert "2/2 file(s) with >= 2 verified copies" in d.run.ok("status", "--copies")

"""AIND: kept versions outlive an overwrite in place and a bucket that lost every version — used as a lab would.

Why: an unversioned bucket (AIND content outside ``aind-open-data``, a lab's own bucket)
overwrites in place, so the bytes a version named are gone the moment new ones land; a
versioned bucket whose object versions were all deleted (a lifecycle rule, a clean-up) has
nothing left to serve.  Both losses are real here: objects are overwritten or deleted on the
moto stand-in.  What was kept reproduces byte for byte from the store; what was not fails
loudly, naming the file — never with the new bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git
from helpers.keep import STORE_NAME, key_of, whereis
from helpers.keep_aind import ASSET, KEPT, SIZES, UNKEPT, Asset
from helpers.retrieve import data_files
from neuromirror.demo import deterministic_bytes


def _at_risk(a: Asset) -> dict:
    rep = a.run.json("status", a.source)
    (row,) = rep["sources"]
    return {v["version"]: v for v in row["at_risk"]}[a.version]


def _reproduce_the_lock(a: Asset, tmp_path: Path, lock: Path) -> tuple[int, str, dict[str, bytes]]:
    code, out, err = a.run("reproduce", str(lock), "--to", str(tmp_path / "work"), "--allow-ip", "all", "--keep-failed")
    return code, out + err, data_files(tmp_path / "work" / "aind" / ASSET)


@pytest.mark.parametrize("loss", ["overwritten in place", "every version deleted"])
def test_kept_files_reproduce_and_unkept_ones_fail_loudly(loss: str, s3, tmp_path: Path) -> None:  # noqa: ANN001
    a = Asset(s3, tmp_path / "mirror", versioned=loss == "every version deleted")
    lock = tmp_path / "data.lock"
    a.run.ok("lock", a.spec, "-o", str(lock))
    before = _at_risk(a)
    # an unversioned bucket's plain URLs can change under the mirror: at risk, kind (c); a versionId URL: (b)
    kind = "pinned" if loss == "every version deleted" else "unpinned"
    assert before[kind]["files"] == 2 and before["kept"]["files"] == 0, before

    store = tmp_path / "store"
    code, out, err = a.run("keep", a.spec, "--to", str(store), "--exclude", UNKEPT, "--json")
    assert code == 0, out + err
    (v,) = json.loads(out)["versions"]
    assert (v["kept"], v["excluded"]) == (1, 1)
    kept_key = key_of(a.ds, KEPT, a.version)
    assert any(STORE_NAME in w or "neuromirror store at" in w for w in whereis(a.ds, kept_key))
    after = _at_risk(a)
    assert after["kept"] == {"files": 1, "bytes": SIZES[KEPT]} and after[kind]["files"] == 1, after

    # the loss, for real on the stand-in
    client = s3.client()
    for path in SIZES:
        key = f"{ASSET}/{path}"
        if loss == "overwritten in place":
            client.put_object(Bucket=a.bucket, Key=key, Body=deterministic_bytes(f"new:{path}", SIZES[path]))
        else:
            versions = client.list_object_versions(Bucket=a.bucket, Prefix=key)
            for ver in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
                client.delete_object(Bucket=a.bucket, Key=key, VersionId=ver["VersionId"])
            assert not client.list_object_versions(Bucket=a.bucket, Prefix=key).get("Versions")

    code, text, got = _reproduce_the_lock(a, tmp_path, lock)
    assert code == 1, text
    assert "REPRODUCTION FAILED" in text and UNKEPT in text and f"{KEPT}:" not in text
    assert got[KEPT] == a.files[KEPT]  # from the store: the bytes the version named
    assert not (tmp_path / "work" / "aind" / ASSET / UNKEPT).exists()  # never the new bytes, nor a partial file

    # verify names the same file; --kept says the version is not wholly in the store
    code, out, _ = a.run("verify", a.spec, "--content", "--json")
    rep = json.loads(out)
    assert code == 1 and not rep["ok"]
    # the unkept file is lost (its size named); the kept one only has a dead URL: a warning, not wrong bytes
    assert {(p["kind"], p["path"], p["size"]) for p in rep["problems"]} == {
        ("lost", UNKEPT, SIZES[UNKEPT]),
        ("dead-url", KEPT, SIZES[KEPT]),
    }, rep["problems"]
    assert rep["problem_counts"]["wrong-bytes"] == 0
    code, out, err = a.run("verify", a.spec, "--kept")
    assert code == 1 and UNKEPT in out + err

    # keeping everything is no longer possible for the lost file: keep says why, never stores new bytes
    code, out, err = a.run("keep", a.spec, "--to", str(store), "--json")
    rep = json.loads(out)
    assert code == 1 and [f["path"] for f in rep["versions"][0]["failed"]] == [UNKEPT], out + err
    assert key_of(a.ds, UNKEPT, a.version) not in {p.name for p in store.glob("*/*/*/*")}


def test_a_wholly_kept_version_reproduces_after_the_overwrite(s3, tmp_path: Path) -> None:  # noqa: ANN001
    a = Asset(s3, tmp_path / "mirror", versioned=False)
    lock = tmp_path / "data.lock"
    a.run.ok("lock", a.spec, "-o", str(lock))
    store = tmp_path / "store"
    a.run.ok("keep", a.spec, "--to", str(store))
    code, out, err = a.run("verify", a.spec, "--kept", "--content")
    assert code == 0, out + err
    risk = _at_risk(a)  # data_description.json is in git: counted in none of the kinds
    assert risk["kept"] == {"files": 2, "bytes": sum(SIZES.values())} and risk["unpinned"]["files"] == 0, risk
    for path in SIZES:
        s3.client().put_object(Bucket=a.bucket, Key=f"{ASSET}/{path}", Body=b"overwritten upstream")
    code, text, got = _reproduce_the_lock(a, tmp_path, lock)
    assert code == 0, text
    for path, data in a.files.items():
        assert got[path] == data, path
    # the mirror's next sync records the overwrite as a new version; the old tag still names the old keys
    a.run.ok("sync", a.source, *a.s3_args)
    assert git(a.ds, "rev-parse", a.version) and key_of(a.ds, KEPT, a.version) != key_of(a.ds, KEPT, "HEAD")

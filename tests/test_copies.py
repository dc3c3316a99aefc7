"""Several stores and a number of copies: kept into two stores, a version is counted, checked, repaired.

Used as a lab would: a dandiset mirrored from the stand-in, kept into two stores (directories
and moto buckets, read back through git-annex), the archive's bytes then really deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import clone, git
from helpers.keep import _flip_a_byte, keep_json, key_of, lose_blobs, make_dandiset, sha256, whereis
from helpers.retrieve import data_files


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
    lab_bucket,
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


def test_verify_stores_finds_a_flipped_byte_and_a_lost_file_and_re_keeps_them_from_the_other_store(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    lab_bucket,
    tmp_path: Path,
) -> None:
    from neuromirror.annex.keys import hashdir_lower

    sizes = {"sub-01/a.nwb": 11_000, "sub-01/b.nwb": 6_000, "sub-02/c.nwb": 3_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    disk, cloud = tmp_path / "store", f"s3://{lab_bucket}/keep"
    code, out, err = d.run("keep", d.spec, "--to", str(disk), "--to", cloud, "--copies", "2", "--json")
    assert code == 0, err
    ids = [s["store"]["uuid"] for s in json.loads(out)["stores"]]
    keys = {p: key_of(d.ds, p, d.version) for p in sizes}
    lose_blobs(d, list(d.files))  # the archive is no help: repairs must come from the other store

    # one store's file gets a flipped byte; the other store loses an object
    a = keys["sub-01/a.nwb"]
    _flip_a_byte(disk / hashdir_lower(a) / a / a)
    b = keys["sub-01/b.nwb"]
    s3.client().delete_object(Bucket=lab_bucket, Key=f"keep/{b}")

    code, out, err = d.run("verify", "--stores", d.spec, "--json")
    assert code == 1  # named, after repairing
    report = json.loads(out)
    assert report["checked"] == 6 and report["good"] == 4 and report["repaired"] == 2
    (bad,) = report["bad"]
    assert (bad["key"], bad["path"], bad["uuid"], bad["repaired"]) == (a, "sub-01/a.nwb", ids[0], True)
    assert bad["repaired_from"] == f"store {cloud}/"
    (missing,) = report["missing"]
    assert (missing["key"], missing["uuid"], missing["repaired"]) == (b, ids[1], True)
    assert missing["repaired_from"] == f"store {disk}"
    assert f"{a}" in err and f"{b}" in err
    # the bytes are right again in both stores, and git-annex agrees (a plain fsck of the store)
    assert (disk / hashdir_lower(a) / a / a).read_bytes() == d.files["sub-01/a.nwb"]
    body = s3.client().get_object(Bucket=lab_bucket, Key=f"keep/{b}")["Body"].read()
    assert body == d.files["sub-01/b.nwb"]
    for key in (a, b):  # both stores recorded again on the branch
        assert len([w for w in whereis(d.ds, key) if w.startswith("neuromirror store at")]) == 2

    # a second check: everything good; a slice reads the oldest-checked third
    code, out, err = d.run("verify", "--stores", d.spec, "--json")
    assert code == 0, out + err
    assert json.loads(out)["checked"] == 6
    sliced = json.loads(d.run.ok("verify", "--stores", "--fraction", "0.34", "--json"))
    assert sliced["checked"] == 3 and sliced["ok"]
    assert json.loads(d.run.ok("verify", "--stores", "--older-than", "1", "--json"))["checked"] == 0
    status = json.loads(d.run.ok("status", "--copies", d.spec, "--json"))["versions"][0]
    assert status["enough"]["files"] == 3 and status["oldest_check"] is not None


def test_service_keeps_into_two_stores_checks_a_slice_and_shows_copies_and_keep_lag(
    dandi_archive, tmp_path: Path
) -> None:  # noqa: ANN001
    from helpers.keep import keep_config
    from helpers.service import get, metric_samples, run_part, serve, wait_for

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 8_000, "sub-01/b.nwb": 2_000})
    one, two = tmp_path / "one", tmp_path / "two"
    root = tmp_path / "served"  # a mirror the service makes itself (its first run is at once)
    head = f'stores: ["{one}", "{two}"]\ncopies: 2\n'
    cfg = keep_config(tmp_path / "m.yaml", dandi_archive.api_url, d.source, head, "    verify: {fraction: 1.0}\n")

    with serve(root, cfg) as svc:
        keep = wait_for(lambda: run_part(root, d.source, "keep"), 90, "a service run that kept", svc)
        assert isinstance(keep, dict) and keep["outcome"] == "ok", keep
        assert [s["url"] for s in keep["stores"]] == [str(one), str(two)] and all(s["up"] for s in keep["stores"])
        (v,) = keep["copies"]["versions"]
        assert keep["copies"]["wanted"] == 2 and v["enough"] == {"files": 2, "bytes": 10_000}
        assert keep["verify"]["checked"] == 4 and keep["verify"]["ok"]  # the slice: every copy (fraction 1.0)
        assert d.spec in keep["lags"]
        m = metric_samples(get(svc.url("metrics"))[2])
        assert m["neuromirror_copies_files", ("copies", "enough"), ("source", d.source), ("version", d.version)] == 2
        assert m["neuromirror_copies_files", ("copies", "none"), ("source", d.source), ("version", d.version)] == 0
        assert m["neuromirror_store_up", ("source", d.source), ("store", str(two))] == 1
        assert m["neuromirror_keep_lag_seconds", ("source", d.source)] >= 0
        assert m["neuromirror_keep_pending_seconds", ("source", d.source)] == 0
        page = get(svc.url(f"source/{d.source}"))[2]
        assert "<h2>Copies (wanted: 2)</h2>" in page and "Keep lag: last" in page and "DOWN" not in page


def test_a_mirror_definition_names_stores_copies_and_the_rolling_check(tmp_path: Path) -> None:
    import pytest

    from neuromirror.config.load import load_config
    from neuromirror.config.reader import ConfigError

    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        "stores: [keep-a, keep-b]\n"
        "copies: 2\n"
        "defaults: {schedule: {interval: 6h}, keep: published}\n"
        "sources:\n"
        '  - spec: "dandi:000001"\n'
        '  - spec: "dandi:000002"\n'
        "    store: keep-c\n"
        "    copies: 1\n"
        "    verify: {period: 10d}\n"
    )
    first, second = load_config(cfg).sources
    assert first.stores == (str(tmp_path / "keep-a"), str(tmp_path / "keep-b")) and first.store == first.stores[0]
    assert first.copies == 2 and first.verify is None
    assert second.stores == (str(tmp_path / "keep-c"),) and second.copies == 1
    assert second.verify is not None and second.verify.period == 10 * 86400
    assert second.verify.slice_of(6 * 3600) == pytest.approx(6 / 240)  # every byte re-read within the period

    cfg.write_text(
        "store: keep-a\nstores: [keep-b]\ncopies: 3\n"
        "defaults: {schedule: 6h}\nsources:\n  - spec: dandi:000001\n    verify: {fraction: 2}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    text = str(info.value)
    assert "give 'store' (one) or 'stores' (a list), not both" in text
    assert "3 copies wanted but 1 store(s) named" in text
    assert "expected a fraction in (0, 1]" in text


def test_keep_to_a_new_store_copies_what_the_archive_lost_from_another_store(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """``keep --to NEW`` alone: a file the archive lost comes from a store that holds it, checked against its key
    on the way in (a flipped byte there is refused, not copied); and the wanted count is left as it was."""
    from neuromirror.annex.keys import hashdir_lower

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 12_000, "sub-02/b.nwb": 5_000})
    one, two = tmp_path / "store-one", tmp_path / "store-two"
    code, out, err = d.run("keep", d.spec, "--to", str(one), "--copies", "2", "--json")
    assert code == 1 and json.loads(out)["copies"] == 2, out + err  # one copy of the two wanted
    keys = {p: key_of(d.ds, p, d.version) for p in d.files}
    lose_blobs(d, list(d.files))
    b = keys["sub-02/b.nwb"]
    _flip_a_byte(one / hashdir_lower(b) / b / b)

    code, out, err = d.run("keep", d.spec, "--to", str(two), "--json")  # no --copies: the wanted count stays 2
    assert code == 1, out + err
    report = json.loads(out)
    (v,) = report["versions"]
    assert v["kept"] == 1 and report["copies"] == 2
    (failed,) = v["failed"]
    assert failed["path"] == "sub-02/b.nwb" and f"store {one}" in failed["why"] and "wrong bytes" in failed["why"]
    assert (two / hashdir_lower(b) / b).exists() is False  # the wrong bytes were not placed
    status = json.loads(d.run.ok("status", "--copies", d.spec, "--json"))["versions"][0]
    assert status["wanted"] == 2 and status["enough"]["files"] == 1  # a.nwb: in both stores

    # the new store's copy of a.nwb is read back through git-annex in a plain clone, the first store gone
    name_two = json.loads((two / ".neuromirror-store.json").read_text())["name"]
    os.rename(one, tmp_path / "elsewhere")
    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    git(work, "annex", "get", "--from", name_two, "sub-01/a.nwb")
    assert sha256((work / "sub-01/a.nwb").read_bytes()) == sha256(d.files["sub-01/a.nwb"])

    # only an explicit --copies changes the wanted count
    os.rename(tmp_path / "elsewhere", one)
    d.run("keep", d.spec, "--to", str(two), "--copies", "1")
    assert json.loads(d.run.ok("status", "--copies", d.spec, "--json"))["versions"][0]["wanted"] == 1


def test_verify_stores_of_one_store_repairs_a_bad_copy_from_the_other_store(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    lab_bucket,
    tmp_path: Path,
) -> None:
    """``verify --stores --store X``: only X's copies are re-read, and a bad one is re-kept from the other store
    (the archive lost the bytes); afterwards X's copy reads right through git-annex."""
    from neuromirror.annex.keys import hashdir_lower

    sizes = {"sub-01/a.nwb": 9_000, "sub-02/b.nwb": 4_000}
    d = make_dandiset(dandi_archive, tmp_path / "mirror", sizes)
    disk, cloud = tmp_path / "store", f"s3://{lab_bucket}/keep"
    code, out, err = d.run("keep", d.spec, "--to", str(disk), "--to", cloud, "--copies", "2", "--json")
    assert code == 0, out + err
    disk_id = json.loads(out)["stores"][0]["store"]["uuid"]
    lose_blobs(d, list(d.files))
    a = key_of(d.ds, "sub-01/a.nwb", d.version)
    _flip_a_byte(disk / hashdir_lower(a) / a / a)

    code, out, err = d.run("verify", "--stores", d.spec, "--store", str(disk), "--json")
    assert code == 1, out + err  # named, after repairing
    report = json.loads(out)
    assert report["checked"] == 2 and list(report["stores"]) == [disk_id]  # only the disk's copies re-read
    (bad,) = report["bad"]
    assert (bad["key"], bad["uuid"], bad["repaired"], bad["repaired_from"]) == (a, disk_id, True, f"store {cloud}/")
    assert (disk / hashdir_lower(a) / a / a).read_bytes() == d.files["sub-01/a.nwb"]

    # the repaired copy reads right through git-annex, from the disk store only
    s3.client().delete_object(Bucket=lab_bucket, Key=f"keep/{a}")  # not from the bucket: it is gone there
    name = json.loads((disk / ".neuromirror-store.json").read_text())["name"]
    work = clone(d.ds, tmp_path / "clone")
    git(work, "checkout", "-q", d.version)
    git(work, "annex", "get", "--from", name, "sub-01/a.nwb")
    assert sha256((work / "sub-01/a.nwb").read_bytes()) == sha256(d.files["sub-01/a.nwb"])
    assert d.run("verify", "--stores", d.spec, "--store", str(disk), "--json")[0] == 0


def test_without_a_spec_verify_stores_and_status_copies_cover_a_source_kept_without_copies_too(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """One source kept with ``--copies 2``, another kept to one store without it: ``verify --stores`` and
    ``status --copies`` with no SPEC still cover the second (it has copies, so it is checked: a lab's
    ``verify --stores`` never leaves a kept source unread because another one has a wanted number)."""
    from neuromirror.annex.keys import hashdir_lower

    root = tmp_path / "mirror"
    a = make_dandiset(dandi_archive, root, {"sub-01/a.nwb": 8_000})
    b = make_dandiset(dandi_archive, root, {"sub-01/b.nwb": 5_000, "sub-02/c.nwb": 2_000})
    one, two, three = tmp_path / "store-one", tmp_path / "store-two", tmp_path / "store-three"
    a.run.ok("keep", a.spec, "--to", str(one), "--to", str(two), "--copies", "2")
    b.run.ok("keep", b.spec, "--to", str(three))

    status = json.loads(a.run.ok("status", "--copies", "--json"))
    shown = {(v["source"], v["version"]): (v["wanted"], v["enough"]["files"]) for v in status["versions"]}
    assert shown[(a.source, a.version)] == (2, 1) and shown[(b.source, b.version)] == (1, 2)
    assert f"{b.spec}: 2/2 file(s) with >= 1 verified copy" in a.run.ok("status", "--copies")

    # B's store loses a file, on disk
    key = key_of(b.ds, "sub-01/b.nwb", b.version)
    gone = three / hashdir_lower(key) / key / key
    os.chmod(gone.parent, 0o755)
    gone.unlink()

    code, out, err = a.run("verify", "--stores", "--json")
    assert code == 1, out + err  # named, after repairing from the archive
    report = json.loads(out)
    (missing,) = report["missing"]
    assert (missing["key"], missing["path"], missing["repaired"]) == (key, "sub-01/b.nwb", True)
    assert key in err
    assert report["checked"] == 2 + 2  # A's file in each of its two stores, B's two files in its one
    assert gone.read_bytes() == b.files["sub-01/b.nwb"]
    assert a.run("verify", "--stores")[0] == 0

"""``verify`` tells lost content from a dead URL, checks what a store keeps, and counts what is at risk.

Why: after a delete marker on a published blob's object the DANDI API's download URL fails while
the ``versionId``-pinned S3 URL still serves the right bytes — nothing is lost, and a verify that
fails the version for it cries wolf.  When every S3 version of the blob is gone (garbage
collection), the bytes are lost unless a store kept them: verify must then name the file and its
size.  The loss is real: objects are deleted from the moto stand-in, not mocked.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from helpers.keep import Dandiset, key_of, lose_blobs, make_dandiset
from helpers.restore import delete_marker

A, B = "sub-01/a.nwb", "sub-02/b.nwb"
SIZES = {A: 20_000, B: 30_001}


def verify(d: Dandiset, *args: str) -> tuple[int, dict, str]:
    code, out, err = d.run("verify", d.spec, "--json", *args)
    return code, json.loads(out), err


def test_delete_marker_is_a_dead_url_not_a_loss(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", SIZES)
    code, rep, err = verify(d, "--content")
    assert code == 0 and rep["ok"] and rep["problems"] == [], err
    assert rep["at_risk"] == {
        "kept": {"files": 0, "bytes": 0},
        "pinned": {"files": 2, "bytes": 50_001},
        "noncurrent": {"files": 0, "bytes": 0},
        "unpinned": {"files": 0, "bytes": 0},
    }
    delete_marker(d, A)
    code, rep, err = verify(d, "--content")
    assert code == 0 and rep["ok"], err
    assert rep["problem_counts"] == {"wrong-bytes": 0, "lost": 0, "dead-url": 1}
    (p,) = rep["problems"]
    assert (p["kind"], p["path"], p["key"], p["size"]) == ("dead-url", A, key_of(d.ds, A, d.version), SIZES[A])
    assert len(p["urls"]) == 1 and "/download" in p["urls"][0]  # the API's route; the pinned URL still serves
    code, out, _ = d.run("verify", d.spec, "--content")
    assert code == 0 and f"WARNING dead-url {A}: 1 dead URL(s)" in out and "versionId" in out
    assert f"{d.spec}: OK, 1 warning(s)" in out
    code, out, _ = d.run("verify", d.spec, "--content", "--strict")
    assert code == 1 and f"{d.spec}: FAILED (strict: warnings fail), 0 mismatch(es), 1 warning(s)" in out


def test_lost_unless_kept_and_the_store_checked(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", SIZES)
    store = tmp_path / "store"
    # an unkept version: --kept fails naming every annexed file (no store recorded, then one named)
    code, rep, _ = verify(d, "--kept")
    assert code == 1 and {m["kind"] for m in rep["mismatches"]} == {"store"}
    code, out, err = d.run("keep", d.spec, "--to", str(store), "--include", A)
    assert code == 0, out + err
    code, out, _ = d.run("verify", d.spec, "--kept", "--store", str(store))
    assert code == 1 and f"MISMATCH not-kept: {B} ({SIZES[B]} bytes): not kept in {store}" in out
    assert f"not-kept: {A}" not in out and "kept in" in out

    lose_blobs(d, [A, B])  # garbage collection: every S3 version gone
    code, rep, err = verify(d, "--content")
    assert code == 1 and not rep["ok"], err
    assert rep["problem_counts"] == {"wrong-bytes": 0, "lost": 1, "dead-url": 1}
    kinds = {(p["kind"], p["path"], p["size"]) for p in rep["problems"]}
    assert kinds == {("lost", B, SIZES[B]), ("dead-url", A, SIZES[A])}  # A verifies from the store
    dead = next(p for p in rep["problems"] if p["kind"] == "dead-url")
    assert len(dead["urls"]) == 2 and "the store" in dead["detail"]
    assert rep["content"]["store_copies"] == 1
    assert rep["at_risk"]["kept"] == {"files": 1, "bytes": SIZES[A]}
    assert rep["at_risk"]["pinned"] == {"files": 1, "bytes": SIZES[B]}
    code, out, _ = d.run("verify", d.spec, "--content")
    assert code == 1 and f"MISMATCH lost: {B} ({SIZES[B]} bytes): no URL and no store serves its bytes" in out
    assert "wrong" not in out.lower() and "MISMATCH content" not in out

    # the kept file's bytes in the store: --kept --content hashes them, and a flipped byte is caught
    (keep_a,) = [p for p in store.glob("*/*/*/*") if p.is_file()]
    code, rep, _ = verify(d, "--kept", "--content", "--store", str(store))
    assert code == 1 and {(m["kind"], m["path"]) for m in rep["mismatches"]} == {("not-kept", B)}
    assert rep["content"]["store_copies"] == 1 and rep["content"]["urls"] == 0  # no network
    os.chmod(keep_a, stat.S_IWUSR | stat.S_IRUSR)
    data = bytearray(keep_a.read_bytes())
    data[100] ^= 0xFF
    keep_a.write_bytes(bytes(data))
    code, rep, _ = verify(d, "--kept", "--content", "--store", str(store))
    assert code == 1
    bad = [p for p in rep["problems"] if p["kind"] == "wrong-bytes"]
    assert [(p["path"], p["urls"][0].startswith("the store")) for p in bad] == [(A, True)]
    # and the plain content check now has no good source for either file
    code, rep, _ = verify(d, "--content")
    assert code == 1 and rep["problem_counts"]["wrong-bytes"] == 1 and rep["problem_counts"]["lost"] == 1


def test_a_lost_file_only_in_the_oldest_of_three_stores_is_served_not_lost(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    lab_bucket,
    tmp_path: Path,
) -> None:
    """Three stores kept into one after another (an S3 bucket first, then two directories); the archive then
    loses two files, each held only by an older store: ``verify --content`` reads every store the mirror knows,
    not the newest directory one, and reports each file served by the store that holds it."""
    from neuromirror.annex.keys import hashdir_lower

    c = "sub-03/c.nwb"
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {**SIZES, c: 7_000})
    cloud, older, newest = f"s3://{lab_bucket}/keep", tmp_path / "store-older", tmp_path / "store-newest"
    d.run.ok("keep", d.spec, "--to", cloud, "--include", A)  # the oldest store: S3
    d.run.ok("keep", d.spec, "--to", str(older), "--include", c)
    d.run.ok("keep", d.spec, "--to", str(newest), "--include", B)  # the newest: what verify asked alone before
    lose_blobs(d, [A, c])  # every S3 version of both blobs deleted from the stand-in

    code, rep, err = verify(d, "--content")
    assert code == 0 and rep["ok"], (rep["problems"], err)
    assert rep["problem_counts"] == {"wrong-bytes": 0, "lost": 0, "dead-url": 2}
    served = {p["path"]: p["detail"] for p in rep["problems"]}
    ka, kc = key_of(d.ds, A, d.version), key_of(d.ds, c, d.version)
    assert f"the bytes still verify from the store (s3://{lab_bucket}/keep/{ka})" in served[A], served
    assert f"the store ({older / hashdir_lower(kc) / kc / kc})" in served[c], served
    assert rep["content"]["store_copies"] == 3  # each file's one copy: A and c found by their location logs, B too
    code, out, _ = d.run("verify", d.spec, "--content")
    assert code == 0 and f"{d.spec}: OK, 2 warning(s)" in out and "MISMATCH" not in out

    # a store the location log does not name is still asked before a file is called lost
    from neuromirror.store.record import record_absent

    uuid = json.loads((older / ".neuromirror-store.json").read_text())["uuid"]
    assert record_absent(d.ds, uuid, [kc]) == 1
    code, rep, err = verify(d, "--content")
    assert code == 0 and rep["problem_counts"]["lost"] == 0, (rep["problems"], err)
    assert str(older) in next(p["detail"] for p in rep["problems"] if p["path"] == c)


def test_status_counts_what_is_at_risk(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    d = make_dandiset(dandi_archive, tmp_path / "mirror", SIZES)
    store = tmp_path / "store"
    d.run.ok("keep", d.spec, "--to", str(store), "--include", B)
    rep = d.run.json("status", d.source)
    (row,) = rep["sources"]
    by_version = {v["version"]: v for v in row["at_risk"]}
    assert set(by_version) == {d.version, "draft"}
    v = by_version[d.version]
    assert v["kept"] == {"files": 1, "bytes": SIZES[B]} and v["pinned"] == {"files": 1, "bytes": SIZES[A]}
    assert v["unpinned"] == {"files": 0, "bytes": 0}
    out = d.run.ok("status", d.source)
    assert "at risk (published versions" in out and "PINNED_URL_ONLY" in out
    assert re.search(rf"{d.source}\s+{re.escape(d.version)}\s+1 \(29.3 KiB\)\s+1 \(19.5 KiB\)\s+0 \(0 B\)", out)
    assert "at_risk" not in d.run.json("status", d.source, "--no-at-risk")["sources"][0]


def test_at_risk_kinds_from_urls_and_location_logs() -> None:
    """(a) kept wins over any URL; (b) some stable URL; (c) only mutable URLs (BOSS, unversioned bucket) or none."""
    from neuromirror.records import VERIFY_ON_GET, VersionFile
    from neuromirror.store.annexlog import recorded_stores
    from neuromirror.verify.risk import risk_of

    here = Path(".")
    files = [
        VersionFile("kept.bin", "K1", 10, VERIFY_ON_GET, None, repo=here),
        VersionFile("pinned.bin", "K2", 20, VERIFY_ON_GET, None, repo=here),
        VersionFile("boss/0/0", "K3", 30, VERIFY_ON_GET, None, repo=here),
        VersionFile("bucket.bin", "K4", 40, VERIFY_ON_GET, None, repo=here),
        VersionFile("nowhere.bin", "K5", 50, VERIFY_ON_GET, None, repo=here),
    ]
    urls = {
        "K1": ["https://bucket.s3.amazonaws.com/plain"],
        "K2": ["https://bucket.s3.amazonaws.com/obj?versionId=abc", "https://bucket.s3.amazonaws.com/obj"],
        "K3": ["neuromirror+boss://api.bossdb.io/coll/exp/chan?res=0&x=0:64"],
        "K4": ["https://bucket.s3.amazonaws.com/obj"],
    }
    risk = risk_of(files, urls, {"K1"})
    assert risk.to_json() == {
        "kept": {"files": 1, "bytes": 10},
        "pinned": {"files": 1, "bytes": 20},
        "noncurrent": {"files": 0, "bytes": 0},
        "unpinned": {"files": 3, "bytes": 120},
    }
    assert risk.unpinned_examples == ["boss/0/0", "bucket.bin", "nowhere.bin"]
    # the stores a dataset records: store types only (not the mirror's external special remotes), newest line wins
    log = (
        b"aaaa autoenable=true directory=/old type=directory timestamp=1s\n"
        b"aaaa autoenable=true directory=/data/my&32;store type=directory timestamp=2s\n"
        b"bbbb externaltype=neuromirror name=dandi type=external timestamp=1s\n"
    )
    assert recorded_stores(log) == {"aaaa": {"autoenable": "true", "directory": "/data/my store", "type": "directory"}}

"""Gap-fill (issue 75): ``keep SPEC --to STORE --covered-by LIST [--order risk|path]``.

A dandiset on the DANDI stand-in: a published version holding ``a``, ``b``, ``c``, ``d``; a draft adding ``e``
and ``gone``, whose blob's current S3 object is deleted (only the noncurrent version the mirror pinned serves it).
``e`` is kept first into another store of the lab.  The other backup's LIST, built from moto's own listing of
the bucket as a backup's nightly copy would see it, holds ``a`` and ``b`` at their sizes, ``c`` at a size that is
not the pinned one, and keys of the archive the mirror does not know; ``d``, ``e`` and ``gone`` not at all.
Checked as a user would: the store's keys against the LIST, the archive's (moto's) request log, the order the
passes ran in, then the same LIST as a gzip file, as a copy's directory and with a backup-status checkout.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from helpers.keep import store_keys
from helpers.retrieve import Runner
from helpers.status_pages import CHROMIUM, by_class, chromium, page_at, parse_html, text_of

SIZES = {"sub-0/a.nwb": 3000, "sub-0/b.nwb": 5000, "sub-0/c.nwb": 2000, "sub-0/d.nwb": 4000}
#: a Zarr of the draft: the LIST holds chunk 0 at its ETag, chunk 1 at its size but another ETag, not chunk 2
CHUNKS = {"0/0": b"zero" * 50, "0/1": b"one!" * 50, "0/2": b"two!" * 50}


class World(NamedTuple):
    run: Runner
    sid: str
    keys: dict[str, str]  # path -> annex key
    objects: dict[str, tuple[str, int]]  # path -> (archive key, size), the Zarr's chunks too
    other: Path  # the lab's other store, holding e
    tmp: Path


@pytest.fixture(scope="module")
def world(dandi_archive, tmp_path_factory) -> World:  # noqa: ANN001
    a = dandi_archive
    tmp = tmp_path_factory.mktemp("gapfill")
    ident = a.create_dandiset(name="gap-fill")
    ids = {p: a.put_asset(ident, p, size=n) for p, n in SIZES.items()}
    a.publish(ident)
    ids["sub-0/e.nwb"] = a.put_asset(ident, "sub-0/e.nwb", size=1500)
    ids["sub-0/gone.nwb"] = a.put_asset(ident, "sub-0/gone.nwb", size=400)
    zarr = a.asset(a.add_zarr_asset(ident, "sub-0/x.zarr", CHUNKS)).zarr
    a.delete_blob_object(a.asset(ids["sub-0/gone.nwb"]).blob.blob_id)  # only the noncurrent version serves it
    run, sid = Runner(tmp / "mirror"), f"dandi:{ident}"
    run.ok("sync", sid, "--dandi-api", a.api_url)
    objects = {p: (a.asset(i).blob.key, a.asset(i).blob.size) for p, i in ids.items()}
    objects.update({f"sub-0/x.zarr/{c}": (f"zarr/{zarr.zarr_id}/{c}", len(data)) for c, data in CHUNKS.items()})
    files = run.json("urls", f"{sid}@draft")
    keys = {f["path"]: f["key"] for f in files if f.get("key")}
    other = tmp / "other-store"
    run.ok("keep", f"{sid}@draft", "--to", str(other), "--include", "sub-0/e.nwb")
    return World(run, sid, keys, objects, other, tmp)


def backup_list(w: World, s3, where: Path) -> Path:  # noqa: ANN001
    """The other backup's LIST: moto's listing of the bucket (key, size, ETag) for a and b, c at another size,
    two keys the mirror never saw; d, e and gone left out."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket="dandiarchive")  # the session's bucket: 1,000+
    listed = {o["Key"]: o for page in pages for o in page.get("Contents", [])}
    rows = []
    for path in ("sub-0/a.nwb", "sub-0/b.nwb"):
        o = listed[w.objects[path][0]]
        rows.append(f"{o['Key']}\t{o['Size']}\t{o['ETag']}")
    for chunk, etag in (("0/0", None), ("0/1", "0" * 32)):
        o = listed[w.objects[f"sub-0/x.zarr/{chunk}"][0]]
        rows.append(f"{o['Key']}\t{o['Size']}\t{etag or o['ETag']}")
    c_key, c_size = w.objects["sub-0/c.nwb"]
    rows += [f"{c_key}\t{c_size + 1}", "blobs/fff/fff/fffffff0-0000-0000-0000-000000000000\t12", "zarr/x/0/0\t5"]
    where.write_text("# the other backup's keys\n" + "\n".join(rows) + "\n")
    return where


UNCOVERED = ("sub-0/c.nwb", "sub-0/d.nwb", "sub-0/e.nwb", "sub-0/gone.nwb", "sub-0/x.zarr/0/1", "sub-0/x.zarr/0/2")


def uncovered(w: World) -> set[str]:
    return {w.keys[p] for p in UNCOVERED}


def test_gap_fill_keeps_exactly_the_uncovered_keys_in_risk_order(world: World, dandi_archive) -> None:  # noqa: ANN001
    w, s3 = world, dandi_archive.s3
    listed = backup_list(w, s3, w.tmp / "backup.tsv")
    store = w.tmp / "gap-store"
    log = s3.log_requests()
    dandi_archive.reset_request_log()
    try:
        got = w.run.json("keep", w.sid, "--to", str(store), "--covered-by", str(listed), "-J", "1")
    finally:
        s3.log_requests(False)
    assert store_keys(store) == uncovered(w)
    # the archive was asked for the uncovered keys only, each once; the API not at all
    asked = [path.split("?")[0].split("/", 2)[-1] for method, path in log if method in ("GET", "HEAD")]
    assert sorted(asked) == sorted(w.objects[p][0] for p in UNCOVERED)
    assert not [r for r in dandi_archive.request_log if "/api/" in r[1]]
    # risk order: what only a noncurrent version serves first, then what no copy holds, then the rest
    assert asked[0] == w.objects["sub-0/gone.nwb"][0]
    assert asked[-1] == w.objects["sub-0/e.nwb"][0]
    gap = got["gap"]
    chunk = len(CHUNKS["0/0"])
    assert gap["order"] == "risk" and gap["covered"] == {"phase": "covered", "objects": 3, "bytes": 8000 + chunk}
    assert gap["differs"] == 2  # c at another size, chunk 0/1 at another ETag: kept all the same
    assert [(p["phase"].split(",")[0], p["kept"]) for p in gap["passes"]] == [
        ("noncurrent only", 1),
        ("in no copy", 4),
        ("in another of the lab's stores", 1),
    ]
    versions = {v["version"]: v for v in got["versions"]}
    assert versions["draft"]["covered"] == {"files": 3, "bytes": 8000 + chunk}
    # a rerun: nothing more to copy, and the archive not asked
    log = s3.log_requests()
    try:
        again = w.run.json("keep", w.sid, "--to", str(store), "--covered-by", str(listed))
    finally:
        s3.log_requests(False)
    assert again["transferred"]["files"] == 0 and not [m for m, _ in log if m in ("GET", "HEAD")]


def test_a_gzip_list_a_copy_and_backup_status(world: World, dandi_archive) -> None:  # noqa: ANN001
    w = world
    plain = backup_list(w, dandi_archive.s3, w.tmp / "list.tsv")
    packed = w.tmp / "list.tsv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    got = w.run.json("keep", w.sid, "--to", str(w.tmp / "gz-store"), "--covered-by", str(packed), "--order", "path")
    assert store_keys(w.tmp / "gz-store") == uncovered(w)
    assert [p["phase"] for p in got["gap"]["passes"]] == ["uncovered"]
    # the ORCD mount's shape: the copy at the archive's keys; d's file there at the wrong size is no copy of it
    copy = w.tmp / "orcd"
    for path in ("sub-0/a.nwb", "sub-0/d.nwb"):
        key, size = w.objects[path]
        (copy / key).parent.mkdir(parents=True, exist_ok=True)
        (copy / key).write_bytes(b"x" * (size if path != "sub-0/d.nwb" else size - 1))
    w.run.ok("keep", w.sid, "--to", str(w.tmp / "copy-store"), "--covered-by", str(copy))
    assert store_keys(w.tmp / "copy-store") == {w.keys[p] for p in w.objects} - {w.keys["sub-0/a.nwb"]}
    # dandi/backup-status: its diffs name b as differing from the bucket, whatever the key file says
    status = w.tmp / "backup-status"
    (status / "data").mkdir(parents=True)
    (status / "data" / "content.json").write_text(json.dumps(_content_table()))
    (status / "diffs" / "0").mkdir(parents=True)
    (status / "diffs" / "0" / "size_difference.txt").write_text(w.objects["sub-0/b.nwb"][0][len("blobs/") :] + "\n")
    store = w.tmp / "status-store"
    w.run.ok("keep", w.sid, "--to", str(store), "--covered-by", str(plain), "--covered-by", str(status))
    assert store_keys(store) == uncovered(w) | {w.keys["sub-0/b.nwb"]}


def test_an_s3_inventory_of_the_backups_bucket(world: World, dandi_archive, monkeypatch) -> None:  # noqa: ANN001
    """The other backup is a bucket with an S3 Inventory: a and b copied there as they are, c rewritten at another
    size; its inventory (written from moto's state in AWS's layout) is the LIST, by its destination prefix."""
    from neuromirror.standins.s3_inventory import bucket_inventory

    w, s3 = world, dandi_archive.s3
    c = s3.client()
    s3.create_bucket("orcd-copy")
    s3.create_bucket("orcd-inventory", versioned=False, public=False)
    for path in ("sub-0/a.nwb", "sub-0/b.nwb"):
        key = w.objects[path][0]
        c.copy_object(Bucket="orcd-copy", Key=key, CopySource={"Bucket": "dandiarchive", "Key": key})
    c.put_object(Bucket="orcd-copy", Key=w.objects["sub-0/c.nwb"][0], Body=b"not c")
    written = bucket_inventory(c, "orcd-copy", "orcd-inventory")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint_url)
    store = w.tmp / "inventory-store"
    got = w.run.json("keep", w.sid, "--to", str(store), "--covered-by", f"s3://orcd-inventory/{written.prefix}")
    assert store_keys(store) == uncovered(w) | {w.keys["sub-0/x.zarr/0/0"]}
    assert got["gap"]["covered"]["objects"] == 2 and got["gap"]["differs"] == 1  # no chunk in that copy
    manifest = f"s3://orcd-inventory/{written.manifest_key}"
    record = w.run.json("status", "--coverage", "--covered-by", manifest, w.sid)
    assert blobs_row(record)["backup"] == {"objects": 2, "bytes": 8000}


def test_a_list_that_cannot_be_read_is_one_line(world: World) -> None:
    code, out, err = world.run("keep", world.sid, "--to", str(world.tmp / "x"), "--covered-by", "/no/such/list")
    assert code == 2 and err.strip().count("\n") == 0 and "--covered-by /no/such/list" in err
    bad = world.tmp / "bad.tsv"
    bad.write_text("blobs/a/b/c\tlots\n")
    code, out, err = world.run("keep", world.sid, "--to", str(world.tmp / "x"), "--covered-by", str(bad))
    assert code == 2 and "line 1" in err and err.strip().count("\n") == 0
    assert not (world.tmp / "x").exists()


def _content_table() -> dict:
    """backup-status's data/content.json as the repository publishes it (2026-08-22)."""
    return {
        "subtitle": "Content",
        "data": {
            "Location": ["blobs/", "dandisets/"],
            "Size (Local / Remote)": ["1.21 PB / 1.22 PB (98.55%)", "10.22 GB / 3.73 GB (273.70%)"],
            "Number of Objects (Local / Remote)[^1]": ["577306 / 627559 (91.99%)", "10763 / 8940 (120.39%)"],
        },
    }


# -- the coverage page -------------------------------------------------------------------------------------


def expected_coverage(w: World, listed: set[str]) -> dict:
    """The blobs/ row as sqlite, the stores and the LIST say it: every annexed key of the source's versions, those
    the LIST holds (``listed``: paths), those with a good check in a store, those in neither."""
    conn = sqlite3.connect(w.run.root / ".neuromirror" / "index.sqlite")
    try:
        sql = (
            "SELECT DISTINCT e.key, e.size FROM version_files vf JOIN versions v ON v.id = vf.version_id"
            " JOIN entries e ON e.id = vf.entry_id WHERE v.source = ? AND e.key IS NOT NULL"
            " AND e.checksum_kind NOT IN ('git', 'subdataset')"
        )
        every = dict(conn.execute(sql, [w.sid]).fetchall())
        kept = {k for (k,) in conn.execute("SELECT key FROM store_checks WHERE checked IS NOT NULL")} & set(every)
    finally:
        conn.close()
    stored = set().union(*(store_keys(p) for p in w.tmp.glob("*store*")))
    assert kept <= stored  # a good check is of a copy that is there
    backup = {w.keys[p] for p in listed}
    neither = set(every) - kept - backup

    def count(keys: set[str]) -> dict:
        return {"objects": len(keys), "bytes": sum(every[k] for k in keys)}

    return {"archive": count(set(every)), "backup": count(backup), "kept": count(kept), "neither": count(neither)}


def blobs_row(record: dict) -> dict:
    row = next(p for p in record["sources"][0]["prefixes"] if p["prefix"] == "blobs")
    return {k: row[k] for k in ("archive", "backup", "kept", "neither")}


def test_status_coverage_against_sqlite_the_stores_and_the_list(world: World, dandi_archive) -> None:  # noqa: ANN001
    w = world
    listed = backup_list(w, dandi_archive.s3, w.tmp / "cover.tsv")
    record = w.run.json("status", "--coverage", "--covered-by", str(listed), w.sid)
    assert record["covered_by"] == [str(listed)]
    assert blobs_row(record) == expected_coverage(w, {"sub-0/a.nwb", "sub-0/b.nwb"})
    zarr = next(p for p in record["sources"][0]["prefixes"] if p["prefix"] == "zarr")
    chunk = len(CHUNKS["0/0"])
    assert zarr["archive"] == {"objects": 3, "bytes": 3 * chunk} and zarr["backup"] == {"objects": 1, "bytes": chunk}
    text = w.run.ok("status", "--coverage", "--covered-by", str(listed), w.sid)
    assert "blobs/" in text and "in neither" in text
    # gone: only its noncurrent version serves it; in neither until a store holds it (an earlier test may keep it)
    source = record["sources"][0]
    conn = sqlite3.connect(w.run.root / ".neuromirror" / "index.sqlite")
    try:
        held = conn.execute(
            "SELECT count(*) FROM store_checks WHERE key = ? AND checked IS NOT NULL", [w.keys["sub-0/gone.nwb"]]
        ).fetchone()[0]
    finally:
        conn.close()
    expiring = source["expiring_in_neither"]
    assert expiring["objects"] == (0 if held else 1) and expiring["bytes"] == (0 if held else 400)
    assert source["oldest_in_neither"] is None or source["oldest_in_neither"]["path"].startswith("sub-0/")


@contextmanager
def viewing(w: World, listed: Path) -> Iterator[str]:
    """``serve --no-schedule --http 127.0.0.1:0 --covered-by LIST`` of the mirror: the view's base URL."""
    from helpers.service import get, wait_for

    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "--root", str(w.run.root), "serve", "--no-schedule", "--http",
         "127.0.0.1:0", "--covered-by", str(listed)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        url = line.split(" on ", 1)[1].split(",")[0].strip()
        url = url[: url.index("/", len("http://"))] + "/"
        wait_for(lambda: get(url + "coverage.json")[0] == 200, 30, "the view's coverage.json")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_coverage_page_on_the_view_and_the_service(world: World, dandi_archive) -> None:  # noqa: ANN001
    from helpers.service import get, metric_samples, serving_page, write_config

    w = world
    listed = backup_list(w, dandi_archive.s3, w.tmp / "page.tsv")
    want = expected_coverage(w, {"sub-0/a.nwb", "sub-0/b.nwb"})
    with viewing(w, listed) as url:
        assert 'href="/coverage/"' in get(url)[2]  # the view's landing page names it
        assert blobs_row(json.loads(get(url + "coverage.json")[2])) == want
        doc = page_at(url + "coverage/")
        row = next(r for r in by_class(doc, "tr", "prefix") if r.get("data-prefix") == "blobs")
        for col, count in want.items():
            cell = by_class(row, "td", col)[0]
            assert (int(cell.get("data-objects")), int(cell.get("data-bytes"))) == (count["objects"], count["bytes"])
    cfg = write_config(w.tmp / "cover.yaml", dandi_archive.api_url, [w.sid])
    cfg.write_text(cfg.read_text() + f"covered_by: {listed}\n")
    with serving_page(w.run.root, cfg, "coverage/") as svc:
        assert blobs_row(json.loads(get(svc.url("coverage.json"))[2])) == want
        samples = metric_samples(get(svc.url("metrics"))[2])
        for held_by, count in want.items():
            labels = (("held_by", held_by), ("prefix", "blobs"), ("source", w.sid))
            assert samples[("neuromirror_coverage_objects", *labels)] == count["objects"]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed: the page is not looked at in a browser here")
def test_the_coverage_page_in_chromium(world: World, dandi_archive, tmp_path) -> None:  # noqa: ANN001
    """As a person sees it: the numbers and the list named in the text headless Chromium laid out."""
    w = world
    listed = backup_list(w, dandi_archive.s3, w.tmp / "seen.tsv")
    want = expected_coverage(w, {"sub-0/a.nwb", "sub-0/b.nwb"})
    with viewing(w, listed) as url:
        seen = parse_html(chromium(url + "coverage/", tmp_path), strict=False)
    shown = next(r for r in by_class(seen, "tr", "prefix") if r.get("data-prefix") == "blobs")
    for col, count in want.items():
        assert text_of(by_class(shown, "td", col)[0]).startswith(f"{count['objects']:,} objects")
    assert str(listed) in text_of(seen) and "in neither" in text_of(seen)


def test_the_service_keeps_what_its_covered_by_lacks(world: World, dandi_archive) -> None:  # noqa: ANN001
    """``covered_by:`` in the definitions: the service's keep is a gap-fill, its passes in the run's record and log."""
    from helpers.service import run_part, serve, wait_for

    w = world
    listed = backup_list(w, dandi_archive.s3, w.tmp / "service.tsv")
    store = w.tmp / "service-store"
    cfg = w.tmp / "gap-service.yaml"
    cfg.write_text(
        f"jobs: 1\nstore: {store}\ncovered_by: {listed.name}\ndefaults:\n  schedule: {{interval: 1s}}\n"
        f'  options: {{dandi_api: "{dandi_archive.api_url}"}}\n  keep: {{versions: all}}\nsources:\n  - "{w.sid}"\n'
    )
    with serve(w.run.root, cfg) as svc:
        kept = wait_for(lambda: run_part(w.run.root, w.sid, "keep"), 120, "the service's keep", svc)
        assert svc.stop() == 0
    assert isinstance(kept, dict) and kept["outcome"] == "ok", kept
    assert store_keys(store) == uncovered(w)
    gap = kept["gap"]
    assert gap["covered_by"] == [str(listed)] and gap["covered"]["objects"] == 3
    labels = [p["phase"] for p in gap["passes"]]
    assert labels[-2:] == ["in no copy", "in another of the lab's stores"]
    assert sum(p["kept"] for p in gap["passes"]) == len(UNCOVERED)
    assert "gap-fill (3 held by the archive's own backup)" in svc.stderr

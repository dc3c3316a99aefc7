"""``restore --drill``: a rehearsed restore that finds a bad stored copy and restores from another store.

Why: an operator only trusts a backup whose restores are rehearsed, and a copy whose bytes rotted is
found only by reading it.  A dandiset is kept in two directory stores; one byte of one store's copy is
flipped (same size, as bit rot leaves it); the drill restores a sample into a scratch directory and a
scratch bucket, names the bad copy, restores the object from the other store, removes its scratch
objects, and the result is what ``status`` shows as the last drill.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from helpers.keep import _flip_a_byte, key_of, make_dandiset
from neuromirror.store.directory import DirectoryStore


def test_drill_finds_a_flipped_byte_and_restores_from_the_other_store(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    s3_env,
    tmp_path: Path,
) -> None:
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 40_000, "sub-01/b.nwb": 9_001})
    one, two = tmp_path / "store-one", tmp_path / "store-two"
    for store in (one, two):
        d.run.ok("keep", d.spec, "--to", str(store))
    bad_key = key_of(d.ds, "sub-01/a.nwb", d.version)
    _flip_a_byte(DirectoryStore(one).key_path(bad_key))

    scratch = tmp_path / "scratch"
    code, out, err = d.run("restore", "--drill", d.spec, "--sample", "10", "--to", str(scratch), "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["drill"] and report["result"] == "mismatch"
    assert report["objects"] == 2 and report["written"] == {"objects": 2, "bytes": 49_001}
    assert report["failed"] == [] and report["mismatches"] == 1
    (bad,) = report["bad_copies"]
    assert bad["key"] == bad_key and bad["store"] == str(one) and "sha256" in bad["why"]
    assert report["rate"] > 0 and report["seconds"] > 0
    assert "mismatch" in err
    assert list(scratch.iterdir()) == []  # the drill's scratch objects are gone

    # status shows the last drill and its result
    status = json.loads(d.run.ok("status", "--json"))
    last = status["drill"]
    assert last["result"] == "mismatch" and last["mismatches"] == 1 and last["objects"] == 2
    assert last["bad_copies"][0]["key"] == bad_key
    assert "last drill" in d.run.ok("status")

    # into a scratch bucket: read from the good store alone, all well; the bucket left empty
    bucket = f"drill-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=bucket)
    s3.buckets.append(bucket)
    os.chmod(DirectoryStore(one).key_path(bad_key), 0o644)
    DirectoryStore(one).key_path(bad_key).unlink()  # the bad copy gone from store one: store two serves it
    code, out, err = d.run("restore", "--drill", d.spec, "--to", f"s3://{bucket}/drills", "--json")
    report = json.loads(out)
    assert code == 0, err
    assert report["result"] == "ok" and report["written"]["objects"] == 2 and report["mismatches"] == 0
    assert not s3.client().list_objects_v2(Bucket=bucket).get("Contents")
    assert json.loads(d.run.ok("status", "--json"))["drill"]["result"] == "ok"


def test_each_source_keeps_its_last_drill_and_a_missing_bucket_says_why(
    dandi_archive,  # noqa: ANN001
    s3,  # noqa: ANN001
    s3_env,
    tmp_path: Path,
) -> None:
    """One source's failed drill stays on ``status``, the page and ``/metrics`` when another source drills fine
    after it (the gauges carried one drill at a time); a drill into a bucket that is not there says
    ``failed`` and why on its one line of output, without ``--json``."""
    from helpers.service import metric_samples
    from neuromirror.service import render_html, render_metrics
    from neuromirror.service.state import status_report

    root = tmp_path / "mirror"
    a = make_dandiset(dandi_archive, root, {"sub-01/a.nwb": 5_000})
    b = make_dandiset(dandi_archive, root, {"sub-01/b.nwb": 7_000})
    store = tmp_path / "store"
    for d in (a, b):
        d.run.ok("keep", d.spec, "--to", str(store))

    missing = f"s3://no-such-{uuid.uuid4().hex[:10]}/drills"
    code, out, err = a.run("restore", "--drill", a.spec, "--to", missing)
    assert code == 1, out + err
    (line,) = out.splitlines()
    assert line.startswith("drill failed: restore target s3://no-such-") and line.endswith("no such bucket"), out
    assert "failed" in err

    bucket = f"drill-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=bucket)
    s3.buckets.append(bucket)
    code, out, err = b.run("restore", "--drill", b.spec, "--to", f"s3://{bucket}/drills")
    assert code == 0 and "result: ok" in out.splitlines()[-1], out + err

    status = json.loads(a.run.ok("status", "--json"))
    assert status["drill"]["scope"] == b.source  # the newest drill
    drills = status["drills"]
    assert set(drills) == {a.source, b.source}
    assert drills[a.source]["result"] == "failed" and "no such bucket" in drills[a.source]["reason"]
    assert drills[b.source]["result"] == "ok" and drills[b.source]["reason"] is None
    assert drills[b.source]["objects"] == 1 and drills[b.source]["bytes"] == 7_000
    text = a.run.ok("status")
    assert f"last drill of {a.source}: failed (restore target s3://no-such-" in text
    assert f"last drill of {b.source}: ok at" in text

    report = status_report(root)
    m = metric_samples(render_metrics(report))
    assert m["neuromirror_drill_last_ok", ("source", a.source)] == 0
    assert m["neuromirror_drill_last_ok", ("source", b.source)] == 1
    assert m["neuromirror_drill_last_objects", ("source", b.source)] == 1
    page = render_html(report)
    assert f"{a.source}: <b>failed</b> (restore target s3://no-such-" in page
    assert f"{b.source}: <b>ok</b>" in page

    # a drill of both sources (no SPEC) is the last of each, each filed under its own source
    scratch = tmp_path / "scratch"
    code, out, err = a.run("restore", "--drill", "--to", str(scratch))
    assert code == 0, out + err
    drills = json.loads(a.run.ok("status", "--json"))["drills"]
    assert {s: d["result"] for s, d in drills.items()} == {a.source: "ok", b.source: "ok"}
    assert {s: d["scope"] for s, d in drills.items()} == {a.source: a.source, b.source: b.source}

    # a's one copy rots: a drill over every source files what it found under a alone, never under b
    bad_key = key_of(a.ds, "sub-01/a.nwb", a.version)
    _flip_a_byte(DirectoryStore(store).key_path(bad_key))
    code, out, err = a.run("restore", "--drill", "--to", str(scratch), "--json")
    assert code == 1 and json.loads(out)["result"] == "failed", out + err
    drills = json.loads(a.run.ok("status", "--json"))["drills"]
    assert drills[a.source]["result"] == "failed" and "not restored" in drills[a.source]["reason"], drills[a.source]
    assert drills[a.source]["objects"] == 1 and drills[a.source]["failed"] == 1
    assert drills[b.source]["result"] == "ok" and drills[b.source]["reason"] is None, drills[b.source]
    assert drills[b.source]["objects"] == 1 and drills[b.source]["bytes"] == 7_000
    assert drills[b.source]["mismatches"] == 0 and drills[b.source]["failed"] == 0

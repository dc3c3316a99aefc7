"""``neuromirror audit``: what the mirror saw wrong upstream, from what its syncs recorded (issue 59).

Two dandisets on the DANDI stand-in.  ``wrong`` is made wrong on purpose: a Zarr whose checksum the API
reports wrong, a Zarr with no checksum (pending), a text file whose metadata's sha256 is not its bytes', a
blob whose S3 object is missing with no version holding it (not pinned), a blob whose current object is
deleted (only a noncurrent version serves it), a published version without DOI, and a Zarr rewritten in
place between two syncs while the draft's ``modified`` stays, and a Zarr whose manifest the archive
publishes drifted from its objects (found by ``--recheck`` only).  ``clean`` has a file, a Zarr, a Zarr
whose manifest the archive does not publish, and a published version with its DOI: it must yield no finding (both made by ``neuromirror.standins.dandi.planted``,
which the bench's ``audit-scale`` plants too).  Both are synced by hand (``neuromirror sync``);
then ``audit --json``, its text, ``--recheck``, and the service's ``/audit/``, ``/audit.json`` and
``/metrics`` are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
import requests

from helpers.service import Served, metric_samples, neuromirror, serving_page, write_config
from helpers.status_pages import CHROMIUM, by_class, chromium, keep_screenshot, page_at, parse_html, text_of
from neuromirror.standins.dandi.planted import PLANTED, PLANTED_ON_RECHECK, UNPUBLISHED, plant, rewrite
from neuromirror.standins.dandi.zarr_manifests import manifest_key
from neuromirror.util.zarr_manifest import read_entries


class Planted(NamedTuple):
    root: Path
    api: str
    wrong: str
    clean: str
    cfg: Path


def sync(root: Path, api: str, *sids: str) -> None:
    out = neuromirror(root, "sync", *sids, "--dandi-api", api)
    assert out.returncode in (0, 3), out.stderr[-3000:]  # 3: synced, items refused (the planted ones)


@pytest.fixture(scope="module")
def planted(dandi_archive, tmp_path_factory) -> Iterator[Planted]:  # noqa: ANN001
    a = dandi_archive
    tmp = tmp_path_factory.mktemp("audit")
    made = plant(a)  # the wrong dandiset (every kind the audit covers) and the clean one
    root, sids = tmp / "mirror", [f"dandi:{made.wrong}", f"dandi:{made.clean}"]
    sync(root, a.api_url, *sids)
    rewrite(a, made)  # in place: neither the asset's nor the draft's modified moves
    sync(root, a.api_url, *sids)
    yield Planted(root, a.api_url, sids[0], sids[1], write_config(tmp / "m.yaml", a.api_url, sids))


def audit_json(p: Planted, *args: str) -> dict:
    out = neuromirror(p.root, "audit", "--json", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_every_planted_finding_and_none_on_the_clean_archive(planted: Planted) -> None:
    got = audit_json(planted)
    assert got["schema_version"] == 1 and got["rechecked"] is False
    found = {(f["kind"], f["path"]) for f in got["findings"] if f["source"] == planted.wrong}
    assert found == PLANTED, json.dumps(got["findings"], indent=1)
    assert not [f for f in got["findings"] if f["source"] == planted.clean], got["findings"]
    assert set(got["sources"][planted.clean].values()) == {0}
    assert got["sources"][planted.wrong]["zarr-checksum-mismatch"] == 1
    assert got["kinds"]["manifest-drift"]["covered"].startswith("recheck only")
    assert "manifest-drift" not in got["sources"][planted.wrong] and got["coverage"] == {}
    for f in got["findings"]:
        assert set(f) >= {"source", "kind", "path", "version", "detail", "first_seen", "last_seen"}, f
        assert f["first_seen"] and f["last_seen"], f
    by_kind = {f["kind"]: f for f in got["findings"]}
    assert by_kind["no-doi"]["version"].startswith("0.")
    assert "Zarr checksum mismatch" in by_kind["zarr-checksum-mismatch"]["detail"]
    gone = by_kind["noncurrent-only"]
    assert gone["expires"] > gone["first_seen"] and gone["expires_is"] == "at the latest"
    # one source by its SPEC
    only = audit_json(planted, planted.clean)
    assert list(only["sources"]) == [planted.clean] and only["findings"] == []


def test_the_text_names_source_kind_and_path(planted: Planted) -> None:
    out = neuromirror(planted.root, "audit")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"{planted.wrong}: {len(PLANTED)} finding(s)" in text and f"{planted.clean}: nothing found" in text
    for kind, path in PLANTED:
        assert any(ln.strip().startswith(f"{kind}  {path}") for ln in text.splitlines()), (kind, path, text)
    assert "not looked at without a recheck: manifest-drift" in text


def test_recheck_asks_the_archive(planted: Planted) -> None:
    got = audit_json(planted, "--recheck", planted.wrong)
    assert got["rechecked"] is True and got["recheck_errors"] == []
    by_kind = {f["kind"]: f for f in got["findings"]}
    assert "still gives none" in by_kind["no-doi"]["detail"]
    gone = by_kind["noncurrent-only"]
    bound = next(f for f in audit_json(planted)["findings"] if f["kind"] == "noncurrent-only")["expires"]
    # deleted before the first sync: 30 days after the delete marker, no later than the records' bound
    assert gone["expires_is"] == "exact" and gone["expires"] <= bound, (gone, bound)


def drifts(got: dict, source: str) -> set[tuple[str, str]]:
    return {(f["kind"], f["path"]) for f in got["findings"] if f["source"] == source and f["kind"] == "manifest-drift"}


def test_recheck_finds_the_drifted_manifest_and_none_on_the_clean_archive(planted: Planted) -> None:
    got = audit_json(planted, "--recheck")
    assert got["recheck_errors"] == [], got["recheck_errors"]
    assert drifts(got, planted.wrong) == PLANTED_ON_RECHECK, json.dumps(got["findings"], indent=1)
    assert {(f["kind"], f["path"]) for f in got["findings"] if f["source"] == planted.wrong} >= PLANTED - {
        ("no-doi", "")  # asked again: the stand-in still gives none, so it stays
    }
    assert not [f for f in got["findings"] if f["source"] == planted.clean], got["findings"]
    assert got["sources"][planted.clean]["manifest-drift"] == 0
    assert got["sources"][planted.wrong]["manifest-drift"] == len(PLANTED_ON_RECHECK)
    detail = {f["path"].rsplit("/", 1)[-1]: f["detail"] for f in got["findings"] if f["kind"] == "manifest-drift"}
    assert detail["0"].startswith("size 5 in the manifest, 4 listed"), detail
    assert "missing from the archive's manifest" in detail["1"] and "but not listed" in detail["2"], detail
    assert detail[".zarray"].startswith("versionId not-its-version in the manifest"), detail
    cov = got["coverage"]["manifest-drift"]
    # the clean Zarr's manifest is published and agrees; the one withheld is counted, not a finding
    assert [(s["source"], s["path"]) for s in cov["zarr_states_not_published"]] == [(planted.clean, UNPUBLISHED)]
    # fine.zarr, drifted.zarr (x2 sources' versions share states), rewritten.zarr before and after, ok
    assert cov["zarr_states_compared"] >= 4, cov
    text = neuromirror(planted.root, "audit", "--recheck").stdout
    assert any(ln.strip() == "manifest-drift  sub-0/drifted.zarr/0/1" for ln in text.splitlines()), text
    assert "1 not published by the archive" in text


def test_the_archive_publishes_manifests_at_the_design_layout(planted: Planted, dandi_archive) -> None:  # noqa: ANN001
    a = dandi_archive
    sid = planted.clean.split(":", 1)[1]
    zarr = a.asset_at(sid, "sub-0/fine.zarr").zarr
    url = a.s3.url(a.bucket, manifest_key(zarr.zarr_id, zarr.checksum))
    assert "/zarr-manifest/" + zarr.zarr_id[:3] + "/" + zarr.zarr_id[3:6] + "/" in url
    doc = requests.get(url, timeout=30).json()  # anonymous, as dandidav reads it
    assert doc["schemaVersion"] == 2 and doc["statistics"]["zarrChecksum"] == zarr.checksum
    assert set(read_entries(doc)) == {"0/.zarray", "0/0", "0/1", ".zgroup"}
    # the mirror's own manifest of that state says the same of every object
    mine = planted.root / ".neuromirror" / "zarr-manifests" / zarr.zarr_id[:3] / zarr.zarr_id[3:6] / zarr.zarr_id
    ours = read_entries(json.loads((mine / f"{zarr.checksum}.json").read_text()))
    theirs = read_entries(doc)
    assert {p: (e.version_id, e.size, e.etag) for p, e in ours.items()} == {
        p: (e.version_id, e.size, e.etag) for p, e in theirs.items()
    }
    withheld = a.asset_at(sid, UNPUBLISHED).zarr
    assert requests.get(
        a.s3.url(a.bucket, manifest_key(withheld.zarr_id, withheld.checksum)), timeout=30
    ).status_code in (
        403,
        404,
    )


def test_a_manifest_root_that_publishes_none_yields_no_drift(planted: Planted, dandi_archive) -> None:  # noqa: ANN001
    a = dandi_archive
    given = audit_json(planted, "--recheck", "--zarr-manifests", a.s3.url(a.bucket, "zarr-manifest"))
    assert drifts(given, planted.wrong) == PLANTED_ON_RECHECK  # the design's place, named
    none = audit_json(planted, "--recheck", "--zarr-manifests", a.s3.url(a.bucket, "nowhere"))
    assert not drifts(none, planted.wrong) and not drifts(none, planted.clean), none["findings"]
    cov = none["coverage"]["manifest-drift"]
    assert cov["zarr_states_compared"] == 0 and len(cov["zarr_states_not_published"]) >= 4, cov
    assert none["recheck_errors"] == []


@pytest.fixture(scope="module")
def served(planted: Planted) -> Iterator[Served]:
    with serving_page(planted.root, planted.cfg, "audit/") as svc:
        yield svc


def test_the_page_and_its_json(planted: Planted, served: Served) -> None:
    doc = page_at(served.url("audit/"))
    rows = [text_of(tr) for tr in by_class(doc, "tr", "finding")]
    for kind, path in PLANTED:
        assert any(planted.wrong in t and kind in t and path in t for t in rows), (kind, path, rows)
    assert not any(planted.clean in t for t in rows)
    j = requests.get(served.url("audit.json"), timeout=30).json()
    assert {(f["kind"], f["path"]) for f in j["findings"] if f["source"] == planted.wrong} == PLANTED


def test_metrics_count_by_kind(planted: Planted, served: Served) -> None:
    m = metric_samples(requests.get(served.url("metrics"), timeout=30).text)
    for kind, _ in PLANTED:
        assert m["neuromirror_audit_findings", ("kind", kind), ("source", planted.wrong)] == 1, kind
        assert m["neuromirror_audit_findings", ("kind", kind), ("source", planted.clean)] == 0, kind
    assert not any(k[0] == "neuromirror_audit_findings" and ("kind", "manifest-drift") in k for k in m)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed: the page is not looked at in a browser here")
def test_the_page_in_a_browser(planted: Planted, served: Served, tmp_path: Path) -> None:
    dom = parse_html(chromium(served.url("audit/"), tmp_path), strict=False)
    assert len(by_class(dom, "tr", "finding")) == len(PLANTED)
    shot = tmp_path / "audit.png"
    chromium(served.url("audit/"), tmp_path, screenshot=shot, size="1400,1000")
    assert shot.stat().st_size > 10_000
    keep_screenshot(shot)


def test_the_audit_reads_the_runs_through_its_indexes(tmp_path: Path) -> None:
    """``last_successes`` and ``noted_reports`` seek through ``idx_runs_success`` and ``idx_runs_noted`` (the
    index's ``runs-audit`` migration), not every run's row: SQLite uses a partial index only where the query
    repeats its condition, so a query or an index worded apart would read 10^6 runs again at retention's 500
    runs a source (``scripts/bench --scenarios audit-scale``: 8.06 s before them, 1.29 s with them)."""
    from neuromirror.index import runs
    from neuromirror.index.db import Index

    index = Index(tmp_path / ".neuromirror" / "index.sqlite")
    try:
        conn = index.db.conn
        sent: list[str] = []
        conn.set_trace_callback(sent.append)
        runs.last_successes(index), runs.noted_reports(index)
        conn.set_trace_callback(None)
        plans = {sql: " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)) for sql in sent}
    finally:
        index.close()
    assert len(plans) == 2, plans
    assert sum("USING INDEX idx_runs_success" in p for p in plans.values()) == 1, plans
    assert sum("USING INDEX idx_runs_noted" in p for p in plans.values()) == 1, plans

"""The service's pages and the catalog as people and scripts see them.

One mirror served for the whole module (``neuromirror serve --http`` against the DANDI
stand-in): a dandiset with a published version (a DOI) and a moving draft, and one
that does not exist (failing).  The pages are checked as HTML documents (html5lib's
strict parser: any parse error fails), as a browser renders them (Debian's headless
``chromium``: the DOM it built, and a screenshot), /metrics with prometheus_client's
own parser, and ``neuromirror browse`` (Datasette) through its canned queries' JSON.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import signal
import sqlite3
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import quote, urljoin
from xml.etree.ElementTree import Element

import pytest

from helpers.service import ENV, get, metric_samples, missing_id, runs, serve, wait_for, write_config
from helpers.status_pages import CHROMIUM, by_class, chromium, keep_screenshot, parse_html, probed, source_row, text_of
from neuromirror.dataset.mirror import Datasets

HOSTILE = "<script>alert('x')</script> & \"quotes\" <b>bold</b>"


class Site:
    def __init__(self, root: Path, served, good: str, bad: str, version: str, contents: dict[str, bytes]):  # noqa: ANN001
        self.root, self.served, self.good, self.bad, self.version, self.contents = (
            root,
            served,
            good,
            bad,
            version,
            contents,
        )

    def url(self, path: str = "") -> str:
        return self.served.url(path)


@pytest.fixture(scope="module")
def site(dandi_archive, tmp_path_factory) -> Iterator[Site]:  # noqa: ANN001
    archive = dandi_archive
    tmp = tmp_path_factory.mktemp("pages")
    ident = archive.create_dandiset(name="status page test")
    contents = {f"sub-{i}/data.nwb": f"status page {ident} {i}".encode() * 40 for i in range(2)}
    for path, data in contents.items():
        archive.put_asset(ident, path, data)
    version = archive.publish(ident)
    contents["sub-2/later.nwb"] = b"draft only" * 40
    archive.put_asset(ident, "sub-2/later.nwb", contents["sub-2/later.nwb"])
    good, bad = f"dandi:{ident}", f"dandi:{missing_id(archive)}"
    root = tmp / "mirror"
    cfg = write_config(tmp / "m.yaml", archive.api_url, [good, bad], backoff="{initial: 1s, max: 2s}")
    with serve(root, cfg) as svc, ExitStack() as held:
        wait_for(lambda: len(runs(root, good)) >= 4 and len(runs(root, bad)) >= 3, 60, "runs of both sources", svc)
        # hold both sources (as a hand sync would): the service skips their runs, the pages stand still
        mirror = Datasets(root)
        held.callback(mirror.close)
        for sid in (good, bad):
            held.enter_context(mirror.lock(sid, wait=60))

        def settled() -> bool:
            # a run's lock is given back before its after-sync steps (publish, keep, at-risk count) end:
            # the pages stand still once the service shows neither source running
            rows = json.loads(get(svc.url("status.json"))[2])["sources"]
            return all(r["status"] != "running" for r in rows if r["source"] in (good, bad))

        wait_for(settled, 60, "both sources' runs to end", svc)
        # something hostile in the index, as an archive's error message could be
        con = sqlite3.connect(root / ".neuromirror" / "index.sqlite", timeout=30)
        with con:
            con.execute(
                "INSERT INTO runs (source, started, ended, outcome, error, trigger) VALUES (?,?,?,?,?,?)",
                [bad, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:01.500000Z", "failed", HOSTILE, "cli"],
            )
        con.close()
        yield Site(root, svc, good, bad, version, contents)
        held.close()
        assert svc.stop() == 0


def assert_valid_page(text: str) -> Element:
    doc = parse_html(text)
    ids = [e.get("id") for e in doc.iter() if e.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert not list(doc.iter("script")), "a script element: something was not escaped"
    assert doc.find("head/title") is not None and doc.get("lang") == "en"
    return doc


# -- without a browser -----------------------------------------------------------------


def test_overview_counts_failures_first_and_a_strip_of_runs(site: Site) -> None:
    code, ctype, body = get(site.url())
    assert code == 200 and ctype.startswith("text/html")
    doc = assert_valid_page(body)
    summary = {
        (li.find("b").tail or "").strip(): int(li.find("b").text)
        for li in doc.iter("li")
        if li.get("class", "").startswith("st-")
    }
    assert summary["ok"] == 1 and summary["running"] == 0 and summary["failing"] + summary["backing off"] == 1
    rows = [tr.get("id") for tr in doc.iter("tr") if tr.get("id")]
    assert rows == [site.bad, site.good]  # failures first
    # the strip: one bar per run (at most 30), oldest left, coloured by outcome, linked to the run
    good_runs = runs(site.root, site.good)
    bars = by_class(source_row(doc, site.good), "span", "strip")[0].findall("a")
    assert len(bars) == min(30, len(good_runs)) >= 4
    first = bars[0]
    assert "o-ok" in first.get("class") and "same" not in first.get("class")  # the first sync added files
    assert first.get("href") == f"source/{quote(site.good, safe='')}#run-{good_runs[0]['id']}"
    r0 = good_runs[0]
    assert f"+{r0['added']} -{r0['removed']} ~{r0['changed']}" in first.get("title") and "ok" in first.get("title")
    assert all("o-unchanged" in b.get("class") for b in bars[1:])
    bad_bars = by_class(source_row(doc, site.bad), "span", "strip")[0].findall("a")
    assert all("o-failed" in b.get("class") for b in bad_bars)
    # why it fails, under its status: the latest error, here the hostile one, shown as text (escaped)
    assert HOSTILE in text_of(source_row(doc, site.bad))


def test_source_page_history_and_versions(site: Site) -> None:
    code, _, body = get(site.url())
    link = next(
        a.get("href")
        for a in parse_html(body).iter("a")
        if a.get("href", "").startswith("source/") and "#" not in a.get("href") and text_of(a) == site.good
    )
    code, ctype, page = get(urljoin(site.url(), link))
    assert code == 200 and ctype.startswith("text/html")
    doc = assert_valid_page(page)
    assert text_of(doc.find("body/h1")) == site.good
    history = by_class(doc, "table", "runs")[0].findall("tbody/tr")
    recorded = runs(site.root, site.good)
    assert len(history) == len(recorded) and history[-1].get("id") == f"run-{recorded[0]['id']}"
    first = text_of(history[-1])
    r0 = recorded[0]
    assert "service" in first and f"+{r0['added']} -{r0['removed']} ~{r0['changed']}" in first
    assert site.version in first and "draft" in first  # the versions the first run recorded
    versions = by_class(doc, "table", "versions")[0].findall("tbody/tr")
    labels = [text_of(tr.find("td")) for tr in versions]
    assert labels == ["draft", site.version]  # newest first
    doi = next(a for a in versions[1].iter("a") if "doi.org" in a.get("href"))
    assert site.version in text_of(doi) and doi.get("href").startswith("https://doi.org/10.")
    # a source's page with the hostile error: escaped; an unknown source: 404
    code, _, bad_page = get(site.url("source/" + quote(site.bad, safe="")))
    assert code == 200 and HOSTILE in text_of(assert_valid_page(bad_page))
    assert get(site.url("source/" + quote("dandi:nope", safe="")))[0] == 404


def test_metrics_parse_with_prometheus_client(site: Site) -> None:
    code, ctype, body = get(site.url("metrics"))
    assert code == 200 and ctype.startswith("text/plain")
    m = metric_samples(body)
    src = ("source", site.good)
    assert (
        m["neuromirror_files", src] == 4 and m["neuromirror_versions", src] == 2
    )  # the draft: 3 assets + dandiset.yaml
    assert m["neuromirror_sync_duration_seconds_count", src] >= 4
    assert (
        m["neuromirror_sync_duration_seconds_bucket", ("le", "+Inf"), src]
        == m["neuromirror_sync_duration_seconds_count", src]
    )
    assert m["neuromirror_sync_duration_seconds_bucket", ("le", "60.0"), src] >= 4  # stand-in syncs are quick
    added = sum(r["added"] or 0 for r in runs(site.root, site.good) if r["ended"])
    assert m["neuromirror_file_changes_total", ("change", "added"), src] == added >= 3
    assert m["neuromirror_runs_total", ("outcome", "failed"), ("source", site.bad)] >= 3
    assert m["neuromirror_up",] == 1


# -- in a browser ------------------------------------------------------------------------


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium installed (Debian: apt-get install chromium): the pages are not looked at in a browser here",
)
def test_pages_in_a_browser(site: Site, tmp_path: Path) -> None:
    import re
    import struct

    def counted() -> object:  # the service counts what is at risk once a sync ended
        rows = json.loads(get(site.url("status.json"))[2])["sources"]
        return next(r for r in rows if r["source"] == site.good).get("at_risk_counted")

    wait_for(counted, 60, "the at-risk counts of the good source")
    for name, path in (("overview", ""), ("source", "source/" + quote(site.good, safe=""))):
        dom = parse_html(chromium(site.url(path), tmp_path))  # what the browser built, serialized
        body = text_of(dom.find("body"))
        if name == "overview":
            for expected in (site.good, site.bad, HOSTILE, "no change", "status.json", "at risk (latest version)"):
                assert expected in body, body
            # nothing kept: every annexed file of the latest version is only behind the archive's pinned URLs
            assert re.search(r"0 kept · [1-9]\d* pinned · 0 mutable", body), body
            # the failing source is shown with its streak, failing or, between attempts, backing off
            assert "failing (" in body or "backing off (" in body, body
            summary = {
                (li.find("b").tail or "").strip(): li.find("b").text
                for li in dom.iter("li")
                if li.find("b") is not None
            }
            assert summary == {"ok": "1", "failing": "1", "backing off": "0", "running": "0"} or summary == {
                "ok": "1",
                "failing": "0",
                "backing off": "1",
                "running": "0",
            }, summary
            assert "failing" in body or "backing off" in body
            strips = by_class(dom, "span", "strip")
            assert len(strips) == 2 and all(s.findall("a") for s in strips)
        else:
            assert "Run history" in body and "Versions" in body and site.version in body and "draft" in body
            assert "At risk" in body and "only behind a pinned URL" in body and "kept in a store" in body
            risk = by_class(dom, "table", "risk")
            assert len(risk) == 1 and len(risk[0].find("tbody").findall("tr")) >= 2  # published + draft
        shot = tmp_path / f"{name}.png"
        chromium(site.url(path), tmp_path, screenshot=shot)
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (1400, 900) and len(data) > 10_000  # a rendered page, not a blank one
        keep_screenshot(shot)


# -- the catalog (neuromirror browse) -------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(site: Site) -> Iterator[str]:
    pytest.importorskip("datasette", reason="the browse extra (datasette) is not installed")
    log = site.root.parent / "browse.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "neuromirror", "--root", str(site.root), "browse", "--port", "0"],
            env=ENV,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    state = site.root / ".neuromirror" / "browse.json"
    try:

        def up() -> Optional[str]:
            if proc.poll() is not None:
                raise AssertionError(f"browse exited ({proc.returncode}): {log.read_text()}")
            try:
                return json.loads(state.read_text())["url"]
            except (OSError, ValueError, KeyError):
                return None

        url = wait_for(up, 60, "neuromirror browse to be up")
        assert "(read-only)" in log.read_text()
        yield str(url)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    assert not state.exists()


def query(url: str, name: str, **params: str) -> list[dict]:
    from urllib.parse import urlencode

    code, ctype, body = get(f"{url}/{name}.json?" + urlencode({**params, "_shape": "array"}))
    assert code == 200 and ctype.startswith("application/json"), body[:500]
    return json.loads(body)


def test_browse_answers_canned_queries(site: Site, catalog: str) -> None:
    assert catalog.startswith("http://127.0.0.1:") and catalog.endswith("/index")
    sha = hashlib.sha256(site.contents["sub-0/data.nwb"]).hexdigest()
    held = query(catalog, "files_by_sha256", sha256=sha.upper())
    assert held and {(r["source"], r["path"], r["dataset"]) for r in held} == {
        (site.good, "sub-0/data.nwb", "dandi/" + site.good.split(":")[1])
    }
    assert "draft" in [r["newest_version"] for r in held]
    assert sum(r["versions_holding_it"] for r in held) == 2  # the published version and the draft
    assert query(catalog, "files_by_sha256", sha256="0" * 64) == []

    versions = query(catalog, "source_versions", source=site.good)
    assert [v["version"] for v in versions] == ["draft", site.version]
    assert versions[1]["doi"] and site.version in versions[1]["doi"] and len(versions[1]["commit"]) == 40
    assert versions[1]["tag"] == site.version

    files = query(catalog, "version_files", source=site.good, version=site.version)
    assert [f["path"] for f in files] == ["dandiset.yaml", "sub-0/data.nwb", "sub-1/data.nwb"]
    draft = query(catalog, "version_files", source=site.good, version="draft")
    assert "sub-2/later.nwb" in [f["path"] for f in draft]

    failed = query(catalog, "failed_runs_last_week")
    assert failed and {r["source"] for r in failed} == {site.bad}
    assert HOSTILE not in [r["error"] for r in failed]  # inserted with a date long past: not of the last week

    # read-only: Datasette refuses writing SQL, and opened the index mutable-but-read-only (sees new runs)
    before = len(runs(site.root))
    code, _, body = get(f"{catalog}.json?sql=" + quote("DELETE FROM runs"))
    assert code in (400, 403) and len(runs(site.root)) >= before
    dbs = json.loads(get(catalog.rsplit("/", 1)[0] + "/-/databases.json")[2])
    assert [d["is_mutable"] for d in dbs if d["name"] == "index"] == [True]


def test_the_status_page_links_to_a_running_catalog(site: Site, catalog: str) -> None:
    doc = assert_valid_page(get(site.url())[2])
    assert catalog in [a.get("href") for a in doc.iter("a")]
    page = assert_valid_page(get(site.url("source/" + quote(site.good, safe="")))[2])
    hrefs = [a.get("href") for a in page.iter("a")]
    assert f"{catalog}/source_versions?source={quote(site.good, safe='')}" in hrefs
    files_link = next(h for h in hrefs if h.startswith(f"{catalog}/version_files?"))
    code, ctype, body = get(files_link)
    assert code == 200 and ctype.startswith("text/html") and "sub-0/data.nwb" in body


def test_browse_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.cli import main

    root = tmp_path / "nothing"
    if importlib.util.find_spec("datasette") is not None:
        assert main(["--root", str(root), "browse"]) == 2
        err = capsys.readouterr().err
        assert (
            err == f"neuromirror: no index at {root}/.neuromirror/index.sqlite: nothing mirrored there yet "
            "(run: neuromirror sync SPEC)\n"
        )
        assert not root.exists()  # a read-only command creates nothing
    monkeypatch.setitem(sys.modules, "datasette", None)  # as where the browse extra is not installed
    assert main(["--root", str(root), "browse"]) == 2
    err = capsys.readouterr().err
    assert err == "neuromirror: browse needs Datasette, which is not installed: pip install 'neuromirror[browse]'\n"


def test_pages_escape_what_comes_from_the_index_and_link_the_catalog() -> None:
    """Hostile text in every field that comes from the index or an archive stays text; ids stay links."""
    from neuromirror.api.records import Run
    from neuromirror.index.rows import Version
    from neuromirror.records import VersionKind
    from neuromirror.service import render_html, render_source_page

    sid = 'boss:a"<b>/c'
    row = {
        "source": sid,
        "status": "failing",
        "schedule": "<every> 1h",
        "dataset": "boss/a<b>/c",
        "last_run": None,
        "last_outcome": "failed",
        "last_success": None,
        "last_failure": "2026-01-01T00:00:02Z",
        "last_error": HOSTILE,
        "consecutive_failures": 2,
        "backoff_until": None,
        "next_run": None,
        "running_since": None,
        "publish_error": "<i>push</i>",
        "versions": 1,
        "latest": "<l>",
        "files": 1,
        "bytes": 2,
        "runs": {"failed": 2},
        "skipped": {},
    }
    runs = [
        Run(
            7,
            sid,
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:02Z",
            "failed",
            HOSTILE,
            0,
            0,
            0,
            "service",
            versions=["<v>"],
        )
    ]
    versions = [
        Version(
            id=1,
            label="<i>v1</i>",
            kind=VersionKind.PUBLISHED,
            date="2026-01-01T00:00:00Z",
            doi='10.1/x"><script>alert(1)</script>',
            commit="<c>" * 5,
            tag="<t>",
            file_count=1,
            bytes=2,
            synced_at="2026-01-01T00:00:03Z",
        )
    ]
    catalog = 'http://127.0.0.1:8643/index?x="y'
    report = {"root": "/r<oot>", "service": None, "sources": [row]}

    doc = assert_valid_page(render_html(report, {sid: runs}, browse_url=catalog))
    text = text_of(doc)
    assert HOSTILE in text and "/r<oot>" in text
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert catalog in hrefs and "source/boss%3Aa%22%3Cb%3E%2Fc" in hrefs
    bar = by_class(doc, "span", "strip")[0].find("a")
    assert bar.get("href") == "source/boss%3Aa%22%3Cb%3E%2Fc#run-7" and HOSTILE in bar.get("title")

    doc = assert_valid_page(render_source_page(row, runs, versions, root="/r", browse_url="http://h/index"))
    text = text_of(doc)
    for shown in (
        sid,
        HOSTILE,
        "<every> 1h",
        "<i>push</i>",
        "<v>",
        "<i>v1</i>",
        "<t>",
        "<c><c><c>",
        '10.1/x"><script>alert(1)</script>',
    ):
        assert shown in text, shown
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert "http://h/index/source_versions?source=boss%3Aa%22%3Cb%3E%2Fc" in hrefs
    assert "http://h/index/version_files?source=boss%3Aa%22%3Cb%3E%2Fc&version=%3Ci%3Ev1%3C%2Fi%3E" in hrefs
    assert "https://doi.org/10.1/x%22%3E%3Cscript%3Ealert%281%29%3C/script%3E" in hrefs


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium installed (Debian: apt-get install chromium): the catalog is not looked at in a browser here",
)
def test_catalog_in_a_browser(site: Site, catalog: str, tmp_path: Path) -> None:
    """The catalog's database page lists the canned queries by title; a query's page shows its answer."""
    from urllib.parse import urlencode

    body = text_of(parse_html(chromium(catalog, tmp_path), strict=False).find("body"))  # Datasette's HTML
    for title in (
        "Which datasets hold a file with this sha256?",
        "The versions of a source",
        "The files of a version",
        "Failed runs of the last week",
        "versions",
        "runs",
    ):
        assert title in body, body
    page = f"{catalog}/source_versions?" + urlencode({"source": site.good})
    body = text_of(parse_html(chromium(page, tmp_path), strict=False).find("body"))
    assert site.version in body and "10.80507/dandi." in body
    shot = tmp_path / "catalog.png"
    chromium(page, tmp_path, screenshot=shot)
    keep_screenshot(shot)


def width_at(url: str, tmp: Path, width: int = 1280) -> tuple[int, int]:
    """(the page's scroll width, the window's width) as chromium lays ``url``'s page out in a ``width`` px window.

    The page's own HTML, with a ``<base>`` to its URL and a line of script that writes the two widths
    into the DOM chromium dumps (the pages themselves have no script)."""
    import re

    probe = "document.body.setAttribute('data-widths', document.documentElement.scrollWidth + ' ' + window.innerWidth)"
    dom = probed(url, tmp, probe, size=f"{width},900")
    m = re.search(r'data-widths="(\d+) (\d+)"', dom)
    assert m is not None, dom[-2000:]
    return int(m.group(1)), int(m.group(2))


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium installed (Debian: apt-get install chromium): the pages' width is not measured here",
)
def test_pages_fit_1280_px_and_link_the_view(site: Site, tmp_path: Path) -> None:
    """The overview, a source's page and the view's landing page: no horizontal scrolling at 1280 px, links to the view."""
    pages = {"overview": "", "source": "source/" + quote(site.good, safe=""), "view": "view/"}
    for name, path in pages.items():
        scroll, window = width_at(site.url(path), tmp_path)
        assert window == 1280 and scroll <= window, (name, scroll, window)
        doc = assert_valid_page(get(site.url(path))[2])
        hrefs = {urljoin(site.url(path), a.get("href") or "") for a in doc.iter("a")}
        for route in ("dav/", "dandisets/", "zarrs/", "zarr-manifests/"):
            assert site.url(route) in hrefs, (name, route, hrefs)
        if name != "view":
            assert site.url("view/") in hrefs
        shot = tmp_path / f"{name}-1280.png"
        chromium(site.url(path), tmp_path, screenshot=shot, size="1280,900")
        keep_screenshot(shot)
    # the landing page's links answer
    for route in ("dav/", "dandisets/", "zarrs/", "zarr-manifests/"):
        assert get(site.url(route))[0] == 200, route
    good_in_view = site.url("dav/" + site.good.replace(":", "/") + "/")
    assert get(good_in_view)[0] == 200


def test_a_mirror_the_service_never_counted_shows_its_counts_on_the_source_page(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """Tried as a new user would: a mirror synced by the command line and then served showed ``-`` where ``status``
    prints numbers.  The overview says the counts come after the service's syncs; the source's page counts it now,
    the same numbers ``status --json`` gives."""
    from datetime import datetime, timezone

    from helpers.retrieve import Runner

    when = datetime(2025, 3, 1, tzinfo=timezone.utc)
    ident = dandi_archive.create_dandiset(name="counted on the page", created=when)
    dandi_archive.put_asset(ident, "a.nwb", b"page bytes" * 100, when=when)
    root, sid = tmp_path / "mirror", f"dandi:{ident}"
    run = Runner(root)
    run.ok("sync", sid, "--dandi-api", dandi_archive.api_url)
    other = f"dandi:{missing_id(dandi_archive)}"  # the service needs an enabled source: one that fails
    cfg = write_config(tmp_path / "m.yaml", dandi_archive.api_url, [sid, other])
    cfg.write_text(cfg.read_text().replace(f'  - "{sid}"', f'  - {{spec: "{sid}", enabled: false}}'))  # never synced
    live = next(r for r in json.loads(run.ok("status", "--json"))["sources"] if r["source"] == sid)["at_risk"]
    with serve(root, cfg) as svc:
        wait_for(lambda: get(svc.url(""))[0] == 200, 60, "the status page", svc)
        overview = parse_html(get(svc.url(""))[2])
        assert "not counted yet" in text_of(source_row(overview, sid))
        page = parse_html(get(svc.url(f"source/{quote(sid, safe='')}"))[2])
        table = next(t for t in page.iter("table") if "risk" in (t.get("class") or "").split())
        rows = [[text_of(td) for td in tr.iter("td")] for tr in table.iter("tr")][1:]
        assert "now, for this page" in text_of(page) and len(rows) == len(live) > 0
        for version, cells in zip(live, rows):
            counts = [f"{version[k]['files']} (" for k in ("kept", "pinned", "unpinned")]
            assert cells[:2] == [version["version"], version["kind"]], (cells, version)
            assert all(c.startswith(n) for c, n in zip(cells[2:], counts)), (cells, version)
        assert svc.stop() == 0

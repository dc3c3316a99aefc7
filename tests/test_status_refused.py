"""A source whose only Zarr is refused at every sync is not ok: ``status``, ``/status.json``, ``/metrics``
and the status page (in headless chromium when installed) say ``refusing``, in red, with the path and why.

One dandiset on the DANDI stand-in: a small file and a Zarr whose ``dandi-zarr-checksum`` the API
reports wrong (``corrupt_zarr_checksum``), so every sync succeeds and refuses the Zarr.  The
service runs it (``serve --http``) until a run refused it, then the source is held (as a hand sync
would) so the pages stand still while they are read.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from helpers.service import Served, get, metric_samples, neuromirror, runs, serve, wait_for, write_config
from helpers.status_pages import CHROMIUM, by_class, parse_html, probed, source_row, text_of
from neuromirror.dataset.mirror import Datasets

ZARR = {
    ".zgroup": b'{"zarr_format": 2}',
    "0/.zarray": b'{"chunks": [4], "dtype": "<u1", "shape": [8], "zarr_format": 2}',
    "0/0": b"\x00\x01\x02\x03",
    "0/1": b"\x04\x05\x06\x07",
}


class Refusing(NamedTuple):
    svc: Served
    root: Path
    sid: str


@pytest.fixture(scope="module")
def refusing(dandi_archive, tmp_path_factory) -> Iterator[Refusing]:  # noqa: ANN001
    archive = dandi_archive
    tmp = tmp_path_factory.mktemp("refused")
    ident = archive.create_dandiset(name="refused zarr")
    archive.put_asset(ident, "sub-0/a.nwb", b"a" * 200)
    archive.corrupt_zarr_checksum(archive.add_zarr_asset(ident, "sub-0/only.zarr", ZARR))
    sid, root = f"dandi:{ident}", tmp / "mirror"
    cfg = write_config(tmp / "m.yaml", archive.api_url, [sid])
    with serve(root, cfg) as svc, ExitStack() as held:
        wait_for(
            lambda: any(r["outcome"] in ("ok", "unchanged") and r["refused"] for r in runs(root, sid)),
            90,
            "a sync that refused the Zarr",
            svc,
        )
        mirror = Datasets(root)
        held.callback(mirror.close)
        held.enter_context(mirror.lock(sid, wait=60))  # the service skips the source: the pages stand still

        def settled() -> bool:
            rows = json.loads(get(svc.url("status.json"))[2])["sources"]
            return any(r["source"] == sid and r["status"] != "running" for r in rows)

        wait_for(settled, 60, "the source's run to end", svc)
        yield Refusing(svc, root, sid)
        held.close()
        assert svc.stop() == 0


def assert_refused_row(row: dict) -> None:
    assert row["status"] == "refusing" and row["ok"] is False, row
    assert row["last_success"] and not row["consecutive_failures"]  # the syncs themselves succeed
    assert row["refused_count"] == 1 and [x["path"] for x in row["refused"]] == ["sub-0/only.zarr"], row
    assert "Zarr checksum mismatch" in row["refused"][0]["reason"]
    assert row["refused_reason"].startswith("refused: 'sub-0/only.zarr': refused: Zarr checksum mismatch")


def test_status_json_and_the_command_say_refusing(refusing: Refusing) -> None:
    code, ctype, body = get(refusing.svc.url("status.json"))
    assert code == 200 and ctype.startswith("application/json")
    assert_refused_row(next(r for r in json.loads(body)["sources"] if r["source"] == refusing.sid))

    out = neuromirror(refusing.root, "status", "--json", "--no-at-risk")
    assert out.returncode == 0, out.stderr
    assert_refused_row(next(r for r in json.loads(out.stdout)["sources"] if r["source"] == refusing.sid))

    out = neuromirror(refusing.root, "status", "--no-at-risk")
    assert out.returncode == 0, out.stderr
    row = next(ln for ln in out.stdout.splitlines() if ln.startswith(refusing.sid))
    assert " refusing " in row and "refused: 'sub-0/only.zarr'" in row, out.stdout
    assert f"{refusing.sid}: refused 'sub-0/only.zarr': refused: Zarr checksum mismatch" in out.stdout, out.stdout


def test_metrics_say_not_ok(refusing: Refusing) -> None:
    code, _, body = get(refusing.svc.url("metrics"))
    assert code == 200
    m = metric_samples(body)
    src = ("source", refusing.sid)
    assert m["neuromirror_source_ok", src] == 0
    assert m["neuromirror_refused_items", src] == 1
    assert m["neuromirror_source_status", src, ("status", "refusing")] == 1
    assert not any(k[0] == "neuromirror_source_status" and ("status", "ok") in k for k in m)
    assert m["neuromirror_last_success_timestamp_seconds", src] > 1.7e9


def test_the_page_shows_the_source_red_with_the_reason(refusing: Refusing) -> None:
    code, _, body = get(refusing.svc.url())
    assert code == 200
    doc = parse_html(body)
    summary = {(li.find("b").tail or "").strip(): li.find("b").text for li in by_class(doc, "li", "st-refusing")}
    assert summary == {"refusing": "1"}
    assert [li for li in doc.iter("li") if "st-ok" in (li.get("class") or "")][0].find("b").text == "0"
    tr = source_row(doc, refusing.sid)
    assert by_class(tr, "span", "st-refusing") and not by_class(tr, "span", "st-ok")
    assert "refused: 'sub-0/only.zarr': refused: Zarr checksum mismatch" in text_of(tr)
    # the CSS paints a refusing badge as a failing one
    assert re.search(r"\.st-failing,\.st-refusing\{background:#fbd9d9\}", body)
    code, _, page = get(refusing.svc.url("source/" + refusing.sid.replace(":", "%3A")))
    assert code == 200 and "refused at the last sync" in page and "sub-0/only.zarr" in page


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium installed (Debian: apt-get install chromium): the page is not looked at in a browser here",
)
def test_the_page_is_red_in_a_browser(refusing: Refusing, tmp_path: Path) -> None:
    """The badge's colour as chromium computes it (a line of script in a copy of the page writes it into the DOM)."""
    probe = (
        "for (const el of document.querySelectorAll('span.st')) el.setAttribute('data-bg',"
        " getComputedStyle(el).backgroundColor)"
    )
    tr = source_row(parse_html(probed(refusing.svc.url(), tmp_path, probe)), refusing.sid)
    badge = by_class(tr, "span", "st-refusing")
    assert badge and badge[0].get("data-bg") == "rgb(251, 217, 217)", [b.attrib for b in badge]
    assert "Zarr checksum mismatch" in text_of(tr)

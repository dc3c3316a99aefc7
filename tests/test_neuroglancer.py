"""A pinned OME-Zarr state in Neuroglancer (issue 60): what ndviz users open, showing the pin, not the archive's now.

The BOSS stand-in's tiny experiment synced with a directory store (its chunks kept: a BOSS chunk has no pinned
URL of its own), ``neuromirror serve --http 127.0.0.1:0 --no-schedule`` running on it as a real process with its
access log at debug.  The page of an image carries the Neuroglancer links, whose state names the image by the
pin's commit; every file under that source answers with the CORS headers a browser needs (requests, with an
``Origin`` and a preflight); zarr-python over fsspec's HTTP filesystem reads through the link's own URL the
volume intern's ``get_cutout`` gives, and still the old one once the BOSS rewrote it and the mirror synced the
new version; headless Chromium opens the link in the view's own Neuroglancer client (and in that client from
another origin) and the view's log shows it asked for the pinned image's metadata and chunks.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import requests
from intern.remote.boss import BossRemote
from intern.resource.boss.resource import ChannelResource

from helpers.boss import CHUNK_ARG, SPEC, C, E, Runner, hermetic_sample
from helpers.status_pages import CHROMIUM, keep_screenshot, parse_html
from neuromirror.read.ome import neuroglancer as ng
from neuromirror.standins.boss.server import BossStandIn

DTYPES = {"image8": "uint8", "image16": "uint16", "annotation": "uint64"}
#: each level's extent, x, y, z (the tiny sample: 80 x 96 x 20 voxels, x and y halved at level 1)
EXTENTS = {0: ((0, 80), (0, 96), (0, 20)), 1: ((0, 40), (0, 48), (0, 20))}
EXPOSED = {"content-length", "content-range", "accept-ranges", "etag", "last-modified"}


def volume(boss: BossStandIn, channel: str, res: int) -> np.ndarray:
    """intern's own cutout of a whole level (z, y, x), as BOSS users read it."""
    kind = "annotation" if channel == "annotation" else "image"
    resource = ChannelResource(channel, C, E, type=kind, datatype=DTYPES[channel])
    x, y, z = EXTENTS[res]
    return BossRemote(boss.remote_config()).get_cutout(resource, res, list(x), list(y), list(z))


@dataclass
class Log:
    """The view's stderr, line by line, as it comes."""

    lines: queue.Queue = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def wait_for(self, pattern: str, timeout: float = 60) -> list[str]:
        """Every access line so far matching ``pattern``, once there is one (an AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [line for line in self.seen if re.search(pattern, line)]
            if hits:
                return hits
            try:
                self.seen.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"the view never logged {pattern!r}:\n" + "".join(self.seen[-40:])) from None

    def drain(self) -> list[str]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen


@dataclass
class World:
    cli: Runner
    boss: BossStandIn
    url: str  # the view's base URL, with a slash
    log: Log
    first: str  # the first version's label and commit
    commit: str
    old: dict[tuple[str, int], np.ndarray]  # (channel, level) -> the volume at the first version

    def page(self, version: str, inner: str = "", host: str = "") -> requests.Response:
        headers = {"Host": host} if host else {}
        path = f"dav/boss/{C}/{E}/{version}/{inner}"
        r = requests.get(self.url + path, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        return r

    def get_json(self, version: str, inner: str = "") -> dict:
        return self.page(version, inner + "?format=json").json()


def serve(root: Path, log: Log) -> Iterator[str]:
    """``neuromirror -l debug serve --http 127.0.0.1:0 --no-schedule``: its base URL; every line it logs into ``log``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "-l", "debug", "--root", str(root), "serve", "--http", "127.0.0.1:0",
         "--no-schedule"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    threading.Thread(target=lambda: [log.lines.put(line) for line in proc.stderr or ()], daemon=True).start()
    try:
        line = log.wait_for(r"read-only on http://127\.0\.0\.1:\d+/dav/")[0]
        yield re.search(r"(http://127\.0\.0\.1:\d+/)dav/", line).group(1)  # type: ignore[union-attr]
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The tiny sample synced once with a directory store, its view served."""
    base = tmp_path_factory.mktemp("neuroglancer")
    with hermetic_sample(base / "home") as boss:
        cli = Runner(base / "mirror", boss.url)
        cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(base / "keep"))
        pin = json.loads(cli.ok("pin", SPEC, "--json"))
        old = {(ch, res): volume(boss, ch, res) for ch in DTYPES for res in EXTENTS}
        log = Log()
        for url in serve(cli.root, log):
            yield World(cli, boss, url, log, pin["version"], pin["commit"], old)


def viewers(page: requests.Response) -> dict[str, dict[str, str]]:
    """The page's Neuroglancer links, by the image's name: {viewer: URL} (the HTML a person clicks)."""
    doc = parse_html(page.text)
    box = next(d for d in doc.iter("div") if d.get("class") == "neuroglancer")
    out = {}
    for li in box.iter("li"):
        name = (li.text or "").split(":")[0].strip()
        out[name] = {
            "mirror" if "/neuroglancer/" in a.get("href", "") else "public": a.get("href", "") for a in li.iter("a")
        }
    return out


def state_of(link: str) -> dict:
    app, _, fragment = link.partition("#!")
    assert app and fragment
    return json.loads(unquote(fragment))


def source_url(layer: dict) -> str:
    """The HTTP URL a layer's ``zarr://`` source names."""
    assert layer["source"].startswith("zarr://http://")
    return layer["source"][len("zarr://") :]


# -- (1) the page of a pinned image carries the link, by the pin's commit ----------------------------------------
def test_the_image_page_links_it_by_the_pin_s_commit(world: World) -> None:
    links = viewers(world.page(world.first, "image8.ome.zarr/"))
    assert list(links) == ["image8"]
    expected = f"{world.url}dav/boss/{C}/{E}/{world.commit}/image8.ome.zarr"
    order = ["mirror", "public"] if ng.client_dir() else ["public"]
    assert list(links["image8"]) == order  # the view's own client first when it has one
    assert links["image8"]["public"].startswith("https://neuroglancer-demo.appspot.com/#!")
    for link in links["image8"].values():
        st = state_of(link)
        assert st["layers"] == [{"type": "image", "source": f"zarr://{expected}", "name": "image8"}]
    if ng.client_dir():
        assert links["image8"]["mirror"].startswith(f"{world.url}neuroglancer/v/pinned/#!")


def test_the_version_page_links_each_channel_and_all_together(world: World) -> None:
    """The version's page (by its label): each channel, the annotation one as a segmentation layer, and all three."""
    links = viewers(world.page(world.first))
    assert list(links) == ["annotation", "image16", "image8", "all 3 together"]
    together = state_of(links["all 3 together"]["public"])["layers"]
    assert [(x["name"], x["type"]) for x in together] == [
        ("annotation", "segmentation"),
        ("image16", "image"),
        ("image8", "image"),
    ]
    assert all(f"/{world.commit}/" in x["source"] for x in together)
    listing = world.get_json(world.first)
    assert [v["name"] for v in listing["neuroglancer"]] == list(links)
    inside = world.get_json(world.first, "image8.ome.zarr/0/")
    assert "neuroglancer" not in inside  # a level is no image of its own


def test_urls_neuroglancer_prints_the_page_s_links(world: World) -> None:
    """``urls SPEC@V --neuroglancer VIEW_URL``: each image of the pin with the link its page gives."""
    spec = f"{SPEC}@{world.first}"
    page = viewers(world.page(world.first))
    text = world.cli.ok("urls", spec, "--neuroglancer", world.url)
    assert text.splitlines() == [f"{c}.ome.zarr\t{page[c]['public']}" for c in ("annotation", "image16", "image8")]
    rows = json.loads(world.cli.ok("urls", spec, "image8.ome.zarr", "--neuroglancer", world.url, "--json"))
    assert [(r["path"], r["commit"], r["type"]) for r in rows] == [("image8.ome.zarr", world.commit, "image")]
    assert rows[0]["layer_source"] == state_of(page["image8"]["public"])["layers"][0]["source"]
    assert rows[0]["neuroglancer"]["public"] == page["image8"]["public"]
    assert rows[0]["neuroglancer"]["mirror"].startswith(f"{world.url}neuroglancer/v/pinned/#!")
    code, out, err = world.cli("urls", spec, "boss.json", "--neuroglancer", world.url)
    assert code == 2 and out == "" and "no OME-Zarr image (a *.zarr directory)" in err and len(err.splitlines()) == 1


# -- (2) CORS on every file the link's source points at ----------------------------------------------------------
def walk(url: str) -> list[str]:
    """Every file under a directory of the view, by its JSON listings."""
    files = []
    for e in requests.get(url, params={"format": "json"}, timeout=60).json()["entries"]:
        full = urlsplit(url)._replace(path=e["href"]).geturl()
        files += walk(full) if e["type"] == "directory" else [full]
    return files


def test_every_file_of_the_source_answers_a_browser_of_another_origin(world: World) -> None:
    link = viewers(world.page(world.first, "image8.ome.zarr/"))["image8"]["public"]
    top = source_url(state_of(link)["layers"][0])
    files = walk(top + "/")
    names = {f[len(top) + 1 :] for f in files}
    assert {".zattrs", ".zgroup", "0/.zarray", "1/.zarray", "0/0/0/0", "1/1/1/1"} <= names and len(files) > 30
    origin = "https://neuroglancer-demo.appspot.com"
    with requests.Session() as s:
        for url in files:
            pre = s.options(
                url,
                headers={"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"},
                timeout=60,
            )  # fmt: skip
            assert pre.status_code == 204, (url, pre.status_code)
            assert pre.headers["Access-Control-Allow-Origin"] == "*"
            assert "range" in pre.headers["Access-Control-Allow-Headers"].lower().replace(" ", "").split(",")
            assert "GET" in pre.headers["Access-Control-Allow-Methods"]
            got = s.get(url, headers={"Origin": origin, "Range": "bytes=0-9"}, timeout=60, allow_redirects=False)
            assert got.status_code == 206 and len(got.content) == 10, (url, got.status_code)
            assert got.headers["Access-Control-Allow-Origin"] == "*"
            exposed = {h.strip().lower() for h in got.headers["Access-Control-Expose-Headers"].split(",")}
            assert EXPOSED <= exposed and got.headers["Content-Range"].startswith("bytes 0-9/")
        # what Neuroglancer asks first and is not there: a 404 a browser may read too (else it is a network error)
        missing = s.get(top + "/.zarray", headers={"Origin": origin}, timeout=60)
        assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == "*"
        # Chrome's preflight for a page of the internet reading a view on loopback
        private = s.options(
            top + "/.zattrs",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Private-Network": "true"},
            timeout=60,
        )  # fmt: skip
        assert private.headers.get("Access-Control-Allow-Private-Network") == "true"
        # an OPTIONS that is no preflight is still WebDAV's
        dav = s.options(top + "/", timeout=60)
        assert dav.status_code == 200 and dav.headers.get("DAV")


def test_a_view_serving_embargoed_data_answers_no_other_origin(world: World) -> None:
    """``serve --include-embargoed``: no CORS header and no preflight, so that no page of another origin reads
    embargoed bytes through the user's browser (the same files, same-origin, still served)."""
    from helpers.read import view_server

    link = viewers(world.page(world.first, "image8.ome.zarr/"))["image8"]["public"]
    path = source_url(state_of(link)["layers"][0])[len(world.url) :] + "/.zattrs"
    origin = "https://neuroglancer-demo.appspot.com"
    with view_server(world.cli.root, "--include-embargoed") as base, requests.Session() as s:
        pre = s.options(base + path, headers={"Origin": origin, "Access-Control-Request-Method": "GET"}, timeout=60)
        assert "Access-Control-Allow-Origin" not in pre.headers and pre.status_code != 204, pre.headers
        got = s.get(base + path, headers={"Origin": origin}, timeout=60)
        assert got.status_code == 200 and "Access-Control-Allow-Origin" not in got.headers, got.headers


# -- (3) a real client reads the pinned image through the link's URL, before and after the BOSS rewrote it ---------
def read_link(link: str, layer: int = 0) -> dict[int, np.ndarray]:
    """zarr-python over fsspec's HTTP filesystem at exactly the link's source: each level's whole array."""
    import zarr

    group = zarr.open_group(source_url(state_of(link)["layers"][layer]), mode="r")
    datasets = group.attrs["multiscales"][0]["datasets"]
    return {int(d["path"]): np.asarray(group[d["path"]][:]) for d in datasets}


def test_zarr_python_reads_the_pin_through_the_link(world: World) -> None:
    links = viewers(world.page(world.first))
    for channel in DTYPES:
        levels = read_link(links[channel]["public"])
        assert sorted(levels) == [0, 1]
        for res, got in levels.items():
            want = world.old[(channel, res)]
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)


def test_after_the_boss_rewrote_the_annotation_the_old_link_shows_the_old_data(world: World) -> None:
    """Annotation channels are what the BOSS edits (a sync re-reads them): the first version's link, asked again
    after the mirror synced the edit, is the same link and reads the first state (from the store's kept chunks)."""
    before = viewers(world.page(world.first, "annotation.ome.zarr/"))["annotation"]
    edited = world.boss.volume(C, E, "annotation").copy()
    edited[2:6, 3:20, 4:30] = 424242424242
    world.boss.set_volume(C, E, "annotation", edited)
    out = world.cli.ok("sync", SPEC, "--chunk", CHUNK_ARG, "--store", str(world.cli.root.parent / "keep"))
    assert out.count("new version") == 1
    new = json.loads(world.cli.ok("pin", SPEC, "--json"))
    assert new["commit"] != world.commit
    after = viewers(world.page(world.first, "annotation.ome.zarr/"))["annotation"]
    assert after == before  # the old version's link is the same link, naming the same commit
    old_levels = read_link(after["public"])
    np.testing.assert_array_equal(old_levels[0], world.old[("annotation", 0)])
    np.testing.assert_array_equal(old_levels[1], world.old[("annotation", 1)])
    latest = viewers(world.page(new["version"], "annotation.ome.zarr/"))["annotation"]
    assert f"/{new['commit']}/annotation.ome.zarr" in state_of(latest["public"])["layers"][0]["source"]
    now = read_link(latest["public"])
    np.testing.assert_array_equal(now[0], volume(world.boss, "annotation", 0))
    assert not np.array_equal(now[0], old_levels[0])


# -- (4) Neuroglancer itself, in headless Chromium ----------------------------------------------------------------
def chromium_opens(url: str, tmp: Path, shot: Path) -> None:
    """Headless Chromium renders ``url`` (WebGL by its software renderer) for 15 s of virtual time."""
    assert CHROMIUM
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'chromium-profile'}",
        "--window-size=1200,900", "--virtual-time-budget=15000", f"--screenshot={shot}", url,
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    keep_screenshot(shot)


needs_client = pytest.mark.skipif(
    CHROMIUM is None or ng.client_dir() is None,
    reason="needs a headless chromium (apt-get install chromium) and the neuroglancer package (the view extra)",
)


def asked(world: World, pattern: str) -> list[str]:
    """The view's access-log lines of GETs under the pinned image8 matching ``pattern``, answered 200."""
    image = re.escape(f"/dav/boss/{C}/{E}/{world.commit}/image8.ome.zarr/")
    return world.log.wait_for(rf'"GET {image}{pattern} HTTP/1\.1" 200')


@needs_client
def test_the_view_s_neuroglancer_shows_the_pinned_image(world: World, tmp_path: Path) -> None:
    link = viewers(world.page(world.first, "image8.ome.zarr/"))["image8"]["mirror"]
    chromium_opens(link, tmp_path, tmp_path / "neuroglancer-pinned.png")
    asked(world, r"\.zattrs")
    asked(world, r"0/\.zarray")
    chunks = asked(world, r"\d/\d+/\d+/\d+")  # the rendered slices' chunks, from the pin
    assert chunks
    client = [line for line in world.log.drain() if "/neuroglancer/v/pinned/" in line]
    assert any("index.html" in line or "/neuroglancer/v/pinned/ HTTP" in line for line in client)


@needs_client
def test_a_neuroglancer_of_another_origin_reads_the_view(world: World, tmp_path: Path) -> None:
    """The page asked for as ``localhost`` names its sources there; the client opened from ``127.0.0.1`` is another
    origin, so Chromium reads every file with CORS, as the public Neuroglancer (or ndviz) reads a lab's view."""
    port = urlsplit(world.url).port
    page = world.page(world.first, "image16.ome.zarr/", host=f"localhost:{port}")
    st = state_of(viewers(page)["image16"]["public"])
    assert st["layers"][0]["source"].startswith(f"zarr://http://localhost:{port}/dav/")
    app = world.url + ng.CLIENT_APP.lstrip("/")
    chromium_opens(ng.link(app, st), tmp_path, tmp_path / "neuroglancer-cross-origin.png")
    image = re.escape(f"/dav/boss/{C}/{E}/{world.commit}/image16.ome.zarr/")
    assert world.log.wait_for(rf'"GET {image}0/\.zarray HTTP/1\.1" 200')
    assert world.log.wait_for(rf'"GET {image}\d/\d+/\d+/\d+ HTTP/1\.1" 200')


# -- without the package ---------------------------------------------------------------------------------------
def test_without_the_neuroglancer_package_the_public_link_alone(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The view works without the ``view`` extra: the page links the public Neuroglancer only, ``/neuroglancer/`` says
    how to get the client."""
    from wsgiref.util import setup_testing_defaults

    from neuromirror.read.view import View

    monkeypatch.setattr(ng, "client_dir", lambda: None)
    view = View(world.cli.root)

    def call(path: str) -> tuple[str, dict, bytes]:
        env: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_HOST": "mirror.lab:8642"}
        setup_testing_defaults(env)
        got: dict = {}
        body = b"".join(view(env, lambda status, headers, *_: got.update(status=status, headers=dict(headers))))
        return got["status"], got["headers"], body

    status, headers, body = call(f"/dav/boss/{C}/{E}/{world.first}/image8.ome.zarr/")
    assert status.startswith("200") and headers["Access-Control-Allow-Origin"] == "*"
    page = requests.models.Response()
    page._content, page.status_code = body, 200
    links = viewers(page)["image8"]
    assert list(links) == ["public"]
    assert state_of(links["public"])["layers"][0]["source"].startswith("zarr://http://mirror.lab:8642/dav/boss/")
    status, _, body = call("/neuroglancer/")
    assert status.startswith("404") and b"pip install 'neuromirror[view]'" in body
    view.tree.close()

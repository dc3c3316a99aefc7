"""The HTTP view of every pin (``serve --http ADDR --no-schedule``), with the real clients.

One mirror on the stand-ins holds: the dandiset of test_read (an HDF5 file, a README, a Zarr
array whose chunk upstream rewrote in place between two syncs), a dandiset with a published
version whose S3 bytes are lost after one of its files was kept in a directory store, and an
embargoed dandiset.  ``neuromirror serve --http 127.0.0.1:0 --no-schedule`` runs as a real
process on it; webdav4 lists and reads through it, zarr-python reads the Zarr at both pins by
fsspec's HTTP filesystem, requests checks what each kind of file answers (307 to the pinned URL,
206 from the store, 410 naming the key) and that nothing writes, headless chromium shows a listing.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from helpers.keep import T0, Dandiset, lose_blobs, make_dandiset
from helpers.read import H5, ZARR, Mirrored, manifest_shape, view_server
from helpers.status_pages import CHROMIUM, chromium, keep_screenshot, parse_html, text_of

DAV = "{DAV:}"
GROUP_VALUES = np.array([[7, 8], [9, 10]], dtype="int32")


def group_files() -> dict[str, bytes]:
    """A Zarr v2 group holding the array ``a`` (2 x 2, one chunk): its objects, as zarr-python writes them."""
    import zarr

    store = zarr.storage.MemoryStore()
    group = zarr.open_group(store=store, mode="w", zarr_format=2)
    group.create_array("a", shape=(2, 2), chunks=(2, 2), dtype="int32", compressors=None)[:] = GROUP_VALUES
    return {k: v.to_bytes() for k, v in store._store_dict.items()}


def nested_group_files(b: np.ndarray) -> dict[str, bytes]:
    """A consolidated Zarr v2 hierarchy as zarr-python writes it: the array ``b`` (2 x 2) at the top and
    the group ``g`` holding the array ``a`` (:data:`GROUP_VALUES`); a subgroup is what a walk enters."""
    import zarr

    store = zarr.storage.MemoryStore()
    top = zarr.open_group(store=store, mode="w", zarr_format=2)
    top.create_array("b", shape=(2, 2), chunks=(2, 2), dtype="int32", compressors=None)[:] = b
    top.create_group("g").create_array("a", shape=(2, 2), chunks=(2, 2), dtype="int32", compressors=None)[:] = (
        GROUP_VALUES
    )
    zarr.consolidate_metadata(store)
    return {k: v.to_bytes() for k, v in store._store_dict.items()}


@dataclass
class Grouped:
    """A dandiset whose Zarr is a nested group, synced twice: ``b``'s chunk rewritten upstream in between."""

    id: str
    zarr_id: str
    first: str  # the draft's commit at the first sync (b == OLD_B), then at the second (b == NEW_B)
    second: str


OLD_B, NEW_B = np.array([[1, 2], [3, 4]], dtype="int32"), np.array([[-1, -2], [-3, -4]], dtype="int32")


def make_grouped(m: Mirrored) -> Grouped:
    archive = m.archive
    when = T0 + timedelta(days=700)
    ident = archive.create_dandiset(name="a nested Zarr group", created=when)
    aid = archive.add_zarr_asset(ident, ZARR, nested_group_files(OLD_B), when=when)
    zarr_id = archive.asset(aid).zarr.zarr_id
    spec = f"dandi:{ident}"
    m.run.ok("sync", spec, "--dandi-api", archive.api_url)
    first = json.loads(m.run.ok("pin", f"{spec}@draft", "--json"))["commit"]
    archive.modify_zarr(zarr_id, put={"b/0.0": nested_group_files(NEW_B)["b/0.0"]}, when=when + timedelta(hours=1))
    m.run.ok("sync", spec, "--dandi-api", archive.api_url)
    second = json.loads(m.run.ok("pin", f"{spec}@draft", "--json"))["commit"]
    assert first != second
    return Grouped(ident, zarr_id, first, second)


@dataclass
class World:
    m: Mirrored
    lost: Dandiset  # sub-01/a.nwb kept, then every S3 version of both files deleted
    embargoed: str
    url: str
    grouped: Grouped

    def get(self, path: str, **kw) -> requests.Response:  # noqa: ANN003
        return requests.get(self.url + path.lstrip("/"), allow_redirects=False, timeout=60, **kw)

    def pinned(self, spec: str, path: str) -> dict:
        """``neuromirror urls``' row of ``path`` (asked by its directory: urls lists a Zarr, not one object)."""
        return {r["path"]: r for r in self.m.urls(spec, path.rpartition("/")[0] or path)}[path]


@pytest.fixture(scope="module")
def world(dandi_archive, tmp_path_factory) -> Iterator[World]:  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("view")
    root = tmp / "mirror"
    m = Mirrored(dandi_archive, root)
    lost = make_dandiset(dandi_archive, root, {"sub-01/a.nwb": 20_000, "sub-02/b.nwb": 30_001}, zarr=group_files())
    lost.run.ok("keep", lost.spec, "--to", str(tmp / "store"), "--include", "sub-01/a.nwb")
    lose_blobs(lost, ["sub-01/a.nwb", "sub-02/b.nwb"])
    embargoed = dandi_archive.create_dandiset(name="embargoed view", created=T0 + timedelta(days=900))
    dandi_archive.set_embargoed(embargoed, True)
    dandi_archive.put_asset(embargoed, "secret.nwb", b"embargoed bytes" * 50, when=T0 + timedelta(days=900))
    m.run.ok("sync", f"dandi:{embargoed}", "--dandi-api", dandi_archive.api_url)
    grouped = make_grouped(m)
    with view_server(root) as url:
        yield World(m, lost, embargoed, url, grouped)


def test_webdav4_lists_a_pin_and_reads_a_file_through_the_redirect(world: World) -> None:
    from webdav4.fsspec import WebdavFileSystem

    fs = WebdavFileSystem(world.url + "dav")
    base = f"dandi/{world.m.id}/draft"
    names = {e["name"].rstrip("/").rsplit("/", 1)[-1]: e for e in fs.ls(base, detail=True)}
    assert {"README.md", "dandiset.yaml", "sub-01", "sub-02", "sub-09"} <= set(names)
    assert names["sub-01"]["type"] == "directory" and names["README.md"]["type"] == "file"
    assert [e["name"].rsplit("/", 1)[-1] for e in fs.ls(f"{base}/sub-01", detail=True)] == [H5.split("/")[1]]
    assert fs.info(f"{base}/{H5}")["size"] == len(world.m.h5)
    assert fs.cat_file(f"{base}/{H5}") == world.m.h5  # GET -> 307 -> the archive's pinned URL
    assert fs.cat_file(f"{base}/{H5}", start=0, end=8) == b"\x89HDF\r\n\x1a\n"
    zarr_objects = set(fs.ls(f"{base}/{ZARR}", detail=False))
    assert {o.rsplit("/", 1)[-1] for o in zarr_objects} >= {".zarray", "0.0", "1.1"}
    # versions, names and archives are directories too
    assert "draft" in [p.rsplit("/", 1)[-1] for p in fs.ls(f"dandi/{world.m.id}", detail=False)]
    assert world.m.id in [p.rsplit("/", 1)[-1] for p in fs.ls("dandi", detail=False)]


def test_propfind_answers_multistatus_depth_0_and_1(world: World) -> None:
    path = f"dav/dandi/{world.m.id}/draft/sub-01/"
    r = requests.request("PROPFIND", world.url + path, headers={"Depth": "1"}, timeout=60)
    assert r.status_code == 207, r.text
    responses = ET.fromstring(r.content).findall(f"{DAV}response")
    by_name = {x.findtext(f".//{DAV}displayname"): x for x in responses}
    assert set(by_name) == {"sub-01", H5.split("/")[1]}
    assert by_name["sub-01"].find(f".//{DAV}resourcetype/{DAV}collection") is not None
    assert by_name[H5.split("/")[1]].findtext(f".//{DAV}getcontentlength") == str(len(world.m.h5))
    r = requests.request("PROPFIND", world.url + path, headers={"Depth": "0"}, timeout=60)
    assert r.status_code == 207 and len(ET.fromstring(r.content).findall(f"{DAV}response")) == 1
    r = requests.request("PROPFIND", world.url + path, headers={"Depth": "infinity"}, timeout=60)
    assert r.status_code == 403
    assert requests.options(world.url + path, timeout=60).headers["Allow"].split(", ")[0] == "OPTIONS"


def test_zarr_python_reads_each_pin_through_the_view(world: World) -> None:
    import zarr

    m = world.m
    old = zarr.open_array(f"{world.url}dav/dandi/{m.id}/{m.first}/{ZARR}", mode="r")
    new = zarr.open_array(f"{world.url}dav/dandi/{m.id}/{m.second}/{ZARR}", mode="r")
    np.testing.assert_array_equal(old[:], m.old)
    np.testing.assert_array_equal(new[:], m.new)
    draft = zarr.open_array(f"{world.url}dandisets/{m.id}/draft/{ZARR}", mode="r")
    np.testing.assert_array_equal(draft[:], m.new)
    # an array inside a Zarr group: a directory inside the Zarr's dataset, asked for before the Zarr itself
    d = world.lost
    nested = zarr.open_array(f"{world.url}dav/dandi/{d.id}/{d.version}/{ZARR}/a", mode="r")
    np.testing.assert_array_equal(nested[:], GROUP_VALUES)
    # what zarr asks for first and is not there: 404, so that it tries the next format
    assert world.get(f"dav/dandi/{m.id}/{m.first}/{ZARR}/zarr.json").status_code == 404


def grouped_bases(world: World) -> dict[str, list[str]]:
    """The grouped Zarr's URLs by state: on ``/dav/`` by each commit, on ``/zarrs/`` by each checksum
    (told apart by reading ``b``: the first state holds :data:`OLD_B`)."""
    import zarr

    g = world.grouped
    shard = f"{g.zarr_id[:3]}/{g.zarr_id[3:6]}/{g.zarr_id}"
    states = [
        f"{world.url}zarrs/{shard}/{name[: -len('.json')]}.zarr"
        for name in world.get(f"zarr-manifests/{shard}/").json()["files"]
    ]
    assert len(states) == 2, states
    states.sort(key=lambda url: -int(zarr.open_array(f"{url}/b", mode="r")[0, 0]))
    return {
        "first": [f"{world.url}dav/dandi/{g.id}/{g.first}/{ZARR}", states[0]],
        "second": [f"{world.url}dav/dandi/{g.id}/{g.second}/{ZARR}", states[1]],
    }


def test_zarr_python_and_fsspec_walk_a_group_at_two_commits_with_no_self_entry(world: World) -> None:
    """A walk of the hierarchy lists each member once: before, fsspec's HTML listing took the page's
    link to the directory itself for a child, so ``.groups()`` yielded ``('', '')`` and a walk recursed
    until RecursionError.  ``members(max_depth=None)`` is the walk ``.tree()`` draws (it needs rich)."""
    import fsspec
    import zarr

    objects = nested_group_files(OLD_B)
    for state, b in (("first", OLD_B), ("second", NEW_B)):
        for base in grouped_bases(world)[state]:
            group = zarr.open_group(base, mode="r", use_consolidated=False)  # the listing, not .zmetadata
            assert [name for name, _ in group.groups()] == ["g"], base
            assert [name for name, _ in group.arrays()] == ["b"], base
            members = dict(group.members(max_depth=None))
            assert sorted(members) == ["b", "g", "g/a"], (base, sorted(members))
            np.testing.assert_array_equal(members["b"][:], b)
            np.testing.assert_array_equal(members["g/a"][:], GROUP_VALUES)
            assert [name for name, _ in members["g"].members()] == ["a"]
            consolidated = zarr.open_consolidated(base, mode="r")
            assert sorted(dict(consolidated.members(max_depth=None))) == ["b", "g", "g/a"]
            np.testing.assert_array_equal(consolidated["b"][:], b)
            # fsspec's HTTP filesystem as zarr drives it: ls by the directory's URL with or without its slash
            fs = fsspec.filesystem("http", skip_instance_cache=True, use_listings_cache=False)
            top = {f"{base}/{k}" for k in objects if "/" not in k} | {f"{base}/{d}/" for d in ("b", "g")}
            for url in (base, base + "/"):
                assert set(fs.ls(url, detail=False)) == top, url
            inner = {f"{base}/{k}" for k in objects if k.startswith("g/") and k.count("/") == 1}
            assert set(fs.ls(f"{base}/g", detail=False)) == inner | {f"{base}/g/a/"}
            assert set(fs.find(base)) == {f"{base}/{k}" for k in objects}, base


def test_webdav4_and_rclone_list_a_group_with_no_self_entry(world: World) -> None:
    """The WebDAV clients: PROPFIND's own entry for the directory is the directory, never a child."""
    from webdav4.fsspec import WebdavFileSystem

    objects = sorted(nested_group_files(OLD_B))
    fs = WebdavFileSystem(world.url + "dav")
    g = world.grouped
    for commit in (g.first, g.second):
        path = f"dandi/{g.id}/{commit}/{ZARR}"
        assert sorted(p[len(path) + 1 :] for p in fs.find(path)) == objects, path
        names = {e["name"][len(path) + 1 :].rstrip("/") for e in fs.ls(path, detail=True)}
        assert names == {k for k in objects if "/" not in k} | {"b", "g"}, names
        assert [e["name"][len(path) + 1 :] for e in fs.ls(f"{path}/g/a", detail=True)] == [
            k for k in objects if k.startswith("g/a/")
        ]
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed here: webdav4 listed the group, rclone did not")
    for commit in (g.first, g.second):
        p = subprocess.run(
            [
                "rclone",
                "lsf",
                "-R",
                "--files-only",
                "--webdav-url",
                f"{world.url}dav",
                f":webdav:dandi/{g.id}/{commit}/{ZARR}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        assert sorted(p.stdout.split()) == objects, p.stdout


def test_a_file_redirects_to_its_pinned_url_and_nothing_writes(world: World) -> None:
    m = world.m
    path = f"dav/dandi/{m.id}/{m.first}/{H5}"
    pinned = world.pinned(f"{m.source}@{m.first}", H5)["url"]
    assert "versionId=" in pinned
    for method in ("GET", "HEAD"):
        r = requests.request(method, world.url + path, allow_redirects=False, timeout=60)
        assert r.status_code == 307 and r.headers["Location"] == pinned, (method, r.status_code)
    # the old chunk's pinned URL is not the new one's
    chunk = f"{ZARR}/0.0"
    old, new = (world.get(f"dav/dandi/{m.id}/{c}/{chunk}").headers["Location"] for c in (m.first, m.second))
    assert old == world.pinned(f"{m.source}@{m.first}", chunk)["url"] != new
    for method in ("PUT", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "POST"):
        r = requests.request(method, world.url + path, data=b"x", allow_redirects=False, timeout=60)
        assert r.status_code == 405, (method, r.status_code)
    r = requests.request("MKCOL", world.url + f"dav/dandi/{m.id}/draft/new-dir/", timeout=60)
    assert r.status_code == 405
    assert world.get(f"dav/dandi/{m.id}/draft/no/such/file.nwb").status_code == 404
    assert world.get("dav/nope/x/draft/").status_code == 404
    assert world.get("dav/dandi/999999/draft/").status_code == 404
    assert world.get(f"dav/dandi/{m.id}/0123abc/").status_code == 404
    host = urlsplit(world.url).netloc
    for raw in (f"/dav/dandi/{m.id}/draft/../../../", f"/dav/dandi/{m.id}/draft/%2e%2e/%2E%2E/"):
        conn = http.client.HTTPConnection(host, timeout=60)
        conn.request("GET", raw)
        assert conn.getresponse().status == 400, raw
        conn.close()
    # the status pages are not served without a schedule (/ is the view's landing page); /healthz is
    assert world.get("status.json").status_code == 404 and world.get("healthz").status_code == 200
    landing = world.get("")
    assert landing.status_code == 200 and all(f'href="{r}"' in landing.text for r in ("/dav/", "/zarrs/"))


def test_dandidav_paths_answer_as_the_dav_paths(world: World) -> None:
    m, d = world.m, world.lost
    dav = world.get(f"dav/dandi/{m.id}/draft/{H5}")
    shaped = world.get(f"dandisets/{m.id}/draft/{H5}")
    assert dav.status_code == shaped.status_code == 307 and dav.headers["Location"] == shaped.headers["Location"]
    for path in (
        f"dav/dandi/{d.id}/{d.version}/README.md",  # kept in the dataset's git: served by the view
        f"dandisets/{d.id}/releases/{d.version}/README.md",
        f"dandisets/{d.id}/{d.version}/README.md",
    ):
        r = world.get(path)
        assert (r.status_code, r.content) == (200, b"# keep sample\n"), path
    top = world.get(f"dandisets/{d.id}/", params={"format": "json"}).json()
    assert [e["name"] for e in top["entries"]] == ["draft", "releases"]
    releases = world.get(f"dandisets/{d.id}/releases/", headers={"Accept": "application/json"}).json()
    assert [e["name"] for e in releases["entries"]] == [d.version]


def test_a_lost_file_is_streamed_from_the_store_and_an_unkept_one_is_gone(world: World) -> None:
    d = world.lost
    kept = f"dav/dandi/{d.id}/{d.version}/sub-01/a.nwb"
    data = d.files["sub-01/a.nwb"]
    r = world.get(kept, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200], r.status_code
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = world.get(kept)
    assert r.status_code == 200 and r.content == data
    assert "file://" not in str(r.headers) and "store" not in str(r.headers.get("Location", ""))
    lost = world.get(f"dav/dandi/{d.id}/{d.version}/sub-02/b.nwb")
    key = world.pinned(d.spec, "sub-02/b.nwb")["key"]
    assert lost.status_code == 410 and key in lost.text and "no longer serves" in lost.text
    # a file in the dataset's git: its bytes, with ranges too
    blob = subprocess.run(
        ["git", "-C", str(d.ds), "show", f"{d.version}:dandiset.yaml"], capture_output=True, check=True
    ).stdout
    r = world.get(f"dav/dandi/{d.id}/{d.version}/dandiset.yaml")
    assert r.status_code == 200 and r.content == blob
    r = world.get(f"dav/dandi/{d.id}/{d.version}/dandiset.yaml", headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == blob[:10]


def test_a_listing_for_people_and_for_scripts(world: World) -> None:
    m = world.m
    r = world.get(f"dav/dandi/{m.id}/draft/sub-09/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    doc = parse_html(r.text)
    links = {a.text: a.get("href") for a in doc.iter("a")}
    assert links["sample.zarr/"] == f"/dav/dandi/{m.id}/draft/sub-09/sample.zarr/"
    listing = world.get(f"dav/dandi/{m.id}/draft/", params={"format": "json"}).json()
    assert listing["pin"] == {"source": m.source, "version": "draft", "commit": m.second}
    files = {e["name"]: e for e in listing["entries"]}
    assert files["README.md"]["type"] == "file" and files["sub-09"]["type"] == "directory"
    assert all("url" not in e for e in listing["entries"])
    assert world.get(f"dav/dandi/{m.id}/draft/", headers={"Accept": "application/json"}).json() == listing


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium installed (Debian: apt-get install chromium): the listing is not looked at in a browser here",
)
def test_a_listing_in_a_browser(world: World, tmp_path: Path) -> None:
    url = f"{world.url}dav/dandi/{world.m.id}/draft/"
    body = text_of(parse_html(chromium(url, tmp_path)).find("body"))
    for name in ("README.md", "dandiset.yaml", "sub-01/", "sub-09/", f"commit {world.m.second}"):
        assert name in body, name
    shot = tmp_path / "view-listing.png"
    chromium(url, tmp_path, screenshot=shot, size="900,500")
    assert shot.stat().st_size > 1000
    keep_screenshot(shot)


def test_an_embargoed_dandiset_is_absent_unless_included(world: World) -> None:
    e = world.embargoed
    assert world.get(f"dav/dandi/{e}/draft/").status_code == 404
    assert world.get(f"dandisets/{e}/").status_code == 404
    assert world.get(f"dav/dandi/{e}/draft/secret.nwb").status_code == 404
    names = [x["name"] for x in world.get("dav/dandi/", params={"format": "json"}).json()["entries"]]
    assert world.m.id in names and e not in names
    with view_server(world.m.root, "--include-embargoed") as url:
        listing = requests.get(f"{url}dav/dandi/{e}/draft/?format=json", timeout=60).json()
        assert "secret.nwb" in [x["name"] for x in listing["entries"]]
        r = requests.get(f"{url}dav/dandi/{e}/draft/secret.nwb", allow_redirects=False, timeout=60)
        assert r.status_code == 410 and "embargoed" in r.text  # its URL needs the key: never handed out


def test_no_git_process_for_a_file_once_its_directory_was_listed(world: World, monkeypatch) -> None:  # noqa: ANN001
    import subprocess as sp

    from neuromirror.read.view_tree import Tree

    m = world.m
    tree = Tree(m.root)
    try:
        assert tree.node("dav", f"/dandi/{m.id}/{m.first}/{ZARR}/") is not None
        assert tree.node("dav", f"/dandi/{m.id}/{m.first}/") is not None

        def no_process(*args, **kw):  # noqa: ANN002, ANN003, ANN202
            raise AssertionError(f"a process on the request path: {args[0]}")

        monkeypatch.setattr(sp, "Popen", no_process)
        for path in (f"{ZARR}/0.0", f"{ZARR}/.zarray", H5, "dandiset.yaml"):
            node = tree.node("dav", f"/dandi/{m.id}/{m.first}/{path}")
            assert node is not None and node.file is not None, path
        assert tree.node("dav", f"/dandi/{m.id}/{m.first}/dandiset.yaml").data  # type: ignore[union-attr]
        assert tree.node("dav", f"/dandi/{m.id}/{m.first}/sub-01/") is not None
    finally:
        monkeypatch.undo()
        tree.close()


def test_a_directory_is_listed_alone_and_a_zarr_when_entered(world: World) -> None:
    """The first listing of a version root reads the root, not every file under it (the Zarr's
    objects are read when the Zarr is entered): what keeps a view of 20,000 Zarrs small."""
    from neuromirror.read.view_tree import Tree

    m = world.m
    tree = Tree(m.root)
    try:
        root = tree.node("dav", f"/dandi/{m.id}/{m.first}/")
        assert root is not None and root.is_dir
        names = {e.name: e.is_dir for e in root.entries}
        assert names["sub-09"] is True and names["dandiset.yaml"] is False
        assert tree.listings.held == (1, len(names) + 3)  # the root's tree alone (.datalad, .git* not shown)
        zarr = tree.node("dav", f"/dandi/{m.id}/{m.first}/{ZARR}/")
        assert zarr is not None and {e.name for e in zarr.entries} >= {".zarray", "0.0"}
        dirs, entries = tree.listings.held
        assert dirs == 3  # the root, sub-09, and the Zarr's top level: nothing else was read
        chunk = tree.node("dav", f"/dandi/{m.id}/{m.first}/{ZARR}/0.0")
        assert chunk is not None and chunk.file is not None and chunk.file.served_by == "archive"
        assert tree.node("dav", f"/dandi/{m.id}/{m.first}/{ZARR}/no-such-chunk") is None
        assert tree.node("dav", f"/dandi/{m.id}/{m.first}/sub-09/no/such/dir/") is None
    finally:
        tree.close()


def test_a_404_inside_a_pin_costs_the_index_what_a_hit_costs(world: World) -> None:
    """zarr-python asks for every chunk a sparse array never wrote: each is a 404 with its one-line reason.
    Once the pin is resolved, neither a hit nor such a 404 asks the index anything (the view that shows
    embargoed dandisets: no visibility check per request)."""
    from neuromirror.read.view_tree import Tree

    m = world.m
    tree = Tree(m.root)
    base = f"/dandi/{m.id}/{m.first}/{ZARR}"
    try:
        assert tree.node("dav", f"{base}/0.0") is not None  # the pin resolved, the Zarr's listing read
        statements: list[str] = []
        tree._index().index.db.conn.set_trace_callback(statements.append)
        for i in range(20):
            assert tree.node("dav", f"{base}/0.0") is not None
            assert tree.node("dav", f"{base}/{i}.{i + 7}") is None
            why = tree.why_missing("dav", f"{base}/{i}.{i + 7}")
            assert why.endswith(f"no '{i}.{i + 7}' in {ZARR}"), why
        assert statements == []
        assert "has no version or commit 'nope'" in tree.why_missing("dav", f"/dandi/{m.id}/nope/{ZARR}/0.0")
        assert statements, "an unknown version still reads the versions for its one line"
    finally:
        tree.close()


def test_the_scheduled_service_serves_the_view_beside_its_status_pages(world: World, dandi_archive) -> None:  # noqa: ANN001
    from helpers.service import neuromirror, runs, serve, wait_for

    root, e = world.m.root, world.embargoed
    cfg = root.parent / "view.yaml"
    cfg.write_text(
        f'defaults: {{schedule: {{interval: 1h}}, options: {{dandi_api: "{dandi_archive.api_url}"}}}}\n'
        f'sources: ["dandi:{e}"]\n'
    )
    with serve(root, cfg, "--include-embargoed") as svc:
        wait_for(lambda: [r for r in runs(root, f"dandi:{e}") if r["ended"]], 60, "the service's first run", svc)
        r = requests.get(svc.url(f"dav/dandi/{world.m.id}/draft/{H5}"), allow_redirects=False, timeout=60)
        assert r.status_code == 307 and "versionId=" in r.headers["Location"]
        assert requests.get(svc.url(f"dav/dandi/{e}/draft/"), timeout=60).status_code == 200
        assert requests.get(svc.url("status.json"), timeout=60).json()["sources"]
        assert requests.request("PROPFIND", svc.url(""), timeout=60).status_code == 501  # as before: not the view's
        assert svc.stop() == 0
    out = neuromirror(root, "serve", timeout=60)
    assert out.returncode == 2 and "--config FILE is required (or --no-schedule" in out.stderr
    out = neuromirror(root, "serve", "--no-schedule", timeout=60)
    assert out.returncode == 2 and "give --http HOST:PORT" in out.stderr
    out = neuromirror(root.parent / "nowhere", "serve", "--no-schedule", "--http", "127.0.0.1:0", timeout=60)
    assert out.returncode == 2 and "no mirror at" in out.stderr


#: the head of a real manifest of the proof of concept (dandi/zarr-manifests,
#: zarr-manifests-v2-sorted/128/4a1/1284a14f-fe4f-4dc3-b10d-48e5db8bf18d/6ddc4625befef8d6f9796835648162be-509--710206390.json),
#: verbatim, with its middle left out and its braces closed: the shape a manifest of the mirror must have
POC_MANIFEST = """{
 "schemaVersion": 2,
 "fields": ["versionId","lastModified","size","ETag"],
 "statistics": {
  "entries": 509,
  "depth": 5,
  "totalSize": 710206390,
  "lastModified": "2022-06-27T23:09:39+00:00",
  "zarrChecksum": "6ddc4625befef8d6f9796835648162be-509--710206390"
 },
 "entries": {
  ".zattrs": ["VwOSu7IVLAQcQHcqOesmlrEDm2sL_Tfs","2022-06-27T23:07:47+00:00",8312,"cb32b88f6488d55818aba94746bcc19a"],
  ".zgroup": ["7obAY5BUNOdI1Uch3RoI4oHuGXhW4h0R","2022-06-27T23:07:47+00:00",24,"e20297935e73dd0154104d4ea53040ab"],
  ".zmetadata": ["Vfe0W0v4zkydmzyXkUMjm2Xr7.rIvfZQ","2022-06-27T23:07:47+00:00",15191,"4f505878fbb943a9793516cf084e07ad"],
  "0": {
   ".zarray": ["Ou6TnKwWPmEJrL.0utCWLPxgfr_lA0I1","2022-06-27T23:07:48+00:00",446,"5477ec3da352681e5ba6f6ea550ef740"],
   "0": {
    "0": {
     "13": {
      "8": {
       "100": ["lqNZ6OQ6lKd2QRW8ekWOiVfdZhiicWsh","2022-06-27T23:09:11+00:00",1793451,"7b5af4c6c28047c83dd86e4814bc0272"],
       "101": ["_i9cZBerb4mB9D8IFbPHo8nrefWcbq0p","2022-06-27T23:09:28+00:00",1799564,"50b6cfb69609319da9bf900a21d5f25c"]
      }
     }
    }
   }
  },
  "info": ["oFnm3pJEcY8VnA3rBE3DtUmBYLIvwXrY","2022-06-27T23:07:47+00:00",2665,"1d0b82cecfd0601fac5a155e53e89588"]
 }
}
"""


def test_the_proof_of_concepts_manifest_has_the_shape_checked() -> None:
    files = manifest_shape(POC_MANIFEST)
    assert [p for p, _ in files][:3] == [".zattrs", ".zgroup", ".zmetadata"] and "0/0/0/13/8/101" in dict(files)


def test_zarr_manifests_in_dandis_format_and_dandidavs_zarrs_paths(world: World) -> None:
    import hashlib

    import zarr

    m = world.m
    zid = m.zarr_id
    shard = f"{zid[:3]}/{zid[3:6]}/{zid}"
    on_disk = sorted(p for p in (m.root / ".neuromirror" / "zarr-manifests" / shard).glob("[!.]*.json"))
    assert len(on_disk) == 2, "one manifest per Zarr state the mirror recorded (the chunk rewritten upstream)"
    # the manifest root as dandidav reads one: JSON indexes down to the files
    assert zid[:3] in world.get("zarr-manifests/").json()["directories"]
    assert zid in world.get(f"zarr-manifests/{zid[:3]}/{zid[3:6]}/").json()["directories"]
    index = world.get(f"zarr-manifests/{shard}/").json()
    assert index["files"] == [p.name for p in on_disk] and index["directories"] == []
    states = {}
    for p in on_disk:
        r = world.get(f"zarr-manifests/{shard}/{p.name}")
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
        files = manifest_shape(r.text)
        doc = r.json()
        checksum = p.name[: -len(".json")]
        assert doc["statistics"]["zarrChecksum"] == checksum
        assert doc["statistics"]["entries"] == len(files) and doc["statistics"]["totalSize"] == sum(
            v[2] for _, v in files
        )
        for path, (version, _, size, etag) in files:  # every entry's versionId serves exactly its bytes
            url = m.archive.s3.url(m.archive.bucket, f"zarr/{zid}/{path}", version)
            data = requests.get(url, timeout=60).content
            assert (len(data), hashlib.md5(data).hexdigest()) == (size, etag), path
        states[checksum] = zarr.open_array(f"{world.url}zarrs/{shard}/{checksum}.zarr", mode="r")[:]
    # dandidav's /zarrs/ tree: each state a directory, read by zarr-python; the old state keeps the old chunk
    listed = world.get(f"zarrs/{shard}/", params={"format": "json"}).json()
    assert sorted(e["name"] for e in listed["entries"]) == sorted(f"{c}.zarr" for c in states)
    got = sorted(states.values(), key=lambda a: int(a[0, 0]))
    np.testing.assert_array_equal(got[0], m.new)
    np.testing.assert_array_equal(got[1], m.old)
    one = next(iter(states))
    r = requests.request("PROPFIND", f"{world.url}zarrs/{shard}/{one}.zarr/", headers={"Depth": "1"}, timeout=60)
    assert r.status_code == 207
    names = {x.findtext(f".//{DAV}displayname") for x in ET.fromstring(r.content).findall(f"{DAV}response")}
    assert {".zarray", "0.0"} <= names
    assert world.get(f"zarrs/{shard}/{one}.zarr/0.0").status_code == 307
    assert world.get(f"zarrs/{shard}/{one}.json").status_code == 404
    assert world.get(f"zarr-manifests/{shard}/.neuromirror.json").status_code == 404
    assert requests.put(f"{world.url}zarr-manifests/{shard}/x.json", data=b"{}", timeout=60).status_code == 405


def test_neuromirror_fsspec_reads_a_served_mirror_by_its_base_url(world: World) -> None:
    import fsspec
    import zarr

    from neuromirror.read.fsspec_fs import NotStreamable

    m, d = world.m, world.lost
    opts = {"base_url": world.url}  # no root: this reader has no mirror of its own, only the lab's view
    fs = fsspec.filesystem("neuromirror", **opts)
    pin = f"dandi/{m.id}@{m.first}"
    assert {p.rsplit("/", 1)[-1] for p in fs.ls(pin, detail=False)} >= {"README.md", "sub-01", "sub-02"}
    info = fs.info(f"{pin}/{H5}")
    assert (info["type"], info["size"]) == ("file", len(m.h5)) and info["served_by"] == "archive"
    assert fs.info(f"{pin}/sub-01")["type"] == "directory"
    assert fs.cat_file(f"{pin}/{H5}", start=0, end=8) == b"\x89HDF\r\n\x1a\n"  # by the view's redirect
    with fsspec.open(f"neuromirror://{pin}/{H5}", "rb", **opts) as f:
        f.seek(len(m.h5) - 100)
        assert f.read() == m.h5[-100:]
    old = zarr.open_array(f"neuromirror://{pin}/{ZARR}", mode="r", storage_options=opts)
    new = zarr.open_array(f"neuromirror://dandi/{m.id}@{m.second}/{ZARR}", mode="r", storage_options=opts)
    np.testing.assert_array_equal(old[:], m.old)
    np.testing.assert_array_equal(new[:], m.new)
    # the store's copy the view streams; a file no URL serves says why
    lost = f"dandi/{d.id}@{d.version}"
    assert fs.cat_file(f"{lost}/sub-01/a.nwb", start=10, end=20) == d.files["sub-01/a.nwb"][10:20]
    with pytest.raises(NotStreamable, match="key"):
        fs.cat_file(f"{lost}/sub-02/b.nwb")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{pin}/no-such-file")

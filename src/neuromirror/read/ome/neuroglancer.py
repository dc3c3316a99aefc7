"""Neuroglancer links to pinned OME-Zarr images: what ndviz users open, showing the pin, never the archive's now.

A Neuroglancer state (the JSON after ``#!`` in its URL) names each layer's data by a URL; its zarr datasource
(``zarr://URL``) reads an OME-Zarr's ``multiscales`` there, then each level's ``.zarray`` and chunks, file by file
over HTTP.  The view serves every file of a pin under a path that names the state for good: the pin's commit
(``/dav/{archive}/{name}/{commit}/...``), or a Zarr state's checksum (``/zarrs/.../{checksum}.zarr/``).  A link
whose sources are such paths shows the pinned bytes whatever the archive rewrote since; one built on ``draft``,
or on a label, would follow whatever the name means when the link is opened, so links are built on commits.

Two viewers take the same state: the ``neuroglancer`` package's built client (the ``view`` extra), which the
view serves itself at :data:`CLIENT_APP` (same origin: no CORS, no mixed content, no internet), and any other
Neuroglancer (ndviz, the public demo), which reads the view from its own origin with the CORS headers the view
sends (:mod:`neuromirror.read.view`).  The package is located, never imported: serving its files needs none of
its Python dependencies' code.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence
from urllib.parse import quote

from neuromirror import archives

if TYPE_CHECKING:
    from neuromirror.read.pinned import Pin

#: a Neuroglancer anyone can reach (Google's demo deployment); ndviz takes the same ``#!`` state
PUBLIC_APP = "https://neuroglancer-demo.appspot.com/"
#: where the view serves the ``neuroglancer`` package's client
CLIENT_ROUTE = "/neuroglancer"
#: the package's client finds its Python server from a ``/v/{token}/`` path, so it is served under one
CLIENT_APP = CLIENT_ROUTE + "/v/pinned/"
#: the names of the client's files (as the package's own static server allows them)
_CLIENT_NAME = re.compile(r"^[a-z0-9][a-zA-Z0-9_\-.]*\.(?:js|map|css|wasm|html)$")
_TYPES = {
    ".css": "text/css",
    ".js": "application/javascript",
    ".html": "text/html; charset=utf-8",
    ".map": "application/json",
    ".wasm": "application/wasm",
}
#: The package's client waits for a Python server's event stream (``/events/{token}``) and, while it has none,
#: shows "Disconnected from Python server".  The view is no such server and the state is the URL's own, so the
#: client's wait is answered at once; every other EventSource is the browser's own.
_NO_PYTHON_SERVER = (
    "<script>/* neuromirror: no Python server behind this client; its state is the URL's #!... */"
    "(function(){var E=window.EventSource;function F(u,o){if(String(u).indexOf('/events/')<0)return new E(u,o);"
    "var s=this;s.readyState=1;s.close=function(){s.readyState=2};"
    "setTimeout(function(){if(s.onopen)s.onopen({})},0)}"
    "F.CONNECTING=0;F.OPEN=1;F.CLOSED=2;window.EventSource=F})();</script>"
)


@dataclass(frozen=True)
class Image:
    """One OME-Zarr image (or any Zarr) as a layer: its name and the view path that pins it."""

    name: str  # the layer's name: the directory's, without ``.ome.zarr``
    path: str  # the view's path of the Zarr's top, unquoted: /dav/boss/C/E/{commit}/image8.ome.zarr
    kind: str = "image"  # or "segmentation" (a BOSS annotation channel, an NGFF label image)


def is_zarr(name: str) -> bool:
    """Does a directory's name say it is a Zarr's top (``x.zarr``, ``x.ome.zarr``), as every archive names them?"""
    return name.lower().endswith(".zarr") and len(name) > len(".zarr")


def layer_name(path: str) -> str:
    name = path.rstrip("/").rpartition("/")[2]
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def kind_of(zattrs: Optional[bytes]) -> str:
    """``segmentation`` for labels (an NGFF ``image-label``, a BOSS annotation channel), else ``image``.

    From the image's ``.zattrs`` when the view has its bytes (a BOSS image's, kept in git); unknown: ``image``."""
    try:
        attrs = json.loads(zattrs or b"{}")
    except ValueError:
        return "image"
    if not isinstance(attrs, dict):
        return "image"
    if "image-label" in attrs or archives.image_facts(attrs).get("type") == "annotation":
        return "segmentation"
    return "image"


def pinned_path(source_id: str, commit: str, inner: str) -> str:
    """The view's path of ``inner`` at a pin, by its commit: ``/dav/{archive}/{name}/{commit}/{inner}``."""
    archive, name = source_id.split(":", 1)
    return f"/dav/{archive}/{name}/{commit}/{inner}".rstrip("/")


def images_of(pin: Pin, under: Sequence[str] = ()) -> list[tuple[str, Image]]:
    """(path in the pin, image by the pin's commit) of each Zarr top (a ``*.zarr`` directory) at or below each of
    ``under`` (default: the whole pin), found a directory at a time and never inside an image (its levels and
    chunks are no images of their own): what ``urls --neuroglancer`` lists."""
    from neuromirror.read.listings import Dir, Listings

    listings = Listings()
    found: list[tuple[str, Image]] = []
    todo = [p.strip("/") for p in under] or [""]
    try:
        while todo:
            path = todo.pop()
            got = listings.find(pin, path)
            if isinstance(got, Dir) and is_zarr(path.rpartition("/")[2]):
                attrs = listings.find(pin, f"{path}/.zattrs")
                kind = kind_of(attrs[1] if isinstance(attrs, tuple) else None)
                found.append((path, Image(layer_name(path), pinned_path(pin.source, pin.commit, path), kind)))
            elif isinstance(got, Dir):
                todo += [f"{path}/{name}".lstrip("/") for name, f in got.children() if f is None]
    finally:
        listings.close()
    return sorted(found, key=lambda pair: pair[0])


def source(base_url: str, path: str) -> str:
    """The layer source Neuroglancer reads the image at: ``zarr://`` and the view's URL of the pinned path."""
    return "zarr://" + base_url.rstrip("/") + quote(path.rstrip("/"), safe="/")


def state(base_url: str, images: Sequence[Image]) -> dict:
    """A Neuroglancer state showing ``images`` as layers (names made unique), the first one selected."""
    layers, seen = [], set()
    for im in images:
        name, n = im.name or "image", 2
        while name in seen:
            name, n = f"{im.name}-{n}", n + 1
        seen.add(name)
        layers.append({"type": im.kind, "source": source(base_url, im.path), "name": name})
    out: dict = {"layers": layers, "layout": "4panel"}
    if layers:
        out["selectedLayer"] = {"layer": layers[0]["name"], "visible": True}
    return out


def link(app: str, state_: dict) -> str:
    """``app`` opened on ``state_``: ``#!`` and the JSON, every reserved character escaped (as Neuroglancer reads
    it back), so that no ``http://`` of a source stands bare in a page a listing scraper reads."""
    return app + "#!" + quote(json.dumps(state_, separators=(",", ":")), safe="")


#: what each of :func:`links`' viewers is called on a page
VIEWERS = {"mirror": "this mirror's Neuroglancer", "public": "neuroglancer-demo.appspot.com"}


def links(base_url: str, images: Sequence[Image], own_client: Optional[bool] = None) -> dict[str, str]:
    """The URL of each viewer (:data:`VIEWERS`) opened on ``images``: the view's own client first (``mirror``),
    if it has one (``own_client``; default: whether this process has the package), then the public one (``public``)."""
    st = state(base_url, images)
    mine = client_dir() is not None if own_client is None else own_client
    out = {"mirror": link(base_url.rstrip("/") + CLIENT_APP, st)} if mine else {}
    return {**out, "public": link(PUBLIC_APP, st)}


# -- the package's client --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def client_dir() -> Optional[Path]:
    """The ``neuroglancer`` package's built client (``neuroglancer/static/client``), if installed; not imported."""
    try:
        spec = importlib.util.find_spec("neuroglancer")
    except (ImportError, ValueError):
        return None
    for where in (spec.submodule_search_locations or []) if spec else []:
        client = Path(where) / "static" / "client"
        if (client / "index.html").is_file():
            return client
    return None


def client_file(name: str) -> Optional[tuple[bytes, str]]:
    """A file of the client and its type (``index.html`` told that no Python server is behind it); None: none such."""
    name = name or "index.html"
    where = client_dir()
    if where is None or not _CLIENT_NAME.match(name) or not (where / name).is_file():
        return None
    data = (where / name).read_bytes()
    if name == "index.html":
        data = data.replace(b"<head>", b"<head>" + _NO_PYTHON_SERVER.encode(), 1)
    return data, _TYPES.get(Path(name).suffix, "application/octet-stream")


def viewers(base_url: str, images: list[Image], together: int) -> list[dict]:
    """Each image's layer source and Neuroglancer links, then (two or more, at most ``together``) all of them as
    the layers of one: what a listing of the view shows beside the files."""
    out = [
        {
            "name": im.name,
            "type": im.kind,
            "path": im.path,
            "source": source(base_url, im.path),
            "links": links(base_url, [im]),
        }
        for im in images
    ]
    if 1 < len(images) <= together:
        out.append({"name": f"all {len(images)} together", "links": links(base_url, images)})
    return out


def viewers_html(viewers: list[dict]) -> str:
    """The viewers' links; a layer source's ``://`` written as an entity, so that no scraper of the page (fsspec's
    HTTP listing reads every bare ``http://`` URL in it) takes the image for a child of its own."""
    if not viewers:
        return ""
    from html import escape as e

    items = []
    for v in viewers:
        anchors = " | ".join(f'<a href="{e(url)}">{e(VIEWERS[k])}</a>' for k, url in v["links"].items())
        src = f" (layer source <code>{e(v['source']).replace('://', '&#58;//')}</code>)" if "source" in v else ""
        items.append(f"<li>{e(v['name'])}: {anchors}{src}</li>")
    return f'<div class="neuroglancer"><p>In Neuroglancer, at this pin:</p><ul>{"".join(items)}</ul></div>'

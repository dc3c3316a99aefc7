"""The HTTP view of every pin (``neuromirror serve --http``): read-only, by redirect to the pinned URLs.

``/dav/{archive}/{name}/{version}/{path}`` and dandidav's ``/dandisets/{id}/draft/{path}``,
``/dandisets/{id}/releases/{version}/{path}`` (:mod:`.view_tree` says what each names), so that a
dandidav user swaps the base URL and reads the same paths at a pin.  The archive's designed
``/zarr/{zarr_id}/{version}/{path}`` (every recorded Zarr state, a 302 per file) is
:mod:`.zarr_versions.route`'s.  A file answers as dandidav's do, with a 307 redirect to the URL that
serves exactly its bytes (range requests then go to the archive, not through the mirror); a Zarr chunk's
conditional read (``If-Match``: Icechunk's) gets the archive's answer, fetched here (:mod:`.serving`).  The
view streams only that and what no public URL serves: a file kept in the dataset's git, and the lab store's copy (a ``file://`` path, an ``s3://`` object, a key of a packed
store: :mod:`.store_reads`) of a file the archive no longer serves —
which the view learns by asking the archive (one ``HEAD`` per URL, remembered); a file no URL
serves answers 410 naming its key, never other bytes.  A directory answers PROPFIND for WebDAV
clients (WsgiDAV, :mod:`.view_dav`), and GET with an HTML listing for people or JSON for scripts.
Any method that would write answers 405.  Redirects, listings and logs carry no secret: a URL
holding a credential is never redirected to, and the store's local paths are never shown.

A page of a pinned OME-Zarr image (a ``*.zarr`` directory, and the directory that holds some) links it in
Neuroglancer (:mod:`.ome.neuroglancer`), by the pin's commit: the ``neuroglancer`` package's client, served
here at ``/neuroglancer/`` when installed, and a public one.  A Neuroglancer of another origin reads the files
from a browser, which hands it an answer only with CORS headers: every answer carries them, and a preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) is answered here, not by WsgiDAV.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit
from wsgiref.util import application_uri

from neuromirror.read.fsspec_remote import FAILED_HEADER
from neuromirror.read.landing import href, listing_html
from neuromirror.read.loss import mirror_index, source_lock
from neuromirror.read.ome import neuroglancer as ng
from neuromirror.read.serving import Serving, conditional
from neuromirror.read.view_dav import dav_app
from neuromirror.read.view_tree import BadPath, Hidden, Node, Tree
from neuromirror.read.zarr_versions.route import ROUTE as ZARR_ROUTE
from neuromirror.read.zarr_versions.route import ZarrVersions
from neuromirror.readers import ViewRoute, view_routes
from neuromirror.util.dates import iso_z

log = logging.getLogger("neuromirror.read.view")

SHARES = {"/dav": "dav", "/dandisets": "dandisets", "/zarrs": "zarrs"}
#: the mirror's Zarr manifest root, as dandidav reads one (:mod:`.manifests`)
MANIFESTS = "/zarr-manifests"
READ_METHODS = ("GET", "HEAD", "OPTIONS", "PROPFIND")
#: query parameters that carry a credential: a URL with one is never handed out
SECRET_PARAMS = {"x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "token", "access_token"}
StartResponse = Callable[..., Any]
#: on every answer: a page of another origin (a public Neuroglancer, ndviz) may read it, and these of its headers
CORS = (
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Expose-Headers",
        "Content-Length, Content-Range, Accept-Ranges, Content-Type, ETag, Last-Modified",
    ),
)
#: what a preflight allows a page to send: range reads (a Zarr chunk's part, an HDF5 file's), revalidation, WebDAV's
PREFLIGHT = (
    ("Access-Control-Allow-Methods", ", ".join(READ_METHODS)),
    ("Access-Control-Allow-Headers", "Range, If-Range, If-Match, If-None-Match, If-Modified-Since, Accept, Depth"),
    ("Access-Control-Max-Age", "600"),
)
#: how many images of one page get their layer type read from their ``.zattrs`` (one listing each) and a link together
IMAGES_READ = 16


def _text(start_response: StartResponse, status: str, body: str, head: bool, extra: Iterable = ()) -> list[bytes]:
    data = body.encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))), *extra]
    start_response(status, [*headers, ("Cache-Control", "no-store")])
    return [] if head else [data]


def public(url: str) -> bool:
    """May ``url`` be shown to anyone: no user or password in it, no signed or token query."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return False
    return not {k.lower() for k in parse_qs(parts.query)} & SECRET_PARAMS


class View:
    """The WSGI application of the view: GET/HEAD of files and listings here, WebDAV by WsgiDAV."""

    def __init__(
        self, root: Any, index: Optional[str] = None, hidden: Optional[Hidden] = None, *, cors: bool = True
    ) -> None:
        """``cors``: answer other origins (a browser's Neuroglancer elsewhere); off when the view serves
        embargoed data, which no page of another origin may then read through the user's browser."""
        self.tree = Tree(root, index, hidden)
        self.cors = cors
        self.dav = dav_app(self.tree, SHARES)
        self.serving = Serving(mirror_index(root, index), source_lock(root, index))
        self.zarr_versions = ZarrVersions(self.tree, self.serving, public)

    @staticmethod
    def handles(path: str) -> bool:
        """Is ``path`` (a request's, query included) the view's?"""
        p = path.split("?", 1)[0].split("#", 1)[0]
        return any(
            p == s or p.startswith(s + "/")
            for s in (*SHARES, MANIFESTS, ZARR_ROUTE, ng.CLIENT_ROUTE, *(v.by_key for v in view_routes()))
        )

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if not self.cors:
            return self._answer(environ, start_response, method)
        start_response = _with_cors(start_response)
        if method == "OPTIONS" and environ.get("HTTP_ORIGIN") and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            private = environ.get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK", "").lower() == "true"
            start_response(
                "204 No Content", [*PREFLIGHT, *([("Access-Control-Allow-Private-Network", "true")] * private)]
            )
            return []
        return self._answer(environ, start_response, method)

    def _answer(self, environ: dict, start_response: StartResponse, method: str) -> Iterable[bytes]:
        head = method == "HEAD"
        # PEP 3333: PATH_INFO holds the path's bytes as latin-1
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "surrogateescape")
        other = self._other_route(environ, start_response, path, head)
        if other is not None:
            return other
        share = next((s for s in SHARES if path == s or path.startswith(s + "/")), None)
        if share is None:
            return _text(start_response, "404 Not Found", "not found\n", head)
        if method not in READ_METHODS:
            allow = [("Allow", ", ".join(READ_METHODS))]
            return _text(start_response, "405 Method Not Allowed", f"{method}: the view is read-only\n", head, allow)
        if any(p in (".", "..") or "\0" in p for p in path.split("/")):  # before WsgiDAV would normalize it
            return _text(start_response, "400 Bad Request", "'.' and '..' are not names\n", head)
        try:
            if method in ("OPTIONS", "PROPFIND"):
                return self._dav_answer(environ, start_response, method, share, path)
            node = self.tree.node(SHARES[share], path[len(share) :])
        except BadPath as exc:
            return _text(start_response, "400 Bad Request", f"{exc}\n", head)
        except Exception as exc:  # a broken dataset is that request's 500, never the server's end
            log.warning("view %s %s: %s", method, path, exc)
            return _text(start_response, "500 Internal Server Error", "error while reading the mirror\n", head)
        return self._node_answer(environ, start_response, method, share, path, node)

    def _other_route(
        self, environ: dict, start_response: StartResponse, path: str, head: bool
    ) -> Optional[Iterable[bytes]]:
        """The Neuroglancer client, the Zarr manifests, ``/zarr/`` versions, a LINDI reference by key; None: a
        share's path."""
        if path == ng.CLIENT_ROUTE or path.startswith(ng.CLIENT_ROUTE + "/"):
            return _client(start_response, path, head)
        if path == MANIFESTS or path.startswith(MANIFESTS + "/"):
            return self._manifests(environ, start_response, path)
        if ZarrVersions.handles(path):  # the archive's designed /zarr/{id}/{version}/{path}
            return self._zarr_version(environ, start_response, path, head)
        for route in view_routes():
            if path.startswith(route.by_key + "/"):
                return self._reference(start_response, route, route.key_of(path) or "", None, head, by_key=True)
        return None

    def _zarr_version(self, environ: dict, start_response: StartResponse, path: str, head: bool) -> Iterable[bytes]:
        """``/zarr/{zarr_id}/{version}/{path}`` (:mod:`.zarr_versions.route`), written out here."""
        failed = bool(environ.get("HTTP_" + FAILED_HEADER.upper().replace("-", "_")))
        base = application_uri(environ).rstrip("/")
        try:
            reply = self.zarr_versions.answer(environ["REQUEST_METHOD"], path, base, failed)
        except Exception as exc:  # a broken dataset is that request's 500, never the server's end
            log.warning("view %s: %s", path, exc)
            return _text(start_response, "500 Internal Server Error", "error while reading the mirror\n", head)
        start_response(reply.status, reply.headers)
        return [] if head else [reply.body]

    def _dav_answer(
        self, environ: dict, start_response: StartResponse, method: str, share: str, path: str
    ) -> Iterable[bytes]:
        """OPTIONS and PROPFIND, by WsgiDAV: anonymous, read-only, Depth 0 or 1; a path the tree lacks is 404."""
        if environ.get("HTTP_DEPTH", "1").lower() == "infinity":
            return _text(start_response, "403 Forbidden", "PROPFIND: Depth 0 or 1 only\n", False)
        environ.setdefault("HTTP_DEPTH", "1")
        if method == "PROPFIND" and self.tree.node(SHARES[share], path[len(share) :]) is None:
            return _text(start_response, "404 Not Found", f"{self._why(SHARES[share], path[len(share) :])}\n", False)
        environ["wsgidav.auth.user_name"] = ""  # anonymous, read-only
        return self.dav(environ, start_response)

    def _node_answer(
        self, environ: dict, start_response: StartResponse, method: str, share: str, path: str, node: Optional[Node]
    ) -> Iterable[bytes]:
        """GET or HEAD of what the path names: a file, a listing, a file's LINDI reference, or a 404 saying why."""
        head = method == "HEAD"
        for route in view_routes() if node is None and method in ("GET", "HEAD") else ():
            if path.endswith(route.suffix):
                return self._file_reference(environ, start_response, route, (share, path), head)
        if node is None:
            return _text(start_response, "404 Not Found", f"{self._why(SHARES[share], path[len(share) :])}\n", head)
        if node.is_dir:
            return self._listing(environ, start_response, path, node, head, self._images(share, path, node))
        return self._file(environ, start_response, node, head)

    def _why(self, style: str, path: str) -> str:
        """A 404's one line: which part of the path is wrong."""
        try:
            return self.tree.why_missing(style, path)
        except Exception as exc:  # the reason is a courtesy: never a 500 instead of the 404
            log.debug("view: why %s is missing: %s", path, exc)
            return "no such file or directory at this pin"

    # -- files -----------------------------------------------------------------------
    def _file(self, environ: dict, start_response: StartResponse, node: Node, head: bool) -> Iterable[bytes]:
        f = node.file
        assert f is not None
        if f.served_by == "git":
            environ["wsgidav.auth.user_name"] = ""
            return self.dav(environ, start_response)  # its bytes, with Range, by WsgiDAV
        if f.served_by == "none" or (f.streamed is None and f.url is None):
            return self._gone(start_response, f.path, f.key, f.why or "no URL serves it", head)
        fresh = bool(environ.get("HTTP_" + FAILED_HEADER.upper().replace("-", "_")))
        ask = conditional(environ) if f.url and public(f.url) else None
        answer = self.serving.answer(f, node.pin.source if node.pin else None, fresh, environ.get("PATH_INFO", ""), ask)
        if answer.relayed is not None:  # the archive's answer to a conditional read (an Icechunk chunk's)
            start_response(answer.relayed.status, answer.relayed.headers)
            return answer.relayed.body
        if answer.status is not None:
            return _text(start_response, answer.status, answer.body, head)
        if answer.file.streamed is not None:  # a store's copy no client could follow a redirect to: a file, S3, a pack
            environ["wsgidav.auth.user_name"] = ""
            return self.dav(environ, start_response)  # the store's copy, streamed with Range
        url = answer.file.url or ""
        if not public(url):
            return self._gone(start_response, f.path, f.key, "its only URL carries a credential", head)
        start_response("307 Temporary Redirect", [("Location", url), ("Content-Length", "0"), *_dated(node)])
        return []

    # -- the index-time readers' routes (neuromirror.readers: LINDI references) ----------------
    def _file_reference(
        self, environ: dict, start_response: StartResponse, route: ViewRoute, at: tuple[str, str], head: bool
    ) -> Any:
        """A file's reference at its path + the route's suffix (``.lindi.json``); its chunks the view's URL of it
        when only a store serves it now (the archive asked each time: one ``HEAD`` per reference, read once per
        open)."""
        share, path = at
        file_path = path[: -len(route.suffix)]
        try:
            node = self.tree.node(SHARES[share], file_path[len(share) :])
            if node is None or node.file is None:
                why = self._why(SHARES[share], path[len(share) :])
                return _text(start_response, "404 Not Found", f"{why}\n", head)
            f = node.file
            now = self.serving.answer(f, node.pin.source if node.pin else None, fresh=True).file
        except BadPath as exc:
            return _text(start_response, "400 Bad Request", f"{exc}\n", head)
        except Exception as exc:  # a broken dataset is that request's 500, never the server's end
            log.warning("view %s%s: %s", file_path, route.suffix, exc)
            return _text(start_response, "500 Internal Server Error", "error while reading the mirror\n", head)
        own = application_uri(environ).rstrip("/") + quote(file_path) if now.served_by == "store" else None
        return self._reference(start_response, route, f.key, own, head, repo=f.repo)

    def _reference(
        self, start_response: StartResponse, route: ViewRoute, key: str, file_url: Optional[str], head: bool, *,
        repo: Optional[Path] = None, by_key: bool = False,
    ) -> Any:  # fmt: skip
        """``key``'s reference: the root's, else a store's (those ``repo`` records; by key: those the index knows)."""
        stores = self.tree.known_stores() if by_key else None
        body = route.body(self.tree.root, key, file_url, repo=repo, stores=stores)
        if body is None:
            return _text(start_response, "404 Not Found", route.missing.format(key=key or "-") + "\n", head)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [] if head else [body]

    @staticmethod
    def _gone(start_response: StartResponse, path: str, key: str, why: str, head: bool) -> Iterable[bytes]:
        return _text(start_response, "410 Gone", f"{path}: key {key or '-'}: {why}\n", head)

    # -- the manifest root -----------------------------------------------------------------
    def _manifests(self, environ: dict, start_response: StartResponse, path: str) -> Iterable[bytes]:
        """A manifest file as it is, or a directory's ``{"path", "files", "directories"}`` (dandidav's index)."""
        method = environ["REQUEST_METHOD"]
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            allow = [("Allow", "GET, HEAD")]
            return _text(start_response, "405 Method Not Allowed", f"{method}: the view is read-only\n", head, allow)
        parts = [p for p in path[len(MANIFESTS) :].split("/") if p]
        if any(p in (".", "..") or "\0" in p for p in parts):
            return _text(start_response, "400 Bad Request", "'.' and '..' are not names\n", head)
        try:
            found = self.tree.manifests.file(parts)
            if found is not None:
                body = found.read_bytes()
            else:
                index = self.tree.manifests.index(parts)
                if index is None:
                    return _text(start_response, "404 Not Found", "no such manifest or directory\n", head)
                body = json.dumps({"path": path.rstrip("/") + "/", **index}).encode()
        except FileNotFoundError:
            return _text(start_response, "404 Not Found", "no such manifest or directory\n", head)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("200 OK", [*headers, ("Access-Control-Allow-Origin", "*")])
        return [] if head else [body]

    # -- directories ---------------------------------------------------------------------
    def _images(self, share: str, path: str, node: Node) -> list[ng.Image]:
        """The OME-Zarr images a directory's page links in Neuroglancer, each by a path that pins it for good: the
        directory itself if it is a Zarr's top, else its children that are; by the pin's commit (``draft`` or a
        label would follow what they name when the link is opened), or as they are under ``/zarrs/`` (a checksum)."""
        if node.pin is not None:
            top = ng.pinned_path(node.pin.source, node.pin.commit, node.inner)
            parts = node.inner.split("/")
        elif share == "/zarrs" and path.strip("/").count("/") >= 3:  # /zarrs/{p1}/{p2}/{zarr_id}[/...]
            top, parts = path.rstrip("/"), path.strip("/").split("/")[4:] or [""]
        else:
            return []
        if any(ng.is_zarr(p) for p in parts[:-1]):  # inside an image: its levels are not images of their own
            return []
        tops = (
            [top]
            if ng.is_zarr(parts[-1])
            else [f"{top}/{e.name}" for e in node.entries if e.is_dir and ng.is_zarr(e.name)]
        )
        return [
            ng.Image(ng.layer_name(t), t, self._kind(t) if i < IMAGES_READ else "image") for i, t in enumerate(tops)
        ]

    def _kind(self, top: str) -> str:
        """An image's layer type, from its ``.zattrs`` when the view holds its bytes (kept in git: a BOSS image's)."""
        if not top.startswith("/dav/"):
            return "image"
        try:
            node = self.tree.node("dav", top[len("/dav") :] + "/.zattrs")
        except Exception as exc:  # a courtesy: the link stands without it
            log.debug("view: %s/.zattrs: %s", top, exc)
            return "image"
        return ng.kind_of(None if node is None else node.data)

    def _listing(
        self, environ: dict, start_response: StartResponse, path: str, node: Node, head: bool, images: list[ng.Image]
    ) -> Iterable[bytes]:
        base = path.rstrip("/") + "/"
        rows = [
            {
                "name": e.name,
                "type": "directory" if e.is_dir else "file",
                "href": href(base + e.name + ("/" if e.is_dir else "")),
                **({} if e.file is None else {"size": e.file.size, "key": e.file.key, "served_by": e.file.served_by}),
                **({} if e.modified is None else {"modified": iso_z(e.modified)}),
            }
            for e in node.entries
        ]
        at = node.pin
        pin = None if at is None else {"source": at.source, "version": at.version, "commit": at.commit}
        query = parse_qs(environ.get("QUERY_STRING", ""))
        accept = environ.get("HTTP_ACCEPT", "")
        viewers = ng.viewers(application_uri(environ), images, IMAGES_READ)
        if query.get("format") == ["json"] or ("application/json" in accept and "text/html" not in accept):
            extra = {"neuroglancer": viewers} if viewers else {}
            body = json.dumps({"path": base, "pin": pin, "entries": rows, **extra}, indent=1).encode()
            ctype = "application/json"
        else:
            body, ctype = listing_html(base, pin, rows, ng.viewers_html(viewers)).encode(), "text/html; charset=utf-8"
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body))), *_dated(node)])
        return [] if head else [body]

    # -- serving it from http.server ------------------------------------------------------------
    def respond(self, handler: Any) -> None:
        """Answer the request a ``BaseHTTPRequestHandler`` read (the status server's) with this app."""
        import sys

        target = handler.path
        if "://" in target.split("?", 1)[0]:  # absolute-form request target
            target = target.split("://", 1)[1].partition("/")[2]
            target = "/" + target
        raw, _, query = target.partition("?")
        host, port = handler.server.server_address[:2]
        env = {
            "REQUEST_METHOD": handler.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(raw.split("#", 1)[0], "iso-8859-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": handler.request_version,
            "REMOTE_ADDR": handler.client_address[0],
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": handler.headers.get("Content-Length", ""),
        }
        for name, value in handler.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                env[key] = f"{env[key]},{value}" if key in env else value
        server = _server_handler()(handler.rfile, handler.wfile, sys.stderr, env, multithread=True)
        server.request_handler = handler
        server.run(self)


@functools.cache
def _server_handler() -> Any:
    """wsgiref's ``ServerHandler`` with the attribute it logs through (``close()`` calls the request handler's
    ``log_request``), made once and only when the view serves (wsgiref is not imported for the CLI's start-up)."""
    from wsgiref.simple_server import ServerHandler

    class Handler(ServerHandler):
        request_handler: Any

    return Handler


def _with_cors(start_response: StartResponse) -> StartResponse:
    """``start_response`` adding the CORS headers an answer lacks (WsgiDAV's, a redirect, a 404 included)."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        have = {k.lower() for k, _ in headers}
        headers = [*headers, *((k, v) for k, v in CORS if k.lower() not in have)]
        return start_response(status, headers) if exc_info is None else start_response(status, headers, exc_info)

    return start


def _client(start_response: StartResponse, path: str, head: bool) -> Iterable[bytes]:
    """The ``neuroglancer`` package's client: ``/neuroglancer/`` sends a browser (the ``#!`` state kept) to
    :data:`~.ome.neuroglancer.CLIENT_APP`, where its files are; without the package, a 404 saying so."""
    if ng.client_dir() is None:
        why = "the neuroglancer package is not installed here (pip install 'neuromirror[view]'); open the public link\n"
        return _text(start_response, "404 Not Found", why, head)
    rest = path[len(ng.CLIENT_ROUTE) :]
    if rest in ("", "/"):
        start_response("302 Found", [("Location", ng.CLIENT_APP), ("Content-Length", "0")])
        return []
    parts = rest.split("/")
    found = ng.client_file(parts[3]) if len(parts) == 4 and parts[1] == "v" and parts[2] else None
    if found is None:
        return _text(start_response, "404 Not Found", f"{path}: no such file of the Neuroglancer client\n", head)
    data, ctype = found
    cache = "no-cache" if ctype.startswith("text/html") else "public, max-age=86400"  # the others are named by hash
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(data))), ("Cache-Control", cache)])
    return [] if head else [data]


def _dated(node: Node) -> list[tuple[str, str]]:
    """``Last-Modified``: the pin's date (a published version's, a draft's or commit's commit date); a
    file's ``ETag``: its git-annex key (a DANDI file's holds its sha256), as WsgiDAV gives it when it streams."""
    from email.utils import formatdate

    out = [] if node.modified is None else [("Last-Modified", formatdate(node.modified, usegmt=True))]
    return out + ([("ETag", f'"{node.file.key}"')] if node.file is not None and node.file.key else [])

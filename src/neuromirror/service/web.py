"""The service's HTTP side (``serve --http``): the pages, ``/status.json``, ``/audit/``, ``/backup/``, ``/metrics``, ``/healthz``.

Beside them the view of every pin (:mod:`neuromirror.read.view`) and its landing page
(:mod:`neuromirror.read.landing`): at ``/`` when there is no service (``serve --no-schedule``),
at ``/view/`` when ``/`` is the status page (which links it).

A ``ThreadingHTTPServer`` from the standard library in a daemon thread: a status
page is a few SQLite queries and a string, no web framework needed.  Every request
reads the index afresh (its own connection), so the pages are never staler than
the last finished run; an error while rendering is a 500 for that request, never
the end of the service.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import unquote

from neuromirror.account.status import report_json
from neuromirror.api.serving import is_loopback
from neuromirror.errors import UserError
from neuromirror.read.landing import LANDING, OPERATOR_ROUTES, ROUTES, SERVICE_ROUTES, landing_html
from neuromirror.service import pages
from neuromirror.service.keeping import keep_facts
from neuromirror.service.metrics import CONTENT_TYPE as METRICS_TYPE
from neuromirror.service.metrics import add_keeps, exposition
from neuromirror.service.publishing import add_publishes, publish_facts
from neuromirror.service.risk import add_risks, risk_facts

if TYPE_CHECKING:
    from neuromirror.api import Mirror

log = logging.getLogger("neuromirror.service")

HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


class HttpAddressError(UserError, ValueError):
    """An ``http`` address that cannot be parsed or listened on: the caller's to mend (exit 2), said by the
    argument (``http 'x': ...``, ``--http 'x': ...`` on the command line), and a ValueError as it always was."""


def parse_http(text: str) -> tuple[str, int]:
    """``127.0.0.1:8642``, ``[::1]:8642``, ``localhost:8642``, ``:8642`` (loopback), ``8642``; port 0 = any free one."""
    t = text.strip()
    if t.startswith("["):
        host, _, port = t[1:].partition("]:")
    elif t.count(":") == 1:
        host, port = t.split(":")
    elif t.isdigit():
        host, port = "", t
    else:
        raise HttpAddressError(f"http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8642").at("http")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise HttpAddressError(f"http {text!r}: the port must be a number from 0 to 65535").at("http")
    return host or "127.0.0.1", int(port)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    service: Any  # the Service; None: the view alone (serve --no-schedule)
    view: Any = None  # the view of every pin (neuromirror.read.view.View): /dav/, /dandisets/
    covered_by: tuple[str, ...] = ()  # the archive's own backup (LISTs) the coverage page counts against


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


def start_http(
    service: Any, spec: str, view: Any = None, covered_by: tuple[str, ...] = ()
) -> tuple[ThreadingHTTPServer, str]:
    """Listen on ``spec`` (HOST:PORT) and serve in a daemon thread; return the server and its URL.

    The view of every pin (``view``, else one of the service's root) answers ``/dav/`` and
    ``/dandisets/`` on the same port.  Raises ValueError for an address that cannot be parsed or
    listened on (:class:`HttpAddressError`).
    """
    host, port = parse_http(spec)
    if not is_loopback(host):
        log.warning("http %s is not a loopback address: the status pages and pins have no authentication", host)
    try:
        cls = _HTTPServer6 if ":" in host else _HTTPServer
        httpd = cls((host, port), _Handler)
    except OSError as exc:
        raise HttpAddressError(f"http {spec}: cannot listen: {exc.strerror or exc}").at("http") from None
    httpd.service = service
    httpd.covered_by = tuple(covered_by)
    httpd.view = view if view is not None or service is None else default_view(service)
    h, p = str(httpd.server_address[0]), int(httpd.server_address[1])
    url = f"http://{'[' + h + ']' if ':' in h else h}:{p}/"
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="neuromirror-http"
    ).start()
    return httpd, url


def default_view(service: Any) -> Any:
    """The read-only view of the service's root (:meth:`neuromirror.api.Mirror.view`); embargoed dandisets only
    if it includes them."""
    from neuromirror.api import Mirror as Api

    return Api(service.root, service.index_path).view(include_embargoed=service.include_embargoed)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "neuromirror"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("http: " + format, *args)

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # noqa: N802
        if self.server.view is not None and self.server.view.handles(self.path):
            self.server.view.respond(self)
            return
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        try:
            code, body, ctype = self._route(path)
        except _NoIndex as exc:
            self._send(503, f"{exc}\n".encode(), TEXT, head)
            return
        except Exception as exc:  # never take the service down for a status page
            log.warning("http %s: %s", path, exc)
            self._send(500, f"error: {exc}\n".encode(), TEXT, head)
            return
        self._send(code, body, ctype, head)

    def _route(self, path: str) -> tuple[int, bytes, str]:
        """The answer to a GET of ``path`` that is not the view's: (status code, body, content type)."""
        svc = self.server.service
        if path in ("/view", LANDING) or (svc is None and path in ("/", "/index.html")):
            return 200, self._landing(), HTML
        if svc is None and path not in _VIEW_PAGES:
            routes = ", ".join(p for p, _ in (*ROUTES, *OPERATOR_ROUTES))
            return 404, f"{path}: not found (only the view is served: /, {routes})\n".encode(), TEXT
        if path.startswith("/source/"):
            page = self._source(unquote(path[len("/source/") :]))
            return (404, b"no such source\n", TEXT) if page is None else (200, page.encode(), HTML)
        page_of = _PAGES.get(path)
        if page_of is None:
            routes = ", ".join(p for p, _ in (*SERVICE_ROUTES, *OPERATOR_ROUTES, *ROUTES))
            return 404, f"{path}: not found (routes: {routes}, /source/ID)\n".encode(), TEXT
        body, ctype = page_of(self, path)
        return 200, body, ctype

    def _landing(self) -> bytes:
        h, p = str(self.server.server_address[0]), int(self.server.server_address[1])
        base = f"http://{'[' + h + ']' if ':' in h else h}:{p}/"
        return landing_html(base, scheduled=self.server.service is not None).encode()

    def _status_json(self) -> dict:
        """The status report, with each source's at-risk counts as the service last counted them."""
        svc = self.server.service
        report = svc.report()
        mirror = svc.mirror()
        try:
            records = mirror.records
            add_risks(report, records)
            add_publishes(report, records)
            add_keeps(report, records)
        finally:
            mirror.close()
        return report_json(report)

    def _overview(self) -> str:
        svc = self.server.service
        report = svc.report()
        mirror = svc.mirror()
        try:
            records = mirror.records
            runs = records.recent_runs([r.source for r in report["sources"]])
            add_risks(report, records)
            add_publishes(report, records)
            add_keeps(report, records)
        finally:
            mirror.close()
        return pages.render_html(report, runs, browse_url=svc.browse_url())

    def _source(self, sid: str) -> Optional[str]:
        svc = self.server.service
        report = svc.report()
        row = next((r for r in report["sources"] if r.source == sid), None)
        if row is None:
            return None
        mirror = svc.mirror()
        try:
            records = mirror.records
            runs, versions = records.run_history(sid), records.versions(sid)
            counted = risk_facts(records, sid).get(sid) or _count_now(mirror, sid)
            row.add(
                at_risk_counted=counted,
                publish=publish_facts(records, sid).get(sid),
                keep=keep_facts(records).get(sid),
            )
        finally:
            mirror.close()
        return pages.render_source_page(row, runs, versions, root=report["root"], browse_url=svc.browse_url())

    def _mirror(self) -> Mirror:
        """The mirror's datasets and index: the service's, else (the view alone) the view's root and index.  The
        pages change no dataset; the backup page catalogues a Zarr state's objects in the index once (as the view
        records a lost URL there), unless the index is not writable here: then it is opened read-only."""
        if self.server.service is not None:
            return self.server.service.mirror()
        import os

        from neuromirror.api import Mirror

        tree = self.server.view.tree
        index = Path(tree.index_path)
        if not index.exists():
            raise _NoIndex(f"nothing mirrored at {tree.root} yet (no index): run neuromirror sync SPEC")
        readonly = not os.access(index, os.W_OK) or not os.access(index.parent, os.W_OK)
        return Mirror(tree.root, index, readonly_index=readonly)

    def _audit(self, json_wanted: bool) -> tuple[bytes, str]:
        """What the mirror saw wrong upstream (:mod:`neuromirror.audit`): the page, or its JSON."""
        from neuromirror.audit.report import as_html

        mirror = self._mirror()
        try:
            found = mirror.audit().found
        finally:
            mirror.close()
        if json_wanted:
            return json.dumps(found.to_json(), indent=2).encode(), "application/json"
        return as_html(found).encode(), HTML

    def _backup(self, json_wanted: bool) -> tuple[bytes, str]:
        """Per source and store, what the archive holds against what the stores hold (:mod:`neuromirror.service.pages.backup`):
        the page, or its JSON; ``keep: {expire_after}`` of the service's definitions applied."""
        from neuromirror.service.pages.backup import as_html

        svc = self.server.service
        mirror = self._mirror()
        try:
            found = mirror.backup(expire_after=_expire_after(svc))
        finally:
            mirror.close()
        if json_wanted:
            return json.dumps(found.to_json(), indent=2).encode(), "application/json"
        return as_html(found).encode(), HTML

    def _coverage(self, json_wanted: bool) -> tuple[bytes, str]:
        """Who else holds the archive's objects (:mod:`neuromirror.account.coverage`): the page, or its JSON."""
        from neuromirror.service.pages.coverage import coverage_html

        svc = self.server.service
        lists = self.server.covered_by or tuple(getattr(getattr(svc, "config", None), "covered_by", None) or ())
        mirror = self._mirror()
        try:
            found = mirror.coverage(covered_by=list(lists), expire_after=_expire_after(svc))
        finally:
            mirror.close()
        if json_wanted:
            return json.dumps(found.to_json(), indent=2).encode(), "application/json"
        return coverage_html(found).encode(), HTML

    def _send(self, code: int, body: bytes, ctype: str, head: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)


#: the service's own pages by path: each gives (body, content type)
_PAGES: dict[str, Callable[[_Handler, str], tuple[bytes, str]]] = {
    "/": lambda h, p: (h._overview().encode(), HTML),
    "/index.html": lambda h, p: (h._overview().encode(), HTML),
    "/status.json": lambda h, p: (json.dumps(h._status_json(), indent=2).encode(), "application/json"),
    "/status": lambda h, p: (json.dumps(h._status_json(), indent=2).encode(), "application/json"),
    **{a: lambda h, p: h._audit(json_wanted=p == "/audit.json") for a in ("/audit", "/audit/", "/audit.json")},
    **{b: lambda h, p: h._backup(json_wanted=p == "/backup.json") for b in ("/backup", "/backup/", "/backup.json")},
    **{
        c: lambda h, p: h._coverage(json_wanted=p == "/coverage.json")
        for c in ("/coverage", "/coverage/", "/coverage.json")
    },
    "/metrics": lambda h, p: (exposition(h.server.service.metrics_registry).encode(), METRICS_TYPE),
    "/healthz": lambda h, p: (b"ok\n", TEXT),
}


#: what the view alone (``serve --http --no-schedule``) answers beside the view: the operator's pages, read from
#: the view's mirror, and the health check
_VIEW_PAGES = frozenset(
    {"/healthz", "/audit", "/audit/", "/audit.json", "/backup", "/backup/", "/backup.json"}
    | {"/coverage", "/coverage/", "/coverage.json"}
)


class _NoIndex(Exception):
    """The view's root holds no index yet: an operator's page has nothing to read (503, one line)."""


def _expire_after(service: Any) -> dict[str, float]:
    """SPEC -> the archive's noncurrent-version expiry its ``keep:`` policy names (the others: the default)."""
    from neuromirror.account.backup import expire_after_of

    return expire_after_of(getattr(service, "config", None))


def _other_method(self: _Handler) -> None:
    """WebDAV's and writing methods: the view's to answer (405 for a write), else unsupported as before."""
    if self.server.view is not None and self.server.view.handles(self.path):
        self.server.view.respond(self)
    else:
        self.send_error(501, f"Unsupported method ({self.command!r})")


for _method in ("OPTIONS", "PROPFIND", "PROPPATCH", "PUT", "POST", "DELETE", "PATCH", "MKCOL", "COPY", "MOVE"):
    setattr(_Handler, f"do_{_method}", _other_method)
for _method in ("LOCK", "UNLOCK"):
    setattr(_Handler, f"do_{_method}", _other_method)


def _count_now(mirror: Mirror, sid: str) -> Optional[dict]:
    """A source the service has not counted yet (a mirror synced by the command line, served by ``serve --http``):
    its page counts it now, as ``status`` does, rather than show a blank where ``status`` prints numbers."""
    from neuromirror.service.risk import count_risk

    try:
        return {**count_risk(mirror, sid), "live": True}
    except Exception as exc:  # noqa: BLE001 - a view: the page still shows, saying why there are no counts
        log.warning("%s: counting what is at risk for its page failed: %s", sid, exc)
        return None

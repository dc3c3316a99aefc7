"""The view's landing page: what a newcomer sees at ``/`` of ``serve --http ADDR --no-schedule``.

The first URL anyone opens is the bare address; it says what each route serves and links each
one.  With scheduling, ``/`` is the service's status page (it links here), and this page is at
``/view/``.  Plain HTML, no script, readable in a 1280 px window.  A directory's listing
(:func:`listing_html`) is the view's other page.
"""

from __future__ import annotations

import html
from typing import Optional
from urllib.parse import quote

from neuromirror.util.sizes import human_bytes

#: every route of the view, with what it serves (``serve --help``, its start-up line and the docs name the same)
ROUTES = (
    (
        "/dav/",
        "WebDAV and HTML/JSON listings of every pin: /dav/ARCHIVE/NAME/VERSION/PATH (VERSION: a label, draft, a commit)",
    ),
    ("/dandisets/", "dandidav's paths: /dandisets/ID/draft/PATH, /dandisets/ID/releases/VERSION/PATH"),
    ("/zarrs/", "dandidav's Zarr states: /zarrs/P1/P2/ZARR_ID/CHECKSUM.zarr/PATH, one per state the mirror recorded"),
    (
        "/zarr/",
        "the archive's designed Zarr versions: /zarr/ZARR_ID/VERSION/PATH redirects to the pinned object; "
        "VERSION/ is its manifest",
    ),
    ("/zarr-manifests/", "the Zarr manifests in DANDI's format, a manifest root dandidav can read"),
    ("/neuroglancer/", "Neuroglancer's client (the view extra): a pinned OME-Zarr image's /dav/ page links it here"),
)
#: the service's own routes (``serve --http`` with scheduling)
SERVICE_ROUTES = (
    ("/", "the status page: every source, failures first"),
    ("/status.json", "the status report for scripts"),
    ("/metrics", "Prometheus metrics"),
)
#: the operator's pages, read from the index: served with scheduling and by the view alone (``--no-schedule``)
OPERATOR_ROUTES = (
    ("/audit/", "what the mirror saw wrong upstream, per source (audit.json: for an archive's tooling)"),
    ("/backup/", "per source and store: what the archive holds against what the lab's stores hold, what is at risk"),
    (
        "/coverage/",
        "per source and archive prefix: who else holds the archive's objects (its own backup, the lab's stores)",
    ),
)
LANDING = "/view/"


def routes_line(url: str, scheduled: bool) -> str:
    """The start-up line's list of what is served where (``serve --http``)."""
    base = url.rstrip("/")
    view = ", ".join(f"{base}{path}" for path, _ in ROUTES)
    operator = ", ".join(f"{base}{path}" for path, _ in OPERATOR_ROUTES)
    if scheduled:
        return (
            f"status page {base}/ ({base}/status.json, {base}/metrics, {operator}); the view of every pin on {view} "
            f"(about: {base}{LANDING})"
        )
    return f"{view}; the operator's pages {operator} (what each serves: {base}/)"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:1.2em 1.5em;max-width:60em;color:#1b1b1b}"
    "td,th{padding:.3em .8em .3em 0;text-align:left;vertical-align:top}td:first-child{white-space:nowrap}"
    "code{font-size:1em}"
    "pre{background:#f6f6f6;padding:.6em;overflow-x:auto}"
)


def landing_html(base_url: str, scheduled: bool = False) -> str:
    """The landing page: each route linked with what it serves, and a few ways to read a pin.

    It names no local path (the mirror's root is the status page's to show, where there is one)."""
    e = html.escape
    routes = list(ROUTES) + (list(SERVICE_ROUTES) if scheduled else []) + list(OPERATOR_ROUTES)
    rows = "".join(
        f'<tr><td><a href="{e(path)}"><code>{e(path)}</code></a></td><td>{e(what)}</td></tr>' for path, what in routes
    )
    base = base_url.rstrip("/")
    status = '<p><a href="/">The status page</a> shows every source and its syncs.</p>' if scheduled else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>neuromirror view</title><style>{_CSS}</style></head><body>\n"
        f"<h1>neuromirror: every pin, read-only</h1>\n<p>The pinned versions of this mirror, by URL. A file answers with a "
        "redirect to the URL that serves exactly its bytes at that pin; a directory answers PROPFIND (WebDAV), "
        "an HTML listing, or JSON with <code>?format=json</code>.</p>\n"
        f"{status}<table><thead><tr><th>route</th><th>what</th></tr></thead><tbody>{rows}</tbody></table>\n"
        "<h2>Reading a pin</h2>\n<pre>"
        f"curl -sL '{e(base)}/dav/dandi/ID/VERSION/PATH'\n"
        f"curl -s '{e(base)}/dav/dandi/ID/?format=json'\n"
        f"rclone lsl --webdav-url {e(base)}/dav :webdav:dandi/ID/VERSION\n"
        f'python -c \'import zarr; print(zarr.open_array("{e(base)}/dav/dandi/ID/VERSION/x.zarr/0", mode="r")[:])\''
        "</pre>\n</body></html>\n"
    )


PIN_NOTE = (
    " A file answers with a redirect to the URL that serves exactly its bytes at this pin; a file kept"
    " in git, or that only the lab's store still holds, is served here."
)


def href(path: str) -> str:
    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def listing_html(base: str, pin: Optional[dict], rows: list[dict], viewers: str = "") -> str:
    """A plain listing with links, readable without any script or style sheet.

    Clients that list a directory by scraping its page (fsspec's HTTP filesystem, so zarr-python over
    HTTP) take every link under the page's own URL for a child: a link to the directory itself read as
    a member named ``''``, and a walk of a Zarr group recursed into it for ever.  So the last breadcrumb
    (this directory) is text, not a link; the other breadcrumbs and ``../`` point above the page, which
    no such client reads as a child."""
    e = html.escape
    crumbs, acc = [], "/"
    parts = [p for p in base.split("/") if p]
    for i, part in enumerate(parts):
        acc += part + "/"
        crumbs.append(e(part) if i == len(parts) - 1 else f'<a href="{e(href(acc))}">{e(part)}</a>')
    lines = [
        f'<tr><td><a href="{e(r["href"])}">{e(r["name"])}{"/" if r["type"] == "directory" else ""}</a></td>'
        f'<td class="size">{"" if r["type"] == "directory" else e(human_bytes(r.get("size")))}</td>'
        f"<td>{e(r.get('modified', '').replace('T', ' '))}</td><td>{e(r.get('served_by', ''))}</td></tr>"
        for r in rows
    ]
    about = ""
    if pin is not None:
        about = f"<p>{e(pin['source'])} at {e(pin['version'])}: commit <code>{e(pin['commit'])}</code></p>"
    parent = (
        "" if base.count("/") <= 2 else f'<p><a href="{e(href(base.rstrip("/").rpartition("/")[0] + "/"))}">../</a></p>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>'
        f"{e(base)} - neuromirror</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:0.15em 1em 0.15em 0}"
        ".size{text-align:right}th{text-align:left}</style></head><body>"
        f"<h1>/{'/'.join(crumbs)}/</h1>{about}{viewers}{parent}"
        "<table><thead><tr><th>Name</th><th>Size</th><th>Modified</th><th>Served by</th></tr></thead>"
        f"<tbody>{''.join(lines)}</tbody></table>"
        f"<p>{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}.{PIN_NOTE if pin else ''}</p></body></html>\n"
    )

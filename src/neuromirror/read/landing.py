"""The view's landing page: what a newcomer sees at ``/`` of ``serve --http ADDR --no-schedule``.

The first URL anyone opens is the bare address; it says what each route serves and links each
one.  With scheduling, ``/`` is the service's status page (it links here), and this page is at
``/view/``.  Plain HTML, no script, readable in a 1280 px window.
"""

from __future__ import annotations

import html

#: every route of the view, with what it serves (``serve --help``, its start-up line and the docs name the same)
ROUTES = (
    (
        "/dav/",
        "WebDAV and HTML/JSON listings of every pin: /dav/ARCHIVE/NAME/VERSION/PATH (VERSION: a label, draft, a commit)",
    ),
    ("/dandisets/", "dandidav's paths: /dandisets/ID/draft/PATH, /dandisets/ID/releases/VERSION/PATH"),
    ("/zarrs/", "dandidav's Zarr states: /zarrs/P1/P2/ZARR_ID/CHECKSUM.zarr/PATH, one per state the mirror recorded"),
    ("/zarr-manifests/", "the Zarr manifests in DANDI's format, a manifest root dandidav can read"),
    ("/neuroglancer/", "Neuroglancer's client (the view extra): a pinned OME-Zarr image's /dav/ page links it here"),
)
#: the service's routes (``serve --http`` with scheduling)
SERVICE_ROUTES = (
    ("/", "the status page: every source, failures first"),
    ("/status.json", "the status report for scripts"),
    ("/metrics", "Prometheus metrics"),
    ("/audit/", "what the mirror saw wrong upstream, per source (audit.json: for an archive's tooling)"),
    ("/backup/", "per source and store: what the archive holds against what the lab's stores hold, what is at risk"),
)
LANDING = "/view/"


def routes_line(url: str, scheduled: bool) -> str:
    """The start-up line's list of what is served where (``serve --http``)."""
    base = url.rstrip("/")
    view = ", ".join(f"{base}{path}" for path, _ in ROUTES)
    if scheduled:
        return f"status page {base}/ ({base}/status.json, {base}/metrics); the view of every pin on {view} (about: {base}{LANDING})"
    return f"{view} (what each serves: {base}/)"


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
    routes = list(ROUTES) + (list(SERVICE_ROUTES) if scheduled else [])
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

"""``neuromirror://`` over a served mirror: the same paths, read through another host's view.

A lab runs ``neuromirror serve --http`` once; its members read pins without a mirror of their
own: ``fsspec.open("neuromirror://dandi/000027@V/x.nwb", base_url="http://mirror.lab:8642/")`` (or
``NEUROMIRROR_URL``).  ``ARCHIVE/NAME@VERSION/PATH`` becomes the view's
``/dav/ARCHIVE/NAME/VERSION/PATH``; a directory is read from the view's JSON listing (kept, a few
at a time), a file through fsspec's HTTP filesystem, which follows the view's redirect to the
pinned URL (range requests then go to the archive) or reads the bytes the view streams itself.
An opened file asks the view once where it redirects (:meth:`ServedMirror.resolve`), and its range
reads go there directly: one round trip each, not two; a read there that fails is the view's again.
A file the view answers 410 for raises :class:`~.fsspec_fs.NotStreamable` with the view's reason.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Optional
from urllib.parse import quote, urljoin

from neuromirror.network import identity

#: directory listings kept (each one directory's entries)
MAX_LISTINGS = 64
#: where the view redirected opened files, kept (each a view URL's ``Location``)
MAX_TARGETS = 256
#: told to the view after a read through it failed: it asks the archive again (not its memory) and
#: remembers a loss for every reader (:mod:`.loss`)
FAILED_HEADER = "X-Neuromirror-Read-Failed"
#: how long a read waits on an archive, a store or a view: to connect, then for each next bytes (the
#: view may ask the archive first); never aiohttp's default 5 minutes on a dead archive
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 30.0


class ServedMirror:
    """The view of a served mirror at ``base`` (``http://host:port/``), as ``neuromirror://`` reads it."""

    def __init__(self, base: str, http: Any) -> None:
        self.base = base.rstrip("/") + "/"
        self.http = http  # fsspec's HTTP filesystem
        self._lock = threading.Lock()
        self._listings: OrderedDict[str, list[dict]] = OrderedDict()
        self._targets: OrderedDict[str, str] = OrderedDict()

    def url(self, head: str, inner: str) -> str:
        """The view's URL of ``inner`` at the pin ``head`` (``ARCHIVE/NAME@VERSION``)."""
        name, _, version = head.rpartition("@")
        path = "/".join(p for p in (name, version, inner) if p)
        return self.base + "dav/" + quote(path, safe="/~@")

    def listing(self, head: str, inner: str) -> Optional[list[dict]]:
        """The entries of directory ``inner`` at the pin (None: not a directory there)."""
        url = self.url(head, inner) + "/"
        with self._lock:
            got = self._listings.get(url)
            if got is not None:
                self._listings.move_to_end(url)
                return got
        r = self._ask("get", url, params={"format": "json"})
        if r.status_code == 404:
            return None
        if r.status_code != 200 or not r.headers.get("Content-Type", "").startswith("application/json"):
            return None  # a file (its redirect), or no directory
        rows = [
            {
                "name": f"{head}/{inner}/{e['name']}" if inner else f"{head}/{e['name']}",
                "size": e.get("size", 0) if e["type"] == "file" else 0,
                "type": e["type"],
                **{k: e[k] for k in ("key", "served_by") if k in e},
            }
            for e in r.json().get("entries", [])
        ]
        with self._lock:
            self._listings[url] = rows
            while len(self._listings) > MAX_LISTINGS:
                self._listings.popitem(last=False)
        return rows

    def info(self, head: str, inner: str) -> Optional[dict]:
        """``ls``'s entry of ``inner`` (a file or a directory), from its directory's listing."""
        if not inner:
            return {"name": head, "size": 0, "type": "directory"}
        parent, _, name = inner.rpartition("/")
        rows = self.listing(head, parent)
        if rows is None:
            return None
        return next((r for r in rows if r["name"].rpartition("/")[2] == name), None)

    def gone(self, head: str, inner: str, failed: bool = False) -> Optional[str]:
        """The view's reason when no URL serves the file (its 410), else None.

        Before a read, the directory's listing (kept) says how each file is served: only a file it
        lists as served by nothing, or one it does not describe, costs a request to the view.  After
        a read ``failed``, the view is asked (an archive URL can have died since it was listed)."""
        row = None if failed else self.info(head, inner)
        if row is not None and row.get("served_by") in ("archive", "store", "git"):
            return None
        headers = {FAILED_HEADER: "1"} if failed else {}
        r = self._ask("head", self.url(head, inner), headers=headers)
        if r.status_code == 410:
            return self._ask("get", self.url(head, inner)).text.strip()
        return None

    def resolve(self, head: str, inner: str) -> None:
        """Learn where the view redirects ``inner`` (one ``HEAD``), for the many range reads of an opened file.

        Each read then goes to the pinned URL itself: one round trip, not the view's and then the
        archive's.  A file the view streams itself (the store's copy, git) or refuses is read through the
        view as before; so is one whose target failed a read (:meth:`read` forgets it)."""
        url = self.url(head, inner)
        with self._lock:
            if url in self._targets:
                self._targets.move_to_end(url)
                return
        r = self._ask("head", url)
        location = r.headers.get("Location")
        if r.status_code in (301, 302, 303, 307, 308) and location:
            with self._lock:
                self._targets[url] = urljoin(url, location)
                while len(self._targets) > MAX_TARGETS:
                    self._targets.popitem(last=False)

    def _ask(self, method: str, url: str, **kw: Any) -> Any:
        """One request to the view; a view that does not answer is one line (an OSError), not requests' chain."""
        import requests

        try:
            return identity.request(
                method, url, allow_redirects=False, timeout=(CONNECT_TIMEOUT, 2 * READ_TIMEOUT), **kw
            )
        except requests.RequestException as exc:
            why = type(exc).__name__ if isinstance(exc, requests.Timeout) else "no answer"
            raise ConnectionError(f"neuromirror://: the served mirror at {self.base} does not answer ({why})") from None

    def read(self, head: str, inner: str, start: Optional[int], end: Optional[int]) -> bytes:
        """Bytes ``[start:end]`` of ``inner`` through the view (and its redirect), or where it redirected before.

        A failure is told to the view, which then answers from the store or 410; never passed on
        as a ``FileNotFoundError`` (the file is listed: a 404 is a lost archive URL, not a missing chunk)."""
        from neuromirror.read.loss import NotStreamable, dropped

        url = self.url(head, inner)
        with self._lock:
            target = self._targets.get(url)
        try:
            return self.http.cat_file(target or url, start=start, end=end)
        except Exception as exc:
            failure: Optional[BaseException] = dropped(exc)  # no cycle through the reader's frames
        if target is not None:
            with self._lock:
                self._targets.pop(url, None)  # the view decides again, told of the failure
        try:
            why = self.gone(head, inner, failed=True)
            if why is not None:
                raise NotStreamable(why) from failure
        finally:
            failure = None  # this frame is in failure's traceback (see loss.dropped)
        try:
            return self.http.cat_file(url, start=start, end=end)
        except Exception as exc:
            raise NotStreamable(f"{head}/{inner}: not read through {self.base} ({exc!r})") from dropped(exc)

"""``GET /zarr/{zarr_id}/{version}/{path}``: a Zarr state the mirror recorded, in the archive's designed shape.

* ``{version}`` names a state as the mirror knows it: the archive's Zarr checksum (the design has
  no other name for a finalized version yet; its manifests are filed by it, ``{checksum}.json``),
  dandidav's ``{checksum}.zarr``, or the mirror's commit of the Zarr's dataset (40 hex digits).
* a file answers ``302 Found`` (the archive API's own redirect for a Zarr file) to the ``versionId``
  URL that state recorded for it, while that URL serves; once the archive lost it (:mod:`..serving`
  asks it before every redirect: a Zarr client reads a 404 as a fill value) to the lab store's copy:
  the same file's ``/zarrs/`` path on this view, which streams it (or the store's own public URL);
  a file nothing serves is ``410 Gone`` naming its key.
* the version's root ``/zarr/{zarr_id}/{version}/`` (or a directory in it) answers the design's
  per-version manifest: JSON ``entries`` mapping each path to ``versionId``, ``lastModified``,
  ``size``, ``ETag`` and ``url`` (the pinned URL); ``/zarr/{zarr_id}/`` lists the states, ``/zarr/``
  the Zarrs.
* anything unknown is a ``404`` whose one line says which part.

The answers are records (:class:`Reply`) the view writes, so this module needs nothing of the view.
"""

from __future__ import annotations

import re
from typing import Callable, Optional
from urllib.parse import quote

from neuromirror.read.serving import Serving
from neuromirror.read.urls import PinnedFile
from neuromirror.read.view_tree import BadPath, Tree
from neuromirror.read.zarr_versions.documents import ROUTE, Documents
from neuromirror.read.zarr_versions.replies import Reply, gone, redirect, shard, text

#: dandidav's tree of the same states, where a store's copy is streamed
ZARRS = "/zarrs"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class ZarrVersions(Documents):
    """The ``/zarr/`` route over the view's tree (names, held datasets) and serving (liveness, losses)."""

    def __init__(self, tree: Tree, serving: Serving, public: Callable[[str], bool]) -> None:
        """``public``: may a URL be handed out (no credential in it); the view's rule."""
        self.tree, self.serving, self.public = tree, serving, public

    @staticmethod
    def handles(path: str) -> bool:
        return path == ROUTE or path.startswith(ROUTE + "/")

    def answer(self, method: str, path: str, base: str, failed: bool = False) -> Reply:
        """The reply to ``method`` (GET or HEAD) of ``path``; ``base``: the view's URL (no trailing ``/``);
        ``failed``: a ``neuromirror://`` reader says its read through the last redirect failed."""
        if method not in ("GET", "HEAD"):
            refused = text("405 Method Not Allowed", f"{method}: the view is read-only")
            return Reply(refused.status, [*refused.headers, ("Allow", "GET, HEAD")], refused.body)
        parts = path[len(ROUTE) :].split("/")[1:]
        if any(p in (".", "..") or "\0" in p for p in parts):
            return text("400 Bad Request", "'.' and '..' are not names")
        if not parts or not parts[0]:
            return self._zarrs(base) if len(parts) <= 1 else text("404 Not Found", f"{path}: no such Zarr")
        try:
            return self._zarr(parts, base, failed)
        except BadPath as exc:
            return text("400 Bad Request", str(exc))

    def _zarr(self, parts: list[str], base: str, failed: bool) -> Reply:
        """Inside ``/zarr/{zarr_id}``: its states, a state's manifest, a file; a 404 saying which part is wrong."""
        zarr_id = parts[0]
        listing = len(parts) == 1 or (len(parts) == 2 and not parts[1])
        checksum = None if listing else self._checksum(zarr_id, parts[1])
        if checksum is None and not self.tree.manifests.index(shard(zarr_id)):  # asked only when no state is named
            return text("404 Not Found", f"{ROUTE}/{zarr_id}: no Zarr of this id is mirrored here")
        if listing:
            return self._versions(zarr_id, base)
        if checksum is None:
            return text("404 Not Found", f"{ROUTE}/{zarr_id}/{parts[1]}: no state of this Zarr the mirror recorded")
        return self._inner(zarr_id, parts[1], checksum, parts[2:], (base, failed))

    # -- names -------------------------------------------------------------------------------
    def _checksum(self, zarr_id: str, version: str) -> Optional[str]:
        """The checksum a version names (a checksum, ``{checksum}.zarr``, the mirror's commit); None: unknown."""
        name = version[: -len(".zarr")] if version.endswith(".zarr") else version
        if name and "." not in name and self.tree.manifests.state(zarr_id, name) is not None:
            return name
        if not _COMMIT.match(version):
            return None
        checksum, _ = self._names(zarr_id, commit=version)
        return checksum if checksum and self.tree.manifests.state(zarr_id, checksum) is not None else None

    def _names(self, zarr_id: str, checksum: Optional[str] = None, commit: Optional[str] = None) -> tuple:
        try:
            return self.tree.zarr_state_names(zarr_id, checksum, commit)
        except FileNotFoundError:  # no index yet: the manifests alone
            return checksum, commit

    # -- inside a state ------------------------------------------------------------------------
    def _inner(self, zarr_id: str, version: str, checksum: str, inner: list[str], at: tuple[str, bool]) -> Reply:
        base, failed = at
        zarrs = "/" + "/".join([*shard(zarr_id), f"{checksum}.zarr", *inner])
        node = self.tree.node("zarrs", zarrs)
        if node is None:
            where = "/".join(inner)
            return text("404 Not Found", f"{ROUTE}/{zarr_id}/{version}/{where}: not in this Zarr state")
        if node.is_dir:
            prefix = "/".join(p for p in inner if p)
            return self._manifest(zarr_id, checksum, prefix + "/" if prefix else "", base)
        assert node.file is not None  # a node that is no directory is a file
        return self._file(node.file, ZARRS + zarrs, base, failed)

    def _file(self, f: PinnedFile, zarrs: str, base: str, failed: bool) -> Reply:
        """302 to the pinned URL while it serves, else to the store's copy (streamed at ``/zarrs/``), else 410."""
        if f.served_by == "git":  # its bytes are in the Zarr's dataset: streamed by the view
            return redirect(base + quote(zarrs))
        if f.served_by == "none" or (f.streamed is None and f.url is None):
            return gone(f, f.why or "no URL serves it")
        now = self.serving.answer(f, None, failed, zarrs)
        if now.status is not None:
            return text(now.status, now.body)
        if now.file.streamed is not None:  # a store's copy no client could follow a redirect to: the view streams it
            return redirect(base + quote(zarrs))
        url = now.file.url or ""
        if not self.public(url):
            return gone(f, "its only URL carries a credential")
        return redirect(url)


__all__ = ["ROUTE", "Reply", "ZarrVersions"]

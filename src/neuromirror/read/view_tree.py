"""What a path of the HTTP view names: the mirror's archives, names and versions, then a pin's tree.

``/dav/{archive}/{name}/{version}/{path}`` (a BOSS name is ``{collection}/{experiment}``) and
dandidav's ``/dandisets/{id}/draft/{path}``, ``/dandisets/{id}/releases/{version}/{path}`` (also
``/dandisets/{id}/{version}/{path}``) come down to a :class:`Node`: a directory with its entries,
or one file of a pin (:class:`~neuromirror.read.urls.PinnedFile`).  Above a pin the directories
are read from the index; inside one, a directory at a time (:mod:`.listings`).

A view answers many small requests (a Zarr read is one GET per chunk), so everything that needs
git is read once and kept: a pin named by a label or commit is resolved once (``draft`` moves: it
is asked again after a few seconds); a directory is listed once, alone (a subdirectory or Zarr
subdataset is read when entered), and its files and the bytes of its small files kept in git are
then answered with no git process (:mod:`.listings`, shared with ``neuromirror://``).  Listings
are bounded in number and in entries held.  A source the ``hidden`` rule names (an embargoed dandiset) is absent everywhere.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from neuromirror.errors import UserError
from neuromirror.read.listings import Listings
from neuromirror.read.manifests import ManifestTree
from neuromirror.read.pinned import Pin, resolve
from neuromirror.read.urls import PinnedFile
from neuromirror.spec import SpecError, parse_spec

#: how many path segments name a source, per archive
NAME_PARTS = {"dandi": 1, "aind": 1, "boss": 2}
#: a reason to hide a source (an embargo status), or None: ``(index, source) -> str | None``
Hidden = Callable[[Any, str], Optional[str]]
#: how long ``draft`` (which moves with each sync) is taken as resolved
MOVING_TTL = 2.0
MAX_PINS = 256


@dataclass(frozen=True)
class Entry:
    """One member of a directory: a sub-directory (no file) or a file of a pin."""

    name: str
    file: Optional[PinnedFile] = None

    @property
    def is_dir(self) -> bool:
        return self.file is None


@dataclass
class Node:
    """What a path names: a directory (``entries``) or a file (``file``, and ``data`` if in git and small)."""

    is_dir: bool
    entries: list[Entry] = field(default_factory=list)
    file: Optional[PinnedFile] = None
    data: Optional[bytes] = None
    pin: Optional[Pin] = None


class BadPath(ValueError):
    """A path no view can name (``..``, an empty segment where a name must be): answered 400."""


class Tree:
    """The view's names, resolved against one mirror (its index read-only), with its caches."""

    def __init__(self, root: Path, index: Optional[str] = None, hidden: Optional[Hidden] = None) -> None:
        self.root = Path(root).absolute()
        self.index_path = index
        self.hidden = hidden
        self._mirror: Any = None
        self._db_lock = threading.Lock()  # one SQLite connection, one query at a time
        self._lock = threading.Lock()
        self._pins: OrderedDict[tuple[str, str], tuple[Pin, float]] = OrderedDict()
        self.listings = Listings()
        from neuromirror.dataset.mirror import Mirror

        self.manifests = ManifestTree(Mirror(self.root, index).manifest_root, self._hidden_source)

    # -- the index ------------------------------------------------------------------
    def _index(self) -> Any:
        """The index, opened read-only on first use (a service's first sync may create it later)."""
        if self._mirror is None:
            from neuromirror.dataset.mirror import Mirror

            mirror = Mirror(self.root, self.index_path, readonly_index=True)
            if not mirror.index_path.exists():
                raise FileNotFoundError(f"no index at {mirror.index_path} yet")
            self._mirror = mirror
        return self._mirror

    def _hidden_source(self, source: str) -> Optional[str]:
        if self.hidden is None:
            return None
        with self._db_lock:
            return self.hidden(self._index().index, source)

    def _visible(self, index: Any, source: str) -> bool:
        return self.hidden is None or self.hidden(index, source) is None

    def sources(self, archive: Optional[str] = None) -> list[dict]:
        """The index's source rows (of ``archive``), those the view may show."""
        with self._db_lock:
            index = self._index().index
            return [r for r in index.sources(archive) if self._visible(index, r["id"])]

    def versions(self, source: str) -> Optional[list[dict]]:
        """The recorded versions of a visible source (None: no such source here)."""
        with self._db_lock:
            index = self._index().index
            if index.source(source) is None or not self._visible(index, source):
                return None
            return index.versions(source)

    # -- names ------------------------------------------------------------------------
    def node(self, style: str, path: str) -> Optional[Node]:
        """The node ``path`` names under a share (``dav`` or ``dandisets``); None: nothing there."""
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\0" in p for p in parts):
            raise BadPath(f"{path!r}: '.' and '..' are not names")
        try:
            if style == "dandisets":
                return self._dandisets(parts)
            if style == "zarrs":
                return self._zarrs(parts)
            return self._dav(parts)
        except FileNotFoundError:
            return None

    def _dav(self, parts: list[str]) -> Optional[Node]:
        if not parts:
            archives = sorted({r["archive"] for r in self.sources()})
            return Node(True, [Entry(a) for a in archives])
        archive, rest = parts[0], parts[1:]
        if archive not in NAME_PARTS:
            return None
        n = NAME_PARTS[archive]
        if len(rest) < n:  # the names of an archive (a BOSS collection's experiments)
            lead = "/".join(rest) + "/" if rest else ""
            names = [r["id"].split(":", 1)[1] for r in self.sources(archive)]
            below = sorted({m[len(lead) :].split("/")[0] for m in names if m.startswith(lead)})
            return Node(True, [Entry(b) for b in below]) if below or not rest else None
        source = f"{archive}:{'/'.join(rest[:n])}"
        if len(rest) == n:
            versions = self.versions(source)
            if versions is None:
                return None
            labels = sorted({v["label"] for v in versions if v["label"]})
            return Node(True, [Entry(label) for label in labels])
        return self._in_pin(source, rest[n], rest[n + 1 :])

    def _dandisets(self, parts: list[str]) -> Optional[Node]:
        if not parts:
            return Node(True, [Entry(r["id"].split(":", 1)[1]) for r in self.sources("dandi")])
        source = f"dandi:{parts[0]}"
        if len(parts) <= 2 and (len(parts) == 1 or parts[1] == "releases"):
            versions = self.versions(source)
            if versions is None:
                return None
            if len(parts) == 1:
                drafts = [Entry("draft")] if any(v["label"] == "draft" for v in versions) else []
                return Node(True, [*drafts, Entry("releases")])
            released = sorted({v["label"] for v in versions if v["kind"] == "published"})
            return Node(True, [Entry(label) for label in released])
        if parts[1] == "releases":
            return self._in_pin(source, parts[2], parts[3:])
        return self._in_pin(source, parts[1], parts[2:])

    def _zarrs(self, parts: list[str]) -> Optional[Node]:
        """dandidav's ``/zarrs/{p1}/{p2}/{zarr_id}/{checksum}.zarr/{path}``, from the mirror's manifests."""
        got = self.manifests.node(parts)
        if got is None:
            return None
        is_dir, members, f = got
        return Node(True, [Entry(n, m) for n, m in members]) if is_dir else Node(False, file=f)

    # -- pins ---------------------------------------------------------------------------
    def pin(self, source: str, version: str) -> Optional[Pin]:
        """``source`` at ``version`` (a label, ``draft`` or a commit), resolved once (``draft``: briefly)."""
        key = (source, version)
        now = time.monotonic()
        with self._db_lock:  # asked every time: an embargo can begin after a pin was resolved
            if not self._visible(self._index().index, source):
                return None
        with self._lock:
            got = self._pins.get(key)
            if got is not None and got[1] > now:
                self._pins.move_to_end(key)
                return got[0]
        try:
            spec = parse_spec(f"{source}@{version}")
        except SpecError:
            return None
        if spec.is_glob:
            return None
        with self._db_lock:
            mirror = self._index()
            if version == "draft" and not source.startswith("dandi:"):
                spec = parse_spec(source)  # AIND and BOSS have no draft: their newest snapshot
            try:
                pin = resolve(mirror, spec)
            except UserError:
                return None
        moving = version == "draft" or spec.version is None
        with self._lock:
            self._pins[key] = (pin, now + MOVING_TTL if moving else float("inf"))
            while len(self._pins) > MAX_PINS:
                self._pins.popitem(last=False)
        return pin

    def _in_pin(self, source: str, version: str, inner_parts: list[str]) -> Optional[Node]:
        pin = self.pin(source, version)
        if pin is None:
            return None
        got = self.listings.find(pin, "/".join(inner_parts))
        if got is None:
            return None
        if isinstance(got, tuple):
            f, data = got
            return Node(False, file=f, data=data, pin=pin)
        return Node(True, [Entry(name, f) for name, f in got.children()], pin=pin)

    def close(self) -> None:
        with self._db_lock:
            if self._mirror is not None:
                self._mirror.close()
                self._mirror = None
        self.listings.close()

"""The mirror's Zarr manifests as the view serves them: dandidav's manifest root and ``/zarrs/`` tree.

The sync writes one manifest per Zarr state (:mod:`neuromirror.engine.zarr.manifest`).  Two
readers want them:

* dandidav (or any client of the format) with the mirror as its manifest root: it GETs
  ``{root}/{p1}/{p2}/{zarr_id}/{checksum}.json`` and, for a directory, ``{root}/{dir}/``
  answered by JSON ``{"files": [...], "directories": [...]}`` (the proof of concept's index);
  :meth:`ManifestTree.index` and :meth:`ManifestTree.file` give both.
* a reader of dandidav's own paths, ``/zarrs/{p1}/{p2}/{zarr_id}/{checksum}.zarr/{path}``:
  :meth:`ManifestTree.node` resolves them to directories and files of one Zarr state, each
  file with the URL that serves exactly its bytes (its S3 ``versionId``).

Names starting with a dot (the sidecar, a temporary file) are never listed, as dandidav skips
them.  A Zarr whose source the view hides (an embargo) is absent.  Parsed manifests are kept,
a few at a time (a Zarr read is one GET per chunk, all against one manifest).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote

from neuromirror.annex.keys import md5e_key
from neuromirror.engine.zarr.manifest import SIDECAR, base_url_of, source_of
from neuromirror.read.urls import PinnedFile

#: parsed manifests kept (each may be large: a Zarr of 10^5 objects is ~10 MB of JSON)
MAX_MANIFESTS = 4
_MD5 = re.compile(r"^[0-9a-f]{32}$")
#: a reason to hide a source, or None
HiddenSource = Callable[[str], Optional[str]]


class ManifestTree:
    """The manifest root on disk, read-only, as indexes, files and ``/zarrs/`` nodes."""

    def __init__(self, root: Path, hidden: Optional[HiddenSource] = None) -> None:
        self.root = Path(root)
        self.hidden = hidden
        self._lock = threading.Lock()
        self._parsed: OrderedDict[Path, dict] = OrderedDict()

    # -- the manifest root ------------------------------------------------------------
    def _place(self, parts: list[str]) -> Optional[Path]:
        if any(not p or p.startswith(".") or "\0" in p for p in parts):  # "..", the sidecar, temporary files
            return None
        place = self.root.joinpath(*parts)
        if len(parts) >= 3 and not self._visible(self.root.joinpath(*parts[:3])):
            return None
        return place

    def _visible(self, zarr_dir: Path) -> bool:
        if self.hidden is None:
            return True
        source = source_of(zarr_dir)
        return source is None or self.hidden(source) is None

    def index(self, parts: list[str]) -> Optional[dict]:
        """``{"files": [...], "directories": [...]}`` of a directory of the root, or None."""
        place = self._place(parts)
        if place is None or not place.is_dir():
            # no Zarr recorded yet: the root is there (the landing page links it), empty
            return {"files": [], "directories": []} if not parts else None
        files, dirs = [], []
        for child in sorted(place.iterdir(), key=lambda p: p.name):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                if len(parts) == 2 and not self._visible(child):
                    continue
                dirs.append(child.name)
            elif child.is_file():
                files.append(child.name)
        return {"files": files, "directories": dirs}

    def file(self, parts: list[str]) -> Optional[Path]:
        """A manifest file of the root, or None."""
        place = self._place(parts)
        return place if place is not None and len(parts) == 4 and place.is_file() else None

    # -- dandidav's /zarrs/ ----------------------------------------------------------------
    def node(
        self, parts: list[str]
    ) -> Optional[tuple[bool, list[tuple[str, Optional[PinnedFile]]], Optional[PinnedFile]]]:
        """What ``/zarrs/{parts}`` names: (is a directory, its members, the file), or None."""
        got = self.dated_node(parts)
        return None if got is None else got[:3]

    def dated_node(self, parts: list[str]) -> Optional[tuple[bool, list, Optional[PinnedFile], dict[str, float]]]:
        """:meth:`node` and the manifest's ``lastModified`` of each file it names (``""``: the file itself)."""
        got = self._node(parts)
        if got is None:
            return None
        is_dir, members, f, rows = got
        if len(parts) < 4:  # the shards and a Zarr's states: when the mirror wrote each (its file's time)
            place = self._place(parts)
            files = {m: m[: -len(".zarr")] + ".json" if len(parts) == 3 else m for m, _ in members}
            return is_dir, members, f, {m: t for m, name in files.items() if (t := _mtime(place, name)) is not None}
        return is_dir, members, f, {n: t for n, r in rows.items() if (t := _last_modified(r)) is not None}

    def _node(self, parts: list[str]) -> Optional[tuple[bool, list, Optional[PinnedFile], dict[str, Any]]]:
        return self._listed_node(parts) if len(parts) < 4 else self._zarr_node(parts)

    def _listed_node(self, parts: list[str]) -> Optional[tuple[bool, list, Optional[PinnedFile], dict[str, Any]]]:
        """Above the Zarrs (the shards, a Zarr's states): the root's directories, the states as ``.zarr``."""
        got = self.index(parts)
        if got is None:
            return None
        if len(parts) < 3:
            return True, [(d, None) for d in got["directories"]], None, {}
        zarrs = [f[: -len(".json")] + ".zarr" for f in got["files"] if f.endswith(".json")]
        return True, [(z, None) for z in zarrs if "." not in z[: -len(".zarr")]], None, {}

    def _zarr_node(self, parts: list[str]) -> Optional[tuple[bool, list, Optional[PinnedFile], dict[str, Any]]]:
        """Inside a Zarr state: the manifest's directory or file at the rest of the path (None: not in it)."""
        name = parts[3]
        if not name.endswith(".zarr") or "." in name[: -len(".zarr")]:
            return None
        path = self.file([*parts[:3], name[: -len(".zarr")] + ".json"])
        if path is None:
            return None
        base = base_url_of(path.parent)
        inner = parts[4:]
        here = _walk(self._manifest(path).get("entries", {}), inner)
        if isinstance(here, list) and inner:
            return False, [], _file("/".join(inner), here, base), {"": here}
        if not isinstance(here, dict):
            return None
        prefix = "/".join(inner)
        members = [
            (n, None if isinstance(v, dict) else _file(f"{prefix}/{n}" if prefix else n, v, base))
            for n, v in sorted(here.items())
        ]
        return True, members, None, dict(here.items())

    # -- one state's manifest, flat (the view's /zarr/{id}/{version}/) -------------------------------------
    def state(self, zarr_id: str, checksum: str) -> Optional[dict]:
        """The parsed manifest of ``zarr_id`` at ``checksum``; None: no such state here (or its source hidden)."""
        path = self.file([zarr_id[:3], zarr_id[3:6], zarr_id, checksum + ".json"])
        return None if path is None else self._manifest(path)

    def rows(self, zarr_id: str, checksum: str, prefix: str = "") -> Iterator[tuple[list, PinnedFile]]:
        """Each file of a state under ``prefix`` (a directory's path, ``""``: all), in the manifest's order: its
        manifest row (``[versionId, lastModified, size, ETag]``) and the file with its pinned URL."""
        path = self.file([zarr_id[:3], zarr_id[3:6], zarr_id, checksum + ".json"])
        inner = [p for p in prefix.split("/") if p]
        here = None if path is None else _walk(self._manifest(path).get("entries", {}), inner)
        if not isinstance(here, dict):
            return
        assert path is not None  # a manifest was read
        base = base_url_of(path.parent)
        for where, row in _flat(here, "/".join(inner)):
            yield row, _file(where, row, base)

    def _manifest(self, path: Path) -> dict:
        with self._lock:
            got = self._parsed.get(path)
            if got is not None:
                self._parsed.move_to_end(path)
                return got
        parsed = json.loads(path.read_text(encoding="utf-8"))
        with self._lock:
            self._parsed[path] = parsed
            while len(self._parsed) > MAX_MANIFESTS:
                self._parsed.popitem(last=False)
        return parsed


def _flat(tree: dict, at: str) -> Iterator[tuple[str, list]]:
    """(path, row) of every file under a manifest's directory ``tree`` at ``at``, in the manifest's order."""
    for name, value in tree.items():
        where = f"{at}/{name}" if at else name
        if isinstance(value, dict):
            yield from _flat(value, where)
        else:
            yield where, value


def _walk(here: Any, inner: list[str]) -> Any:
    """The manifest's entry at ``inner``: a directory (dict), a file's row (list, only at the path's end),
    or None when the path is not in it."""
    for i, part in enumerate(inner):
        if not isinstance(here, dict) or part not in here:
            return None
        here = here[part]
        if isinstance(here, list):
            return here if i == len(inner) - 1 else None
    return here


def _mtime(place: Optional[Path], name: str) -> Optional[float]:
    try:
        return None if place is None else (place / name).stat().st_mtime
    except OSError:
        return None


def _last_modified(row: Any) -> Optional[float]:
    """A manifest entry's ``lastModified`` (ISO 8601) as seconds since the epoch; a directory's: its newest file's."""
    from neuromirror.util.dates import iso_seconds

    if isinstance(row, dict):
        times = [t for v in row.values() if isinstance(v, list) and (t := _last_modified(v)) is not None]
        return max(times) if times else None
    try:
        return iso_seconds(str(row[1]))
    except IndexError:
        return None


def _file(path: str, row: list, base: Optional[str]) -> PinnedFile:
    """One manifest entry (``[versionId, lastModified, size, ETag]``) as a file and its URL."""
    version, _, size, etag = row
    key = md5e_key(etag, int(size), path) if isinstance(etag, str) and _MD5.match(etag) else ""
    if not base:
        return PinnedFile(path, key, int(size), None, "none", "the manifest's Zarr has no recorded S3 prefix")
    url = base + quote(path, safe="/~")
    if version and version != "null":
        url += "?versionId=" + quote(str(version), safe="")
    return PinnedFile(path, key, int(size), url, "archive")


__all__ = ["ManifestTree", "SIDECAR"]

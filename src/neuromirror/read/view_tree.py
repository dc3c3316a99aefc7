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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

from neuromirror import archives
from neuromirror.engine.zarr.manifest import source_of
from neuromirror.errors import BadInput, UserError
from neuromirror.index.nested import subdataset_paths, zarr_checksum, zarr_commit
from neuromirror.index.rows import Version
from neuromirror.index.store_checks import known_stores
from neuromirror.read.listings import Dir, Listings
from neuromirror.read.manifests import ManifestTree
from neuromirror.read.pinned import Pin, resolve
from neuromirror.read.urls import PinnedFile
from neuromirror.records import VersionKind
from neuromirror.spec import SpecError, parse_spec

#: a reason to hide a source (an embargo status), or None: ``(index, source) -> str | None``
Hidden = Callable[[Any, str], Optional[str]]
#: how long ``draft`` (which moves with each sync) is taken as resolved
MOVING_TTL = 2.0
MAX_PINS = 256


def _has_draft(source: str) -> bool:
    """Whether ``source``'s archive has a ``draft`` of its own (else ``@draft`` reads the newest snapshot)."""
    archive = archives.of_source(source)
    return bool(archive and archive.has_draft)


def _name_parts(archive: str) -> int:
    """How many path segments name a source of ``archive`` (``boss:COLL/EXP``: 2), as its record says."""
    known = archives.get(archive)
    return known.name_parts if known else 1


@dataclass(frozen=True)
class Entry:
    """One member of a directory: a sub-directory (no file) or a file of a pin."""

    name: str
    file: Optional[PinnedFile] = None
    modified: Optional[float] = None  # seconds since the epoch: WebDAV's getlastmodified

    @property
    def is_dir(self) -> bool:
        return self.file is None


@dataclass(frozen=True)
class ShownSource:
    """A source the view lists: its id, its archive and when its newest version was made."""

    id: str  # "dandi:000027"
    archive: str
    modified: Optional[float]


@dataclass
class Node:
    """What a path names: a directory (``entries``) or a file (``file``, and ``data`` if in git and small)."""

    is_dir: bool
    entries: list[Entry] = field(default_factory=list)
    file: Optional[PinnedFile] = None
    data: Optional[bytes] = None
    pin: Optional[Pin] = None
    modified: Optional[float] = None  # the pin's date (:meth:`Tree.pin_date`), or the newest below
    inner: str = ""  # inside a pin: the path from the pin's top ("" for the top itself)


class BadPath(BadInput, ValueError):
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
        self._pin_dates: dict[tuple[str, str, str], Optional[float]] = {}
        self._zarr_states: dict[tuple[str, str], tuple[Optional[tuple[Path, str]], float]] = {}
        self.listings = Listings()
        from neuromirror.dataset.mirror import Datasets

        self.manifests = ManifestTree(Datasets(self.root, index).manifest_root, self._hidden_source)

    # -- the index ------------------------------------------------------------------
    def known_stores(self) -> dict[str, dict]:
        """uuid -> {url, kind, name} of every store the index knows (none yet: empty)."""
        with self._db_lock:
            return known_stores(self._index().index)

    def _index(self) -> Any:
        """The index, opened read-only on first use (a service's first sync may create it later)."""
        if self._mirror is None:
            from neuromirror.dataset.mirror import Datasets

            mirror = Datasets(self.root, self.index_path, readonly_index=True)
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

    def sources(self, archive: Optional[str] = None) -> list[ShownSource]:
        """The sources (of ``archive``) the view may show, each with its newest version's date.

        Only sources with a recorded version (a successful sync): a source the archive says does
        not exist (a service's ``dandi:000999``) has a row and failed runs, but nothing to read."""
        with self._db_lock:
            index = self._index().index
            newest = {sid: _parse_date(when) for sid, when in index.newest_version_dates().items()}
            return [
                ShownSource(r.id, r.archive, newest[r.id])
                for r in index.sources(archive)
                if r.id in newest and self._visible(index, r.id)
            ]

    def versions(self, source: str) -> Optional[list[Version]]:
        """The recorded versions of a visible source (None: no such source here)."""
        with self._db_lock:
            index = self._index().index
            if index.source(source) is None or not self._visible(index, source):
                return None
            versions = index.versions(source)
            return versions or None  # no successful sync: nothing to read, not listed

    @staticmethod
    def _version_entries(versions: list[Version]) -> list[Entry]:
        """A source's versions by label, and each earlier draft state by its short commit (as ``versions`` shows it).

        A Zarr dandiset has no published versions: its drafts' commits are its only citable states."""
        dates = _label_dates(versions)
        entries = {label: Entry(label, modified=t) for label, t in dates.items()}
        latest_draft = next((v.commit for v in reversed(versions) if v.label == "draft"), None)
        for v in versions:
            if v.label == "draft" and v.commit != latest_draft:
                short = v.commit[:12]
                entries.setdefault(short, Entry(short, modified=_row_date(v)))
        return [entries[name] for name in sorted(entries)]

    def pin_date(self, pin: Pin) -> Optional[float]:
        """When the pin's state was made: a published version's date, else its commit's date (a draft's, a commit's).

        Asked once per pin (a Zarr read is a request per chunk: no query or git process each time)."""
        key = (pin.source, pin.version, pin.commit)
        with self._lock:
            if key in self._pin_dates:
                return self._pin_dates[key]
        with self._db_lock:
            row = self._index().index.latest_version(pin.source, pin.version)
        if row is not None and row.kind == VersionKind.PUBLISHED and row.commit == pin.commit and row.date:
            when = _parse_date(row.date)
        else:
            from neuromirror.util import gitutil

            out = gitutil.out(pin.dataset, "show", "-s", "--format=%ct", pin.commit, check=False)
            when = float(out) if out.strip().isdigit() else None
        with self._lock:
            if len(self._pin_dates) >= MAX_PINS * 4:
                self._pin_dates.clear()
            self._pin_dates[key] = when
        return when

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
            newest: dict[str, Optional[float]] = {}
            for r in self.sources():
                newest[r.archive] = _newest(newest.get(r.archive), r.modified)
            return Node(
                True, [Entry(a, modified=t) for a, t in sorted(newest.items())], modified=_newest(*newest.values())
            )
        archive, rest = parts[0], parts[1:]
        if archives.get(archive) is None:
            return None
        n = _name_parts(archive)
        if len(rest) < n:  # the names of an archive (a BOSS collection's experiments)
            lead = "/".join(rest) + "/" if rest else ""
            below: dict[str, Optional[float]] = {}
            for r in self.sources(archive):
                name = r.id.split(":", 1)[1]
                if name.startswith(lead):
                    first = name[len(lead) :].split("/")[0]
                    below[first] = _newest(below.get(first), r.modified)
            if not below and rest:
                return None
            return Node(
                True, [Entry(b, modified=t) for b, t in sorted(below.items())], modified=_newest(*below.values())
            )
        source = f"{archive}:{'/'.join(rest[:n])}"
        if len(rest) == n:
            versions = self.versions(source)
            if versions is None:
                return None
            return Node(True, self._version_entries(versions), modified=_newest(*(_row_date(v) for v in versions)))
        return self._in_pin(source, rest[n], rest[n + 1 :])

    def _dandisets(self, parts: list[str]) -> Optional[Node]:
        if not parts:
            rows = self.sources(archives.with_share("dandisets"))
            entries = [Entry(r.id.split(":", 1)[1], modified=r.modified) for r in rows]
            return Node(True, entries, modified=_newest(*(r.modified for r in rows)))
        source = f"{archives.with_share('dandisets')}:{parts[0]}"
        if parts[1:] in ([], ["releases"]):  # the dandiset itself, or its releases/
            versions = self.versions(source)
            if versions is None:
                return None
            dates = _label_dates(versions)
            released = [v for v in versions if v.kind == VersionKind.PUBLISHED]
            newest_release = _newest(*(_row_date(v) for v in released))
            if len(parts) == 1:
                drafts = [Entry("draft", modified=dates["draft"])] if "draft" in dates else []
                entries = [*drafts, Entry("releases", modified=newest_release)]
                return Node(True, entries, modified=_newest(*dates.values()))
            labels = sorted({v.label for v in released})
            return Node(True, [Entry(label, modified=dates[label]) for label in labels], modified=newest_release)
        if parts[1] == "releases":
            return self._in_pin(source, parts[2], parts[3:])
        return self._in_pin(source, parts[1], parts[2:])

    def _zarrs(self, parts: list[str]) -> Optional[Node]:
        """dandidav's ``/zarrs/{p1}/{p2}/{zarr_id}/{checksum}.zarr/{path}``, from the mirror's manifests.

        Each file is the one ``/dav/`` gives for the same key in the Zarr's own dataset at that state
        (:meth:`_held`): its URL as the ``git-annex`` branch has it now (a restored version), and the
        lab's stores that hold it; where the mirror holds no such dataset (an AIND store's state), the
        manifest's row, with the copy a store of the lab's holds by its key."""
        got = self.manifests.dated_node(parts)
        if got is None:
            return None
        is_dir, members, f, dates = got
        held = self._held(parts) if len(parts) >= 4 else None
        if held is not None:
            inner = parts[4:] if is_dir else parts[4:-1]
            found = self.listings.find_in(held[0], held[1], "/".join(inner))
            same = found.files() if isinstance(found, Dir) else {}
            f = f if f is None else _same_key(f, same.get(parts[-1]))
            members = [(n, m if m is None else _same_key(m, same.get(n))) for n, m in members]
        elif f is not None:  # no dataset here records the state (an AIND store's): a store's copy by its key
            with self._db_lock:
                known = known_stores(self._index().index)
            copy = self.listings.readers.kept_by_key(f.key, known.values()) if f.key and not f.copy else None
            f = f if copy is None else replace(f, copy=copy)  # asked of the stores outside the index's lock
        if not is_dir:
            return Node(False, file=f, modified=dates.get(""))
        return Node(True, [Entry(n, m, dates.get(n)) for n, m in members], modified=_newest(*dates.values()))

    def zarr_state_names(
        self, zarr_id: str, checksum: Optional[str] = None, commit: Optional[str] = None
    ) -> tuple[Optional[str], Optional[str]]:
        """(checksum, commit) of a DANDI Zarr state named by either, from what the syncs recorded (the index's
        ``dandi-zarr-commit``); the other None when unknown (an AIND Zarr's state has no such row)."""
        with self._db_lock:
            index = self._index().index
            if checksum is None and commit is not None:
                checksum = zarr_checksum(index, zarr_id, commit)
            elif checksum is not None and commit is None:
                commit = zarr_commit(index, zarr_id, checksum)
        return checksum, commit

    def _held(self, parts: list[str]) -> Optional[tuple[Path, str]]:
        """The Zarr's dataset here and its commit of the state ``parts`` names (``{p1}/{p2}/{zarr_id}/
        {checksum}.zarr``), from what the sync recorded (the index's ``dandi-zarr-commit`` and the source's
        subdataset rows), asked once per state; None: not held here (an AIND store: its manifest alone)."""
        zarr_id, checksum = parts[2], parts[3][: -len(".zarr")]
        now = time.monotonic()
        with self._lock:
            got = self._zarr_states.get((zarr_id, checksum))
            if got is not None and got[1] > now:
                return got[0]
        source = source_of(self.manifests.root / parts[0] / parts[1] / zarr_id)
        held = None
        if source:
            with self._db_lock:
                index = self._index().index
                commit = zarr_commit(index, zarr_id, checksum)
                src = index.source(source)
                paths = [] if commit is None or src is None else subdataset_paths(index, source, commit)
            for path in paths:
                repo = self.root / src.dataset / path
                if (repo / ".git").exists():
                    assert commit is not None  # paths are looked up only for a commit
                    held = (repo, commit)
                    break
        with self._lock:
            if len(self._zarr_states) >= MAX_PINS * 4:
                self._zarr_states.clear()
            # not held (yet: a sync writes the manifest before its commit is recorded): asked again soon
            self._zarr_states[(zarr_id, checksum)] = (held, float("inf") if held else now + MOVING_TTL)
        return held

    # -- 404s -------------------------------------------------------------------------------
    def why_missing(self, style: str, path: str) -> str:
        """Which part of a path that names nothing is wrong, in one line (asked only for a 404).

        A hidden source (an embargoed dandiset) is "not mirrored here", as an unknown one."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            return f"{path}: not found"
        try:
            if style == "zarrs":
                return f"/zarrs/{'/'.join(parts)}: no Zarr state the mirror recorded has this path"
            if style == "dandisets":
                source = f"{archives.with_share(style)}:{parts[0]}"
                if len(parts) >= 2 and parts[1] == "releases":
                    parts = parts[:1] + parts[2:]
                    if len(parts) == 1:
                        return f"{source} has no releases"
                return self._why(source, parts[1:], f"/dandisets/{parts[0]}/")
            archive = parts[0]
            if archives.get(archive) is None:
                return f"/dav/{archive}/: no such archive (the view has {', '.join(sorted(archives.names()))})"
            n = _name_parts(archive)
            rest = parts[1:]
            if len(rest) < n:
                return f"/dav/{'/'.join(parts)}/: no source of {archive} is mirrored under this name"
            source = f"{archive}:{'/'.join(rest[:n])}"
            return self._why(source, rest[n:], f"/dav/{'/'.join(parts[: n + 1])}/")
        except FileNotFoundError:
            return "the mirror has no index yet"

    def _why(self, source: str, rest: list[str], where: str) -> str:
        """The pin first (resolved and kept by the request that found nothing): a sparse Zarr's client asks
        for every chunk never written, and each such 404 reads the source's versions only if no pin matched."""
        pin = self.pin(source, rest[0]) if rest else None
        if pin is None:
            versions = self.versions(source)
            if versions is None:
                return f"{source} is not mirrored here ({where})"
            if not rest:
                return f"{where}: not found"
            known = ", ".join(e.name for e in self._version_entries(versions))
            return f"{source} has no version or commit {rest[0]!r} (known: {known})"
        version, inner = rest[0], rest[1:]
        for i in range(len(inner), 0, -1):
            parent = "/".join(inner[: i - 1])
            got = self.listings.find(pin, parent)
            if isinstance(got, tuple):
                return f"{source}@{version}: {parent!r} is a file, not a directory"
            if got is not None:
                return f"{source}@{version}: no {inner[i - 1]!r} in {parent or 'the top directory'}"
        return f"{source}@{version}: {'/'.join(inner)!r} is not a directory"

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
            if version == "draft" and not _has_draft(source):
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
        when = self.pin_date(pin)
        if isinstance(got, tuple):
            f, data = got
            return Node(False, file=f, data=data, pin=pin, modified=when, inner="/".join(inner_parts))
        entries = [Entry(name, f, when) for name, f in got.children()]
        return Node(True, entries, pin=pin, modified=when, inner="/".join(inner_parts))

    def close(self) -> None:
        with self._db_lock:
            if self._mirror is not None:
                self._mirror.close()
                self._mirror = None
        self.listings.close()


def _parse_date(text: Optional[str]) -> Optional[float]:
    """An index date (ISO 8601; naive ones are UTC) as seconds since the epoch."""
    from neuromirror.util.dates import iso_seconds

    return iso_seconds(text)


def _row_date(v: Version) -> Optional[float]:
    """A version row's date: the archive's (publish date, draft's modification), else when it was synced."""
    return _parse_date(v.date or v.synced_at)


def _label_dates(versions: list[Version]) -> dict[str, Optional[float]]:
    """Each label's date, from its newest row (``draft`` moves with each sync)."""
    return {v.label: _row_date(v) for v in versions if v.label}


def _same_key(f: PinnedFile, held: Optional[PinnedFile]) -> PinnedFile:
    """The Zarr dataset's file of the same key for a manifest's row (its URLs and copies now), else the row."""
    return held if held is not None and f.key and held.key == f.key else f


def _newest(*times: Optional[float]) -> Optional[float]:
    known = [t for t in times if t is not None]
    return max(known) if known else None

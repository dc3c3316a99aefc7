"""The readers the mirror knows, each registered by its own package: ``get --format NAME`` and the sync's
index-time readers (LINDI references) are looked up here.

As restic's backend ``location.Registry`` and rclone's ``fs.Register`` (and :mod:`neuromirror.archives`):
a reader's package calls :func:`register` with a :class:`FormatWriter` saying what ``get --format NAME``
needs (a region of a pinned OME-Zarr level, today every format does) and the function that writes it;
``get``'s choices, its help and the API's check of ``format=`` come from :func:`formats`, so a format is
added by adding its package (or, for a test, by calling :func:`register`) and no other file. An
:class:`IndexTimeReader` is a reader that works when a sync recorded new versions: its package registers it
with :func:`register_index_time`, its hooks optional (absent: not used), and the sync (the API's and the
service's) iterates :func:`index_time_readers` instead of naming it.

This module sits in the base and imports nothing above it. The records are filled when the readers'
packages (:data:`PLUGINS`) are imported, which each :class:`~neuromirror.registry.Registry` does on first
use by *name* (``importlib``), as entry points are loaded: the base never depends on a reader at import
time, and a reader's package registers a light record whose ``write`` imports the heavy modules (numpy, tifffile) only when called.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from neuromirror.registry import Registry

#: the packages whose import registers the readers (imported on first use, by name)
PLUGINS = ("neuromirror.read.ome", "neuromirror.read.references")

#: a :class:`~neuromirror.read.ome.regions.RegionRequest` written to its ``dest``: the report, which has
#: ``path``, ``source``, ``version``, ``line()`` and ``to_json()`` (the API prints and serialises it)
Write = Callable[[Any], Any]


@dataclass(frozen=True)
class FormatWriter:
    """One ``get --format NAME``: what it needs and what writes it."""

    name: str
    help: str  # one phrase for ``get --help`` ("a multi-page TIFF (tifffile)")
    write: Write  # the region request -> its report; BadInput for the user's mistakes, before any byte
    suffix: str = ""  # the file name's usual ending (".tif"), for the docs and the user's --to
    needs_region: bool = True  # a region of a pinned OME-Zarr level (``--region``, ``--res``, ``--channel``)


#: after a sync: (root, index path, the new versions as (source, commit)) -> (the report's JSON, one line per failure)
AfterSync = Callable[[Path, Optional[Path], "list[tuple[str, str]]"], "tuple[dict[str, Any], list[str]]"]


#: ``urls --NAME``: (root, pins, paths, the view's URL or None) -> (the rows ``--json`` lists, one text line a row)
ListFiles = Callable[[Path, "list[Any]", "Sequence[str]", Optional[str]], "tuple[list[dict[str, Any]], list[str]]"]


@dataclass(frozen=True)
class ViewRoute:
    """What an index-time reader serves in the view (``serve --http``): at a file's path + ``suffix``, and by
    git-annex key at ``by_key``/KEY + ``suffix``; ``body(root, key, file_url, repo=, stores=)`` the bytes (None:
    none made, answered 404 with ``missing``, ``{key}`` filled in)."""

    by_key: str
    suffix: str
    body: Callable[..., Optional[bytes]]
    missing: str

    def key_of(self, path: str) -> Optional[str]:
        """The key ``by_key/KEY + suffix`` names; None: not such a path."""
        name = path[len(self.by_key) + 1 :] if path.startswith(self.by_key + "/") else ""
        if not name.endswith(self.suffix) or "/" in name:
            return None
        return name[: -len(self.suffix)] or None


@dataclass(frozen=True)
class KeptBeside:
    """What an index-time reader made of a key, kept in a store beside the key (``keep``) and dropped with it
    (``prune``): a store's copy of a file that lost its archive copy is read by it too."""

    wants: Callable[[str], bool]  # could the reader have made something of this key (cheap: its name only)
    #: (root, store, key) -> True: put into the store now; False: the store had it; None: nothing made
    put: Callable[[Path, Any, str], Optional[bool]]
    name: Callable[[str], str]  # the name the store keeps it under, beside ``key``
    #: (root, a keep's mark's time) -> was something made under ``root`` since (the mark may then lack it)
    made_after: Callable[[Path, Optional[float]], bool]
    what: str = ""  # what it is, for messages ("LINDI reference")


@dataclass(frozen=True)
class IndexTimeReader:
    """A reader that works at index time, when a sync recorded new versions; every hook optional."""

    name: str  # the definition's option that asks for it (``references: nwb``) and its field in a sync's report
    asks: Callable[[dict[str, Any]], bool]  # a source's options ask for it
    why_not: Callable[[], str] = lambda: ""  # why it cannot run in this process ("" when it can)
    require: Optional[Callable[[], None]] = None  # a UserError naming what to install, when asked and it cannot run
    after_sync: Optional[AfterSync] = None
    view: Optional[ViewRoute] = None  # its route in the view
    #: the fields ``search --nwb-field FIELD=VALUE`` may name (field -> what it is), and the index's rows of the
    #: file states matching every pair: ``search(conn, pairs, source=, all_versions=)``
    search_fields: dict[str, str] = dataclasses.field(default_factory=dict)
    search: Optional[Callable[..., list[dict[str, Any]]]] = None
    #: ``urls --NAME`` (the reader's name as the option): each file of the pins with what the reader made of it,
    #: and what a row is called ("LINDI reference")
    list_files: Optional[ListFiles] = None
    listed: str = ""
    kept: Optional[KeptBeside] = None  # kept in a store beside its key, dropped with it
    #: ``Mirror.open_hdf5``: (target, root=, index=, reference=, make=) -> the opened file's record (``.file``,
    #: ``.via``, ``.key``), through what the reader made of it when there is one (``reference``), else plainly
    #: (``make``: made now); ValueError: not a pinned file's path, FileNotFoundError: no such file
    opens: Optional[Callable[..., Any]] = None
    #: ``Mirror.reference``: (target, root=, index=) -> where what the reader made of the file is kept (None: not
    #: made); the same errors
    made_for: Optional[Callable[..., Optional[Path]]] = None


_FORMATS: Registry[FormatWriter] = Registry(PLUGINS)
_INDEX_TIME: Registry[IndexTimeReader] = Registry(PLUGINS)
#: make a writer known as ``get --format writer.name`` (its package calls this when imported; a test may)
register = _FORMATS.register
#: make a reader run at index time (its package calls this when imported; a test may)
register_index_time = _INDEX_TIME.register
#: every registered format by name, in the order their packages registered
formats = _FORMATS.known
format_names = _FORMATS.names
#: every registered index-time reader by name, in the order their packages registered
index_time_readers = _INDEX_TIME.known


def unregister(name: str) -> None:
    """Forget a format or an index-time reader (a test's toy one, once the test is done)."""
    _FORMATS.unregister(name)
    _INDEX_TIME.unregister(name)


def kept_beside() -> list[KeptBeside]:
    """What the index-time readers keep in a store beside a key (``keep`` puts, ``prune`` drops)."""
    return [r.kept for r in index_time_readers().values() if r.kept is not None]


def opening() -> Optional[IndexTimeReader]:
    """The index-time reader that opens a pin's files through what it made of them (its ``opens`` and ``made_for``
    hooks: ``Mirror.open_hdf5``, ``Mirror.reference``); None: no registered reader does."""
    return next((r for r in index_time_readers().values() if r.opens is not None), None)


def view_routes() -> list[ViewRoute]:
    """The routes the index-time readers serve in the view."""
    return [r.view for r in index_time_readers().values() if r.view is not None]


def searching(field: str) -> Optional[IndexTimeReader]:
    """The index-time reader whose search fields hold ``field``; None: no registered reader's."""
    return next((r for r in index_time_readers().values() if field in r.search_fields and r.search), None)


def search_fields() -> dict[str, str]:
    """Every registered reader's search fields."""
    return {k: v for r in index_time_readers().values() if r.search for k, v in r.search_fields.items()}

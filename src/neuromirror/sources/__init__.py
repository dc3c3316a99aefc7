"""Sources: one package per archive (``dandi/``, ``aind/``, ``boss/``), looked up by the archive part of a SPEC.

Each archive's package registers its :class:`~neuromirror.archives.Archive` record when imported (this
package imports them, last); the record names its source module, which :func:`module_for` imports.

A source knows its archive and turns its listing into :class:`~neuromirror.records.Snapshot`
records, oldest first, for the engine (the :class:`~neuromirror.sources.base.Source` protocol). It
knows nothing of datasets, the index or the engine: it may import ``annex`` (to name keys) and
below, and other sources' shared helpers here (``s3urls``, ``s3listing``, and ``urlrule``, the URL
rule the engine and the readers and checkers above apply); must not import ``index``,
``dataset``, ``engine`` or anything above. What it needs of the mirror comes through the ``state``
the engine hands to ``snapshots`` (recorded files, the forever-cache, the Zarr hook).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Iterator, Optional

from neuromirror import archives
from neuromirror.archives import Archive
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.sources.base import Listed, Source


def _archive(name: str) -> Archive:
    found = archives.get(name)
    if found is None:
        raise ValueError(f"unknown archive {name!r}")
    return found


def module_for(archive: str) -> Any:
    """The archive's source module (``expand``, ``listed``...), as its package registered it."""
    return importlib.import_module(_archive(archive).source_module)


def expand(spec: Spec, options: dict) -> Iterator[Source]:
    """The sources a SPEC names (a glob or a collection may name many)."""
    yield from module_for(spec.archive).expand(spec, options)


def listed(spec: Spec, options: dict) -> Iterator[Listed]:
    """The sources a SPEC names, each with what the archive's listing says of its state
    (:class:`~neuromirror.sources.base.Listed`): the quiet hour's input.  A source module without
    ``listed`` says nothing (stamps None: every source is asked each cycle)."""
    from neuromirror.sources.base import Listed

    module = module_for(spec.archive)
    if hasattr(module, "listed"):
        yield from module.listed(spec, options)
    else:
        yield from (Listed(s) for s in module.expand(spec, options))


def listing_covers(archive: str, recorded: Optional[str]) -> bool:
    """Whether the archive's listing sees every change of a source whose last sync recorded
    ``recorded`` (its latest ``remote_modified``); a module may say no (DANDI: Zarrs change
    in place without moving the draft's ``modified``)."""
    module = module_for(archive)
    return bool(module.listing_covers(recorded)) if hasattr(module, "listing_covers") else True


def options_module_for(archive: str) -> Any:
    """The module with the archive's ``add_options``: light, so that building every command's parser at
    start-up imports no archive client."""
    known = _archive(archive)
    return importlib.import_module(known.options_module or known.source_module.rpartition(".")[0] + ".options")


def add_options(parser: Any) -> None:
    """Each source adds its own ``sync`` options (``add_options(group)`` of its ``options`` module)."""
    for archive in archives.names():
        try:
            module = options_module_for(archive)
        except ImportError:
            continue
        module.add_options(parser.add_argument_group(f"{archive} options"))


# each archive's package registers its :class:`~neuromirror.archives.Archive` when imported (rclone's
# ``backend/all``): this order is the order the archives are listed in
from neuromirror.sources import dandi, aind, boss  # noqa: E402,F401,I001

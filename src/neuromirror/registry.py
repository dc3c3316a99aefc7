"""One registry of named things whose packages register them, for the house's extension axes to share.

As restic's backend ``location.Registry`` and rclone's ``fs.Register``: the archives (:mod:`neuromirror.archives`),
``get``'s formats and the index-time readers (:mod:`neuromirror.readers`) are each a :class:`Registry` of records
that their own packages fill when imported.  The packages are imported on first use, by *name*
(``importlib``), as entry points are loaded, so the base module holding a registry never depends on the
packages above it at import time; a test registers a toy record and unregisters it when done.

This module sits in the base and imports nothing of neuromirror.
"""

from __future__ import annotations

import importlib
from typing import Generic, Iterable, Optional, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Records by name, in the order they were registered; the packages in ``plugins`` imported (once) before
    the first lookup, each registering its own."""

    def __init__(self, plugins: Iterable[str]) -> None:
        self._plugins = tuple(plugins)
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, item: T) -> T:
        """Make ``item`` known under its name (its package calls this when imported; a test may, for a toy one).
        A later record of the same name replaces the earlier one."""
        self._items[item.name] = item
        return item

    def unregister(self, name: str) -> None:
        """Forget a record (a test's toy one, once the test is done); no error when none has that name."""
        self._items.pop(name, None)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # before the imports: a package asking the registry while it registers sees it
            for plugin in self._plugins:
                importlib.import_module(plugin)

    def known(self) -> dict[str, T]:
        """Every record by name (a copy), in the order their packages registered them."""
        self._load()
        return dict(self._items)

    def names(self) -> tuple[str, ...]:
        return tuple(self.known())

    def get(self, name: str) -> Optional[T]:
        """The record called ``name`` (case as typed is the caller's), None when no package registered one."""
        self._load()
        return self._items.get(name)

    def values(self) -> Iterable[T]:
        """Every record, in order, without a copy (for a lookup asked once per URL of a large listing)."""
        self._load()
        return self._items.values()

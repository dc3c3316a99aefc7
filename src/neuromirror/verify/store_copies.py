"""Which of the lab's stores ``verify --content`` reads a key's copy from: every one the mirror knows.

First the stores the key's location log names (on the ``git-annex`` branch of the repository that
knows the key), each hashed where it has a copy — a clone would be sent there; then, for a key no
URL, special remote or recorded store served, every other store the mirror knows: those any
repository of the version records (``remote.log``: directory and S3) and those ``keep`` or
``verify`` used here (the index's store records), opened as ``keep`` and ``verify --stores`` open
them (:class:`neuromirror.store.registry.Stores`).  A file is called lost only after all of them.
With a store named (``--store``) it is read first; with ``--kept`` it is the only one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

from neuromirror.store.base import Store
from neuromirror.store.registry import Stores

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets


class StoreCopies:
    """The stores a content check asks, each opened once (None: not readable here)."""

    def __init__(self, mirror: Datasets, named: Optional[Store] = None, *, only: bool = False):
        self.named = named
        self.only = only
        self.stores = Stores(mirror.index)

    def add(self, recorded: dict[str, dict[str, str]]) -> None:
        """The stores a repository's git-annex branch records (:func:`~neuromirror.store.record.store_uuids`)
        are known too."""
        self.stores.add(recorded)

    def _named_uuid(self) -> Optional[str]:
        try:
            return self.named.identity.uuid if self.named is not None else None
        except Exception:  # noqa: BLE001 - a named store that cannot say who it is: read by its own name only
            return None

    def open(self, uuid: str) -> Optional[Store]:
        if self.named is not None and uuid == self._named_uuid():
            return self.named
        return self.stores.open(uuid)

    def first(self, key: str, located: Iterable[str]) -> list[Store]:
        """The stores whose copy of ``key`` is hashed in any case: the one named, and (unless ``only``) the
        stores the key's location log names (``located``: UUIDs) that open here.  (A store without a copy
        is no source: :func:`.content.check_file` says so, no finding.)"""
        out: list[Store] = [self.named] if self.named is not None else []
        if self.only:
            return out
        named = self._named_uuid()
        for uuid in located:
            if uuid != named and uuid in self.stores.recorded:
                store = self.open(uuid)
                if store is not None:
                    out.append(store)
        return out

    def rest(self, asked: Iterable[Store]) -> list[Store]:
        """Every other store the mirror knows that opens here (read for a key nothing served)."""
        if self.only:
            return []
        seen = {s.url for s in asked} | ({self.named.url} if self.named is not None else set())
        out: list[Store] = []
        for uuid in list(self.stores.recorded):
            store = self.open(uuid)
            if store is not None and store.url not in seen:
                seen.add(store.url)
                out.append(store)
        return out

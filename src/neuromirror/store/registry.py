"""The stores a mirror knows, each opened once: where keep, verify, restore and the readers find copies.

A store is known two ways: the index's store records (every store ``keep`` or ``verify`` used here:
UUID, URL, kind) and the ``remote.log`` lines of the datasets' ``git-annex`` branches (what a clone
would enable).  :class:`Stores` holds both and opens a store the first time it is asked for it —
by the URL used here, else by what its branch fields name — and never makes a store by looking (a
directory that holds no store identity is not opened as one).  Thread-safe: a check or a restore
asks it from its worker threads.  Before it, keep, ``verify --stores``, ``verify --content`` and
restore each kept their own cache of opened stores and their own reading of a recorded one.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Iterable, Optional

from neuromirror.errors import UserError
from neuromirror.index.store_checks import known_stores
from neuromirror.store.base import Store, not_there
from neuromirror.store.directory import DirectoryStore
from neuromirror.store.location import DIRECTORY, kind_of_fields, open_store

if TYPE_CHECKING:
    from neuromirror.index.db import Index


def recorded_url(uuid: str, fields: dict[str, str], known: dict[str, dict]) -> Optional[str]:
    """Where a store a ``git-annex`` branch records (``remote.log`` fields) is: the URL keep or verify used
    for it here (``known``: the index's store records), else what its fields name (a directory's path, an
    S3 store's ``s3://BUCKET/PREFIX``, its endpoint from ``NEUROMIRROR_STORE_ENDPOINT``: each registered kind's
    ``from_fields``, :mod:`.location`); None: nowhere.  The one reading of ``remote.log`` fields as a store."""
    url = (known.get(uuid) or {}).get("url")
    if url:
        return str(url)
    found = kind_of_fields(fields)
    return found[1] if found else None


def open_recorded(uuid: str, fields: dict[str, str], known: dict[str, dict]) -> Optional[Store]:
    """The store a branch records as ``uuid``, opened here (:func:`recorded_url`); None when it does not open
    or another store is there.  A directory that is not a store is never made one by looking."""
    url = recorded_url(uuid, fields, known)
    if not url:
        return None
    try:
        store = open_store(url)
        if not_there(store):
            return None  # the directory is gone or was never a store
        return store if store.identity.uuid == uuid else None
    except Exception:  # noqa: BLE001 - a disk's or a bucket's error, a kind no longer opened: not readable here
        return None


def directory_stores(recorded: dict[str, dict[str, str]]) -> list[tuple[str, DirectoryStore]]:
    """(uuid, store) of each directory store ``recorded`` (``remote.log`` fields by UUID) names that is readable
    here and is that store (:func:`open_recorded`): what risk counts and a RIA publish links files from."""
    out = []
    for uuid, fields in recorded.items():
        found = kind_of_fields(fields)
        store = open_recorded(uuid, fields, {}) if found and found[0] is DIRECTORY else None
        if isinstance(store, DirectoryStore):
            out.append((uuid, store))
    return out


class Stores:
    """The stores ``index`` records and the branches add (:meth:`add`), each opened once (None: not here)."""

    def __init__(self, index: Index) -> None:
        self.known: dict[str, dict] = known_stores(index)  # uuid -> the index's record (url, kind, name)
        self.recorded: dict[str, dict[str, str]] = {uuid: {} for uuid in self.known}  # uuid -> remote.log fields
        self.opened: dict[tuple[str, bool], Optional[Store]] = {}
        self._lock = threading.Lock()

    def add(self, recorded: dict[str, dict[str, str]]) -> None:
        """The stores a repository's git-annex branch records (``store.record.store_uuids``) are known too."""
        with self._lock:
            for uuid, fields in recorded.items():
                if not self.recorded.get(uuid):
                    self.recorded[uuid] = fields
                    if self.opened.get((uuid, True), False) is None:  # not found before its fields were known
                        del self.opened[(uuid, True)]

    def open(self, uuid: str, *, same: bool = True) -> Optional[Store]:
        """The store ``uuid`` opened here, once; None when it does not open (``same``: or is another store
        now; without it, the index's URL for ``uuid`` opened as it is: a source of bytes checked by key)."""
        with self._lock:
            if (uuid, same) not in self.opened:
                self.opened[(uuid, same)] = (
                    open_recorded(uuid, self.recorded.get(uuid, {}), self.known)
                    if same
                    else _open_url(self.known, uuid)
                )
            return self.opened[(uuid, same)]

    def url_of(self, uuid: str) -> Optional[str]:
        return recorded_url(uuid, self.recorded.get(uuid, {}), self.known)

    def every(self, besides: Iterable[Store] = ()) -> list[Store]:
        """Every known store that opens here, ``besides`` those (by URL): where a copy can come from."""
        seen = {s.url for s in besides}
        out: list[Store] = []
        for uuid in list(self.recorded):
            store = self.open(uuid)
            if store is not None and store.url not in seen:
                seen.add(store.url)
                out.append(store)
        return out

    def by_url(self) -> list[Store]:
        """The stores of the index's records opened by their URL alone (no identity asked): sources of
        bytes only, never written (every copy is checked against its key on the way in)."""
        out: list[Store] = []
        seen: set[str] = set()
        for rec in self.known.values():
            url = rec.get("url")
            if not url or url in seen:
                continue
            try:
                store = open_store(url)
            except (UserError, OSError):
                continue
            if store.url not in seen:
                seen.add(store.url)
                out.append(store)
        return out


def _open_url(known: dict[str, dict], uuid: str) -> Optional[Store]:
    try:
        return open_store(known[uuid]["url"])
    except Exception:  # noqa: BLE001 - a store whose kind or place no longer opens: not a source of bytes
        return None

"""A sync's content sink: bytes a source reads anyway (BOSS chunks) kept in the lab's store.

The sync (:mod:`neuromirror.engine.sync`) hands a :class:`StoreSink` to the source through its
state when ``--store`` is given, and records the keys in the dataset's git-annex branch after
each version's commit.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neuromirror.store.base import Store


class StoreSink:
    """A sync's :class:`~neuromirror.records.ContentSink`: bytes a source read go into the store.

    Each ``put`` is one atomic write (``receive`` -> ``write`` -> ``commit``) of bytes whose
    SHA256 the source computed from them and put in the key; :meth:`record` then marks the keys
    present in the dataset's git-annex branch (after the version's commit, under the source's lock).
    """

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._keys: list[str] = []
        self._seen: set[str] = set()
        self._ready = False

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            if not self._ready:  # a new store's identity is made once, not by every reader thread at once
                _ = self.store.identity
                self._ready = True
        try:
            if not self.store.has(key):
                with self.store.receive(key) as incoming:
                    incoming.write(data)
                    incoming.commit()
        except BaseException:
            with self._lock:
                self._seen.discard(key)
            raise
        with self._lock:
            self._keys.append(key)

    def record(self, ds: Path) -> int:
        """Record the keys stored so far as present in the store, in ``ds``'s git-annex branch."""
        from neuromirror.store.record import record_present

        with self._lock:
            keys, self._keys = self._keys, []
        if not keys:
            return 0
        return record_present(ds, self.store, keys)

"""Where ``publish`` writes a RIA store: on this machine (``ria+file://``) or on a host over ssh (``ria+ssh://``).

:mod:`.publish` decides what to publish (datasets by id, aliases, the filtered root, kept
content, embargo hold-back) the same way for both; only these few operations differ.  Both
targets answer "what does the store hold?" from files on this machine: ``view``, a
:class:`.ria.RiaStore` whose ``HEAD``, ``packed-refs``, loose refs, ``info/refs``, ``config`` and
alias links say what the store has — the store itself for ``ria+file://``; for ``ria+ssh://`` a
skeleton copied from the host in one round trip (:mod:`.ssh`).  So the incremental checks
(:func:`.put.unchanged`, :func:`.put.is_current`, :func:`.root.store_head`) are one
code path, read from local files, for both.
"""

from __future__ import annotations

from typing import Optional, Protocol

from neuromirror.publish.ria.layout import RiaStore
from neuromirror.publish.ria.put import Wanted, put, unchanged


class RiaTarget(Protocol):
    """The store operations a publish needs; :class:`LocalTarget` and :class:`.ssh.SshTarget`."""

    @property
    def url(self) -> str: ...

    @property
    def view(self) -> RiaStore: ...

    def ensure(self) -> None: ...

    def public_url(self, given: Optional[str]) -> Optional[str]: ...

    def ora_uuid(self) -> str: ...

    def alias_target(self, alias: str) -> Optional[str]: ...

    def set_alias(self, alias: str, dsid: str) -> bool: ...

    def unchanged(self, dsid: str, head: str, refs: dict[str, str]) -> bool: ...

    def put(self, want: Wanted, force: bool) -> tuple[bool, list[str]]: ...

    def close(self) -> None: ...


class LocalTarget:
    """A store on this machine's file system: the ria+file code, unchanged."""

    def __init__(self, store: RiaStore):
        self.store = store

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def view(self) -> RiaStore:
        return self.store

    def ensure(self) -> None:
        self.store.ensure()

    def public_url(self, given: Optional[str]) -> Optional[str]:
        return self.store.public_url(given)

    def ora_uuid(self) -> str:
        return self.store.ora_uuid()

    def alias_target(self, alias: str) -> Optional[str]:
        return self.store.alias_target(alias)

    def set_alias(self, alias: str, dsid: str) -> bool:
        return self.store.set_alias(alias, dsid)

    def unchanged(self, dsid: str, head: str, refs: dict[str, str]) -> bool:
        return unchanged(self.store, dsid, head, refs)

    def put(self, want: Wanted, force: bool) -> tuple[bool, list[str]]:
        return put(self.store, want, force=force)

    def close(self) -> None:
        pass


def open_target(store: RiaStore) -> RiaTarget:
    """The target for a store named by :meth:`.ria.RiaStore.from_url`; the caller closes it."""
    if store.ssh is not None:
        from neuromirror.publish.ria.ssh import SshTarget

        return SshTarget(store)
    return LocalTarget(store)

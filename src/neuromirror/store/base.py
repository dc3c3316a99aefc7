"""What ``keep`` needs of a store, whatever its kind (a directory, an S3 bucket).

A store has a fixed identity (UUID and remote name, the same in every dataset), says whether it
holds a key (only verified bytes count), how many bytes it holds, takes one key's bytes through an
:class:`Incoming` (written in order, committed only after the caller verified them) and gives the
fields of its ``remote.log`` line, from which every clone enables it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from neuromirror.annex.keys import parse_key


@dataclass(frozen=True)
class StoreIdentity:
    uuid: str
    name: str


class StoreWriteError(OSError):
    """Writing to the store failed (its disk, its bucket): that file fails, loudly; the run goes on."""


class Incoming(Protocol):
    key: str
    done: bool

    def write(self, data: bytes) -> None: ...

    def commit(self) -> bool:
        """Put the (verified) bytes under the key's name; False if the store had it already."""
        ...

    def discard(self) -> None: ...

    def __enter__(self) -> Incoming: ...

    def __exit__(self, *exc: object) -> None: ...


class Store(Protocol):
    #: git-annex's special remote type (``remote.log``'s ``type=``)
    kind: str

    @property
    def url(self) -> str: ...

    @property
    def identity(self) -> StoreIdentity: ...

    def description(self) -> str: ...

    def has(self, key: str) -> bool: ...

    def used_bytes(self) -> int: ...

    def receive(self, key: str) -> Incoming: ...

    def clean_stale(self) -> int: ...

    def sync(self) -> None:
        """Make every committed key durable: called before a git-annex branch records the keys as present."""

    def remote_config(self) -> dict[str, str]:
        """The special remote's fields for ``remote.log`` (never credentials)."""
        ...


def key_size(key: str) -> Optional[int]:
    """The size a key names (its ``-s`` field); None when it names none."""
    try:
        size = parse_key(key).get("size")
    except ValueError:
        return None
    return None if size is None else int(size)

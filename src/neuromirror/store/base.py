"""What ``keep`` needs of a store, whatever its kind (a directory, an S3 bucket).

A store has a fixed identity (UUID and remote name, the same in every dataset), says whether it
holds a key (only verified bytes count), how many bytes it holds, takes one key's bytes through an
:class:`Incoming` (written in order, committed only after the caller verified them) and gives the
fields of its ``remote.log`` line, from which every clone enables it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Collection, Optional, Protocol

from neuromirror.annex.keys import parse_key
from neuromirror.errors import Unavailable, UserError

#: the name stores had before each got one of its own; an identity file saying it gets :func:`remote_name`
LEGACY_NAME = "neuromirror-store"

#: git-annex's cost of its web remote (the archive's URLs): a remote of lower cost is tried first
WEB_COST = 200
#: a directory store's cost: below the web's, so a clone reads a key the store holds from the store and never
#: asks the archive for it (lost or not: no dead-URL retries); above a local git remote's (100).  A path the
#: reader can read is local disk or the lab's own network file system: no egress bill, LAN speed.  A clone
#: where the path is not readable does not enable the store (autoenable fails quietly) and one whose store
#: went away since skips it at once: the archive serves as before.
FIRST_COST = 150
#: what S3 stores said before issue 57 (after the web): ``maintain`` writes such a line again with FIRST_COST
AFTER_WEB_COST = 300


@dataclass(frozen=True)
class StoreIdentity:
    uuid: str
    name: str


def remote_name(store_uuid: str, recorded: Optional[str] = None) -> str:
    """The git-annex remote name of a store: ``neuromirror-store-<first 8 hex digits of its UUID>``.

    Derived from the store, so it is the same in every dataset and clone, and two stores kept into
    one dataset never share a name (git-annex's ``enableremote`` refuses a name two remotes have).
    A name a lab wrote into the identity file itself stays; the old shared default does not."""
    if recorded and recorded != LEGACY_NAME:
        return recorded
    return f"{LEGACY_NAME}-{store_uuid.replace('-', '')[:8]}"


@dataclass
class Dropped:
    """What a store gave up when retention dropped keys (:meth:`Store.drop`, ``keep --prune``)."""

    keys: int = 0  # keys the store no longer names
    bytes: int = 0  # bytes deleted (a packed store: the old packs rewritten or deleted)
    rewritten: int = 0  # packs rewritten without them (a packed store)

    def to_json(self) -> dict:
        return {"keys": self.keys, "bytes": self.bytes, "rewritten": self.rewritten}


class StoreUnreachable(UserError):
    """A store opened to be read or checked whose identity is not there (its directory gone, an empty or unmounted
    mount point, a prefix emptied): nothing is made in its place; only ``keep --to`` makes a store."""


def missing_identity(url: str, where: str) -> StoreUnreachable:
    """The one line every store kind says when its identity file or object is not there."""
    return StoreUnreachable(f"{url}: not reachable: no {where} there (gone, moved or not mounted?)")


def no_answer(url: str, exc: BaseException) -> StoreUnreachable:
    """The one line a store says when its identity could not be read at all (its endpoint down, its bucket
    gone, its disk unreadable): not reachable, as a missing identity is, never a store that answered."""
    from neuromirror.util.text import one_line

    return StoreUnreachable(f"{url}: not reachable: {one_line(exc, 300, joined=True)}")


class StoreWriteError(Unavailable, OSError):
    """Writing to the store failed (its disk, its bucket): that file fails, loudly; the run goes on."""


class Incoming(Protocol):
    key: str
    done: bool

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``, which is only valid during the call (the caller reuses its buffer)."""
        ...

    def commit(self) -> bool:
        """Put the (verified) bytes under the key's name; False if the store had it already."""
        ...

    def discard(self) -> None: ...

    def __enter__(self) -> Incoming: ...

    def __exit__(self, *exc: object) -> None: ...


class Recorded(Protocol):
    """What a dataset's git-annex branch records of a remote (:mod:`.record`): a store, or a RIA store's ORA remote."""

    @property
    def identity(self) -> StoreIdentity: ...

    def description(self) -> str: ...

    def sync(self) -> None: ...

    def remote_config(self) -> dict[str, str]: ...


class Thawable(Protocol):
    """A store whose copies may lie cold (an archive storage class): asked to thaw before a read, its thaws told."""

    def cold_pack(self, key: str, *, ask: bool = False) -> Optional[tuple[str, int]]: ...

    def thawed(self) -> list[str]: ...

    def thaws(self) -> Any: ...


@dataclass(frozen=True)
class Capabilities:
    """What a store can do beyond the contract every store keeps, asked of it instead of its kind (rclone's
    optional ``Features``): an absent one (None, False) means unsupported.  Code outside ``store/`` asks
    these, never ``isinstance`` or ``kind ==``, so a new store kind is one module that says what it has."""

    #: keys lie inside packs: checked pack by pack, a share of it as whole packs
    packed: bool = False
    #: the directory the store lives in, when it is on this machine (keep checks its free space)
    local: Optional[Path] = None
    #: the ``remote.log`` field a clone's ``enableremote`` sets to this store's place, and that place
    #: (``directory``: a path; ``url``: a packed store's URL); None: the clone enables it by itself
    enable_field: Optional[tuple[str, str]] = None
    #: its copies may need a thaw before they are read
    thaw: Optional[Thawable] = None
    #: the plain HTTP base a client reads each of its copies at, whole (an S3 store given
    #: ``NEUROMIRROR_STORE_PUBLIC_URL``): a reader may be redirected there; None: the mirror reads them itself
    public_url: Optional[str] = None
    #: the environment variables that hold this store's credentials: left out of the environment of a clone's
    #: ``enableremote``, where git-annex would cache them in the clone (``.git/annex/creds``); its transfers read
    #: them from the reader's environment each time, as keep does
    secret_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class CopyURL:
    """Where a store's copy of a key lies now, as a reader outside this process names it (``urls`` prints
    it): a ``file://`` path, an ``s3://`` object or a public URL, and for a key inside a larger object (a
    pack) its ``span``, (offset, length) there; None: the whole object."""

    url: str
    span: Optional[tuple[int, int]] = None


def not_there(store: Store) -> bool:
    """A store on this machine whose identity is not there: looking never makes one (a remote store says
    so when its identity is read)."""
    return store.capabilities.local is not None and not store.exists()


class Store(Protocol):
    #: git-annex's special remote type (``remote.log``'s ``type=``)
    kind: str

    @property
    def capabilities(self) -> Capabilities: ...

    def exists(self) -> bool:
        """Is the store's identity there?  Looking never makes it."""
        ...

    def copy_location(self, key: str) -> str:
        """Where the store keeps ``key`` (a path, an object's URL): how reports name the store's copy."""
        ...

    def read_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
        """Bytes ``[start, end)`` of ``key``'s stored copy (``FileNotFoundError``: not there)."""
        ...

    def copy_url(self, key: str) -> Optional[CopyURL]:
        """Where ``key``'s copy lies now, as a URL a reader outside this process reads (None: the store names
        no place for it; a store that does not answer raises)."""
        ...

    @property
    def url(self) -> str: ...

    @property
    def identity(self) -> StoreIdentity: ...

    def description(self) -> str: ...

    def has(self, key: str) -> bool: ...

    def used_bytes(self) -> int: ...

    def receive(self, key: str) -> Incoming: ...

    def open_key(self, key: str) -> IO[bytes]:
        """The stored bytes of ``key``, read as git-annex would read them (``FileNotFoundError``: not there)."""
        ...

    def forget_key(self, key: str) -> None:
        """Remove ``key``'s stored bytes (a copy found wrong), so that a fresh copy can take its place."""
        ...

    def drop(self, keys: Collection[str]) -> Dropped:
        """Give up ``keys`` (retention dropped every version that needed them): never another key."""
        ...

    def clean_stale(self) -> int: ...

    def begin_task(self, task: str) -> int:
        """A cluster task's start (``keep --dask``'s :func:`~neuromirror.keep.cluster.keep_batch`): the store
        ready for the task's keys.  A first attempt needs nothing of other writers (its keys are in no other
        task of the run); a rerun of ``task`` (its first attempt died) first takes in whatever that attempt
        left, so that no key of it is copied twice (``task`` "": unnamed, taken as a rerun); how many leftovers
        were adopted."""
        ...

    def end_task(self, task: str) -> None:
        """The task ``task`` ended well: a later attempt of that name is a first attempt again."""
        ...

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


def drop_each(store: Store, keys: Collection[str]) -> Dropped:
    """:meth:`Store.drop` for a store of one file or object per key: each one removed."""
    out = Dropped()
    for key in sorted(keys):
        if store.has(key):
            store.forget_key(key)
            out.keys += 1
            out.bytes += key_size(key) or 0
    return out

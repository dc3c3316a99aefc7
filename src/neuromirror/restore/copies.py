"""One key's bytes from the lab's stores, checked against the key before anyone writes them.

The stores tried are every store ``keep`` or ``verify`` used here (the index's ``stores`` table),
those with the most recent good check of the key first, then the others that say they hold it.
Each copy is streamed into a spooled temporary file (memory up to :data:`SPOOL`, then disk) while
it is hashed with the key's own algorithm and, for S3 targets, with MD5 (what a ``PutObject``'s
``Content-MD5`` and ETag are checked against).  A copy that does not hash to its key, or is cut
short, is named (:class:`BadCopy`) and the next store is tried; nothing wrong is ever returned.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Callable, Optional, cast

from neuromirror.annex.keys import Checksum, key_checksum
from neuromirror.errors import Unavailable
from neuromirror.index.store_checks import checks_of
from neuromirror.store.base import Store
from neuromirror.store.location import open_store
from neuromirror.store.packs.thaw import Frozen, Thawing
from neuromirror.store.registry import Stores
from neuromirror.store.transfer import CHUNK
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: bytes held in memory per object before its spool goes to disk
SPOOL = 16 << 20


@dataclass(frozen=True)
class BadCopy:
    store: str  # its URL
    key: str
    why: str
    uuid: str = ""

    def to_json(self) -> dict:
        return {"store": self.store, "key": self.key, "why": self.why, "store_uuid": self.uuid}


@dataclass
class Verified:
    """A key's bytes, verified: read them from ``fh`` (at offset 0), close it when done."""

    key: str
    fh: IO[bytes]
    size: int
    md5: str
    origin: str  # the store's URL

    def close(self) -> None:
        self.fh.close()


def drain(src: IO[bytes], digests: tuple[Any, ...], sink: Optional[Callable[[bytes], object]] = None) -> int:
    """Read ``src`` to its end in chunks, each fed to ``digests`` (and ``sink``); the bytes read."""
    got = 0
    while True:
        data = src.read(CHUNK)
        if not data:
            return got
        got += len(data)
        for d in digests:
            d.update(data)
        if sink is not None:
            sink(data)


class NoGoodCopy(Unavailable):
    """No store holds a copy of the key that hashes right."""


def _store_url(name: str) -> str:
    """A store's URL as keep records it (a relative directory made absolute); the name itself if it names none."""
    try:
        return open_store(name).url
    except Exception:
        return name


class Copies:
    """The stores of the mirror, opened once each, asked for keys from many threads."""

    def __init__(self, index: Index, only: Optional[list[str]] = None):
        self._registry = Stores(index)  # each opened once, by the URL keep used
        self._known = self._registry.known
        if only is not None:
            urls = {_store_url(n) for n in only}
            self._known = {u: s for u, s in self._known.items() if s["url"] in urls or u in only}
            if not self._known:
                from neuromirror.errors import BadInput

                raise BadInput(f"stores {', '.join(only)}: no store keep or verify used here has that URL or UUID").at(
                    "stores", "from"
                )
        self._index = index
        self.checks: dict[str, dict[str, float]] = {}
        self.to_thaw: dict[str, int] = {}  # a dry run: packs a restore would thaw first -> their bytes
        self._thaw_lock = threading.Lock()

    @property
    def stores(self) -> dict[str, dict]:
        return self._known

    def prime(self, keys: list[str]) -> None:
        """The good checks recorded for ``keys``, read once (index reads stay on the calling thread)."""
        self.checks.update(checks_of(self._index, keys))

    def drop(self, keys: list[str]) -> None:
        """The checks of ``keys`` forgotten (a restore's batch done: memory stays flat)."""
        for k in keys:
            self.checks.pop(k, None)

    def store(self, uuid: str) -> Optional[Store]:
        """A store whose kind or place no longer opens is no source of bytes (None)."""
        return self._registry.open(uuid, same=False)

    def order(self, key: str) -> list[str]:
        """Store UUIDs to try for ``key``: checked ones, latest check first, then the rest."""
        checked = self.checks.get(key, {})
        first = sorted(checked, key=lambda u: -checked[u])
        return [u for u in first if u in self._known] + [u for u in self._known if u not in checked]

    def note_thaw(self, key: str, url: str) -> None:
        """A dry run: the pack ``key`` would be read from, if it must thaw first (counted, not asked for)."""
        for uuid in self.order(key):
            store = self.store(uuid)
            if store is None or store.url != url:
                continue
            thaw = store.capabilities.thaw
            got = thaw.cold_pack(key) if thaw is not None else None
            if got is not None:
                with self._thaw_lock:
                    self.to_thaw[got[0]] = got[1]
            return

    def thawing(self) -> Optional[Thawing]:
        """The stores' packs this run found cold (their thaws asked for): the error to end with (exit 75),
        recorded in the index (``status`` shows them; "since" is the first ask's time); packs found thawed
        are no longer outstanding."""
        from neuromirror.index.store_checks import clear_thaws, first_asked, record_thaws

        out: Optional[Thawing] = None
        for store in [s for s in self._registry.opened.values() if s is not None]:
            thaw, uuid = store.capabilities.thaw, self._uuid_of(store)
            if thaw is None or uuid is None:
                continue  # nothing there thaws
            clear_thaws(self._index, uuid, thaw.thawed())
            got = thaw.thaws()
            if got is None:
                continue
            record_thaws(self._index, uuid, store.url, [(n.pack, n.storage_class) for n in got.notes])
            since = first_asked(self._index, uuid)
            out = out or (got.since(since) if since else got)
        return out

    def _uuid_of(self, store: Store) -> Optional[str]:
        return next((u for u, rec in self._known.items() if rec.get("url") == store.url), None)

    def held(self, key: str) -> bool:
        """Whether some store has a good check of ``key`` recorded or says it holds it (a dry run: no read)."""
        return self.holder(key) is not None

    def holder(self, key: str) -> Optional[str]:
        """The URL of the store a restore would read ``key`` from first: the one with the latest good check
        recorded, else the first that says it holds it; None if none does (a dry run: no read)."""
        for uuid in self.order(key):
            if uuid in self.checks.get(key, {}):
                return str(self._known[uuid]["url"])
            store = self.store(uuid)
            if store is not None and store.has(key):
                return store.url
        return None

    def fetch(self, key: str, size: Optional[int], bad: list[BadCopy], every: bool = False) -> Verified:
        """The verified bytes of ``key`` from the first store with a good copy; bad copies appended to ``bad``.

        ``every`` (a drill): every other store's copy is read and hashed too, so that a bad one is found
        even when a good one came first."""
        checksum = key_checksum(key)
        if checksum is None:
            raise NoGoodCopy(f"{key.split('-', 1)[0]} key: no checksum to check a copy against")
        good: Optional[Verified] = None
        for uuid in self.order(key):
            store = self.store(uuid)
            src = self._open(store, uuid, key, bad) if store is not None else None
            if store is None or src is None:
                continue
            got = _check_copy(store, uuid, key, size, checksum, src, bad, keep=good is None)
            if got is not None:  # a drill's further good copies are checked, not kept
                good = got
                if not every:
                    break
        if good is None:
            raise NoGoodCopy("no store holds a good copy")
        return good

    def _open(self, store: Store, uuid: str, key: str, bad: list[BadCopy]) -> Optional[IO[bytes]]:
        """The store's copy of ``key`` opened; None when it cannot be read now (a copy the store should have
        and lacks, or cannot read, is a bad copy; a cold pack's thaw is asked for)."""
        try:
            return store.open_key(key)
        except Frozen:
            return None  # a cold pack: its thaw is asked for, the run ends with exit 75 (thawing())
        except FileNotFoundError:
            if uuid in self.checks.get(key, {}):
                bad.append(BadCopy(store.url, key, "missing: the store has no copy under the key's name", uuid))
            return None
        except OSError as exc:
            bad.append(BadCopy(store.url, key, "unreadable: " + one_line(exc, 200, joined=True), uuid))
            return None


def _check_copy(
    store: Store,
    uuid: str,
    key: str,
    size: Optional[int],
    checksum: Checksum,
    src: IO[bytes],
    bad: list[BadCopy],
    *,
    keep: bool,
) -> Optional[Verified]:
    """One copy read and hashed: its verified bytes (spooled when ``keep``), or None when it is bad (appended
    to ``bad``) or a good one not kept."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL)
    digest, md5 = checksum.new(), hashlib.md5()
    try:
        got = drain(src, (digest, md5), out.write if keep else None)
    except OSError as exc:
        out.close()
        bad.append(BadCopy(store.url, key, "unreadable: " + one_line(exc, 200, joined=True), uuid))
        return None
    finally:
        src.close()
    why = ""
    if size is not None and got != size:
        why = f"{got} bytes, the key says {size}"
    elif digest.hexdigest() != checksum.digest:
        why = f"{checksum.algorithm} {digest.hexdigest()[:16]}…, the key says {checksum.digest[:16]}…"
    if why:
        bad.append(BadCopy(store.url, key, why, uuid))
    if why or not keep:
        out.close()
        return None
    out.seek(0)
    return Verified(key, cast(IO[bytes], out), got, md5.hexdigest(), store.url)

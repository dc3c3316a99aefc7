"""A packed store (``pack+file:///PATH``, ``pack+s3://BUCKET/PREFIX``): what ``keep`` needs of a store
(:class:`neuromirror.store.base.Store`), with keys' bytes in packs instead of one file or object each.

``receive`` buffers one key's bytes (in memory, or a staged file past :data:`.writer.SPILL`); ``commit`` (after
the caller verified them) appends them to the open pack; ``sync`` — called before any git-annex branch
records a key as present — seals the open pack, so that every key a branch names is in a durable pack
that an index file names.  Small packs that runs leave behind are merged (:mod:`.repack`), so that the
store's object count follows its bytes: at most ``2 * ceil(bytes / pack size) + 16`` files.

Clones read it through ``git-annex-remote-neuromirror-pack`` (:mod:`neuromirror.remotes.pack`), enabled by the
store's ``remote.log`` line (``autoenable=true``, ``cost=150``: read before the archive).  Only keep makes one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from pathlib import Path
from typing import IO, Any, Collection, Optional
from urllib.parse import quote

from neuromirror.errors import BadInput, UserError
from neuromirror.store.base import (
    FIRST_COST,
    Capabilities,
    CopyURL,
    Dropped,
    StoreIdentity,
    missing_identity,
    no_answer,
    remote_name,
)
from neuromirror.store.packs.backend import (
    COLD_CLASSES,
    STAGING,
    STORAGE_CLASSES,
    Backend,
    DirectoryBackend,
    Listed,
    S3Backend,
    remove_dead_staged,
)
from neuromirror.store.packs.keymap import KeyMap
from neuromirror.store.packs.layout import (
    CONFIG,
    FOOTER,
    INDEX,
    PACKS,
    TASKS,
    PackFormatError,
    PackIndex,
    index_object,
    pack_name,
    pack_object,
    read_trailer,
)
from neuromirror.store.packs.thaw import THAW_DAYS, THAW_TIER, Frozen, Thawing, ThawNote, now_iso
from neuromirror.store.packs.writer import PackDiscarded, PackIncoming, PackWriter
from neuromirror.util.sizes import human_bytes

log = logging.getLogger("neuromirror.store.packs")

#: the pack size of a new store when none is named (tape's rule: objects < bytes / 100 MB)
DEFAULT_PACK_SIZE = 256 << 20
#: the smallest pack size a store accepts (tests and toy stores use small ones)
MIN_PACK_SIZE = 1 << 10
#: the git-annex external special remote a clone reads the store with
EXTERNAL_TYPE = "neuromirror-pack"
SCHEMES = ("pack+file", "pack+s3")
_TASK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class PackStore:
    kind = "pack"

    def __init__(
        self,
        backend: Backend,
        url: str,
        *,
        pack_size: Optional[int] = None,
        storage_class: Optional[str] = None,
        s3: Any = None,
        create: bool = True,
    ) -> None:
        self.backend = backend
        self.create = create  # a store may be made here (keep --to); else a missing config is unreachable
        self._url = url
        self.s3 = s3  # the S3Store under a pack+s3 store (its endpoint, region, public URL)
        self.asked_pack_size = pack_size
        self.asked_class = storage_class
        if storage_class is not None and storage_class not in STORAGE_CLASSES:
            raise BadInput(f"storage_class {storage_class}: one of {', '.join(STORAGE_CLASSES)}").at("storage_class")
        if pack_size is not None and pack_size < MIN_PACK_SIZE:
            raise BadInput(f"pack_size {pack_size}: at least {MIN_PACK_SIZE} bytes").at("pack_size")
        self._identity: Optional[StoreIdentity] = None
        self._pack_size = pack_size or DEFAULT_PACK_SIZE
        self._storage_class = storage_class or "STANDARD"
        self.keys = KeyMap(backend)
        self._writer: Optional[PackWriter] = None
        self._lock = threading.RLock()
        self.thawing: dict[str, ThawNote] = {}
        self._readable: set[str] = set()  # cold packs seen thawed (or not cold): no HEAD asked again
        self.merged, self.merge = (
            0,
            True,
        )  # packs this process merged away (repack); sync merges (keep.cluster: not now)

    @classmethod
    def directory(cls, path: str, **kw: Any) -> PackStore:
        p = Path(os.path.abspath(os.path.expanduser(path)))
        return cls(DirectoryBackend(p), f"pack+file://{quote(str(p))}", **kw)

    @classmethod
    def bucket(cls, bucket: str, prefix: str, *, recorded: Optional[dict[str, str]] = None, **kw: Any) -> PackStore:
        """Under ``s3://BUCKET/PREFIX``: ``endpoint``, ``public_url``, ``recorded`` as :class:`S3Store` takes them."""
        from neuromirror.store.s3 import S3Store

        s3 = S3Store(bucket, prefix, recorded=recorded, **{n: kw.pop(n, None) for n in ("endpoint", "public_url")})
        return cls(S3Backend(s3), f"pack+s3://{s3.bucket}/{s3.prefix}", s3=s3, **kw)

    def __str__(self) -> str:
        return self.url

    url = property(lambda self: self._url, doc="The store's URL (``pack+file://...``, ``pack+s3://...``).")

    #: a directory-backed store's directory (keep checks its free space); None on S3
    path = property(lambda self: self.backend.path if isinstance(self.backend, DirectoryBackend) else None)

    capabilities = property(lambda s: Capabilities(packed=True, local=s.path, enable_field=("url", s.url), thaw=s))

    def copy_location(self, key: str) -> str:
        return f"{self.url} {key}"

    def description(self) -> str:
        where = f" on {self.s3.endpoint}" if self.s3 is not None and self.s3.endpoint else ""
        return f"neuromirror packed store at {self.url}{where}"

    # -- identity and settings ------------------------------------------------------
    @property
    def pack_size(self) -> int:
        """The store's pack size, as recorded in it (read with its identity)."""
        self.identity  # noqa: B018
        return self._pack_size

    @property
    def storage_class(self) -> str:
        self.identity  # noqa: B018
        return self._storage_class

    @property
    def identity(self) -> StoreIdentity:
        with self._lock:
            if self._identity is None:
                self._identity = self._load_identity()
            return self._identity

    def exists(self) -> bool:
        """Is a packed store there (its config file)?  Reading never makes one."""
        try:
            return self.backend.get(CONFIG) is not None
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise UserError(f"{self.url}: {exc}") from None

    def _load_identity(self) -> StoreIdentity:
        try:
            raw = self.backend.get(CONFIG)
        except FileNotFoundError:
            if not self.create:  # a reader or a check: never made by looking
                raise missing_identity(self.url, CONFIG) from None
            raw = self._create()
        except OSError as exc:  # its disk or its endpoint did not answer: no store is there to count on
            raise no_answer(self.url, exc) from None
        try:
            doc = json.loads(raw)
            if doc.get("type") != "pack":
                raise ValueError(f"a {doc.get('type')} store, not a packed one")
            u = str(uuid.UUID(doc["uuid"]))
            ident = StoreIdentity(u, remote_name(u, str(doc.get("name") or "")))
            size, klass = int(doc["pack_size"]), str(doc.get("storage_class") or "STANDARD")
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{self.url}{CONFIG}: not a packed store's identity: {exc}") from None
        if self.asked_pack_size is not None and self.asked_pack_size != size:
            raise UserError(
                f"pack_size {self.asked_pack_size}: {self.url} was made with pack size {size} ({human_bytes(size)}); "
                "a store's pack size is fixed"
            ).at("pack_size")
        if self.asked_class is not None and self.asked_class != klass:
            raise UserError(
                f"storage_class {self.asked_class}: {self.url} was made with storage class {klass}; "
                "a store's storage class is fixed"
            ).at("storage_class")
        self._pack_size, self._storage_class = size, klass
        return ident

    def check_settings(self) -> None:
        """An existing store asked for another pack size or storage class: the one-line usage error now (exit 2)."""
        if self.asked_pack_size is None and self.asked_class is None:
            return
        try:
            self.backend.get(CONFIG)
        except (FileNotFoundError, OSError):
            return  # new (made on first write), or not readable now: the run says so
        self.identity  # noqa: B018 - compares the settings asked for with the store's

    def _create(self) -> bytes:
        if self._occupied():
            raise UserError(
                f"{self.url} is not empty and is not a neuromirror store (no {CONFIG}): name an empty or new place"
            )
        new = str(uuid.uuid4())
        doc = {
            "uuid": new,
            "name": remote_name(new),
            "type": "pack",
            "pack_size": self._pack_size,
            "storage_class": self._storage_class,
            "format": "packs/<sha256>.pack (keys' bytes, then a JSON trailer, its length and NMPACK01); "
            "index/<sha256>.json: {pack, size, keys: [[key, offset, length, checksum]...]}",
        }
        self.backend.create_small(CONFIG, (json.dumps(doc, indent=2) + "\n").encode())
        return self.backend.get(CONFIG)  # the winner's, if another process made it first

    def _occupied(self) -> bool:
        ours = {CONFIG, STAGING}
        if isinstance(self.backend, DirectoryBackend):
            p = self.backend.path
            return p.exists() and (not p.is_dir() or any(e.name not in ours for e in p.iterdir()))
        for _ in self.backend.listing(""):
            return True
        return False

    def remote_config(self) -> dict[str, str]:
        """``remote.log``'s fields: the external special remote a clone enables by itself, and where it reads."""
        from neuromirror.store.annexlog import escape_value

        fields = {
            "autoenable": "true",
            "cost": str(FIRST_COST),
            "encryption": "none",
            "externaltype": EXTERNAL_TYPE,
            "name": self.identity.name,
            "type": "external",
            "url": escape_value(self.url),
        }
        if self.s3 is not None:
            if self.s3.endpoint:
                fields["endpoint"] = escape_value(self.s3.endpoint)
            fields["region"] = self.s3.region
            if self.s3.public_url:
                fields["publicurl"] = escape_value(self.s3.public_url.rstrip("/") + "/")
        return fields

    # -- keys -----------------------------------------------------------------------
    def writer(self) -> PackWriter:
        with self._lock:
            if self._writer is None:
                self.identity  # noqa: B018 - the settings come from the store
                self._writer = PackWriter(self.backend, self.pack_size, self.storage_class, self.keys.add, self.url)
            return self._writer

    @property
    def broken(self) -> Optional[PackDiscarded]:
        """Why this process writes no more here (a pack discarded: its disk filled), or None."""
        return self._writer.broken if self._writer is not None else None

    def has(self, key: str) -> bool:
        """An index file names the key (only durable packs are named), or this process appended it."""
        w = self._writer
        return (w is not None and key in w.pending) or self.keys.known(key)

    def receive(self, key: str) -> PackIncoming:
        return PackIncoming(self, key)

    def where(self, key: str) -> Optional[tuple[str, int, int]]:
        """(pack, offset, length) of a key, sealing the open pack first if it holds the key."""
        w = self._writer
        if w is not None and key in w.pending:
            w.seal()
        return self.keys.where(key)

    def open_key(self, key: str) -> IO[bytes]:
        """The key's bytes: one ranged read of its pack (FileNotFoundError: the store has no such key)."""
        return self.open_range(key)

    def open_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> IO[bytes]:
        """Bytes ``[start:end]`` of a key, streamed: one ranged read of its pack.  A cold pack's thaw is asked
        for (:class:`Frozen`); a pack a repack removed since the map was read: the index files read again."""
        for fresh in (False, True):
            got = self.keys.where(key, fresh=True) if fresh else self.where(key)
            if got is None:
                break
            pack, offset, length = got
            lo = max(0, min(length, start or 0))
            hi = length if end is None else max(lo, min(length, end))
            try:
                return self.open_pack(pack, offset + lo, hi - lo)
            except FileNotFoundError:
                continue  # repacked away since the map was read: read the index files again
        raise FileNotFoundError(f"{self.url}: no pack holds {key}")

    def open_pack(self, pack: str, offset: int, length: int) -> IO[bytes]:
        """Bytes of a pack, whatever keys they hold: one ranged read (:class:`Frozen`: a cold pack, its thaw
        asked for; FileNotFoundError: no such pack, or cut short)."""
        if self.cold(pack):
            raise Frozen(pack)
        try:
            return self.backend.open_range(pack_object(pack), offset, length)
        except Frozen:
            self._ask_thaw(pack)
            raise

    def read_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
        """Bytes ``[start:end]`` of a key (a reader's ranged read: one request to the store)."""
        with self.open_range(key, start, end) as fh:
            return fh.read()

    def cold(self, pack: str) -> bool:
        """Is ``pack`` cold and not thawed?  Then its thaw is asked for (once); one HEAD per cold pack and process."""
        if pack in self._readable:
            return False
        klass = self.keys.pack_info(pack)[2]
        if klass not in COLD_CLASSES:
            return False
        state = self.backend.coldness(pack_object(pack))
        if state.readable:
            self._readable.add(pack)
            return False
        self._ask_thaw(pack, state.thawing)
        return True

    def cold_pack(self, key: str, *, ask: bool = False) -> Optional[tuple[str, int]]:
        """(pack, size) when reading ``key`` needs a thaw first (``restore --dry-run`` counts them; asks for
        nothing unless ``ask``); None when the key reads now or the store has none."""
        got = self.where(key)
        if got is None:
            return None
        size, _, klass = self.keys.pack_info(got[0])
        if klass not in COLD_CLASSES or got[0] in self._readable:
            return None
        if ask:
            return (got[0], size) if self.cold(got[0]) else None
        if self.backend.coldness(pack_object(got[0])).readable:
            self._readable.add(got[0])
            return None
        return got[0], size

    def _ask_thaw(self, pack: str, under_way: bool = False) -> None:
        """Ask once for a cold pack's thaw (never again while one is under way); noted for :meth:`thaws`."""
        with self._lock:
            if pack in self.thawing:
                return
            asked = False if under_way else self.backend.thaw(pack_object(pack), THAW_DAYS, THAW_TIER)
            klass = self.keys.packs().get(pack, (0, 0, self.storage_class))[2]
            self.thawing[pack] = ThawNote(pack, klass, asked, now_iso() if asked else "")

    def thawed(self) -> list[str]:
        """The cold packs this process found readable (thawed, or warm after all)."""
        return sorted(self._readable)

    def thaws(self) -> Optional[Thawing]:
        """The error to stop with when reads met cold packs (exit 75), else None."""
        return Thawing(self.url, list(self.thawing.values())) if self.thawing else None

    def forget_key(self, key: str) -> None:
        """Remove a key from every index file that names it (a copy found wrong)."""
        self.forget_keys({key})

    def forget_keys(self, keys: Collection[str]) -> int:
        """Remove ``keys`` from every index file naming them (each rewritten once; their bytes stay until a repack
        drops them).  An index left with no key goes, then its pack.  How many entries went."""
        keys = set(keys)
        w = self._writer
        if w is not None and any(k in w.pending for k in keys):
            w.seal()
        self.keys.refresh()
        gone = 0
        for pack in sorted(self.keys.holding(keys)):
            index = PackIndex.decode(self.backend.get(index_object(pack)), pack)
            left = [e for e in index.entries if e.key not in keys]
            gone += len(index.entries) - len(left)
            index.entries = left
            if left:
                self.backend.put_small(index_object(pack), index.encode())
            else:
                self.backend.delete(index_object(pack))
                self.backend.delete(pack_object(pack))
        self.keys.refresh()
        return gone

    def drop(self, keys: Collection[str]) -> Dropped:
        """Retention: packs mostly made of ``keys`` rewritten without them (restic's prune, :meth:`prune`),
        and the rest of ``keys`` taken out of their index files (their bytes left for a later rewrite)."""
        dead = set(keys)
        before = self.used_bytes()
        held = self.keys.all_keys()  # one read of the key map: what prune left of ``dead``, forget_keys finds
        report = self.prune(held - dead)
        forgotten = self.forget_keys(dead & held)
        return Dropped(report.dropped + forgotten, max(0, before - self.used_bytes()), report.merged)

    def used_bytes(self) -> int:
        return sum(item.size for item in self.backend.listing(PACKS))

    def sync(self) -> None:
        """Seal the open pack (every key committed is then in a durable pack an index names), then merge
        the small packs runs left, if there are too many."""
        if self._writer is not None:
            self._writer.seal()
        from neuromirror.store.packs.repack import merge_small

        report = merge_small(self) if self.merge else None
        if report is not None and report.rotten:
            log.warning(
                "%s: %d key(s) with wrong bytes not carried into a merged pack: %s (run `neuromirror verify --stores` to repair them)",
                self.url,
                len(report.rotten),
                ", ".join(report.rotten[:5]),
            )

    close = sync

    def prune(self, live: set[str], below: float = 0.5) -> Any:
        """Drop every key not in ``live`` (retention): packs with no live key deleted, packs whose live bytes
        fall below ``below`` of their size rewritten with their live keys only (:mod:`.repack`)."""
        from neuromirror.store.packs.repack import prune

        if self._writer is not None:
            self._writer.seal()
        return prune(self, live, below)

    def clean_stale(self) -> int:
        """Staged files of this host's dead processes removed, and packs a killed writer left without an
        index file adopted from their trailers; how many."""
        return self._clean_stale(list(self.backend.listing(INDEX)))

    def begin_task(self, task: str) -> int:
        """A first attempt claims ``tasks/<task>``, reading no other writer's index (O(workers x keys)); a rerun
        finds the claim and catches up (:meth:`catch_up`), adopting what the dead attempt sealed."""
        if task and not _TASK.fullmatch(task):
            raise ValueError(f"not a task name: {task!r}")
        if task and self.backend.create_small(TASKS + task, b""):
            remove_dead_staged(self.backend.staging())
            return 0
        return self.catch_up()

    def end_task(self, task: str) -> None:
        if task:
            self.backend.delete(TASKS + task)

    def catch_up(self) -> int:
        """:meth:`clean_stale`, then the new index files read, on one listing of them; how many packs adopted."""
        listed = list(self.backend.listing(INDEX))
        adopted = self._clean_stale(listed)
        self.keys.refresh(None if adopted else listed)  # an adoption wrote index files: listed again
        return adopted

    def _clean_stale(self, index_files: list[Listed]) -> int:
        done = remove_dead_staged(self.backend.staging())
        indexed = {pack_name(i.name) for i in index_files}
        for item in list(self.backend.listing(PACKS)):
            pack = pack_name(item.name)
            if pack is None or pack in indexed:
                continue
            try:
                index = self.trailer_of(pack, item.size)
            except (OSError, PackFormatError):
                continue  # a pack cut short is no pack: verify --stores names it
            index.storage_class = self.storage_class
            self.backend.put_small(index_object(pack), index.encode())
            self.keys.add(index)
            done += 1
        return done

    def trailer_of(self, pack: str, size: int) -> PackIndex:
        """A pack's index as its own trailer says (two ranged reads at its end)."""
        with self.backend.open_range(pack_object(pack), size - FOOTER.size, FOOTER.size) as fh:
            length, _ = FOOTER.unpack(fh.read())
        start = max(0, size - FOOTER.size - length)
        with self.backend.open_range(pack_object(pack), start, size - start) as fh:
            return read_trailer(fh.read(), pack, size)

    def copy_url(self, key: str) -> Optional[CopyURL]:
        """The key's pack as a reader outside this process reads it by URL (its file, the bucket's public URL,
        else its ``s3://`` object) and the key's bytes there; None: no pack holds it."""
        got = self.where(key)
        if got is None:
            return None
        pack, offset, length = got
        name = pack_object(pack)
        if isinstance(self.backend, DirectoryBackend):
            return CopyURL((self.backend.path / name).as_uri(), (offset, length))
        assert self.s3 is not None  # a packed store not on this machine is in S3
        base = (self.s3.public_url or "").rstrip("/") or f"s3://{self.s3.bucket}"
        return CopyURL(f"{base}/{quote(self.s3.prefix + name)}", (offset, length))

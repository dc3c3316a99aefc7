"""One contract every registered store kind keeps (issue 77, T4/T5's store half), at the Store API level.

Why: a store kind used to bring its own test files replaying keep, read and drop for one kind; nothing
said what every kind owes.  Here the same suite runs over directory, s3 (the moto stand-in), pack+file,
pack+s3 and a toy ``memory://`` kind that this module alone registers (``store.location.register``): no
product file names it, and the one reading of ``remote.log`` fields as a store (``store.registry.open_recorded``)
finds it all the same; a reader's copy of a key (``read.store_reads.StoreCopy``) reads, streams and names
itself through any of them.  Left for the CLI-level suite: keep/verify --stores/restore over every kind.
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from pathlib import Path
from typing import IO, Collection, Optional
from urllib.parse import urlsplit

import pytest

from neuromirror.store.base import (
    Capabilities,
    CopyURL,
    Dropped,
    StoreIdentity,
    StoreUnreachable,
    drop_each,
    missing_identity,
    remote_name,
)
from neuromirror.store.location import Settings, StoreKind, kind_of_fields, open_store, register
from neuromirror.store.registry import open_recorded

DATA = bytes(range(256)) * 5 + b"the kept bytes"
KEY = f"MD5E-s{len(DATA)}--{hashlib.md5(DATA).hexdigest()}.dat"

# ----------------------------------------------------------------------------- the toy kind, registered from here
_PLACES: dict[str, dict[str, bytes]] = {}  # memory://NAME -> its objects (".identity" among them)
_LOCK = threading.Lock()


class _Incoming:
    def __init__(self, store: MemoryStore, key: str) -> None:
        self.key, self.done, self._store, self._buf = key, False, store, bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def commit(self) -> bool:
        self.done = True
        with _LOCK:
            objects = self._store.objects()
            fresh = self.key not in objects
            objects.setdefault(self.key, bytes(self._buf))
        return fresh

    def discard(self) -> None:
        self._buf.clear()

    def __enter__(self) -> _Incoming:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.discard()


class MemoryStore:
    """A store in this process's memory: everything a store kind owes, nothing more."""

    kind = "external"
    capabilities = Capabilities()

    def __init__(self, url: str, create: bool) -> None:
        self.url, self.create = url, create

    def objects(self) -> dict[str, bytes]:
        if self.url not in _PLACES:
            if not self.create:
                raise missing_identity(self.url, ".identity")
            _PLACES[self.url] = {".identity": str(uuid.uuid4()).encode()}
        return _PLACES[self.url]

    @property
    def identity(self) -> StoreIdentity:
        new = self.objects()[".identity"].decode()
        return StoreIdentity(new, remote_name(new))

    def exists(self) -> bool:
        return self.url in _PLACES

    def description(self) -> str:
        return f"memory store {self.url}"

    def has(self, key: str) -> bool:
        return key in self.objects()

    def used_bytes(self) -> int:
        return sum(len(v) for k, v in self.objects().items() if k != ".identity")

    def receive(self, key: str) -> _Incoming:
        return _Incoming(self, key)

    def open_key(self, key: str) -> IO[bytes]:
        try:
            return io.BytesIO(self.objects()[key])
        except KeyError:
            raise FileNotFoundError(f"{self.url} {key}") from None

    def read_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
        return self.open_key(key).read()[start:end]

    def copy_location(self, key: str) -> str:
        return f"{self.url} {key}"

    def copy_url(self, key: str) -> Optional[CopyURL]:
        return CopyURL(f"{self.url}/{key}") if key in self.objects() else None

    def forget_key(self, key: str) -> None:
        self.objects().pop(key, None)

    def drop(self, keys: Collection[str]) -> Dropped:
        return drop_each(self, keys)

    def clean_stale(self) -> int:
        return 0

    def begin_task(self, task: str) -> int:
        return 0

    def end_task(self, task: str) -> None:
        pass

    def sync(self) -> None:
        pass

    def remote_config(self) -> dict[str, str]:
        return {"type": "external", "externaltype": "memory", "url": self.url, "name": self.identity.name}


def _memory_fields(fields: dict[str, str]) -> Optional[str]:
    url = fields.get("url", "")
    return url if fields.get("externaltype") == "memory" and url.startswith("memory:") else None


def _open_memory(url: str, settings: Settings) -> MemoryStore:
    if not urlsplit(url).netloc:
        raise ValueError(f"{url}: a memory store is memory://NAME")
    return MemoryStore(url, settings.create)


MEMORY = register(StoreKind("memory", ("memory",), _open_memory, _memory_fields, rank=0))


# ----------------------------------------------------------------------------- the places, one per kind
@pytest.fixture(params=["directory", "s3", "pack+file", "pack+s3", "memory"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A place where no store is yet, of each registered kind."""
    kind = request.param
    if kind == "directory":
        return str(tmp_path / "store")
    if kind == "pack+file":
        return f"pack+file://{tmp_path / 'packed'}"
    if kind == "memory":
        return f"memory://lab-{uuid.uuid4().hex[:8]}"
    bucket = request.getfixturevalue("bucket")
    return f"s3://{bucket}/lab/keep" if kind == "s3" else f"pack+s3://{bucket}/lab/packs"


def _keep(url: str) -> object:
    store = open_store(url, create=True)
    store.identity  # noqa: B018 - keep makes the store here first (its identity), then writes keys
    with store.receive(KEY) as incoming:
        for i in range(0, len(DATA), 100):
            incoming.write(DATA[i : i + 100])
        assert incoming.commit()
    store.sync()
    return store


def test_a_store_is_never_made_by_looking(place: str) -> None:
    store = open_store(place)
    assert not store.exists()
    with pytest.raises(StoreUnreachable, match="not reachable"):
        store.identity  # noqa: B018
    assert not open_store(place).exists()  # still nothing there


def test_a_tasks_rerun_finds_what_its_dead_first_attempt_kept(place: str) -> None:
    """``keep --dask``'s task (``Store.begin_task``): a worker whose view of the store was read before the task's
    first attempt kept a key durably and died (no ``end_task``) runs the task again: the key is found there
    (read back, never copied twice)."""
    rerun = open_store(place, create=True)
    rerun.identity  # noqa: B018 - made by the submitter first
    assert not rerun.has(KEY)  # this worker's view, read before
    first = open_store(place)
    assert first.begin_task("neuromirror-keep-0a1b") == 0  # a first attempt: nothing left to take in
    with first.receive(KEY) as incoming:
        incoming.write(DATA)
        assert incoming.commit()
    first.sync()  # durable, then the attempt died
    assert rerun.begin_task("neuromirror-keep-0a1b") >= 0
    assert rerun.has(KEY)
    rerun.end_task("neuromirror-keep-0a1b")
    with rerun.open_key(KEY) as fh:
        assert fh.read() == DATA


def test_a_kept_key_reads_back_whole_and_by_range(place: str) -> None:
    store = _keep(place)
    again = open_store(place)  # a reader, another process's view
    assert again.exists() and again.identity == store.identity
    assert again.has(KEY) and not again.has(KEY.replace("MD5E-s", "MD5E-s1"))
    with again.open_key(KEY) as fh:
        assert fh.read() == DATA
    assert again.read_range(KEY, 3, 40) == DATA[3:40]
    assert again.read_range(KEY, len(DATA) - 5) == DATA[-5:]
    assert again.used_bytes() >= len(DATA)
    with again.receive(KEY) as incoming:  # the same key again: nothing new
        incoming.write(DATA)
        assert not incoming.commit()


def test_remote_log_fields_read_back_as_the_store(place: str) -> None:
    """The one reading of a branch's ``remote.log`` line: the registered kind that owns the fields opens it."""
    store = _keep(place)
    fields = store.remote_config()
    found = kind_of_fields(fields)
    assert found is not None and found[0].name == (
        "S3" if place.startswith("s3:") else urlsplit(place).scheme or "directory"
    )
    back = open_recorded(store.identity.uuid, fields, {})
    assert back is not None and back.identity == store.identity and back.has(KEY)
    assert open_recorded(str(uuid.uuid4()), fields, {}) is None  # another store is there now


def test_a_dropped_key_is_gone_and_a_copy_forgotten(place: str) -> None:
    store = _keep(place)
    assert store.drop([KEY]).keys == 1
    assert not open_store(place).has(KEY)
    with pytest.raises(FileNotFoundError):
        open_store(place).read_range(KEY, 0, 10)
    store = _keep(place)
    store.forget_key(KEY)  # a copy found wrong
    assert not open_store(place).has(KEY)


def test_an_unknown_scheme_is_one_line_and_settings_belong_to_their_kind(place: str) -> None:
    from neuromirror.errors import BadInput, UserError

    with pytest.raises(UserError, match="store kind not supported yet: ria\\+ssh://x"):
        open_store("ria+ssh://x")
    if not place.startswith("pack+"):
        with pytest.raises(BadInput, match="pack_size is for packed stores"):
            open_store(place, pack_size=1 << 20)


def test_a_readers_copy_reads_streams_and_names_itself_through_the_store(
    place: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T3: the read path holds a copy as (store, key), the store opened once by the reader from the branch's
    ``remote.log`` fields, and reads it through the store's ranged read, whatever the kind."""
    from neuromirror.read import store_reads

    store = _keep(place)
    readers = store_reads.StoreReaders()
    recorded = {store.identity.uuid: store.remote_config()}
    reader = readers.of_fields(recorded)[store.identity.uuid]
    assert readers.of_fields(recorded)[store.identity.uuid].store is reader.store  # opened once by this reader
    copy = reader.copy(KEY)
    assert copy is not None and copy.status() is None
    assert copy.read() == DATA and copy.read(3, 40) == DATA[3:40] and copy.read(40, 3) == b""
    monkeypatch.setattr(store_reads, "CHUNK", 100)  # the stream asks the store again past each chunk
    with copy.open(5) as whole, copy.open(250, 1001) as part:
        assert whole.read() == DATA[5:] and part.read() == DATA[250:1001]
    assert copy.located is not None  # where it lies, as ``urls`` prints it: the object, or a pack's range of it
    offset, length = copy.span or (0, len(DATA))
    assert length == len(DATA) and copy.url == copy.located.url + (
        "" if copy.span is None else f"#bytes={offset}-{offset + length - 1}"
    )
    other = reader.copy(KEY.replace("MD5E-s", "MD5E-s1"))
    assert other is not None and other.status() is not None  # not kept there: said, not raised
    assert copy == store_reads.StoreReaders().of_fields(recorded)[store.identity.uuid].copy(KEY)  # by store and key

"""``neuromirror://``: an fsspec filesystem over the pins of a local mirror.

``fsspec.open("neuromirror://dandi/000027@0.230629.1955/sub-01/x.nwb")``, ``ls``, ``info``,
``cat_file`` with byte ranges, and ``zarr.open_group("neuromirror://dandi/000108@V/x.ome.zarr")``:
every read goes to the URL :mod:`.urls` chose for the file at that pin (the archive's pinned URL,
or the lab store's), by range requests through fsspec's own HTTP filesystem (a store's copy that is
no HTTP URL, one ranged read of the store the reader opened: :class:`.store_reads.StoreCopy`); a file kept in the dataset's git is
read from the dataset.  A file no URL serves raises :class:`NotStreamable` (an
``OSError`` that is *not* ``FileNotFoundError``: zarr would read a missing chunk as fill values).

Paths are ``ARCHIVE/NAME@VERSION/PATH`` (``aind/ASSET@V/...``, ``boss/COLL/EXP@V/...``); VERSION
is a label, ``draft`` or a commit.  The mirror is ``storage_options`` ``root`` (and ``index``), else
``NEUROMIRROR_ROOT``; or a served one, ``storage_options`` ``base_url`` (else ``NEUROMIRROR_URL``): the
base URL of its ``neuromirror serve --http`` view (:mod:`.fsspec_remote`).  Listings are read a directory at a time (its tree, then its files' ``git-annex`` logs; a subdirectory or
Zarr subdataset when entered) and kept: later reads of that directory start no git process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from neuromirror.errors import UserError
from neuromirror.read.fsspec_remote import CONNECT_TIMEOUT, READ_TIMEOUT, ServedMirror
from neuromirror.read.listings import Found, Listings
from neuromirror.read.loss import Losses, NotStreamable, mirror_index, read_range, source_lock  # noqa: F401
from neuromirror.read.pinned import Pin, resolve
from neuromirror.read.readahead import ReadAheadCache
from neuromirror.read.urls import PinnedFile
from neuromirror.spec import SpecError, parse_spec
from neuromirror.util import gitutil

#: directory listings kept per filesystem instance (each one directory of a pin)
_LISTINGS = 1024


#: what an opened file reads ahead by default: blocks of 32 KiB (fsspec's own 5 MiB made an h5py slice of an
#: NWB file fetch the whole file), kept, and read ahead further along a sequential stream (:mod:`.readahead`)
BLOCK_SIZE = 32 * 1024
CACHE_TYPE = "readahead"
#: the largest block a file gets by its size alone (:func:`block_for`)
MAX_BLOCK = 128 * 1024


def block_for(size: int) -> int:
    """A file's block: 32 KiB, larger for a large file (1/512 of it, at most 128 KiB).

    A random read costs a round trip whatever its size, and HDF5's metadata (object headers,
    B-trees, heaps) grows with the file: h5py opening a 64 MB NWB file and reading a slice made 7
    requests of 32 KiB blocks at 50 ms where remfile made 3 of 100 KiB or more (0.6 against 0.35 s);
    with 128 KiB blocks, 3.  A small file's slice stays small (a 3 MB file: 32 KiB blocks).
    """
    return min(MAX_BLOCK, max(BLOCK_SIZE, size // 512))


class PinnedReader(AbstractBufferedFile):
    """An open file of a pin: :class:`.readahead.ReadAheadCache` (``cache_type="readahead"``, or any of fsspec's
    caches by name) over :func:`.loss.read_range`, the one function every block is fetched through."""

    def __init__(
        self,
        fs: Any,
        path: str,
        fetch: Callable[[Optional[int], Optional[int]], bytes],
        size: int,
        cache_type: str = CACHE_TYPE,
        cache_options: Optional[dict] = None,
        **kwargs: Any,
    ) -> None:
        self._fetch = fetch
        ours = cache_type in (CACHE_TYPE, ReadAheadCache.name)
        super().__init__(
            fs,
            path,
            mode="rb",
            size=size,
            cache_type="none" if ours else cache_type,
            cache_options=None if ours else cache_options,
            **kwargs,
        )
        if ours:  # fsspec's "readahead" keeps one window: h5py's jumps between header and metadata refetched it
            self.cache = ReadAheadCache(self.blocksize, self._fetch_range, size, **(cache_options or {}))

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self._fetch(start, end)  # a failure leaves no garbage cycle (h5py holds its lock here): loss.dropped


class NeuromirrorFileSystem(AbstractFileSystem):
    protocol = "neuromirror"
    root_marker = ""

    def __init__(
        self,
        root: Optional[str] = None,
        index: Optional[str] = None,
        base_url: Optional[str] = None,
        block_size: Optional[int] = None,
        cache_type: Optional[str] = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.block_size = int(block_size or BLOCK_SIZE)
        self._block_given = block_size is not None  # else each file's own (:func:`block_for`)
        self.cache_type = cache_type or CACHE_TYPE
        served = base_url or (None if root else os.environ.get("NEUROMIRROR_URL"))
        self.mirror_root = Path(root or os.environ.get("NEUROMIRROR_ROOT") or "neuromirror-root").absolute()
        self.index_path = index or os.environ.get("NEUROMIRROR_INDEX")
        self._pins: dict[str, Pin] = {}
        self._listings = Listings(max_listings=_LISTINGS)
        self._lock = threading.Lock()
        self._http: Any = None
        self.served = ServedMirror(served, self._http_fs()) if served else None
        self.losses = Losses(
            None if served else mirror_index(self.mirror_root, self.index_path),
            source_lock(self.mirror_root, self.index_path),
        )

    # -- names ------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if path.startswith("neuromirror://"):
            path = path[len("neuromirror://") :]
        return path.strip("/")

    def _parts(self, path: str) -> tuple[str, str]:
        """(``ARCHIVE/NAME@VERSION``, the path inside the pin) of a path."""
        path = self._strip_protocol(path)
        head, at, rest = path.partition("@")
        if not at:
            raise ValueError(f"neuromirror://{path}: name a pinned version, ARCHIVE/NAME@VERSION/PATH")
        version, _, inner = rest.partition("/")
        return f"{head}@{version}", inner.strip("/")

    def _split(self, path: str) -> tuple[Pin, str]:
        """(the pin, the path inside it) of ``ARCHIVE/NAME@VERSION/PATH``."""
        key, inner = self._parts(path)
        head, _, version = key.rpartition("@")
        with self._lock:
            pin = self._pins.get(key)
        if pin is None:
            archive, _, name = head.partition("/")
            try:
                spec = parse_spec(f"{archive}:{name}@{version}")
            except SpecError as exc:
                raise ValueError(str(exc)) from None
            mirror = self._mirror()
            try:
                pin = resolve(mirror, spec)
            except UserError as exc:
                raise FileNotFoundError(str(exc)) from None
            finally:
                mirror.close()
            with self._lock:
                self._pins[key] = pin
        return pin, inner

    def _mirror(self) -> Any:
        from neuromirror.dataset.mirror import Datasets

        m = Datasets(self.mirror_root, self.index_path)
        if not m.index_path.exists():
            raise FileNotFoundError(f"no mirror at {m.root} (pass storage_options root=, or set NEUROMIRROR_ROOT)")
        return m

    # -- listings ---------------------------------------------------------------
    def _find(self, path: str) -> tuple[str, Found]:
        """(the path's ``ARCHIVE/NAME@VERSION`` head, what it names at the pin); FileNotFoundError: nothing."""
        pin, inner = self._split(path)
        base = self._strip_protocol(path)
        got = self._listings.find(pin, inner)
        if got is None:
            raise FileNotFoundError(f"neuromirror://{base}: no such file or directory at that pin")
        return (base[: len(base) - len(inner)].rstrip("/") if inner else base), got

    def _file(self, path: str) -> tuple[PinnedFile, Optional[bytes]]:
        """The file ``path`` names, and its bytes if it is small and kept in git."""
        _, got = self._find(path)
        if not isinstance(got, tuple):
            raise IsADirectoryError(f"neuromirror://{self._strip_protocol(path)}: a directory")
        return got

    @staticmethod
    def _git_bytes(f: PinnedFile, data: Optional[bytes]) -> bytes:
        if data is not None:
            return data
        assert f.repo is not None and f.blob is not None
        return gitutil.run(f.repo, "cat-file", "blob", f.blob).stdout  # a large file kept in git: rare

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        if self.served is not None:
            entries = self._served_ls(path)
            return entries if detail else [e["name"] for e in entries]
        head, got = self._find(path)
        if isinstance(got, tuple):
            entries = [self._entry(head, got[0])]
        else:
            lead = f"{head}/{got.path}" if got.path else head
            entries = [
                self._entry(head, f) if f is not None else {"name": f"{lead}/{name}", "size": 0, "type": "directory"}
                for name, f in got.children()
            ]
        return entries if detail else [e["name"] for e in entries]

    def _entry(self, head: str, f: PinnedFile) -> dict:
        f = self.losses.apply(f)  # a loss a reader found: the store's URL, or none
        return {
            "name": f"{head}/{f.path}",
            "size": f.size,
            "type": "file",
            "key": f.key,
            "url": f.url,
            "served_by": f.served_by,
        }

    def info(self, path: str, **kwargs: Any) -> dict:
        if self.served is not None:
            got = self.served.info(*self._parts(path))
            if got is None:
                raise FileNotFoundError(f"neuromirror://{self._strip_protocol(path)}: no such file at that pin")
            return got
        head, found = self._find(path)
        if isinstance(found, tuple):
            return self._entry(head, found[0])
        return {"name": self._strip_protocol(path), "size": 0, "type": "directory"}

    # -- bytes ------------------------------------------------------------------
    def _http_fs(self) -> Any:
        if self._http is None:
            import aiohttp

            from neuromirror.network import identity

            timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
            self._http = identity.http_filesystem(timeout=timeout)
        return self._http

    def _cat_url(self, url: str, start: Optional[int], end: Optional[int]) -> bytes:
        """An HTTP URL's bytes (a store's copy the mirror reads itself is read through its store: :mod:`.loss`)."""
        return self._http_fs().cat_file(url, start=start, end=end)

    def _range(self, path: str) -> Callable[[Optional[int], Optional[int]], bytes]:
        """How to read byte ranges of ``path``: its pinned URL, with the store behind the archive."""
        if self.served is not None:
            served = self.served
            head, inner = self._parts(path)
            if served.info(head, inner) is None:  # zarr asks for keys that are not there: those alone are missing
                raise FileNotFoundError(f"neuromirror://{self._strip_protocol(path)}: no such file at that pin")
            return lambda start, end: served.read(head, inner, start, end)
        pin, _ = self._split(path)
        f, data = self._file(path)
        if f.served_by == "git":
            body = self._git_bytes(f, data)
            return lambda start, end: body[start:end]
        return lambda start, end: read_range(f, start, end, self._cat_url, self.losses, pin.source)

    def cat_file(self, path: str, start: Optional[int] = None, end: Optional[int] = None, **kwargs: Any) -> bytes:
        return self._range(path)(start, end)

    def _open(
        self, path: str, mode: str = "rb", block_size: Any = None, cache_type: Optional[str] = None, **kwargs: Any
    ) -> Any:
        if mode != "rb":
            raise PermissionError("neuromirror:// is read-only: a pin never changes")
        size = self.info(path).get("size")
        if size is None:
            size = len(self.cat_file(path))
        if self.served is not None:  # its reads go where the view redirects: a round trip each, not two
            self.served.resolve(*self._parts(path))
        return PinnedReader(
            self,
            path,
            self._range(path),
            size,
            block_size=(self.block_size if self._block_given else block_for(size))
            if block_size in (None, "default")
            else block_size,
            cache_type=cache_type or self.cache_type,
            cache_options=kwargs.get("cache_options"),
        )

    # -- a served mirror ------------------------------------------------------------
    def _served_ls(self, path: str) -> list[dict]:
        assert self.served is not None
        head, inner = self._parts(path)
        rows = self.served.listing(head, inner)
        if rows is None:
            one = self.served.info(head, inner)
            if one is None or one["type"] != "file":
                raise FileNotFoundError(f"neuromirror://{self._strip_protocol(path)}: no such file or directory")
            rows = [one]
        return rows

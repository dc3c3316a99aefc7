"""One key's bytes from its URLs into the store: streamed, hashed on the way, verified, then put in place.

Each URL of the key is tried in the order the mirror registered it (the pinned ones first); its
body streams in chunks into a temp file inside the store while it is hashed, and only bytes whose
size and checksum are the key's (the hash in a SHA256E/MD5E key's name) are renamed into place
(:class:`neuromirror.store.directory.Incoming`, or an S3 store's upload, completed only then:
:class:`neuromirror.store.s3.S3Incoming`). Wrong bytes are that URL's failure, and the next
URL is tried. The body is read raw (no ``Content-Encoding`` decoding): the key is of the stored
object's bytes, as git-annex's own download would see them.
"""

from __future__ import annotations

import errno
import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from neuromirror.annex.keys import Checksum, key_checksum
from neuromirror.network import ceiling
from neuromirror.network.pools import Pools
from neuromirror.records import http_urls
from neuromirror.store.base import Store
from neuromirror.util.crashpoints import crashpoint
from neuromirror.util.text import one_line

CHUNK = 1 << 20
#: files of at least this size are hashed beside their reads (:class:`_Hasher`); smaller ones inline
PIPELINE_MIN = 4 * CHUNK
#: (connect, read) seconds: a stalled archive fails the URL, not the run
TIMEOUT = (30, 300)


@dataclass
class Outcome:
    key: str
    ok: bool
    placed: bool = False  # False with ok: another process put the same bytes there first
    why: str = ""
    origin: str = ""  # where the bytes came from: a URL, or "store <url>"


class Transfer:
    """Callable from many threads: ``transfer(key, size, urls) -> Outcome``; one connection pool for all.

    urllib3 directly, not requests: a stream of 10^4 small files costs requests' per-request
    work (environment, netrc, adapters) more than the bytes, and a body read raw through
    requests closes its connection instead of reusing it (a new TCP connection, and a new
    thread on a threaded server, per file).  Here a fully read body returns its connection to
    the pool; one cut short closes it.
    """

    def __init__(
        self,
        store: Store,
        on_bytes: Optional[Callable[[str, int], None]] = None,
        *,
        jobs: int = 8,
        others: Sequence[Store] = (),
    ):
        self.store = store
        self.on_bytes = on_bytes
        self.stop = threading.Event()
        self._pools = _Pools(max(4, jobs))
        #: the lab's other stores, read when no URL serves the key (the archive lost it): a copy from a copy
        self.others = list(others)
        #: set once the store's disk is full: every later key fails at once with the same line, naming the store
        self.full = ""

    def close(self) -> None:
        self._pools.clear()

    def __call__(self, key: str, size: Optional[int], urls: Sequence[str]) -> Outcome:
        checksum = key_checksum(key)
        if checksum is None:
            return Outcome(key, False, why="the key has no checksum of its own: its bytes cannot be verified")
        if self.full:
            return Outcome(key, False, why=self.full)
        errors: list[str] = []
        # the archive's URLs first, then the lab's other stores: each a place and how to copy from it
        sources: list[tuple[str, Callable[[], bool]]] = [
            (url, functools.partial(self._one, url, key, size, checksum)) for url in http_urls(urls)
        ]
        sources += [
            (f"store {o.url}", functools.partial(self._from_store, o, key, size, checksum)) for o in self.others
        ]
        for origin, copy in sources:
            if self.stop.is_set():
                return Outcome(key, False, why="interrupted")
            try:
                placed = copy()
            except _Refused as exc:
                errors.append(f"{origin}: {exc}")
                continue
            except _Full as exc:  # the target's fault, not the source's: said once, naming the target
                self.full = str(exc)
                return Outcome(key, False, why=self.full)
            return Outcome(key, True, placed=placed, origin=origin)
        if not errors:
            return Outcome(key, False, why="no http(s) URL registered")
        return Outcome(key, False, why="no URL served the key's bytes: " + "; ".join(errors))

    def _one(self, url: str, key: str, size: Optional[int], checksum: Checksum) -> bool:
        """One URL's bytes, through the operator's ceiling for its endpoint where one is set (one budget across a
        cluster's workers under ``keep --dask``: :mod:`neuromirror.network.ceiling`)."""
        gate = ceiling.gate_for(ceiling.origin(url))
        if gate is None:
            return self._get(url, key, size, checksum)
        gate.enter()
        try:
            return self._get(url, key, size, checksum)
        finally:
            gate.leave()

    def _get(self, url: str, key: str, size: Optional[int], checksum: Checksum) -> bool:
        import urllib3

        try:
            response = self._pools.get(url)
        except urllib3.exceptions.HTTPError as exc:
            raise _Refused(one_line(exc, 300, joined=True)) from None
        complete = False
        try:
            if response.status != 200:
                raise _Refused(f"HTTP {response.status}")
            placed = self._copy(_body_reader(response), key, size, checksum, "URL")
            complete = True
            return placed
        except urllib3.exceptions.HTTPError as exc:
            raise _Refused(one_line(exc, 300, joined=True)) from None
        finally:
            if not complete:
                response.close()  # a body cut short: its connection cannot serve another request
            response.release_conn()

    def _from_store(self, other: Store, key: str, size: Optional[int], checksum: Checksum) -> bool:
        """The key's bytes read from another of the lab's stores, verified like any download."""
        try:
            fh = other.open_key(key)
        except FileNotFoundError:
            raise _Refused("not there") from None
        except OSError as exc:
            raise _Refused(one_line(exc, 300, joined=True)) from None

        def readinto(buf: memoryview) -> int:
            try:
                return fh.readinto(buf)  # type: ignore[attr-defined]
            except OSError as exc:
                raise _Refused(f"reading failed: {one_line(exc, 300, joined=True)}") from None

        try:
            return self._copy(readinto, key, size, checksum, "store")
        finally:
            fh.close()

    def _copy(
        self, readinto: Callable[[memoryview], int], key: str, size: Optional[int], checksum: Checksum, origin: str
    ) -> bool:
        """Read the bytes into the store, hashing; put them in place only if they are the key's bytes.

        ``readinto(buffer) -> n`` fills a reused buffer (0 at the end): no allocation per chunk. A large
        file is hashed in a thread of its own (:class:`_Hasher`), so that its next buffer is read and
        written while the last one is hashed, on another core when there is one."""
        if size is not None and size >= PIPELINE_MIN:
            hasher: _Hasher | _InlineHasher = _Hasher(checksum)
        else:  # a buffer of the file's size, not 1 MiB for each file of 10 kB
            hasher = _InlineHasher(checksum, CHUNK if size is None else min(CHUNK, max(size, 1)))
        try:
            got = 0
            with self.store.receive(key) as incoming:
                while True:
                    buf = hasher.buffer()
                    n = readinto(buf)
                    if not n:
                        break
                    if self.stop.is_set():
                        raise _Refused("interrupted")
                    got += n
                    if size is not None and got > size:
                        raise _Refused(f"wrong bytes from {origin} (more than the key's {size} bytes)")
                    incoming.write(buf[:n])
                    hasher.update(buf, n)  # the buffer is the hasher's until it gives it back
                    if self.on_bytes is not None:
                        self.on_bytes(key, got)
                    crashpoint("keep-copy")  # mid-file: the bytes so far are only in the temp file
                if size is not None and got != size:
                    raise _Refused(f"wrong bytes from {origin} ({got} bytes, the key says {size})")
                hexdigest = hasher.hexdigest()
                if hexdigest != checksum.digest:
                    raise _Refused(
                        f"wrong bytes from {origin} ({checksum.algorithm} {hexdigest[:16]}…, "
                        f"the key says {checksum.digest[:16]}…)"
                    )
                placed = incoming.commit()
            crashpoint("keep-stored")  # in the store, not yet recorded in any git-annex branch
            return placed
        except OSError as exc:  # the store's disk or bucket (StoreWriteError), not the source: fail the file, loudly
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _Full(
                    f"the store {self.store.url} is full ({exc.strerror}): free space there or keep elsewhere"
                ) from None
            raise _Refused(f"writing to the store failed: {exc}") from None
        finally:
            hasher.close()


def _body_reader(response: Any) -> Callable[[memoryview], int]:
    """``readinto`` for a urllib3 response's body, raw (no ``Content-Encoding`` decoding).

    The body is read straight into the caller's buffer through the ``http.client`` response under
    urllib3's (``response._fp``: what urllib3's own ``read`` calls, which allocates a new bytes object
    per chunk); anything else falls back to urllib3's ``read``, copied into the buffer.
    """
    import http.client

    raw = getattr(response, "_fp", None)
    direct = raw.readinto if isinstance(raw, http.client.HTTPResponse) else None

    def readinto(buf: memoryview) -> int:
        # the source's failures (a read timeout: a stalled archive; a reset; a cut chunk) are this URL's:
        # not to be taken for the store's (OSError in _copy) nor to end the run
        try:
            if direct is not None:
                return int(direct(buf))
            data = response.read(len(buf), decode_content=False)
        except (OSError, http.client.HTTPException) as exc:
            raise _Refused(f"reading failed: {one_line(exc, 300, joined=True)}") from None
        buf[: len(data)] = data
        return len(data)

    return readinto


def read_back(store: Store, key: str, size: Optional[int]) -> tuple[str, str]:
    """("good" | "bad" | "missing" | "unreadable", why) for the store's copy of ``key``, read and hashed.

    ``verify --stores`` re-reads copies with it; ``keep`` reads back a copy it finds in the store
    without a check recorded (one a killed keep put there before it could record it)."""
    checksum = key_checksum(key)
    if checksum is None:
        return "good", "no checksum in the key: its size only"
    try:
        fh = store.open_key(key)
    except FileNotFoundError:
        return "missing", "the store has no copy under the key's name"
    except OSError as exc:
        return "unreadable", one_line(exc, 300, joined=True)
    digest, got = checksum.new(), 0
    try:
        while True:
            data = fh.read(CHUNK)
            if not data:
                break
            got += len(data)
            digest.update(data)
    except OSError as exc:
        return "unreadable", one_line(exc, 300, joined=True)
    finally:
        fh.close()
    if size is not None and got != size:
        return "bad", f"{got} bytes, the key says {size}"
    if digest.hexdigest() != checksum.digest:
        return "bad", f"{checksum.algorithm} {digest.hexdigest()[:16]}…, the key says {checksum.digest[:16]}…"
    return "good", ""


class _InlineHasher:
    """One buffer, hashed on the reading thread: a small file's way (a thread would cost more than it saves)."""

    def __init__(self, checksum: Checksum, size: int = CHUNK):
        self.digest = checksum.new()
        self._buf = memoryview(bytearray(size))

    def buffer(self) -> memoryview:
        return self._buf

    def update(self, buf: memoryview, n: int) -> None:
        self.digest.update(buf[:n])

    def hexdigest(self) -> str:
        return str(self.digest.hexdigest())

    def close(self) -> None:
        pass


class _Hasher:
    """Hashing in a thread beside the reads: buffers go round, filled by the reader, hashed here, given back.

    hashlib releases the GIL over large buffers, so the hash of one buffer runs while the reader's
    ``recv``/``write`` of the next do; every byte is still hashed, in order, before :meth:`hexdigest`.
    """

    BUFFERS = 3

    def __init__(self, checksum: Checksum):
        import queue

        self.digest = checksum.new()
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[Optional[tuple[memoryview, int]]] = queue.SimpleQueue()
        for _ in range(self.BUFFERS):
            self._free.put(memoryview(bytearray(CHUNK)))
        self._thread = threading.Thread(target=self._run, name="keep-hash", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            buf, n = item
            self.digest.update(buf[:n])
            self._free.put(buf)

    def buffer(self) -> memoryview:
        return self._free.get()

    def update(self, buf: memoryview, n: int) -> None:
        self._full.put((buf, n))

    def hexdigest(self) -> str:
        self.close()
        return str(self.digest.hexdigest())

    def close(self) -> None:
        """Every buffer given so far hashed, and the thread ended (idempotent)."""
        if not self._closed:
            self._closed = True
            self._full.put(None)
            self._thread.join()


class _Pools(Pools):
    """urllib3 pools for the URLs' hosts, through the proxy the environment names (:mod:`neuromirror.network.pools`)."""

    def __init__(self, maxsize: int):
        super().__init__(maxsize)  # every request names the mirror (network.identity)

    def get(self, url: str) -> Any:
        """``GET url`` (redirects followed), its body not yet read."""
        import urllib3

        return self.manager(url).request(
            "GET",
            url,
            preload_content=False,
            redirect=True,
            retries=urllib3.Retry(total=3, connect=2, read=0, status=0, redirect=10, raise_on_redirect=True),
            timeout=urllib3.Timeout(connect=TIMEOUT[0], read=TIMEOUT[1]),
        )


class _Refused(Exception):
    """This URL did not give the key's bytes (the message says why); the next one is tried."""


class _Full(Exception):
    """The store's disk is full (or over quota): no other source can help, and no other key will fit."""

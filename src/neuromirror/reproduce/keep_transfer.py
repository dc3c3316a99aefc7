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

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from neuromirror.annex.keys import key_hash
from neuromirror.store.base import Store
from neuromirror.util.crashpoints import crashpoint

CHUNK = 1 << 20
#: (connect, read) seconds: a stalled archive fails the URL, not the run
TIMEOUT = (30, 300)
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Checksum:
    """How a key checks its bytes: a hashlib algorithm and the digest the key names."""

    algorithm: str
    digest: str

    def new(self) -> Any:
        return hashlib.new(self.algorithm)


def key_checksum(key: str) -> Optional[Checksum]:
    """The checksum a key carries (:func:`~neuromirror.annex.keys.key_hash`), when its digest is one this
    Python can compute and has the algorithm's length; None otherwise (VURL, URL, WORM keys)."""
    named = key_hash(key)
    if named is None or named[0] not in hashlib.algorithms_available:
        return None
    algorithm, digest = named
    if len(digest) != hashlib.new(algorithm).digest_size * 2 or not _HEX.fullmatch(digest):
        return None
    return Checksum(algorithm, digest)


def http_urls(urls: Sequence[str]) -> list[str]:
    return [u for u in urls if u.startswith(("http://", "https://"))]


@dataclass
class Outcome:
    key: str
    ok: bool
    placed: bool = False  # False with ok: another process put the same bytes there first
    why: str = ""


class Transfer:
    """Callable from many threads: ``transfer(key, size, urls) -> Outcome``; one HTTP session per thread."""

    def __init__(self, store: Store, on_bytes: Optional[Callable[[str, int], None]] = None):
        self.store = store
        self.on_bytes = on_bytes
        self.stop = threading.Event()
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._lock = threading.Lock()

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = "neuromirror-keep"
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()

    def __call__(self, key: str, size: Optional[int], urls: Sequence[str]) -> Outcome:
        checksum = key_checksum(key)
        if checksum is None:
            return Outcome(key, False, why="the key has no checksum of its own: its bytes cannot be verified")
        errors: list[str] = []
        for url in http_urls(urls):
            if self.stop.is_set():
                return Outcome(key, False, why="interrupted")
            try:
                placed = self._one(url, key, size, checksum)
            except _Refused as exc:
                errors.append(f"{url}: {exc}")
                continue
            return Outcome(key, True, placed=placed)
        if not errors:
            return Outcome(key, False, why="no http(s) URL registered")
        return Outcome(key, False, why="no URL served the key's bytes: " + "; ".join(errors))

    def _one(self, url: str, key: str, size: Optional[int], checksum: Checksum) -> bool:
        import requests
        import urllib3

        try:
            with self._session().get(url, stream=True, timeout=TIMEOUT) as response:
                if response.status_code != 200:
                    raise _Refused(f"HTTP {response.status_code}")
                digest = checksum.new()
                got = 0
                with self.store.receive(key) as incoming:
                    for chunk in response.raw.stream(CHUNK, decode_content=False):
                        if self.stop.is_set():
                            raise _Refused("interrupted")
                        got += len(chunk)
                        if size is not None and got > size:
                            raise _Refused(f"wrong bytes from URL (more than the key's {size} bytes)")
                        incoming.write(chunk)
                        digest.update(chunk)
                        if self.on_bytes is not None:
                            self.on_bytes(key, got)
                        crashpoint("keep-copy")  # mid-file: the bytes so far are only in the temp file
                    if size is not None and got != size:
                        raise _Refused(f"wrong bytes from URL ({got} bytes, the key says {size})")
                    hexdigest = digest.hexdigest()
                    if hexdigest != checksum.digest:
                        raise _Refused(
                            f"wrong bytes from URL ({checksum.algorithm} {hexdigest[:16]}…, "
                            f"the key says {checksum.digest[:16]}…)"
                        )
                    placed = incoming.commit()
                crashpoint("keep-stored")  # in the store, not yet recorded in any git-annex branch
                return placed
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # raw reads raise urllib3's
            raise _Refused(_one_line(exc)) from None
        except OSError as exc:  # the store's disk, not the URL: fail the file, loudly
            raise _Refused(f"writing to the store failed: {exc}") from None


class _Refused(Exception):
    """This URL did not give the key's bytes (the message says why); the next one is tried."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]

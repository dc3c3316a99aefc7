"""A store's copy of a key, read by the mirror's own readers (``neuromirror://``, the view, ``urls --check``).

Each kind of store names its copy of a key by one URL (:meth:`neuromirror.read.urls.StoreReader.url`):

* a directory store: the object's ``file://`` path (git-annex's directory layout);
* an S3 store: its public URL when ``keep`` was given one (``NEUROMIRROR_STORE_PUBLIC_URL``), read over
  HTTP like an archive URL; else ``s3://BUCKET/PREFIX/KEY``, read here with the endpoint and credentials
  the process has (``NEUROMIRROR_STORE_ENDPOINT``, boto3's chain: ``AWS_*``, a profile, a role; none:
  unsigned), as ``restore`` reads a store;
* a packed store: ``pack+file:///PATH#KEY`` or ``pack+s3://BUCKET/PREFIX#KEY`` — the store and the key,
  not where the key lies (a repack moves keys): the store's own index says where when the bytes are read,
  and the key is one ranged read of its pack (the index files are read once per process, again only when
  a key is not found where they said).

Every read of a copy is one request to the store: :func:`read` for a range (fsspec's ``cat_file``),
:func:`open_copy` for a stream from an offset (the view's ``GET``).  Stores are opened once per process.
``urls`` prints a packed copy where it lies now (:func:`located`): the pack's URL (``file://``, the
bucket's public URL, else ``s3://``) with the key's bytes as a fragment, ``#bytes=FIRST-LAST`` (inclusive,
as an HTTP ``Range`` names them: ``curl -r FIRST-LAST URL``); :func:`byte_range` reads it back.
"""

from __future__ import annotations

import io
import re
import threading
from typing import IO, Any, Optional, cast
from urllib.parse import quote, unquote, urlsplit

#: the copies the mirror reads itself (not by plain HTTP): a file here, an S3 object, a key of a packed store
STREAMED = ("file", "s3", "pack+file", "pack+s3")
#: a range of a file read at once (a larger one is streamed)
SMALL = 4 << 20
_BYTES = re.compile(r"^bytes=(\d+)-(\d+)$")
_stores: dict[str, Any] = {}
#: what the datasets' branches record of each packed S3 store (``endpoint``, ``publicurl``), by its URL
_recorded: dict[str, dict[str, str]] = {}
_lock = threading.Lock()


def note_recorded(url: str, fields: dict[str, str]) -> None:
    """What a dataset's branch records of the packed S3 store ``url``: its endpoint and public URL, read with
    where the process names none (a reader holding no setting of the lab's reads a lab's MinIO, or names a
    pack by the bucket's public URL, as a clone's git-annex does from the same record)."""
    got = {k: fields[k] for k in ("endpoint", "publicurl") if fields.get(k)}
    if got:
        with _lock:
            _recorded.setdefault(url, got)


def scheme(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


def streamed(url: Optional[str]) -> bool:
    """Is ``url`` a store's copy that the mirror reads itself (a client could not follow a redirect to it)?"""
    return bool(url) and scheme(url or "") in STREAMED


def packed_copy(store_url: str, key: str) -> str:
    """The URL of ``key`` in the packed store ``store_url``: ``pack+...#KEY``."""
    return f"{store_url}#{quote(key, safe='')}"


def byte_range(url: Optional[str]) -> Optional[tuple[int, int]]:
    """(offset, length) a ``#bytes=FIRST-LAST`` fragment names; None: the whole object."""
    m = _BYTES.match(urlsplit(url).fragment) if url else None
    return None if m is None else (int(m.group(1)), int(m.group(2)) - int(m.group(1)) + 1)


def _window(span: Optional[tuple[int, int]], start: Optional[int], end: Optional[int]) -> tuple[int, Optional[int]]:
    """(offset, length) in the object of bytes ``[start:end]`` of a copy lying at ``span`` (None: all of it)."""
    base, size = span if span is not None else (0, None)
    lo = max(0, start or 0) if size is None else min(size, max(0, start or 0))
    hi = size if end is None else (end if size is None else min(size, end))
    return base + lo, None if hi is None else max(0, hi - lo)


# -- the stores ------------------------------------------------------------------------------------
def _store(url: str) -> Any:
    """The store ``url`` names, opened once per process (nothing is asked of it until it is read); an S3
    object's bucket is opened as the store ``s3://BUCKET``: the process's endpoint and credentials."""
    from neuromirror.store.location import open_store

    with _lock:
        got = _stores.get(url)
        if got is None:
            got = _stores[url] = open_store(url, recorded=_recorded.get(url))
        return got


def _packed(url: str) -> tuple[Any, str]:
    """(the packed store, the key) of a ``pack+...#KEY`` URL."""
    head, _, key = url.partition("#")
    return _store(head), unquote(key)


def _s3_object(url: str) -> tuple[Any, str]:
    """(the bucket's S3 store, the object's name) of an ``s3://BUCKET/NAME`` URL."""
    parts = urlsplit(url)
    return _store(f"s3://{parts.netloc}"), unquote(parts.path.lstrip("/"))


# -- reading ---------------------------------------------------------------------------------------
def read(url: str, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
    """Bytes ``[start:end]`` of the copy ``url`` names (one request to its store)."""
    if scheme(url).startswith("pack+"):
        store, key = _packed(url)
        return bytes(store.read_range(key, start, end))  # a repacked key is looked up again by the store
    with open_copy(url, start, end) as fh:
        return fh.read()


def open_copy(url: str, start: Optional[int] = None, end: Optional[int] = None) -> IO[bytes]:
    """A stream of bytes ``[start:end]`` of the copy ``url`` names, from one request to its store."""
    kind = scheme(url)
    if kind == "file":
        return _open_file(url, start, end)
    if kind == "s3":
        return _open_s3(url, start, end)
    if kind.startswith("pack+"):
        return _open_packed(url, start, end)
    raise ValueError(f"{url}: not a store's copy read here")


def _open_file(url: str, start: Optional[int], end: Optional[int]) -> IO[bytes]:
    offset, length = _window(byte_range(url), start, end)
    fh = open(unquote(urlsplit(url).path), "rb")
    fh.seek(offset)
    if length is None:
        return fh
    if length < SMALL:
        with fh:
            return io.BytesIO(fh.read(length))
    return cast(IO[bytes], io.BufferedReader(_Limited(fh, length), 1 << 20))


class _Limited(io.RawIOBase):
    """At most ``left`` bytes of an open file, from where it stands."""

    def __init__(self, fh: IO[bytes], left: int) -> None:
        self._fh, self._left = fh, left

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)[: max(0, self._left)]
        n = self._fh.readinto(view) if len(view) else 0  # type: ignore[attr-defined]
        self._left -= n or 0
        return int(n or 0)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _open_s3(url: str, start: Optional[int], end: Optional[int]) -> IO[bytes]:
    from neuromirror.store.s3 import boto_errors, error_code

    store, name = _s3_object(url)
    offset, length = _window(byte_range(url), start, end)
    if length == 0:
        return io.BytesIO(b"")
    extra = {}
    if offset or length is not None:
        extra["Range"] = f"bytes={offset}-{'' if length is None else offset + length - 1}"
    try:
        got = store.client().get_object(Bucket=store.bucket, Key=name, **extra)
    except boto_errors() as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(f"{url}: no such object") from None
        raise OSError(f"{url}: {error_code(exc) or type(exc).__name__}: {exc}") from None
    return cast(IO[bytes], got["Body"])


def _open_packed(url: str, start: Optional[int], end: Optional[int]) -> IO[bytes]:
    """One ranged read of the key's pack (the store looks a repacked key up again, asks a cold pack's thaw)."""
    store, key = _packed(url)
    return cast(IO[bytes], store.open_range(key, start, end))


# -- what is there -----------------------------------------------------------------------------------
def status(url: str) -> Optional[str]:
    """None when the copy ``url`` names is there (one request at most), else why not."""
    kind = scheme(url)
    try:
        if kind == "file":
            from pathlib import Path

            return None if Path(unquote(urlsplit(url).path)).is_file() else "no such file"
        if kind == "s3":
            store, name = _s3_object(url)
            store.client().head_object(Bucket=store.bucket, Key=name)
            return None
        if kind.startswith("pack+"):
            store, key = _packed(url)
            return None if store.where(key) is not None else "no pack holds it"
    except Exception as exc:  # noqa: BLE001 - a bucket's or a disk's error: the copy is not readable
        return f"{type(exc).__name__}: {exc}"
    return f"{url}: not a store's copy read here"


def located(url: str) -> str:
    """Where a packed copy lies now, as ``urls`` prints it: its pack's URL and ``#bytes=FIRST-LAST``
    (the pack's file, the bucket's public URL, else ``s3://``); any other URL as it is, and a packed copy
    whose store does not answer as its store and key."""
    if not scheme(url).startswith("pack+"):
        return url
    from neuromirror.store.packs.layout import pack_object

    try:
        store, key = _packed(url)
        got = store.where(key)
    except Exception:  # noqa: BLE001 - not readable here: the store and the key still name the copy
        return url
    if got is None:
        return url
    pack, offset, length = got
    where = store.object_url(pack) or f"s3://{store.s3.bucket}/{quote(store.s3.prefix + pack_object(pack))}"
    return f"{where}#bytes={offset}-{offset + length - 1}"

"""Where a store keeps a key's bytes as an object of its own place: URL, offset, length, and what guards it.

A reader outside the mirror (Icechunk's virtual chunk references, ``export --icechunk --from STORE``) reads a
kept key straight from the store's files or objects, without the mirror: it needs the object holding the bytes
(a directory store's file, an S3 store's object, a packed store's pack), where in it they lie, and what says the
object is unchanged (an S3 object's ETag; a file's modification time).  A pack's name is the SHA-256 of its
bytes and a key's file or object holds exactly that key's bytes, so none of them changes while it exists.

Lives in ``store`` because it asks each kind how it lays keys out (outside ``store`` nobody asks a store's kind).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import quote

from neuromirror.errors import UserError
from neuromirror.store.directory import DirectoryStore
from neuromirror.store.packs.backend import DirectoryBackend
from neuromirror.store.packs.layout import pack_object
from neuromirror.store.packs.store import PackStore
from neuromirror.store.s3 import S3Store
from neuromirror.store.s3_client import boto_errors
from neuromirror.util.text import one_line

#: HEAD requests at once when an S3 store's objects' ETags are asked
HEADS_AT_ONCE = 16


@dataclass(frozen=True)
class Place:
    """The place a store's objects live: ``prefix`` (``file:///DIR/`` or ``s3://BUCKET/PREFIX/``), the local
    directory it is (file), or the bucket's endpoint and region (S3)."""

    prefix: str
    directory: Optional[str] = None
    endpoint: Optional[str] = None
    region: Optional[str] = None


@dataclass(frozen=True)
class Extent:
    """A key's bytes: ``length`` bytes at ``offset`` of the object at ``url`` (under its store's place).
    ``etag``: the object's S3 ETag (quoted, as S3 sends it); ``modified``: a file's last change (whole seconds,
    rounded up)."""

    url: str
    offset: int
    length: int
    etag: Optional[str] = None
    modified: Optional[int] = None


def place_of(store: Any) -> Place:
    """Where ``store`` keeps its objects (:class:`UserError` for a kind no outside reader can be pointed at)."""
    s3 = store.s3 if isinstance(store, PackStore) else store if isinstance(store, S3Store) else None
    if s3 is not None:
        return Place(f"s3://{s3.bucket}/{s3.prefix}", endpoint=s3.endpoint, region=s3.region)
    directory = _directory(store)
    if directory is None:
        raise UserError(f"{store.url}: a store of this kind has no objects a reader outside the mirror can open")
    return Place(_file_url(directory) + "/", directory=str(directory))


def extents(store: Any, keys: Iterable[str]) -> dict[str, Extent]:
    """Where ``store`` keeps each of ``keys`` (a key it does not hold is left out)."""
    wanted = list(dict.fromkeys(keys))
    if isinstance(store, PackStore):
        return _packed(store, wanted)
    if isinstance(store, S3Store):
        return _objects(store, wanted)
    directory = _directory(store)
    if directory is None:
        raise UserError(f"{store.url}: a store of this kind has no objects a reader outside the mirror can open")
    out = {}
    for key in wanted:
        path = store.key_path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out[key] = Extent(_file_url(path), 0, st.st_size, modified=math.ceil(st.st_mtime))
    return out


def _directory(store: Any) -> Optional[Path]:
    if isinstance(store, DirectoryStore):
        return store.path
    if isinstance(store, PackStore) and isinstance(store.backend, DirectoryBackend):
        return store.backend.path
    return None


def _file_url(path: Path) -> str:
    return "file://" + quote(os.path.abspath(path), safe="/~")


def _packed(store: PackStore, keys: list[str]) -> dict[str, Extent]:
    """Each key's pack, offset and length from the store's index files; each pack's guard asked once."""
    place = place_of(store)
    guards: dict[str, tuple[Optional[str], Optional[int]]] = {}
    out = {}
    for key in keys:
        got = store.where(key)
        if got is None:
            continue
        pack, offset, length = got
        if pack not in guards:
            guards[pack] = _pack_guard(store, pack)
        etag, modified = guards[pack]
        out[key] = Extent(place.prefix + quote(pack_object(pack), safe="/~"), offset, length, etag, modified)
    return out


def _pack_guard(store: PackStore, pack: str) -> tuple[Optional[str], Optional[int]]:
    """A pack's ETag (S3) or modification time (a directory)."""
    if isinstance(store.backend, DirectoryBackend):
        return None, math.ceil((store.backend.path / pack_object(pack)).stat().st_mtime)
    return _etag(store.s3, str(store.s3.prefix) + pack_object(pack)), None


def _objects(store: S3Store, keys: list[str]) -> dict[str, Extent]:
    """An S3 store's object per key, each one's size and ETag asked by a HEAD (several at once)."""

    def head(key: str) -> Optional[tuple[str, Extent]]:
        name = store.object_name(key)
        try:
            got = store.client().head_object(Bucket=store.bucket, Key=name)
        except boto_errors() as exc:
            if "404" in str(exc) or "Not Found" in str(exc):
                return None
            raise UserError(f"S3 store {store.url}: asking for {key} failed: {one_line(exc, 300)}") from None
        url = f"s3://{store.bucket}/{quote(name, safe='/~')}"
        return key, Extent(url, 0, int(got["ContentLength"]), etag=got.get("ETag"))

    with ThreadPoolExecutor(HEADS_AT_ONCE) as pool:
        return dict(found for found in pool.map(head, keys) if found is not None)


def _etag(s3: Any, name: str) -> Optional[str]:
    try:
        return s3.client().head_object(Bucket=s3.bucket, Key=name).get("ETag")
    except boto_errors() as exc:
        raise UserError(f"S3 store {s3.url}: asking for {name} failed: {one_line(exc, 300)}") from None

"""What each listed object becomes: a file in git (sidecars, small text) or an annexed file with a key.

Keys are made without downloading anything where S3 says enough: a single-part
ETag is the content's MD5 (an MD5E key); a multipart ETag is no content hash, so
such an object gets a VURL key, or with ``--hash`` is streamed once for a SHA256E
key (cached per object version, never hashed twice).  Objects are taken in
batches, so that the downloads and hashes of a batch run side by side.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Iterable, Iterator, Optional

from neuromirror.annex.keys import md5e_key, sha256e_key, url_key
from neuromirror.records import (
    MD5,
    SHA256,
    VERIFY_ON_GET,
    AnnexEntry,
    Entry,
    GitEntry,
    ProgressCallback,
    Refusal,
    Snapshot,
    SourceState,
)
from neuromirror.sources.aind.context import MirroredAsset
from neuromirror.sources.aind.listing import Listing, Obj
from neuromirror.sources.aind.metadata import read_sidecars
from neuromirror.sources.aind.s3 import WORKERS, _load_text, fetch_object, hash_object
from neuromirror.sources.aind.zarrs import open_zarrs, zarr_executor, zarr_of
from neuromirror.util.paths import check_path

log = logging.getLogger("neuromirror.aind")

#: other small text (anywhere in the asset, Zarr metadata included) up to this size goes into git
TEXT_MAX_BYTES = 256 << 10
TEXT_EXTENSIONS = {".json", ".jsonld", ".yaml", ".yml", ".txt", ".md", ".rst", ".csv", ".tsv", ".log", ".xml"}
TEXT_NAMES = {"README", "LICENSE", "CHANGES", "CITATION", ".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"}
SHA_NAMESPACE = "aind-sha256"
BATCH = 500

_MD5_RE = re.compile(r"^[0-9a-f]{32}$")


def is_text(rel: str, size: int) -> bool:
    if size > TEXT_MAX_BYTES:
        return False
    name = rel[rel.rfind("/") + 1 :]
    stem, ext = posixpath.splitext(name)
    return name in TEXT_NAMES or ext.lower() in TEXT_EXTENSIONS or (ext == "" and stem.upper() in TEXT_NAMES)


def entries_of(
    src: MirroredAsset,
    objects: Iterable[Obj],
    listing: Listing,
    sidecars: dict[str, bytes],
    snap: Snapshot,
    state: SourceState,
    progress: Optional[ProgressCallback],
) -> Iterator[Entry]:
    """Entries of ``objects`` in batches; sidecars the listing has noted since the last batch are read first."""
    batch: list[Obj] = []
    done = 0
    total = listing.count if listing.keep else None  # a listing still going on has no total yet
    with ThreadPoolExecutor(WORKERS) as pool, closing(listing), zarr_executor(src) as executor:
        stores = open_zarrs(src, snap, state, executor)

        def flush() -> Iterator[Entry]:
            nonlocal batch, done
            if len(sidecars) < len(listing.sidecars):
                sidecars.update(read_sidecars(src.settings, src.asset_prefix, listing.sidecars[len(sidecars) :]))
            for o, e in _resolve(src, batch, sidecars, snap, state, pool):
                store = zarr_of(e.path) if stores is not None else None
                if store is None or stores is None:
                    yield e
                else:
                    # becomes the store's dataset, not a file here (S3's own fields: its Zarr manifest)
                    stores.add(store, e, o.modified, o.version_id, o.etag)
            done += len(batch)
            batch = []
            if progress:
                progress("objects", done, total)

        for o in objects:
            batch.append(o)
            if len(batch) >= BATCH:
                yield from flush()
        if batch:
            yield from flush()
        if stores is not None:
            yield from stores.entries()


def _cache_key(src: MirroredAsset, o: Obj) -> str:
    return f"{src.settings.bucket}/{o.key}@{o.version_id or ''}#{o.etag}:{o.size}"


def _plan(
    src: MirroredAsset, batch: list[Obj], sidecars: dict[str, bytes], snap: Snapshot, state: SourceState
) -> tuple[list[tuple[Obj, str, str]], list[Obj], list[Obj], dict[str, str]]:
    """How each object of a batch becomes an entry, in listing order: (object, relative path, how)
    with how one of sidecar, text, md5, sha256, vurl; the objects to download (text) and to hash
    (sha256) because the index knows no sha256 for them yet; and the sha256s it knows (by S3 key).
    Objects refused (path, folder placeholders with content) are recorded in ``snap``."""
    s = src.settings
    plan: list[tuple[Obj, str, str]] = []  # (object, relative path, how)
    fetch: list[Obj] = []
    hashing: list[Obj] = []
    known: dict[str, str] = {}
    for o in batch:
        rel = o.key[len(src.asset_prefix) :]
        if rel.endswith("/") and o.size == 0:
            continue  # a "folder" placeholder object, not a file
        reason = "S3 key ends with '/' but has content" if rel.endswith("/") else check_path(rel, src.reserved)
        if reason:
            snap.refused.append(Refusal(rel, f"{reason} (S3 key {o.key!r})"))
            log.info("%s: refusing S3 key %r: %s", src.id, o.key, reason)
            continue
        if rel in sidecars:
            plan.append((o, rel, "sidecar"))
            continue
        md5 = o.etag.lower() if _MD5_RE.match(o.etag.lower()) else None
        if is_text(rel, o.size):
            how = "text"
        elif md5:
            how = "md5"
        elif s.wants_hash(o.size):
            how = "sha256"
        else:
            how = "vurl"
        if how in ("text", "sha256"):
            cached = state.cache_get(SHA_NAMESPACE, _cache_key(src, o))
            if cached:
                known[o.key] = cached
            elif how == "text":
                fetch.append(o)
            else:
                hashing.append(o)
        plan.append((o, rel, how))
    return plan, fetch, hashing, known


def _resolve(
    src: MirroredAsset,
    batch: list[Obj],
    sidecars: dict[str, bytes],
    snap: Snapshot,
    state: SourceState,
    pool: ThreadPoolExecutor,
) -> Iterator[tuple[Obj, Entry]]:
    """One batch's objects and their entries in listing order; what must be downloaded or hashed for them is, side by side."""
    s = src.settings
    plan, fetch, hashing, known = _plan(src, batch, sidecars, snap, state)
    contents: dict[str, bytes] = {}
    if fetch:
        for o, data in zip(fetch, pool.map(lambda o: fetch_object(s, o.key, o.version_id, o.etag, o.size), fetch)):
            contents[o.key] = data
            known[o.key] = hashlib.sha256(data).hexdigest()
            state.cache_put(SHA_NAMESPACE, _cache_key(src, o), known[o.key])
    if hashing:
        for o, sha in zip(hashing, pool.map(lambda o: hash_object(s, o.key, o.version_id, o.etag, o.size), hashing)):
            known[o.key] = sha
            state.cache_put(SHA_NAMESPACE, _cache_key(src, o), sha)
    for o, rel, how in plan:
        remote_id = f"{o.key}@{o.version_id}" if o.version_id else o.key
        if how == "sidecar":
            yield o, GitEntry(rel, sidecars[rel], remote_id)
            continue
        if how == "text":
            # a versioned object's URL serves these bytes: registered for ``urls`` (an unversioned one could not)
            pinned = (s.object_url(o.key, o.version_id),) if o.version_id else ()
            if o.key in contents:
                yield o, GitEntry(rel, contents[o.key], remote_id, urls=pinned)
            else:
                yield (
                    o,
                    GitEntry(
                        rel,
                        None,
                        remote_id,
                        known[o.key],
                        o.size,
                        functools.partial(_load_text, s, o.key, o.version_id, o.etag, o.size),
                        pinned,
                    ),
                )
            continue
        url = s.object_url(o.key, o.version_id)
        if how == "md5":
            md5 = o.etag.lower()
            yield o, AnnexEntry(rel, md5e_key(md5, o.size, rel), o.size, (url,), MD5, md5, remote_id)
        elif how == "sha256":
            sha = known[o.key]
            yield o, AnnexEntry(rel, sha256e_key(sha, o.size, rel), o.size, (url,), SHA256, sha, remote_id)
        else:
            # pinned URLs name one immutable version; a plain URL may be overwritten, so the
            # ETag joins the key's name: new content upstream -> a new key, never a failed check
            seed = url if o.version_id else f"{url}#etag={o.etag}"
            yield o, AnnexEntry(rel, url_key(seed, o.size), o.size, (url,), VERIFY_ON_GET, None, remote_id)

"""Recording a store in a dataset's ``git-annex`` branch: the remote, and the keys it holds.

Two steps, both idempotent (a rerun writes nothing new), neither touching the work tree, both written
by the branch's one writer (:mod:`neuromirror.annex.branch_writer`):

1. the store as a special remote every clone enables by itself: its ``remote.log`` line (with
   ``directory=``, ``autoenable=true`` and its ``cost=``: :mod:`.annexlog`) and its ``uuid.log``
   description (``git annex describe`` would need the remote enabled in the mirror's own dataset,
   which it never is);
2. which keys the store holds: a line ``<stamp>s 1 <uuid>`` in each key's location log that does not
   list the store yet, the line ``git annex setpresentkey KEY UUID 1`` writes, committed on the
   branch as the sync commits its logs, in the same commit as the remote's lines; then ``git annex
   whereis`` names the store.

The caller holds the source's lock (``Mirror.lock``), so that no sync writes the branch meanwhile,
and records only keys whose bytes are in the store (verified before they got there).
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from neuromirror.annex.blobmap import BlobMap
from neuromirror.annex.branch_writer import Batch, TopEdit, read_top, write
from neuromirror.annex.branch_writer import commit_top_files as _commit_top_files  # noqa: F401 (tests' name)
from neuromirror.annex.keys import log_path
from neuromirror.annex.logs import BRANCH, branch_head, log_state
from neuromirror.store.annexlog import (
    recorded_stores,
    remote_fields,
    remote_log_with,
    uuid_log_with,
    with_directory_costs,
)
from neuromirror.store.base import FIRST_COST as DIRECTORY_COST
from neuromirror.store.base import Recorded
from neuromirror.util import gitutil

__all__ = ["BRANCH", "ensure_remote", "record_present", "record_absent", "present_in"]


def _remote_lines(store: Recorded, now: Optional[float]) -> dict[str, TopEdit]:
    """The store's ``remote.log`` and ``uuid.log`` lines, as edits of the branch's files."""
    uuid = store.identity.uuid
    return {
        "remote.log": lambda old: remote_log_with(old, uuid, remote_fields(store), now),
        "uuid.log": lambda old: uuid_log_with(old, uuid, store.description(), now),
    }


def ensure_remote(repo: Path, store: Recorded, *, now: Optional[float] = None) -> bool:
    """The store's ``remote.log`` and ``uuid.log`` lines on the branch; True if a commit was made."""
    batch = Batch(top=_remote_lines(store, now))
    if now is not None:
        batch.now = now
    return bool(write(repo, batch).top)


def present_in(repo: Path, uuid: str, keys: Sequence[str]) -> set[str]:
    """The ``keys`` whose location log on the branch says ``uuid`` has them."""
    return {k for k, there in present_stores(repo, keys).items() if uuid in there}


def log_blobs(repo: Path, ref: str, dirs: Sequence[str] = ()) -> BlobMap:
    """path -> blob id of every location log (``*.log``) on the branch at ``ref``: one listing of its tree
    (``dirs``: of those top-level directories only).  A few directories: ``git ls-tree`` names them; more,
    or the whole branch: read tree by tree (:meth:`BlobMap.walked`), since ls-tree holds every tree it read
    (a keep's chunk of 20,000 keys recorded 100,000 at a time names ~800 of the 4,096: 100 MB in ls-tree)."""
    if dirs and len(dirs) <= _DIRS_LISTED:
        return BlobMap.listed(repo, ref, ".log", dirs)
    return BlobMap.walked(repo, ref, ".log", dirs)


#: up to this many top-level directories are named to ``git ls-tree`` (git matches every entry against every
#: name: 4,096 names cost more than the listing they spare); more are walked
_DIRS_LISTED = 128


def present_stores(
    repo: Path, keys: Sequence[str], ref: Optional[str] = None, blobs: Optional[BlobMap] = None
) -> dict[str, frozenset[str]]:
    """key -> the UUIDs its location log on the branch (at ``ref``, default its head) says have it, for the
    ``keys`` some UUID has: every store in one reading, where asking :func:`present_in` per store reads
    every log once per store.  ``blobs``: :func:`log_blobs` at ``ref``, when the caller has it."""
    if not keys:
        return {}
    ref = ref or branch_head(repo)
    if ref is None:
        return {}
    out: dict[str, frozenset[str]] = {}
    shared: dict[frozenset[str], frozenset[str]] = {}  # one object per set of stores: few differ
    for k, data in location_logs(repo, ref, keys, blobs):
        there = frozenset(u for u, live in log_state(data).items() if live)
        if there:
            out[k] = shared.setdefault(there, there)
    return out


#: below this many keys each log is read by path (``ref:abc/def/KEY.log``: three trees searched,
#: ~0.3 ms a key); from it on, one listing of the branch (~0.1 s for 10^4 keys' logs) and the logs
#: by blob id
_LISTED_MIN = 1000


def location_logs(
    repo: Path, ref: str, keys: Sequence[str], blobs: Optional[BlobMap] = None
) -> list[tuple[str, Optional[bytes]]]:
    """(key, its location log on the branch at ``ref``, None without one) for each of ``keys``, in one
    ``cat-file`` batch; ``blobs``: :func:`log_blobs` at ``ref``, when the caller has it."""
    paths = [log_path(k) for k in keys]
    with gitutil.CatFile(repo, lean=True) as cat:  # each log read once: git's caches would only hold the packs
        if blobs is None and len(keys) < _LISTED_MIN:
            return list(zip(keys, cat.get_many(f"{ref}:{p}" for p in paths)))
        if blobs is None:
            blobs = log_blobs(repo, ref, sorted({p[:3] for p in paths}))
        there = [(k, sha) for k, sha in zip(keys, blobs.get_many(paths)) if sha is not None]
        found = dict(zip((k for k, _ in there), cat.get_many(b for _, b in there)))
    return [(k, found.get(k)) for k in keys]


def record_present(repo: Path, store: Recorded, keys: Iterable[str]) -> int:
    """Record ``keys`` (whose bytes the store holds) as present in the store; how many were new.

    Their location logs are written as the sync writes them (:mod:`neuromirror.annex.branch_writer`:
    a commit on the branch per :data:`CHUNK` keys, the first with the store's remote lines, each moved
    last), in git-annex's own format (``<stamp>s 1 <uuid>``, the line ``git annex setpresentkey KEY UUID 1``
    writes).  Not git-annex itself: its start, its journal and the read-back cost ~0.1 s a call, a fifth
    of a keep's fixed part (0.48 -> 0.37 s, issue 40); ``test_store_record`` holds the two to the same logs.
    """
    each = chunks(keys)
    first = next(each, None)
    if first is None:
        return 0
    now = time.time()
    written, top = 0, _remote_lines(store, now)
    # the branch never claims bytes that are not on disk: the store is synced before any key is recorded,
    # and meanwhile (the disk's time, not ours) the branch is read
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-sync") as syncing:
        synced = syncing.submit(store.sync)
        for chunk in itertools.chain([first], each):
            batch = Batch(now=now, top=top).present(store.identity.uuid, chunk)
            written += len(write(repo, batch, read=partial(location_logs, repo), before_commit=synced.result).keys)
            top = {}
        synced.result()
    return written


#: keys written per commit on the branch: a chunk's logs are read, changed and committed before the next
#: chunk is looked at, so that memory (here and in git's children) follows the chunk, not the version (a keep
#: of 10^6 Zarr chunks held ~2.3 KB a key while it recorded them all at once; a chunk costs ~1.5 KB a key
#: while it is written, and ~0.05 s of fixed work: 2.5 s for 10^6 keys)
CHUNK = 20_000


def chunks(keys: Iterable[str], size: Optional[int] = None) -> Iterator[list[str]]:
    """``keys`` once each, in chunks of about ``size`` (default :data:`CHUNK`) whole top-level directories of
    the branch (``abc/``), in the branch's order: each chunk's commit lists and rewrites its own part of the
    tree only.  Held meanwhile: a list slot per key (a key met twice is dropped as its directory is taken)."""
    size = size or CHUNK
    by_dir: dict[str, list[str]] = {}
    for k in keys:
        by_dir.setdefault(log_path(k)[:3], []).append(k)
    chunk: list[str] = []
    for d in sorted(by_dir):  # the directories keys fall in only: a Zarr of 50 keys, not git-annex's 4,096
        chunk += dict.fromkeys(by_dir.pop(d))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def store_uuids(repo: Path) -> dict[str, dict[str, str]]:
    """uuid -> fields of the stores ``repo``'s git-annex branch records."""
    ref = gitutil.branch_sha(repo, BRANCH)
    return {} if ref is None else recorded_stores(read_top(repo, ref, "remote.log"))


def record_absent(repo: Path, uuid: str, keys: Iterable[str]) -> int:
    """Record that the store ``uuid`` no longer has ``keys`` (a copy found wrong or gone): the line
    ``setpresentkey KEY UUID 0`` writes, so no clone is sent there for them. How many the branch listed there."""
    read = partial(location_logs, repo)
    return sum(len(write(repo, Batch().absent(uuid, chunk), read=read).keys) for chunk in chunks(keys))


def directory_costs_current(repo: Path, *, dry_run: bool = False) -> bool:
    """The directory stores ``repo``'s branch records say today's ``cost=`` (read before the web); True if
    a line was (or, ``dry_run``, would be) written.  The upgrade of a dataset kept into before directory
    stores were read first: its clones asked the archive's dead URLs before the store (issue 53)."""
    ref = gitutil.ref_sha(repo, BRANCH)
    if ref is None or with_directory_costs(read_top(repo, ref, "remote.log"), DIRECTORY_COST) is None:
        return False
    if dry_run:
        return True
    edit: TopEdit = lambda old: with_directory_costs(old, DIRECTORY_COST)  # noqa: E731
    return bool(write(repo, Batch(top={"remote.log": edit})).top)

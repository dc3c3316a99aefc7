"""Recording a store in a dataset's ``git-annex`` branch: the remote, and the keys it holds.

Two steps, both idempotent (a rerun writes nothing new), neither touching the work tree:

1. the store as a special remote every clone enables by itself: its ``remote.log`` line (with
   ``directory=``, ``autoenable=true`` and its ``cost=``: :mod:`.annexlog`) and its ``uuid.log``
   description, written with git plumbing in one commit on top of the branch (``git annex
   describe`` would need the remote enabled in the mirror's own dataset, which it never is);
2. which keys the store holds: a line ``<stamp>s 1 <uuid>`` in each key's location log that does not
   list the store yet, the line ``git annex setpresentkey KEY UUID 1`` writes, committed on the
   branch as the sync commits its logs; then ``git annex whereis`` names the store.

The caller holds the source's lock (``Mirror.lock``), so that no sync writes the branch meanwhile,
and records only keys whose bytes are in the store (verified before they got there).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Iterable, Optional, Sequence

from neuromirror.annex.annexbranch import write_logs
from neuromirror.annex.contract import log_stamp
from neuromirror.annex.fastimport import run_fast_import
from neuromirror.annex.keys import log_path
from neuromirror.annex.logs import BRANCH, add_present, log_state
from neuromirror.store.annexlog import recorded_stores, remote_fields, remote_log_with, uuid_log_with
from neuromirror.store.base import Recorded
from neuromirror.util import gitutil


def _git_dir(repo: Path) -> Path:
    return gitutil.git_dir(repo) or Path(gitutil.out(repo, "rev-parse", "--absolute-git-dir"))


def flush_journal(repo: Path) -> None:
    """Commit what git-annex left in its journal, so that a commit made here builds on all of it."""
    journal = _git_dir(repo) / "annex" / "journal"
    if journal.is_dir() and any(journal.iterdir()):
        gitutil.run(repo, "annex", "merge", "-q")


def _read(repo: Path, spec: str) -> Optional[bytes]:
    proc = gitutil.run(repo, "cat-file", "blob", spec, check=False)
    return proc.stdout if proc.returncode == 0 else None


def ensure_remote(repo: Path, store: Recorded, *, now: Optional[float] = None) -> bool:
    """The store's ``remote.log`` and ``uuid.log`` lines on the branch; True if a commit was made."""
    parent = gitutil.ref_sha(repo, BRANCH)
    if parent is None:
        raise gitutil.GitError(f"{repo} has no git-annex branch: not a git-annex repository")
    ident = store.identity
    changed: dict[str, bytes] = {}
    remote = remote_log_with(_read(repo, f"{parent}:remote.log"), ident.uuid, remote_fields(store), now)
    if remote is not None:
        changed["remote.log"] = remote
    described = uuid_log_with(_read(repo, f"{parent}:uuid.log"), ident.uuid, store.description(), now)
    if described is not None:
        changed["uuid.log"] = described
    if not changed:
        return False
    _commit_top_files(repo, parent, changed)
    return True


def _commit_top_files(repo: Path, parent: str, files: dict[str, bytes]) -> str:
    """A commit on the branch replacing top-level files: only the root tree is rewritten."""
    listing = gitutil.run(repo, "ls-tree", "-z", parent).stdout.split(b"\0")
    entries = [e for e in listing if e and e.split(b"\t", 1)[-1].decode("utf-8", "surrogateescape") not in files]
    for name, data in sorted(files.items()):
        blob = gitutil.run(repo, "hash-object", "-w", "--stdin", input=data).stdout.decode().strip()
        entries.append(f"100644 blob {blob}\t{name}".encode())
    tree = gitutil.run(repo, "mktree", "-z", input=b"\0".join(entries) + b"\0").stdout.decode().strip()
    commit = gitutil.out(repo, "commit-tree", tree, "-p", parent, "-m", "update")
    gitutil.run(repo, "update-ref", BRANCH, commit, parent)  # refused if the branch moved meanwhile
    return commit


def present_in(repo: Path, uuid: str, keys: Sequence[str]) -> set[str]:
    """The ``keys`` whose location log on the branch says ``uuid`` has them."""
    return {k for k, there in present_stores(repo, keys).items() if uuid in there}


def log_blobs(repo: Path, ref: str) -> dict[str, str]:
    """path -> blob id of every location log (``*.log``) on the branch at ``ref``: one listing of its tree."""
    return {path: sha for _, typ, sha, path in gitutil.ls_tree(repo, ref) if typ == "blob" and path.endswith(".log")}


def present_stores(
    repo: Path, keys: Sequence[str], ref: Optional[str] = None, blobs: Optional[dict[str, str]] = None
) -> dict[str, frozenset[str]]:
    """key -> the UUIDs its location log on the branch (at ``ref``, default its head) says have it, for the
    ``keys`` some UUID has: every store in one reading, where asking :func:`present_in` per store reads
    every log once per store.  ``blobs``: :func:`log_blobs` at ``ref``, when the caller has it."""
    ref = ref or gitutil.ref_sha(repo, BRANCH)
    if ref is None or not keys:
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
    repo: Path, ref: str, keys: Sequence[str], blobs: Optional[dict[str, str]] = None
) -> list[tuple[str, Optional[bytes]]]:
    """(key, its location log on the branch at ``ref``, None without one) for each of ``keys``, in one
    ``cat-file`` batch; ``blobs``: :func:`log_blobs` at ``ref``, when the caller has it."""
    paths = [log_path(k) for k in keys]
    with gitutil.CatFile(repo) as cat:
        if blobs is None and len(keys) < _LISTED_MIN:
            return list(zip(keys, cat.get_many(f"{ref}:{p}" for p in paths)))
        if blobs is None:
            blobs = log_blobs(repo, ref)
        there = [(k, blobs[p]) for k, p in zip(keys, paths) if p in blobs]
        found = dict(zip((k for k, _ in there), cat.get_many(b for _, b in there)))
    return [(k, found.get(k)) for k in keys]


def record_present(repo: Path, store: Recorded, keys: Iterable[str]) -> int:
    """Record ``keys`` (whose bytes the store holds) as present in the store; how many were new.

    Their location logs are written as the sync writes them (:func:`.annexbranch.write_logs`: one
    commit on the branch, moved last, compare-and-swap), in git-annex's own format (``<stamp>s 1
    <uuid>``: :func:`.logs.add_present`, the line ``git annex setpresentkey KEY UUID 1`` writes).
    Not git-annex itself: its start, its journal and the read-back cost ~0.1 s a call, a fifth of a
    keep's fixed part (0.48 -> 0.37 s, issue 40); ``test_store_record`` holds the two to the same logs.
    """
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return 0
    uuid = store.identity.uuid
    now = time.time()
    # the branch never claims bytes that are not on disk: the store is synced before any key is recorded,
    # and meanwhile (the disk's time, not ours) the branch is read and the remote recorded
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-sync") as syncing:
        synced = syncing.submit(store.sync)
        flush_journal(repo)
        ensure_remote(repo, store, now=now)
        parent = gitutil.ref_sha(repo, BRANCH)
        existing = location_logs(repo, parent, wanted) if parent else [(k, None) for k in wanted]
        synced.result()
    stamp = log_stamp(now)
    changed = [(log_path(k), new) for k, old in existing if (new := add_present(old, stamp, (uuid,))) is not None]
    if not changed:
        return 0
    commit_stamp = f"{int(now)} +0000"
    write_logs(
        repo, changed, parent, gitutil.COMMITTER, commit_stamp, partial(run_fast_import, repo), keys=len(changed)
    )
    return len(changed)


def store_uuids(repo: Path) -> dict[str, dict[str, str]]:
    """uuid -> fields of the stores ``repo``'s git-annex branch records."""
    ref = gitutil.ref_sha(repo, BRANCH)
    return {} if ref is None else recorded_stores(_read(repo, f"{ref}:remote.log"))


def record_absent(repo: Path, uuid: str, keys: Iterable[str]) -> int:
    """Record that the store ``uuid`` no longer has ``keys`` (a copy found wrong or gone): git-annex's own
    ``setpresentkey KEY UUID 0``, so no clone is sent there for them. How many the branch listed there."""
    wanted = list(dict.fromkeys(keys))
    flush_journal(repo)
    there = present_in(repo, uuid, wanted)
    todo = [k for k in wanted if k in there]
    if not todo:
        return 0
    batch = "".join(f"{k} {uuid} 0\n" for k in todo).encode()
    gitutil.run(repo, "annex", "setpresentkey", "--batch", input=batch)
    flush_journal(repo)
    left = present_in(repo, uuid, todo)
    if left:
        raise gitutil.GitError(f"git annex setpresentkey did not remove {len(left)} key(s) in {repo}")
    return len(todo)

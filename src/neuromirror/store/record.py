"""Recording a store in a dataset's ``git-annex`` branch: the remote, and the keys it holds.

Two steps, both idempotent (a rerun writes nothing new), neither touching the work tree:

1. the store as a special remote every clone enables by itself: its ``remote.log`` line (with
   ``directory=``, ``autoenable=true`` and ``cost=300``: :mod:`.annexlog`) and its ``uuid.log``
   description, written with git plumbing in one commit on top of the branch (``git annex
   describe`` would need the remote enabled in the mirror's own dataset, which it never is);
2. which keys the store holds, with git-annex's own plumbing: ``git annex setpresentkey --batch``
   (``KEY UUID 1``), for the keys whose location log does not list the store yet; then
   ``git annex whereis`` names the store.

The caller holds the source's lock (``Mirror.lock``), so that no sync writes the branch meanwhile,
and records only keys whose bytes are in the store (verified before they got there).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Optional, Sequence

from neuromirror.annex.keys import log_path
from neuromirror.annex.logs import BRANCH, log_state
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
    # one listing of the branch's tree, then the logs by blob id: a ``ref:path`` read walks three
    # trees per key (~0.3 ms each: 3 s for 10^4 keys), a listing of 10^4 keys' logs takes ~0.1 s
    if blobs is None:
        blobs = log_blobs(repo, ref)
    found = [(k, blobs[p]) for k, p in ((k, log_path(k)) for k in keys) if p in blobs]
    out: dict[str, frozenset[str]] = {}
    shared: dict[frozenset[str], frozenset[str]] = {}  # one object per set of stores: few differ
    with gitutil.CatFile(repo) as cat:
        for (k, _), data in zip(found, cat.get_many(b for _, b in found)):
            there = frozenset(u for u, live in log_state(data).items() if live)
            if there:
                out[k] = shared.setdefault(there, there)
    return out


def record_present(repo: Path, store: Recorded, keys: Iterable[str]) -> int:
    """Record ``keys`` (whose bytes the store holds) as present in the store; how many were new.

    Afterwards the branch is read back: every key must be listed, or this raises.
    """
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return 0
    uuid = store.identity.uuid
    # the branch never claims bytes that are not on disk: the store is synced before any key is recorded,
    # and meanwhile (the disk's time, not ours) the branch is read and the remote recorded
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-sync") as syncing:
        synced = syncing.submit(store.sync)
        flush_journal(repo)
        ensure_remote(repo, store)
        there = present_in(repo, uuid, wanted)  # once: one cat-file pass over the keys' logs
        synced.result()
    todo = [k for k in wanted if k not in there]
    if not todo:
        return 0
    batch = "".join(f"{k} {uuid} 1\n" for k in todo).encode()
    gitutil.run(repo, "annex", "setpresentkey", "--batch", input=batch)
    flush_journal(repo)  # annex.alwayscommit=false would leave the lines in the journal
    missing = set(todo) - present_in(repo, uuid, todo)
    if missing:
        raise gitutil.GitError(
            f"git annex setpresentkey did not record {len(missing)} key(s) in {repo}, e.g. {sorted(missing)[0]}"
        )
    return len(todo)


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

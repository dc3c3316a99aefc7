"""git-annex's per-key logs on its branch (``<key>.log``: where the content is; ``<key>.log.web``: its URLs).

Each line is ``<timestamp>s <status> <value>``; for each value the line with the newest
timestamp says whether it is present (status 1) or gone (0).  One reader for the
mirror's writer, its verification, its repair and its index rebuild, so that they
agree on what a log says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

from neuromirror.annex.keys import log_path
from neuromirror.util import gitutil

#: git-annex's branch, where the logs live
BRANCH = "refs/heads/git-annex"


def flush_journal(repo: Path) -> None:
    """Commit what git-annex left in its journal (``annex.alwayscommit=false``: URLs registered, a
    ``setpresentkey`` or a drop not committed yet), so that the branch says all of it.  On a repository this
    user cannot write (a read-only mount of the mirror) nobody wrote the journal here: the branch is read as it is."""
    if journal_pending(repo):
        gitutil.run(repo, "annex", "merge", "-q")


def journal_pending(repo: Path) -> bool:
    """Whether git-annex's journal holds what its branch does not say yet (and this user could commit it)."""
    git = gitutil.git_dir(repo) or Path(gitutil.out(repo, "rev-parse", "--absolute-git-dir"))
    journal = git / "annex" / "journal"
    return journal.is_dir() and any(journal.iterdir()) and os.access(journal, os.W_OK)


def branch_head(repo: Path) -> Optional[str]:
    """The branch's head as a reader must see it: with the journal committed first (None: no branch).  Every
    reader of the logs starts here, so that no caller flushes git-annex's journal by hand."""
    flush_journal(repo)
    return gitutil.ref_sha(repo, BRANCH)


def branch_logs(repo: Path, keys: Iterable[str], suffix: str = ".log") -> dict[str, Optional[bytes]]:
    """Each key's log (``suffix``: ``.log``, ``.log.web``) on ``repo``'s git-annex branch, in one batch.

    None for a key without one; an empty dict when the repository has no git-annex branch.
    """
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    ref = branch_head(repo)
    if ref is None:
        return {}
    with gitutil.CatFile(repo) as cat:
        return dict(zip(keys, cat.get_many(f"{ref}:{log_path(k, suffix)}" for k in keys)))


#: keys from which :func:`read_logs` reads by blob id (their directories listed once), not by path
BY_BLOB = 1000


def read_logs(repo: Path, ref: str, keys: Sequence[str], suffix: str = ".log") -> list[Optional[bytes]]:
    """Each key's log at ``ref`` (None: none), in order.  From :data:`BY_BLOB` keys on, their top-level
    directories are listed once (:class:`~neuromirror.annex.blobmap.BlobMap`) and the logs read by blob id:
    git's search of the branch's trees per ``ref:path`` (~0.5 ms a key) is spared; fewer, by path."""
    from neuromirror.annex.blobmap import BlobMap

    paths = [log_path(k, suffix) for k in keys]
    with gitutil.CatFile(repo) as cat:
        if len(paths) < BY_BLOB:
            return list(cat.get_many(f"{ref}:{p}" for p in paths))
        dirs = sorted({p.split("/", 1)[0] for p in paths})
        listing = BlobMap.listed if len(dirs) <= _DIRS_LISTED else BlobMap.walked
        return list(cat.get_many(listing(repo, ref, suffix, dirs).specs(paths)))


#: up to this many top-level directories are named to ``git ls-tree``; more are walked (as store.record does)
_DIRS_LISTED = 128


def web_log_blobs(repo: Path) -> dict[str, str]:
    """Path -> blob id of every key's URL log on the git-annex branch (empty without the branch).

    One ``ls-tree``: reading the logs by blob id afterwards spares git a search of the
    branch's 4,096-entry trees per key, which a ``git-annex:<path>`` spec costs.
    """
    if gitutil.ref_sha(repo, BRANCH) is None:
        return {}
    return {
        path: sha for _, typ, sha, path in gitutil.ls_tree(repo, BRANCH) if typ == "blob" and path.endswith(".log.web")
    }


def log_state(data: Optional[bytes]) -> dict[str, bool]:
    """value -> present?, in the order values first appear; the newest line per value wins."""
    state: dict[str, tuple[float, bool]] = {}
    if not data:
        return {}
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) != 3:
            continue
        stamp, status, value = parts
        try:
            t = float(stamp.rstrip("s"))
        except ValueError:
            t = 0.0
        old = state.get(value)
        if old is None or t >= old[0]:
            state[value] = (t, status == "1")
    return {v: present for v, (_, present) in state.items()}


def web_urls(data: Optional[bytes]) -> tuple[str, ...]:
    """The URLs a ``.log.web`` says are present, in the order first seen.

    A leading ``:`` marks a URL claimed by a special remote (git-annex's OtherDownloader,
    as ``registerurl`` writes it); the URL is what follows.
    """
    return tuple(u[1:] if u.startswith(":") else u for u, live in log_state(data).items() if live)


def web_urls_newest_first(data: Optional[bytes]) -> tuple[str, ...]:
    """:func:`web_urls`, the most recently recorded first (ties: in the order first seen).

    A key can gain a URL after its first one died: ``restore`` writing the bytes back into the
    archive's bucket gives them a new S3 versionId, registered beside the lost one.  A reader
    wanting *one* URL takes the newest of the same kind: the one least likely to be gone."""
    if not data:
        return ()
    newest: dict[str, float] = {}
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            try:
                t = float(parts[0].rstrip("s"))
            except ValueError:
                t = 0.0
            newest[parts[2]] = max(t, newest.get(parts[2], t))
    live = [u for u, present in log_state(data).items() if present]
    live.sort(key=lambda u: -newest.get(u, 0.0))
    return tuple(u[1:] if u.startswith(":") else u for u in live)


def add_present(existing: Optional[bytes], stamp: str, values: Iterable[str]) -> Optional[bytes]:
    """``existing`` with ``values`` recorded as present at ``stamp``; None when nothing changes."""
    values = list(dict.fromkeys(values))
    if not existing:  # a new key: the common case of a large first sync
        return "".join(f"{stamp} 1 {v}\n" for v in values).encode() if values else None
    present = log_state(existing)
    todo = [v for v in values if not present.get(v)]
    if not todo:
        return None
    lines = existing.decode().splitlines()
    kept = [line for line in lines if line.split(" ", 2)[-1] not in todo]
    kept += [f"{_after(lines, stamp, v)} 1 {v}" for v in todo]
    return ("\n".join(kept) + "\n").encode()


def _after(lines: list[str], stamp: str, value: str) -> str:
    """``stamp``, or one second past the newest line of ``value`` when that is not older (git-annex's
    vector clock rule, ``advanceVectorClock``).

    git-annex stamps in whole seconds and, to win over a line of the same second, one second on:
    ``setpresentkey KEY UUID 0`` just after a present line stamped ``T.5`` writes ``T+1.5``.  A line
    dropped from the log here comes back when git-annex next merges the branch into its index (a
    union merge), so the line written here must be newer than it, or the key reads as gone.
    """
    newest = max((_stamp_of(line) for line in lines if line.split(" ", 2)[-1] == value), default=None)
    if newest is None or float(stamp.rstrip("s")) > newest:
        return stamp
    return f"{newest + 1:.9f}s"


def _stamp_of(line: str) -> float:
    try:
        return float(line.split(" ", 1)[0].rstrip("s"))
    except ValueError:
        return 0.0

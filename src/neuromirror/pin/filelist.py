"""A version's file list: what the dataset's tree holds at a commit, and the digest of it.

A version's *file list* is its data files as
:func:`~neuromirror.annex.tree.iter_version` reads them (the dataset's
``.datalad/`` and ``.gitattributes`` plumbing excluded) with, per file, its git-annex key — or,
for a file stored in git, ``GIT-SHA256-s<size>--<sha256>`` of its bytes.
:func:`file_list_digest` hashes it so that a lock file can say "this exact
list" in one line and a reproduction can check it against any clone.  Read
from git alone (keys from the symlinks), so ``lock``, ``reproduce`` and
``verify`` see a mirror's dataset and any clone of it the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from neuromirror.annex.tree import iter_version
from neuromirror.pin.retrieve import RetrieveError
from neuromirror.records import VersionFile


def walk_files(repo: Path | str, commit: str) -> Iterator[VersionFile]:
    """The data files of ``commit`` *including those of its subdatasets* at their recorded commits
    (:func:`~neuromirror.annex.tree.iter_version` recursing).

    A subdataset must be present (installed, with that commit) below ``repo``: the mirror has
    them all; a clone gets them with :func:`~neuromirror.pin.clone.install_subdatasets`.
    """
    for f in iter_version(repo, commit, recurse=True):
        if f.is_subdataset:
            raise RetrieveError(
                f"subdataset {f.path} (commit {(f.checksum or '')[:12]}) is not installed in "
                f"{repo}: its files cannot be listed"
            )
        yield f


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


@dataclass
class FileList:
    digest: str
    files: int
    bytes: int
    entries: list[tuple[str, str]] = field(default_factory=list)  # (path, ident), sorted


def file_list_digest(files: Iterable[VersionFile], keep: bool = False) -> FileList:
    """``sha256:<hex>`` of the lines ``PATH<TAB>KEY\\n`` sorted by path (UTF-8 bytes).

    KEY is the git-annex key, or ``GIT-SHA256-s<size>--<sha256>`` for a file
    stored in git.  Give it :func:`walk_files` (subdatasets' files are then
    listed under their path, like any file) and it is independent of git's
    object ids: two mirrors built independently from the same archive state
    give the same digest.
    """
    rows = sorted(((f.path, f.ident, f.size or 0) for f in files), key=lambda r: _sort_key(r[0]))
    pairs = [(p, i) for p, i, _ in rows]
    return FileList(digest_pairs(pairs, presorted=True), len(rows), sum(r[2] for r in rows), pairs if keep else [])


def digest_pairs(pairs: Iterable[tuple[str, str]], presorted: bool = False) -> str:
    """The file list digest of (path, key) pairs."""
    items = pairs if presorted else sorted(pairs, key=lambda r: _sort_key(r[0]))
    h = hashlib.sha256()
    for path, ident in items:
        h.update(path.encode("utf-8", "surrogateescape") + b"\t" + ident.encode() + b"\n")
    return "sha256:" + h.hexdigest()

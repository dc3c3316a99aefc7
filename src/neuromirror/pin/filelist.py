"""A version's file list: what the dataset's tree holds at a commit, and the digest of it.

A version's *file list* is its data files (the dataset's ``.datalad/`` and
``.gitattributes`` plumbing excluded) with, per file, its git-annex key — or,
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
from typing import Callable, Iterable, Iterator, Optional, Sequence

from neuromirror.annex.keys import key_from_symlink, parse_key
from neuromirror.pin.retrieve import RetrieveError
from neuromirror.util import gitutil

GIT_PREFIX = "GIT-SHA256"


@dataclass(frozen=True)
class TreeFile:
    """A data file of a version as the dataset's tree holds it (or a subdataset: ``commit`` set)."""

    path: str
    key: Optional[str]  # git-annex key; None for a file stored in git
    size: Optional[int]
    sha256: Optional[str] = None  # files in git: sha256 of the bytes
    commit: Optional[str] = None  # a subdataset (gitlink, e.g. a DANDI Zarr asset): its commit

    @property
    def ident(self) -> str:
        """What the file list digest records for this file."""
        if self.key:
            return self.key
        if self.commit:
            return f"SUBDATASET--{self.commit}"
        return f"{GIT_PREFIX}-s{self.size}--{self.sha256}"

    @property
    def in_git(self) -> bool:
        return self.key is None and self.commit is None

    @property
    def is_subdataset(self) -> bool:
        return self.commit is not None


def is_plumbing(path: str) -> bool:
    """Files every DataLad dataset has that are not the archive's data."""
    return path.startswith(".datalad/") or path in (".gitattributes", ".gitmodules")


def _pointer_key(data: bytes) -> Optional[str]:
    """The key of an unlocked annexed file's pointer blob, if ``data`` is one."""
    if len(data) < 512 and data.startswith(b"/annex/objects/"):
        return key_from_symlink(data.decode("utf-8", "surrogateescape").strip())
    return None


def blob_key(mode: str, data: bytes) -> Optional[str]:
    """The git-annex key a tree entry (its mode and blob) points at: a symlink's or a pointer's; None: a file in git."""
    return key_from_symlink(data.decode("utf-8", "surrogateescape")) if mode == "120000" else _pointer_key(data)


def tree_files(repo: Path | str, commit: str, paths: Sequence[str] = ()) -> Iterator[TreeFile]:
    """The data files of ``commit`` (in git's path order), keys read from the symlinks; subdatasets as such."""
    with gitutil.CatFile(repo) as cat:
        for mode, typ, sha, path in gitutil.ls_tree(repo, commit, paths):
            if typ == "commit":
                yield TreeFile(path, None, None, commit=sha)
                continue
            if typ != "blob" or is_plumbing(path):
                continue
            data = cat.get(sha) or b""
            key = blob_key(mode, data)
            if key:
                try:
                    size = parse_key(key)["size"]
                except ValueError:
                    size = None
                yield TreeFile(path, key, size)
            else:
                yield TreeFile(path, None, len(data), hashlib.sha256(data).hexdigest())


def walk_files(repo: Path | str, commit: str, prefix: str = "") -> Iterator[TreeFile]:
    """The data files of ``commit`` *including those of its subdatasets* at their recorded commits.

    A subdataset must be present (installed, with that commit) below ``repo``:
    the mirror has them all; a clone gets them with :func:`install_subdatasets`.
    """
    for f in tree_files(repo, commit):
        if f.commit:
            sub = Path(repo) / f.path
            if not (sub / ".git").exists() or not has_commit(sub, f.commit):
                raise RetrieveError(
                    f"subdataset {prefix}{f.path} (commit {f.commit[:12]}) is not installed in "
                    f"{repo}: its files cannot be listed"
                )
            yield from walk_files(sub, f.commit, f"{prefix}{f.path}/")
        else:
            yield TreeFile(prefix + f.path, f.key, f.size, f.sha256)


def gitlinks(repo: Path | str, commit: str) -> list[tuple[str, str]]:
    """(path, commit) of the subdatasets recorded in ``commit``."""
    return [(path, sha) for _, typ, sha, path in gitutil.ls_tree(repo, commit) if typ == "commit"]


def pinned_repositories(
    ds: Path, commit: str, missing: Optional[Callable[[Path, str, str], None]] = None
) -> Iterator[tuple[Path, str, str]]:
    """(repository, commit, path prefix) of ``ds`` at ``commit``, then of every subdataset it
    pins (recursively) that is installed here with the pinned commit: the repositories whose
    git-annex branches speak for the version's content (an AIND store's objects are in its own).

    ``missing(repository, commit, prefix)`` hears of a pinned subdataset that is not here."""
    yield ds, commit, ""
    todo = [(ds, "", gitlinks(ds, commit))]
    while todo:
        repo, prefix, links = todo.pop()
        for path, sha in links:
            sub = repo / path
            if not (sub / ".git").exists() or not has_commit(sub, sha):
                if missing is not None:
                    missing(sub, sha, prefix + path)
                continue
            yield sub, sha, prefix + path + "/"
            todo.append((sub, prefix + path + "/", gitlinks(sub, sha)))


def has_commit(repo: Path, commit: str) -> bool:
    return gitutil.run(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


@dataclass
class FileList:
    digest: str
    files: int
    bytes: int
    entries: list[tuple[str, str]] = field(default_factory=list)  # (path, ident), sorted


def file_list_digest(files: Iterable[TreeFile], keep: bool = False) -> FileList:
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

"""A pin's directories, listed one level at a time and kept: what the view and ``neuromirror://`` read.

A reader of a pin makes many small requests (a Zarr read is one per chunk), so nothing on a
request's path may start a git process once its directory has been seen.  Listing a directory
recursively (its whole subtree, into every Zarr subdataset) made the first request of a version
root cost seconds at 10^4 files, held every file of a 10^6-object Zarr at once, and grew with the
number of Zarrs.  So a directory is read alone: its git tree object (one ``cat-file`` round trip
of a long-lived process per repository), with subdirectories and subdatasets as entries that are
read only when entered.  Its files get their URLs (:func:`~neuromirror.read.urls.resolve_batch`:
symlinks and ``git-annex`` branch logs) on first use, in one batch, and the bytes of small files
kept in git with them.  A directory is named by its repository and tree object, so two pins that
share a subtree share its listing.  Listings and open repositories are bounded in number and in
entries held (a single directory is held whole: a Zarr of 10^6 chunks in one flat directory costs
its size; nested Zarrs, as OME-Zarr lays them out, are read a directory at a time).

What a file's URLs and copies are follows the repository's ``git-annex`` branch as it moves: a
directory's files remember the branch commit they were resolved at, and a read that finds the branch
elsewhere (a ``keep`` recorded a store's copies, a ``restore`` registered the archive's new version,
a reader marked a loss) resolves them again, in one batch.  The branch is read from the repository's
files (its ref, or ``packed-refs``), no git process, so every request sees a keep or restore at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from neuromirror.annex.logs import BRANCH
from neuromirror.annex.pack import tree_entries
from neuromirror.annex.tree import files_of_blobs
from neuromirror.read.pinned import Pin
from neuromirror.read.store_reads import StoreReader, StoreReaders
from neuromirror.read.urls import PinnedFile, resolve_batch
from neuromirror.store.annexlog import recorded_stores
from neuromirror.util import gitutil

#: kept directory listings, and the entries they may hold together
MAX_LISTINGS = 4096
MAX_LISTED_ENTRIES = 200_000
#: repositories with a ``cat-file`` process open at once (a view of 20,000 Zarrs touches many)
MAX_OPEN_REPOS = 8
#: git files up to this size are read with their directory (sidecars, Zarr metadata), up to a total
INLINE_BLOB = 256 * 1024
INLINE_TOTAL = 16 * 1024 * 1024
#: the files of a repository's own plumbing, at its root: never shown
PLUMBING = frozenset({".datalad", ".gitattributes", ".gitmodules"})

TREE, GITLINK = "40000", "160000"
Stores = tuple[Optional[str], dict[str, StoreReader]]
_REF = BRANCH  # refs/heads/git-annex


def branch_commit(git_dir: Optional[Path]) -> Optional[str]:
    """The ``git-annex`` branch's commit, read from the repository's files (its loose ref, else
    ``packed-refs``); None when neither names it."""
    return None if git_dir is None else gitutil.ref_from_files(git_dir, _REF)


class Repo:
    """One repository of a pin (the dataset or a subdataset): a long-lived ``cat-file``, one user at a time."""

    def __init__(self, path: Path, readers: StoreReaders, stores: Optional[Stores] = None) -> None:
        self.path, self.readers = path, readers
        self._stores = stores
        self.lock = threading.Lock()
        self._cat: Optional[gitutil.CatFile] = None
        self._git_dir: Optional[Path] = None

    @property
    def read_stores(self) -> Optional[Stores]:
        return self._stores

    def branch(self) -> Optional[str]:
        """The ``git-annex`` branch's commit now (no git process); None: not readable from files."""
        if self._git_dir is None:
            self._git_dir = gitutil.git_dir(self.path)
        return branch_commit(self._git_dir)

    def stores(self, at: Optional[str]) -> dict[str, StoreReader]:
        """The stores the branch records at ``at`` (its commit; None: the branch as it is), read through
        the repository's own ``cat-file`` (no other process), again only when the branch moved."""
        if self._stores is None or self._stores[0] != at:
            self._stores = (at, self.readers.of_fields(recorded_stores(self.cat.get(f"{at or BRANCH}:remote.log"))))
        return self._stores[1]

    @property
    def cat(self) -> gitutil.CatFile:
        if self._cat is None:
            self._cat = gitutil.CatFile(self.path)
        return self._cat

    def read(self, sha: str) -> Optional[bytes]:
        with self.lock:
            return self.cat.get(sha)

    def close(self) -> None:
        with self.lock:
            if self._cat is not None:
                self._cat.close()
                self._cat = None


class Dir:
    """One directory of a pin: its subdirectories and subdatasets (entered when asked for) and its files.

    ``prefix`` is where ``repo`` sits in the pin, ``path`` this directory's path in the pin."""

    def __init__(
        self, open_repo: Callable[[Path], Repo], repo: Path, path: str, prefix: str, entries: list[tuple[str, str, str]]
    ) -> None:
        self._open_repo = open_repo  # the repository's reader is opened again if it was closed meanwhile
        self.repo, self.path, self.prefix = repo, path, prefix
        at_root = path == prefix.rstrip("/")
        self.dirs: dict[str, str] = {}  # name -> tree sha
        self.subdatasets: dict[str, str] = {}  # name -> the commit the gitlink records
        self._blobs: list[tuple[str, str, str]] = []
        for name, mode, sha in entries:
            if at_root and name in PLUMBING:
                continue
            if mode == TREE:
                self.dirs[name] = sha
            elif mode == GITLINK:
                self.subdatasets[name] = sha
            else:
                self._blobs.append((name, mode, sha))
        self.size = len(entries)
        self._files: Optional[dict[str, PinnedFile]] = None
        self._at: Optional[str] = None  # the git-annex branch commit ``_files`` were resolved at
        self.data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        #: subdatasets not readable here (not installed, or without the recorded commit): name -> file
        self.absent: dict[str, PinnedFile] = {}

    def full(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path else name

    def files(self) -> dict[str, PinnedFile]:
        """The directory's files by name, each with its URL: resolved in one batch, again when the
        repository's ``git-annex`` branch moved since (a keep, a restore, a loss marked)."""
        repo = self._open_repo(self.repo)
        at = repo.branch()
        with self._lock:
            if self._files is None or (at is not None and at != self._at):  # None: as first read
                rel = [(self.full(n), m, s) for n, m, s in self._blobs]
                first = self._files is None
                with repo.lock:
                    files = files_of_blobs(repo.cat, rel, repo.path)
                    got = list(resolve_batch(repo.path, repo.cat, at or BRANCH, repo.stores(at), files))
                    if first:  # the tree does not move: its small git files are read once
                        self._read_small(repo.cat, got)
                self._files, self._at = {f.path.rpartition("/")[2]: f for f in got}, at
            return self._files

    def file(self, name: str, alone: bool = False) -> Optional[PinnedFile]:
        """The file ``name``: from the directory's files, or (``alone``, while they are not resolved yet) resolved
        by itself: an export reads two metadata files of a Zarr directory of 10^5 chunks, and resolving the
        directory whole read 3 logs per chunk (60 s of ``cat-file`` at 10^5)."""
        if not alone or self._files is not None:
            return self.files().get(name)
        blob = next((b for b in self._blobs if b[0] == name), None)
        if blob is None:
            return None
        repo = self._open_repo(self.repo)
        at = repo.branch()
        with repo.lock:
            files = files_of_blobs(repo.cat, [(self.full(name), blob[1], blob[2])], repo.path)
            return next(iter(resolve_batch(repo.path, repo.cat, at or BRANCH, repo.stores(at), files)))

    def _read_small(self, cat: gitutil.CatFile, files: list[PinnedFile]) -> None:
        small = [f for f in files if f.served_by == "git" and f.blob and (f.size or 0) <= INLINE_BLOB]
        total, wanted = 0, []
        for f in small:
            total += f.size or 0
            if total > INLINE_TOTAL:
                break
            wanted.append(f)
        for f, data in zip(wanted, cat.get_many([f.blob or "" for f in wanted])):
            if data is not None:
                self.data[f.path.rpartition("/")[2]] = data

    def children(self) -> list[tuple[str, Optional[PinnedFile]]]:
        """(name, file) of every member, by name; a directory or readable subdataset has no file."""
        out: dict[str, Optional[PinnedFile]] = {n: None for n in self.dirs}
        for n in self.subdatasets:
            if n not in self.absent and not (self.repo / self.full(n)[len(self.prefix) :] / ".git").exists():
                why = f"subdataset not installed at {self.subdatasets[n][:12]}"
                self.absent[n] = PinnedFile(self.full(n) + "/", "", None, None, "none", why)
            out[n] = self.absent.get(n)
        out.update(self.files())
        return sorted(out.items())


Found = Union[Dir, tuple[PinnedFile, Optional[bytes]]]


@dataclass(frozen=True)
class _Where:
    """A directory to read: its tree object in a repository, and where it is in the pin."""

    repo: Path
    tree: str
    path: str
    prefix: str


class Listings:
    """The kept directory listings and open repositories of any pins, bounded; safe to share between threads."""

    def __init__(
        self, max_listings: int = MAX_LISTINGS, max_entries: int = MAX_LISTED_ENTRIES, *, alone: bool = False
    ) -> None:
        """``alone``: a file is resolved by itself until its directory is (:meth:`Dir.file`), for a reader of a few
        files of big directories; the view resolves a directory whole, its files read many at a time."""
        self.max_listings, self.max_entries, self.alone = max_listings, max_entries, alone
        self._lock = threading.Lock()
        self._dirs: OrderedDict[tuple[str, str, str], Dir] = OrderedDict()
        self._entries = 0
        self._repos: OrderedDict[Path, Repo] = OrderedDict()
        self._stores: OrderedDict[Path, Stores] = OrderedDict()
        self._roots: OrderedDict[tuple[Path, str], Optional[str]] = OrderedDict()
        #: the stores the pins' branches name, opened once for these listings' lifetime (the view's, a filesystem's)
        self.readers = StoreReaders()

    @property
    def held(self) -> tuple[int, int]:
        """(directories, entries) held now: what bounds the memory of a long-running view."""
        with self._lock:
            return len(self._dirs), self._entries

    # -- what a path names ------------------------------------------------------------
    def find(self, pin: Pin, path: str) -> Optional[Found]:
        """The directory ``path`` names at the pin, or the file with its bytes if small and in git; None: nothing."""
        return self.find_in(pin.dataset, pin.commit, path)

    def find_in(self, repo: Path, commit: str, path: str) -> Optional[Found]:
        """:meth:`find` in ``repo`` at ``commit`` (a Zarr's own dataset at one of its states)."""
        parts = [p for p in path.split("/") if p]
        tree = self._commit_tree(repo, commit)
        here = None if tree is None else self._dir(_Where(repo, tree, "", ""))
        if here is None:
            return None
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            if name in here.dirs:
                here = self._dir(_Where(here.repo, here.dirs[name], here.full(name), here.prefix))
            elif name in here.subdatasets:
                entered = self._enter(here, name)
                if entered is None:
                    return (here.absent[name], None) if last else None
                here = entered
            else:
                f = here.file(name, self.alone) if last else None
                return None if f is None else (f, here.data.get(name))
        return here

    def _enter(self, parent: Dir, name: str) -> Optional[Dir]:
        """The root directory of the subdataset ``name`` of ``parent`` at its recorded commit (None: absent)."""
        commit = parent.subdatasets[name]
        path = parent.full(name)
        sub = parent.repo / path[len(parent.prefix) :]
        tree = self._commit_tree(sub, commit) if (sub / ".git").exists() else None
        if tree is None:
            why = f"subdataset not installed at {commit[:12]}"
            parent.absent.setdefault(name, PinnedFile(path + "/", "", None, None, "none", why))
            return None
        return self._dir(_Where(sub, tree, path, path + "/"))

    # -- the caches ---------------------------------------------------------------------
    def _commit_tree(self, repo: Path, commit: str) -> Optional[str]:
        """The tree of ``commit`` in ``repo`` (None: the repository does not have it)."""
        key = (repo, commit)
        with self._lock:
            if key in self._roots:
                return self._roots[key]
        data = self._repo(repo).read(commit)
        tree = data[5:].split(b"\n", 1)[0].decode() if data and data.startswith(b"tree ") else None
        with self._lock:
            self._roots[key] = tree
            while len(self._roots) > self.max_listings:
                self._roots.popitem(last=False)
        return tree

    def _repo(self, path: Path) -> Repo:
        evicted = []
        with self._lock:
            repo = self._repos.get(path)
            if repo is not None:
                self._repos.move_to_end(path)
                return repo
            repo = self._repos[path] = Repo(path, self.readers, self._stores.get(path))
            while len(self._repos) > MAX_OPEN_REPOS:
                old_path, old = self._repos.popitem(last=False)
                if old.read_stores is not None:  # kept: reopening the repository needs no new read
                    self._stores[old_path] = old.read_stores
                    self._stores.move_to_end(old_path)
                evicted.append(old)
            while len(self._stores) > self.max_listings:
                self._stores.popitem(last=False)
        for old in evicted:
            old.close()  # its kept directories reopen it when read again
        return repo

    def _dir(self, where: _Where) -> Dir:
        key = (str(where.repo), where.tree, where.path)
        with self._lock:
            got = self._dirs.get(key)
            if got is not None:
                self._dirs.move_to_end(key)
                return got
        data = self._repo(where.repo).read(where.tree)
        if data is None:
            raise FileNotFoundError(f"{where.repo}: no tree {where.tree}")
        d = Dir(self._repo, where.repo, where.path, where.prefix, tree_entries(data, len(where.tree) // 2))
        with self._lock:
            old = self._dirs.get(key)
            if old is not None:  # another request read it meanwhile
                return old
            self._dirs[key] = d
            self._entries += d.size
            while len(self._dirs) > 1 and (len(self._dirs) > self.max_listings or self._entries > self.max_entries):
                _, gone = self._dirs.popitem(last=False)
                self._entries -= gone.size
        return d

    def close(self) -> None:
        with self._lock:
            repos, self._repos = list(self._repos.values()), OrderedDict()
            self._dirs.clear()
            self._entries = 0
        for r in repos:
            r.close()

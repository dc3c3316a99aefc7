"""The mirror root: a DataLad superdataset holding one subdataset per source.

Responsibilities: create the root and the per-source datasets, keep the
root's record of each subdataset current, hand out locks (a source is never
synced twice at once, across processes), and put a dataset back to a clean
committed state after a crash.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from neuromirror.dataset import clean_mark, light_dataset, registration
from neuromirror.errors import LockBusy, NotMirrored, UserError
from neuromirror.index.connection import damaged
from neuromirror.index.db import Index
from neuromirror.results import Item, Result, Status
from neuromirror.util import gitutil
from neuromirror.util.crashpoints import crashpoint

ROOT_LOCK = "_root"
#: the root's state folder (index, locks, manifests), in the root's .git/info/exclude: never part of the dataset
STATE_IGNORE = "/.neuromirror/"
#: a source dataset's ``.gitattributes`` beyond DataLad's own line: ``datalad create -c text2git``'s
#: rule (text files in git, binary ones annexed) and the mirror's key backend (SHA256E: DANDI's
#: sha256 digests are the keys, so nothing is hashed again)
SOURCE_ATTRIBUTES = ("* annex.largefiles=((mimeencoding=binary)and(largerthan=0))", "* annex.backend=SHA256E")
#: the creation commit's message (tests/test_dask.py knows it by "use SHA256E keys": dated now)
CREATED_MESSAGE = "[neuromirror] new dataset: text files in git, use SHA256E keys"
_root_thread_lock = threading.Lock()


class Datasets:
    """The root of datasets and its index, below the API: what every layer that writes or reads a dataset is
    handed.  A script's or a command's mirror is :class:`neuromirror.api.Mirror`, which holds one of these as
    ``.datasets`` (one noun each: the API's Mirror, the layers' Datasets)."""

    def __init__(self, root: Path | str, index_path: Optional[Path | str] = None, *, readonly_index: bool = False):
        self.root = Path(root).absolute()
        #: a Dask worker's view: it reads the index, the submitting process writes it
        self.readonly_index = readonly_index
        self.state_dir = self.root / ".neuromirror"
        self.index_path = Path(index_path).absolute() if index_path else self.state_dir / "index.sqlite"
        self._index: Optional[Index] = None
        self._root_filter_quiet = False

    @property
    def index(self) -> Index:
        if self._index is None:
            p = self.index_path
            if p.is_file() and p.stat().st_size == 0 and self.subdatasets():  # a new index is never left empty
                raise damaged(p, "an empty file, though the mirror has datasets")
            self._index = Index(p, readonly=self.readonly_index)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- locks ----------------------------------------------------------
    @contextmanager
    def lock(self, name: str, *, wait: bool | float = True) -> Iterator[None]:
        """An exclusive flock per source; released by the kernel if we die.

        The lock file is removed when the lock is released (a failed sync of an id the archive does
        not know leaves nothing behind): whoever locked a file that was removed meanwhile (its inode
        is no longer the path's) opens the path again, so two holders never lock different files."""
        lockdir = self.state_dir / "locks"
        lockdir.mkdir(parents=True, exist_ok=True)
        path = lockdir / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".lock")
        deadline = None if wait is True else time.monotonic() + float(wait or 0)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._flock(fd, name, deadline)
            except BaseException:
                os.close(fd)
                raise
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)  # the holder before us removed it: lock the path's file now
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            yield
        finally:
            try:
                os.unlink(path)  # still held: nobody locks the file being removed without noticing
            except OSError:
                pass
            os.close(fd)

    @staticmethod
    def _flock(fd: int, name: str, deadline: Optional[float]) -> None:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                    raise LockBusy(f"{name} is being synced by another process ({holder or 'unknown'})") from None
                time.sleep(0.1)

    @contextmanager
    def root_lock(self) -> Iterator[None]:
        with _root_thread_lock, self.lock(ROOT_LOCK):
            yield

    # -- datasets -------------------------------------------------------
    def ensure_root(self) -> None:
        """The root dataset, made once; and its state folder ignored by git, checked every time: a root made
        by a run killed (Ctrl-C) between the two steps is mended by the next run."""
        if self._made() and self._state_ignored():
            return
        with self.root_lock():
            if not self._made():
                from neuromirror.dataset.datalad_create import create_root

                create_root(self.root, self.state_dir / "new")
            if not self._state_ignored():
                exclude = self.root / ".git" / "info" / "exclude"
                exclude.parent.mkdir(exist_ok=True)
                with exclude.open("a") as fh:
                    fh.write(f"\n{STATE_IGNORE}\n")

    def _made(self) -> bool:
        from neuromirror.dataset.datalad_create import has_commit

        return (self.root / ".datalad" / "config").exists() and has_commit(self.root)

    def _state_ignored(self) -> bool:
        try:
            return STATE_IGNORE in (self.root / ".git" / "info" / "exclude").read_text().split()
        except FileNotFoundError:
            return False

    @property
    def manifest_root(self) -> Path:
        """Where the Zarr manifests (DANDI's format) of every Zarr state the mirror records are written."""
        return self.state_dir / "zarr-manifests"

    def dataset_path(self, relpath: str) -> Path:
        return self.root / relpath

    def ensure_dataset(self, relpath: str, description: str) -> Path:
        """The dataset for a source, created (SHA256E, text in git) and registered on first use.

        Written directly (:func:`.fast_init.fast_init`: one process, a few milliseconds, where
        the ``datalad create -c text2git`` child, ``git annex init`` and two commits took
        3-6 s), beside its place in ``.neuromirror/new/`` and moved in whole, so that an
        interrupted creation never looks like a dataset; then its sections in the root's
        ``.gitmodules`` and ``.git/config`` (:mod:`.registration`) and the root's commit.
        What it leaves is what that sequence left (docs/performance.md compares them):
        ``.gitattributes`` with text2git's ``annex.largefiles`` rule and SHA256E keys,
        ``.datalad/config`` with a new id, ``annex.supportunlocked=false`` set before
        git-annex was initialised, the description in the git-annex branch's ``uuid.log``.
        """
        self.ensure_root()
        path = self.dataset_path(relpath)
        if registration.registered(self.root, relpath) and self.is_complete(path):
            return path
        with self.root_lock():
            self.recover_root()
            if not self.is_complete(path):
                self._discard_partial(path)
                self._create(path, description)
                crashpoint("dataset-created")
            registration.register(self.root, relpath, light_dataset.dataset_id(path))
            self._commit_root([relpath], f"[neuromirror] add {relpath}")
        return path

    def _create(self, path: Path, description: str) -> None:
        """A new source dataset at ``path`` (absent), made in ``.neuromirror/new/`` and renamed in."""
        import shutil
        import tempfile

        from neuromirror.dataset.fast_init import fast_init

        new = self.state_dir / "new"
        if new.exists():  # debris of a creation killed before its rename: we hold the root lock
            shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="dataset-", dir=new))
        try:
            fast_init(tmp, description=description, attributes=SOURCE_ATTRIBUTES, message=CREATED_MESSAGE)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def is_complete(self, path: Path) -> bool:
        """Created, configured (SHA256E) and committed: what ensure_dataset finishes with."""
        if not ((path / ".git").is_dir() and (path / ".datalad" / "config").exists()):
            return False
        # what is committed counts: a dirty work tree is reset to the last commit by recover()
        committed = gitutil.run(path, "show", "HEAD:.gitattributes", check=False).stdout.decode(errors="replace")
        return "* annex.backend=SHA256E" in committed.splitlines()

    def _discard_partial(self, path: Path) -> None:
        """A dataset whose creation was interrupted holds nothing of value: start it again."""
        import shutil

        if path.exists() and (path / ".git").exists():
            if gitutil.out(path, "log", "--format=%H", "--grep=^Neuromirror-Source: ", check=False):
                raise RuntimeError(f"{path} has mirror commits but is not a complete dataset: inspect it by hand")
            shutil.rmtree(path)
            gitutil.run(
                self.root, "rm", "-q", "--cached", "--ignore-unmatch", "-r", "--", str(path.relative_to(self.root))
            )

    def register(self, relpath: str, message: str) -> None:
        """Record the subdataset's current commit in the root superdataset."""
        with self.root_lock():
            self.recover_root()
            self._commit_root([relpath], message)

    def register_quietly(self, relpath: str, message: str, *, wait: float = 10.0) -> bool:
        """:meth:`register` after a failed or interrupted run: never raises, never waits long for the root.

        The dataset's HEAD is a whole commit (a commit is written entirely or not at
        all), so recording it is what the next sync would do; doing it now keeps the
        root from showing a modified subdataset meanwhile.  False if it could not.
        """
        if not _root_thread_lock.acquire(timeout=wait):
            return False
        try:
            with self.lock(ROOT_LOCK, wait=wait):
                self.recover_root()
                self._commit_root([relpath], message)
            return True
        except Exception:  # the root lock busy, git failing: the next sync registers it
            return False
        finally:
            _root_thread_lock.release()

    def recover_root(self) -> None:
        """A crash mid-commit in the root leaves a lock file; we hold the root lock, so it is stale."""
        lock = self.root / ".git" / "index.lock"
        if lock.exists():
            lock.unlink()

    def _commit_root(self, relpaths: list[str], message: str) -> None:
        """Commit the subdatasets' current commits (gitlinks) in the root, touching no work tree.

        ``git add`` of a gitlink and ``git commit -- <paths>`` make git look at the
        subdataset's work tree, and through ``status`` at its own subdatasets: for a
        dandiset of 200 Zarr datasets that was ~10^6 stats and ~60 s on the first
        resync (issue 13).  The gitlink is the subdataset's HEAD, so it is written
        into the index directly (``update-index --cacheinfo``), and the commit is
        made from the index with plumbing (``write-tree`` / ``commit-tree`` /
        ``update-ref``): the root's index holds nothing but what the mirror staged.
        """
        self._quiet_root_filter()
        paths = []
        for rel in relpaths:
            sha = gitutil.rev_parse(self.root / rel, "HEAD") if (self.root / rel / ".git").exists() else None
            if sha:
                if not registration.registered(self.root, rel):  # made, then killed before its registration
                    registration.register(self.root, rel, light_dataset.dataset_id(self.root / rel))
                gitutil.run(self.root, "update-index", "--add", "--cacheinfo", f"160000,{sha},{rel}")
            else:
                gitutil.run(self.root, "add", "--", rel)
            paths.append(rel)
        if (self.root / ".gitmodules").exists():
            gitutil.run(self.root, "add", "--", ".gitmodules")
            paths.append(".gitmodules")
        staged = gitutil.out(self.root, "diff", "--cached", "--name-only", "--ignore-submodules=none", "--", *paths)
        if not staged:
            return
        tree = gitutil.out(self.root, "write-tree")
        head = gitutil.rev_parse(self.root, "HEAD")
        commit = gitutil.out(self.root, "commit-tree", tree, *(["-p", head] if head else []), "-m", message)
        gitutil.run(
            self.root,
            "update-ref",
            "-m",
            "commit: " + message.splitlines()[0],
            "HEAD",
            commit,
            *([head] if head else []),
        )

    def _quiet_root_filter(self) -> None:
        """The root's ``.git/info/attributes`` without git-annex's filter (as every dataset's, :mod:`.fast_init`).

        ``datalad create`` of the root sets ``* filter=annex``, so ``git add .gitmodules``
        started a ``git-annex filter-process`` at each registration, and ``write-tree`` often a
        second one (the index just written is racily clean): ~0.25 s of the ~0.3 s a new
        dataset's registration took, 2,000 times in a cold ``sync 'dandi:*'``.  The root holds
        gitlinks, ``.gitmodules`` and DataLad's files, never an annexed file; ``datalad save``
        annexes with ``git annex add``, which needs no filter.
        """
        if self._root_filter_quiet:
            return
        from neuromirror.annex.contract import quiet_filter

        quiet_filter(self.root / ".git")
        self._root_filter_quiet = True

    def recover(self, path: Path) -> list[str]:
        """Put a dataset back to its last commit after a crash; say what was done.

        The mirror owns its datasets: anything uncommitted is debris of an
        interrupted run (fast-import moves refs only at its end, so a commit
        is either whole or absent), and the last commit is the truth.  A dataset
        the last sync left clean, untouched since, is taken as it is
        (:mod:`.clean_mark`: no ``git status`` of 10^5 files).
        """
        actions: list[str] = []
        lock = path / ".git" / "index.lock"
        left_clean = clean_mark.take(path)  # the last sync said so, and nothing touched it since
        if lock.exists():
            lock.unlink()
            actions.append("removed a stale .git/index.lock")
        elif left_clean:
            return actions
        if gitutil.rev_parse(path, "HEAD") and not gitutil.is_clean(path):
            gitutil.run(path, "reset", "-q", "--hard", "HEAD")
            gitutil.run(path, "clean", "-q", "-ffd")
            actions.append("reset the work tree to the last commit")
        return actions

    def mark_clean(self, path: Path) -> None:
        """A sync leaves ``path`` exactly as its last commit: the next one's :meth:`recover` may trust it."""
        if (path / ".git").is_dir():
            clean_mark.mark_clean(path)

    def forget(self, source: str, *, dataset: bool = False) -> Forgotten:
        """Every index row of ``source`` removed (and with ``dataset``, its dataset from the root and the disk),
        never under a running sync of it: that is a one-line error, try again when it is done."""
        row = self.index.source(source)
        if row is None:
            raise NotMirrored(f"{source} is not mirrored here")
        relpath = row.dataset
        try:
            with self.lock(source, wait=0):
                removed = self.remove_dataset(relpath) if dataset else False
                self.index.remove_source(source)
        except LockBusy as exc:
            raise UserError(f"{exc}: try again when it is done") from None
        return Forgotten(source, relpath, removed, None if removed else self.dataset_path(relpath))

    def remove_dataset(self, relpath: str) -> bool:
        """Unregister a source's dataset from the root (one commit) and delete it; False if there was none.

        git-annex write-protects its object directories, hence the chmod before a retry.
        """
        import shutil
        import stat

        path = self.dataset_path(relpath)
        with self.root_lock():
            self.recover_root()
            registered = relpath in self.subdatasets()
            if registered:
                gitutil.run(self.root, "rm", "-q", "--cached", "--ignore-unmatch", "-r", "--", relpath)
                names = gitutil.out(
                    self.root, "config", "-f", ".gitmodules", "--get-regexp", r"submodule\..*\.path", check=False
                )
                for line in names.splitlines():
                    key, _, value = line.partition(" ")
                    if value == relpath:
                        gitutil.run(self.root, "config", "-f", ".gitmodules", "--remove-section", key[: -len(".path")])
                gitutil.run(self.root, "add", "--", ".gitmodules")
                gitutil.run(self.root, "commit", "-q", "--no-verify", "-m", f"[neuromirror] remove {relpath}")
            if not path.exists():
                return registered

            def writable(func, p, _exc):  # noqa: ANN001
                os.chmod(os.path.dirname(p), stat.S_IRWXU)
                if os.path.isdir(p):
                    os.chmod(p, stat.S_IRWXU)
                func(p)

            shutil.rmtree(path, onerror=writable)
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()  # "dandi/" once its last dataset is gone
                parent = parent.parent
        return True

    def subdatasets(self) -> list[str]:
        if not (self.root / ".gitmodules").exists():
            return []
        out = gitutil.out(self.root, "config", "-f", ".gitmodules", "--get-regexp", r"submodule\..*\.path", check=False)
        return [line.split(" ", 1)[1] for line in out.splitlines() if " " in line]


@dataclass(frozen=True)
class Forgotten(Result):
    """A source the index no longer holds (``neuromirror forget``): its dataset removed, or where it stays."""

    source: str
    dataset: str
    dataset_removed: bool
    stays_at: Optional[Path] = None  # the dataset left on disk (reindex would bring the source back)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "dataset": self.dataset, "dataset_removed": self.dataset_removed}

    def line(self) -> str:
        if self.dataset_removed:
            return f"forgot {self.source}; removed its dataset {self.dataset}"
        if self.stays_at is not None and self.stays_at.exists():
            return f"forgot {self.source}; its dataset stays at {self.stays_at} (reindex would bring it back; forgetting the dataset too removes it)"
        return f"forgot {self.source}"

    def items(self) -> list[Item]:
        return [Item(Status.OK, self.source, self.line())]

    def lines(self) -> list[str]:
        return [self.line()]

    def __repr__(self) -> str:
        return f"<Forgotten {self.source}{' dataset removed' if self.dataset_removed else ''}>"

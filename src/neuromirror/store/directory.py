"""A directory store: a git-annex ``directory`` special remote's layout, written atomically.

``DIR/<hashdirlower>/<KEY>/<KEY>`` (git-annex's ``hashDirLower`` and ``keyFile``, the
functions of :mod:`neuromirror.annex.keys`), the key's file and directory read-only as
git-annex leaves them, so that git-annex reads the store unchanged (``type=directory``).
Beside the keys, two things of ours: ``DIR/.neuromirror-store.json`` (the store's fixed
UUID and remote name, created on first use, so that every dataset records the same
remote) and ``DIR/.neuromirror-tmp/`` (bytes in transit).

A key's bytes stream into a temp file inside the store (same file system), are verified
by the caller, synced to disk, and only then renamed to the final path: a copy killed at
any point leaves at most a temp file (removed by the next run on this host) or an empty
key directory, never a file at the final path — which is what "the store has it" means.
While a large file streams in, its written bytes are handed to the disk every
:data:`WRITEBACK` bytes (``sync_file_range``, which starts the write-out without waiting for
it), so that the one ``syncfs`` before recording finds little left to write instead of the
whole run's bytes at once; durability still comes from that ``syncfs`` alone.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import socket
import stat
import uuid
from pathlib import Path
from typing import IO, Any, Collection, Optional

from neuromirror.annex.keys import hashdir_lower, key_file
from neuromirror.errors import UserError
from neuromirror.store.base import (
    FIRST_COST,
    LEGACY_NAME,
    Capabilities,
    CopyURL,
    Dropped,
    StoreIdentity,
    drop_each,
    key_size,
    missing_identity,
    remote_name,
)
from neuromirror.util.processes import pid_alive

IDENTITY_FILE = ".neuromirror-store.json"
TMP_DIR = ".neuromirror-tmp"
#: the git-annex remote name clones give the store (``git annex enableremote NAME``)
DEFAULT_NAME = LEGACY_NAME  # the old shared name; each store now has remote_name(uuid)
#: git-annex's cost for the store: below the web remote's, so a clone reads what the store holds from it first
COST = FIRST_COST
_OURS = {IDENTITY_FILE, TMP_DIR, "tmp"}  # "tmp": git-annex's own directory in a directory remote
_READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_READ_ONLY_DIR = _READ_ONLY_FILE | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
#: bytes of a temp file written between two starts of their write-out (:func:`_start_writeback`)
WRITEBACK = 8 << 20


class DirectoryStore:
    kind = "directory"

    def __init__(self, path: Path | str, *, create: bool = True):
        """``create``: a store may be made here (``keep --to``); without it a missing identity is
        :class:`~neuromirror.store.base.StoreUnreachable` and nothing is written."""
        self.path = Path(os.path.abspath(os.path.expanduser(str(path))))
        self.create = create
        self._identity: Optional[StoreIdentity] = None

    def __str__(self) -> str:
        return str(self.path)

    @property
    def url(self) -> str:
        """Where git-annex reads the store (``directory=`` of the remote)."""
        return str(self.path)

    # -- identity ---------------------------------------------------------------
    @property
    def identity(self) -> StoreIdentity:
        """The store's UUID and remote name, made on first use where it may be (one winner if two processes race)."""
        if self._identity is None:
            f = self.path / IDENTITY_FILE
            if not f.exists():
                if not self.create:
                    raise missing_identity(str(self.path), IDENTITY_FILE)
                self._create_identity(f)
            try:
                data = json.loads(f.read_text())
                if data.get("type") not in (None, "directory"):
                    raise ValueError(f"a {data.get('type')} store: name it as one (pack+file://{self.path})")
                store_uuid = str(uuid.UUID(data["uuid"]))
                ident = StoreIdentity(store_uuid, remote_name(store_uuid, str(data.get("name") or "")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise UserError(f"{f} is not a neuromirror store's identity file: {exc}") from None
            if not ident.name or any(c.isspace() for c in ident.name):
                raise UserError(f"{f}: the store's name must be one word, not {ident.name!r}")
            self._identity = ident
        return self._identity

    def _create_identity(self, f: Path) -> None:
        if self.path.is_dir() and any(p.name not in _OURS for p in self.path.iterdir()):
            raise UserError(
                f"{self.path} is not empty and is not a neuromirror store (no {IDENTITY_FILE}): "
                "name an empty or new directory"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        new = str(uuid.uuid4())
        data = {
            "uuid": new,
            "name": remote_name(new),
            "type": "directory",
            "format": "a git-annex directory special remote: <hashdirlower>/<KEY>/<KEY>",
        }
        tmp = self.path / f"{IDENTITY_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        try:
            os.link(tmp, f)  # fails if another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()

    def description(self) -> str:
        return f"neuromirror store at {self.path}"

    def remote_config(self) -> dict[str, str]:
        """``remote.log``'s fields: ``directory=`` is what lets a clone enable the store by itself."""
        from neuromirror.store.annexlog import escape_value

        return {
            "autoenable": "true",
            "cost": str(COST),
            "directory": escape_value(self.url),
            "encryption": "none",
            "name": self.identity.name,
            "type": self.kind,
        }

    # -- keys -----------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(local=self.path, enable_field=("directory", str(self.path)))

    def exists(self) -> bool:
        return (self.path / IDENTITY_FILE).is_file()

    def copy_location(self, key: str) -> str:
        return str(self.key_path(key))

    def read_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
        with self.open_key(key) as fh:
            fh.seek(start or 0)
            return fh.read(-1 if end is None else max(0, end - (start or 0)))

    def copy_url(self, key: str) -> CopyURL:
        return CopyURL(self.key_path(key).as_uri())

    def key_path(self, key: str) -> Path:
        name = key_file(key)
        return self.path / hashdir_lower(key) / name / name

    def has(self, key: str) -> bool:
        """The key's file is at its final path with the key's size: only verified bytes ever get there.

        The size check catches a file cut short by a power loss between its rename and the
        :meth:`sync` that precedes any record of it; such a file is replaced by the next copy.
        """
        return _holds(self.key_path(key), key)

    def open_key(self, key: str) -> IO[bytes]:
        return open(self.key_path(key), "rb")

    def drop(self, keys: Collection[str]) -> Dropped:
        return drop_each(self, keys)

    def forget_key(self, key: str) -> None:
        final = self.key_path(key)
        if not final.exists():
            return
        os.chmod(final.parent, _READ_ONLY_DIR | stat.S_IWUSR)
        final.unlink()
        try:
            os.chmod(final.parent, _READ_ONLY_DIR)
        except OSError:
            pass

    def sync(self) -> None:
        """Flush the store's file system once (``syncfs``), not once per file: the renamed files are
        durable before a git-annex branch says the store has them."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if _syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

    def used_bytes(self) -> int:
        """What the store holds: the sizes of every file under it (its identity and bytes in transit excepted)."""
        total = 0
        todo = [self.path]
        while todo:
            d = todo.pop()
            try:
                entries = list(os.scandir(d))
            except FileNotFoundError:
                continue
            for e in entries:
                if d == self.path and e.name in (TMP_DIR, IDENTITY_FILE):
                    continue
                if e.is_dir(follow_symlinks=False):
                    todo.append(Path(e.path))
                elif e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
        return total

    def receive(self, key: str) -> Incoming:
        """A temp file for ``key``'s bytes; :meth:`Incoming.commit` puts it in place (into a store that is
        there, or one made now where it may be: never a directory made where a store went away)."""
        self.identity  # noqa: B018
        return Incoming(self, key)

    def begin_task(self, task: str) -> int:
        """A dead attempt's keys are files in place already (found by :meth:`has`); its temp files go."""
        return self.clean_stale()

    def end_task(self, task: str) -> None:
        pass

    def clean_stale(self) -> int:
        """Remove temp files this host's dead processes left behind (a killed keep); how many."""
        tmp = self.path / TMP_DIR
        if not tmp.is_dir():
            return 0
        host = _host()
        removed = 0
        for p in tmp.iterdir():
            parts = p.name.split("-", 2)
            if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
                continue
            if not pid_alive(int(parts[1])):
                try:
                    p.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed


class Incoming:
    """One key's bytes on their way into the store: written, then committed or discarded."""

    def __init__(self, store: DirectoryStore, key: str):
        self.store = store
        self.key = key
        tmpdir = store.path / TMP_DIR
        # host-pid- first: clean_stale tells a dead process's leftovers from a live one's
        self.tmp = tmpdir / f"{_host()}-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            self._fh = open(self.tmp, "xb")
        except FileNotFoundError:  # the first file of this store (or someone removed the temp directory)
            tmpdir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.tmp, "xb")
        self.done = False
        self._written = 0
        self._handed = 0  # bytes whose write-out has been started

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (only read during the call: the caller may reuse its buffer)."""
        self._fh.write(data)
        self._written += len(data)
        if self._written - self._handed >= WRITEBACK:
            self._fh.flush()
            _start_writeback(self._fh.fileno(), self._handed, self._written - self._handed)
            self._handed = self._written

    def commit(self) -> bool:
        """Rename the bytes to the key's path; False if the store had it already.

        Durability comes later, for all files at once (:meth:`DirectoryStore.sync`, before recording).
        """
        final = self.store.key_path(self.key)
        try:
            with self._fh:
                self._fh.flush()
            if _holds(final, self.key):
                return False
            if final.is_file():  # cut short (see DirectoryStore.has): replace it
                os.chmod(final.parent, _READ_ONLY_DIR | stat.S_IWUSR)
                final.unlink()
            os.chmod(self.tmp, _READ_ONLY_FILE)
            _make_dir(final.parent)
            try:
                os.rename(self.tmp, final)
            except OSError as exc:  # another keep put it there first, and closed the directory
                if final.is_file() and exc.errno in (errno.EACCES, errno.EPERM, errno.EEXIST):
                    return False
                raise
            try:
                os.chmod(final.parent, _READ_ONLY_DIR)
            except OSError:
                pass
            return True
        finally:
            self.done = True
            self.tmp.unlink(missing_ok=True)

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)
        self.done = True

    def __enter__(self) -> Incoming:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.discard()


def _make_dir(path: Path) -> None:
    """``path`` and its parents made: one ``mkdir`` when the parents are there (most keys of a large
    store), where ``Path.mkdir(parents=True)`` checks and fails its way up first."""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


@functools.lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname().replace("-", "_") or "host"


def _holds(path: Path, key: str) -> bool:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    size = key_size(key)
    return stat.S_ISREG(st.st_mode) and (size is None or st.st_size == size)


_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Linux's ``sync_file_range(SYNC_FILE_RANGE_WRITE)``: start writing the range to disk, without
    waiting and without any durability promise (that is :meth:`DirectoryStore.sync`'s); elsewhere nothing."""
    fn = _libc_sync_file_range()
    if fn is not None:
        fn(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # a failure only leaves the work to the syncfs


@functools.lru_cache(maxsize=1)
def _libc_sync_file_range() -> Any:
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range  # the GIL is released during the call
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _syncfs(fd: int) -> int:
    """Linux's syncfs(2) on the file system of ``fd``; -1 where it is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.syncfs(fd))
    except (OSError, AttributeError):
        return -1

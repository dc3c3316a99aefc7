"""An archive URL that stopped serving, found by any reader: remembered, and the store read instead.

A pin's archive URL (an S3 ``?versionId=``) serves its key's bytes or nothing; when the archive
loses them (on DANDI every old Zarr state ends so: noncurrent versions expire) the URL answers
404, which fsspec raises as ``FileNotFoundError`` and zarr-python reads as "no chunk here: fill
value".  So no read path hands an archive failure on as it is.  On the first failure a reader
sees (:func:`read_bytes`), the file is read from a store of the lab's that holds its key, else
:class:`NotStreamable` is raised (an ``OSError`` zarr does not take for a missing chunk), and
when the archive said the bytes are gone (404/410) the loss is remembered three ways:

* in this process (:class:`Losses`), so the next read goes straight to the store;
* in the index, table ``lost_urls (url, key, status, seen)``, so every other reader of the mirror
  (the view, another ``neuromirror://`` process, ``urls``) turns to the store within one request;
* on the ``git-annex`` branch (``web: 0``, :mod:`neuromirror.store.webmark`, as ``verify --content``
  marks it) once every http(s) URL of the key answers 4xx, so that every later clone's
  ``datalad get`` skips the web and goes to the store at once.  Written by a background thread,
  under the source's lock, a batch of keys at a time (:meth:`Losses.flush` waits for it).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import queue
import sqlite3
import threading
import traceback
import weakref
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from neuromirror.errors import Unavailable
from neuromirror.index.store_checks import forget_lost, lost_status, open_losses, record_lost
from neuromirror.network import identity
from neuromirror.read.check import LOST, url_status
from neuromirror.read.urls import PinnedFile
from neuromirror.store.webmark import GONE_STATUSES

log = logging.getLogger("neuromirror.read.loss")

#: every :class:`Losses` of the process (a zarr store's filesystem is its own instance): flushed at exit
_ALL: weakref.WeakSet = weakref.WeakSet()
#: the archive's answers that say its bytes are gone (the others: a refused connection, a 5xx, a 403)
GONE = tuple(f"HTTP {s}" for s in GONE_STATUSES)


class NotStreamable(Unavailable, OSError):
    """No URL serves this file's exact bytes (the reason is the message)."""


def gone_status(exc: BaseException) -> Optional[str]:
    """``HTTP 404``/``HTTP 410`` when ``exc`` is the archive saying the bytes are gone, else None."""
    if isinstance(exc, FileNotFoundError):
        return "HTTP 404"  # fsspec's HTTP filesystem: a 404
    status = getattr(exc, "status", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return f"HTTP {status}" if status in GONE_STATUSES else None


def lost_reason(f: PinnedFile, status: str) -> str:
    return f"{f.path}: key {f.key}: " + LOST.format(status=status)


def flush_all() -> None:
    """Wait until every loss any reader of this process saw is marked on its branch (run at exit too)."""
    for losses in list(_ALL):
        losses.flush()


class Losses:
    """The archive URLs known gone: this process's, and the index's (shared by every reader of the mirror)."""

    def __init__(self, index_path: Optional[Path], lock: Optional[Callable[[str], Any]] = None) -> None:
        self.index_path = index_path
        self._lock_source = lock  # source -> a context manager holding its lock (None: no branch marks)
        self._known: dict[str, str] = {}
        self._local = threading.local()
        self._guard = threading.Lock()
        self._todo: queue.Queue = queue.Queue()
        self._worker: Optional[threading.Thread] = None
        _ALL.add(self)

    # -- the index -------------------------------------------------------------------
    def _db(self) -> Optional[sqlite3.Connection]:
        if self.index_path is None or not self.index_path.exists():
            return None
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = open_losses(self.index_path)  # a read-only index: no loss known there
        return conn

    def status(self, url: str) -> Optional[str]:
        """What ``url`` answered when a reader found it gone, or None (not known gone)."""
        got = self._known.get(url)
        if got is not None:
            return got
        db = self._db()
        if db is None:
            return None
        status = lost_status(db, url)
        if status is not None:
            self._known[url] = status
        return status

    def apply(self, f: PinnedFile) -> PinnedFile:
        """``f`` as it reads now: an archive URL known gone replaced by the store's, or by none."""
        if f.served_by != "archive" or f.url is None:
            return f
        status = self.status(f.url)
        if status is None:
            return f
        if f.copy is not None:
            return dataclasses.replace(f, served_by="store")
        return dataclasses.replace(f, link=None, served_by="none", why=LOST.format(status=status))

    def record(self, f: PinnedFile, status: str, source: Optional[str] = None) -> None:
        """The archive URL of ``f`` answered ``status`` (gone): remembered here, in the index, on the branch."""
        assert f.url is not None
        self._known[f.url] = status
        db = self._db()
        if db is not None:
            try:
                record_lost(db, f.url, f.key, status)
            except sqlite3.OperationalError as exc:  # a read-only index: this process remembers it alone
                log.debug("lost URL not recorded in the index: %s", exc)
        log.warning("%s: the archive no longer serves it (%s)", f.path, status)
        if source and f.repo is not None and self._lock_source is not None:
            self._todo.put((source, f.repo, f.key))
            with self._guard:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._mark, name="neuromirror-lost-urls", daemon=True)
                    self._worker.start()

    def forget(self, url: str) -> None:
        """``url`` serves again (a later check found it)."""
        self._known.pop(url, None)
        db = self._db()
        if db is not None:
            forget_lost(db, url)

    def flush(self) -> None:
        """Wait until every loss seen so far is marked on its git-annex branch (or found not to be)."""
        self._todo.join()

    # -- the git-annex branch ----------------------------------------------------------
    def _mark(self) -> None:
        while True:
            try:
                first = self._todo.get(timeout=5)
            except queue.Empty:
                return
            batch = [first]
            while not self._todo.empty():
                batch.append(self._todo.get_nowait())
            try:
                self._mark_batch(batch)
            except Exception as exc:  # never a reader's failure: the index still remembers the loss
                log.warning("lost URLs not marked on the git-annex branch: %s", exc)
            finally:
                for _ in batch:
                    self._todo.task_done()

    def _mark_batch(self, batch: list[tuple[str, Path, str]]) -> None:
        from neuromirror.annex.branch_writer import mark_web
        from neuromirror.annex.logs import branch_logs

        by: dict[tuple[str, Path], list[str]] = {}
        for source, repo, key in batch:
            by.setdefault((source, repo), []).append(key)
        session = identity.session()  # the marking of lost URLs asks the archive by name
        for (source, repo), keys in by.items():
            logs = branch_logs(repo, keys, ".log.web")
            gone = [key for key in dict.fromkeys(keys) if _gone_from_web(session, logs.get(key))]
            if gone:
                assert self._lock_source is not None
                with self._lock_source(source):
                    marked, _ = mark_web(repo, gone, [])  # the branch's one writer: one commit
                if marked:
                    log.warning("%d key(s) marked on %s's git-annex branch as no longer on the web", len(marked), repo)


def _gone_from_web(session: Any, web_log: Optional[bytes]) -> bool:
    """Are a key's web URLs gone, as verify judges it: every one refused (4xx), one of them saying
    the bytes are gone (a key with no http(s) URL is not)."""
    from neuromirror.annex.logs import web_urls

    urls = [u for u in web_urls(web_log) if urlsplit(u).scheme in ("http", "https")]
    answers = [url_status(session, u, timeout=15) for u in urls]
    return bool(answers) and all(a and a.startswith("HTTP 4") for a in answers) and any(a in GONE for a in answers)


def dropped(exc: BaseException) -> BaseException:
    """``exc`` with the locals of the finished frames it passed through cleared.

    A caught exception's traceback holds its frames, and a frame that holds the exception back (fsspec's
    ``sync`` keeps it in a local; so would a ``failure = exc`` here) makes a cycle that reference counting
    never frees.  Each frame holds its caller, up to the reader's (h5py's, with h5py objects in its locals),
    so the collector would free those in whichever thread runs next: a deadlock when that thread serves a
    read h5py waits on under its lock.  The traceback's lines stay (the message, a log's stack)."""
    traceback.clear_frames(exc.__traceback__)
    return exc


def read_range(
    f: PinnedFile,
    start: Optional[int],
    end: Optional[int],
    cat: Callable[[str, Optional[int], Optional[int]], bytes],
    losses: Losses,
    source: Optional[str] = None,
) -> bytes:
    """Bytes ``[start:end]`` of ``f``, from its URL, else (the archive failed) from a store that holds it.

    ``cat(url, start, end)`` reads a URL; a store's copy the mirror reads itself is read through its store
    (:class:`.store_reads.StoreCopy`).  Never the archive's failure as it is: a 404 would be a
    Zarr chunk's fill value; :class:`NotStreamable` when no URL gives the bytes.  Leaves no garbage
    cycle behind (:func:`dropped`)."""
    f = losses.apply(f)
    if f.served_by == "none" or (f.streamed is None and f.url is None):
        raise NotStreamable(f"{f.path}: key {f.key or '-'}: {f.why or 'no URL serves it'}")
    try:
        return _read(f, start, end, cat)
    except Exception as exc:
        if f.served_by != "archive":
            raise NotStreamable(f"{f.path}: key {f.key}: its store's copy could not be read ({exc!r})") from dropped(
                exc
            )
        failure: Optional[BaseException] = dropped(exc)
    try:
        return _after_failure(f, failure, start, end, cat, losses, source)
    finally:
        failure = None  # this frame is in failure's traceback: holding it too would be a cycle


def _after_failure(
    f: PinnedFile,
    failure: Optional[BaseException],
    start: Optional[int],
    end: Optional[int],
    cat: Callable[[str, Optional[int], Optional[int]], bytes],
    losses: Losses,
    source: Optional[str],
) -> bytes:
    """The archive failed to read ``f``: remember a loss, read the store's copy, else a loud error."""
    assert failure is not None
    status = gone_status(failure)
    if status is not None:
        losses.record(f, status, source)
    if f.copy is not None:
        try:
            return _read(dataclasses.replace(f, served_by="store"), start, end, cat)
        except Exception as exc:
            raise NotStreamable(f"{f.path}: key {f.key}: the archive and the store both failed ({exc!r})") from dropped(
                exc
            )
    if status is not None:
        raise NotStreamable(lost_reason(f, status)) from failure
    why = f"{f.path}: key {f.key}: the archive did not answer ({failure!r}) and no store of the lab's holds it"
    raise NotStreamable(why) from failure


def _read(
    f: PinnedFile, start: Optional[int], end: Optional[int], cat: Callable[[str, Optional[int], Optional[int]], bytes]
) -> bytes:
    """Bytes ``[start:end]`` of what serves ``f``: the store's copy read through the store, else its URL."""
    own = f.streamed
    return own.read(start, end) if own is not None else cat(f.url or "", start, end)


def mirror_index(root: Any, index: Optional[str]) -> Path:
    """The index file of the mirror at ``root`` (where :class:`Losses` keeps its table)."""
    from neuromirror.dataset.mirror import Datasets

    return Path(Datasets(Path(root), index).index_path)


def source_lock(root: Any, index: Optional[str]) -> Callable[[str], Any]:
    """``source -> context manager`` holding the source's lock in the mirror at ``root`` (a minute at most)."""
    from neuromirror.dataset.mirror import Datasets

    return lambda source: Datasets(Path(root), index).lock(source, wait=60)


atexit.register(flush_all)  # a script that saw a loss exits once it is marked for clones

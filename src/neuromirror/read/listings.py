"""A pin's directories listed once and kept: what the view and ``neuromirror://`` answer reads from.

A reader of a pin makes many small requests (a Zarr read is one per chunk), and listing a directory
of a pin costs git processes (its tree and ``git-annex`` branch, :func:`~neuromirror.read.urls.pin_files`).
So a directory's files are listed once, recursively, with the bytes of small files kept in git read
in the same pass, and any file or directory under it is answered from that listing.  Listings are
bounded in number and in files held; requests that need the same unlisted directory at once (the
chunk reads of one Zarr) wait for one listing instead of each making its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Optional

from neuromirror.read.pinned import Pin
from neuromirror.read.urls import PinnedFile, pin_files
from neuromirror.util import gitutil

#: kept listings (each a pin's directory, recursively) and the files they may hold together
MAX_LISTINGS = 32
MAX_LISTED_FILES = 1_000_000
#: git files up to this size are read with their listing (sidecars, Zarr metadata), up to a total
INLINE_BLOB = 256 * 1024
INLINE_TOTAL = 16 * 1024 * 1024


class Listing:
    """The files of a pin under ``base``, recursively, with each directory's children indexed once."""

    def __init__(self, base: str, files: Iterable[PinnedFile]) -> None:
        self.base = base
        self.files: dict[str, PinnedFile] = {}
        self.dirs: dict[str, dict[str, Optional[PinnedFile]]] = {}
        self.data: dict[str, bytes] = {}
        for f in files:
            path = f.path.rstrip("/")  # an uninstalled subdataset: a file no URL serves
            self.files[path] = f
            parts = path.split("/")
            for i in range(len(parts)):
                parent = "/".join(parts[:i])
                if self.covers(parent):
                    self.dirs.setdefault(parent, {})[parts[i]] = f if i == len(parts) - 1 else None
        self._read_small_git_files()

    def covers(self, directory: str) -> bool:
        return not self.base or directory == self.base or directory.startswith(self.base + "/")

    def _read_small_git_files(self) -> None:
        """The bytes of small files kept in git, one ``cat-file --batch`` per repository."""
        by_repo: dict[Path, list[PinnedFile]] = {}
        total = 0
        for f in self.files.values():
            if f.served_by == "git" and f.repo and f.blob and (f.size or 0) <= INLINE_BLOB:
                total += f.size or 0
                if total > INLINE_TOTAL:
                    break
                by_repo.setdefault(f.repo, []).append(f)
        for repo, files in by_repo.items():
            cat = gitutil.CatFile(repo)
            try:
                for f, data in zip(files, cat.get_many([f.blob or "" for f in files])):
                    if data is not None:
                        self.data[f.path] = data
            finally:
                cat.close()


class Listings:
    """The kept listings of any pins, bounded; safe to share between threads."""

    def __init__(self, max_listings: int = MAX_LISTINGS, max_files: int = MAX_LISTED_FILES) -> None:
        self.max_listings, self.max_files = max_listings, max_files
        self._lock = threading.Lock()
        self._listings: OrderedDict[tuple[str, str], Listing] = OrderedDict()
        self._busy: dict[tuple[str, str], threading.Lock] = {}

    def get(self, pin: Pin, directory: str) -> Listing:
        """A listing of the pin that covers ``directory``: a kept one, else one read now and kept."""
        ident = f"{pin.dataset}@{pin.commit}"
        with self._lock:
            busy = self._busy.setdefault((ident, directory), threading.Lock())
        with busy:  # the chunk reads of a Zarr arrive together: one of them lists, the others wait
            with self._lock:
                for key, listing in reversed(self._listings.items()):
                    if key[0] == ident and listing.covers(directory):
                        self._listings.move_to_end(key)
                        return listing
            listing = Listing(directory, pin_files(pin, [directory] if directory else []))
            with self._lock:
                self._listings[(ident, listing.base)] = listing
                while len(self._listings) > self.max_listings or (
                    len(self._listings) > 1 and sum(len(x.files) for x in self._listings.values()) > self.max_files
                ):
                    self._listings.popitem(last=False)
                self._busy.pop((ident, directory), None)
        return listing

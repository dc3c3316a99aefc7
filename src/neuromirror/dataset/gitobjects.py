"""Git's on-disk formats written from Python: a pack with its index, trees from paths, the index file.

For a dataset made from scratch (:mod:`.fast_init`) everything git would write is known
beforehand, and a git child per step costs more than the step: a Zarr of 20 objects
took ~14 git processes to create and commit.  Here one pack (``.pack`` + ``.idx``,
format 2, whole objects — no deltas) holds all of a new dataset's objects, two files
where loose objects took one file and one directory each on a file system where either
costs ~60 us; the git index (version 2) is written with the work tree's stat data, so
git sees the checked-out files as clean.  ``git fsck`` accepts what is written here
(tests/test_zarr_many.py runs it).
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from neuromirror.annex.pack import BLOB, COMMIT, TREE, MemoryPack, tree_bytes

__all__ = ["BLOB", "COMMIT", "FILE", "LINK", "TREE", "ObjectPack", "index_file"]

_DIR = b"40000"
#: tree modes of a regular file and of a symlink (an annexed file)
FILE, LINK = b"100644", b"120000"
#: an index entry's flag "extended flags follow", and the extended flag skip-worktree
_EXTENDED, _SKIP_WORKTREE = 0x4000, 0x4000


class ObjectPack(MemoryPack):
    """A new dataset's objects (:class:`~neuromirror.annex.pack.MemoryPack`), with trees made from paths."""

    def tree_of(self, files: Mapping[str, tuple[bytes, bytes]]) -> bytes:
        """The root tree holding ``files`` (path -> (mode, binary id)), subtrees included."""
        return self.root_of(files)[0]

    def root_of(self, files: Mapping[str, tuple[bytes, bytes]]) -> tuple[bytes, dict[str, bytes]]:
        """:meth:`tree_of`, and the id of each top-level directory's tree (a sparse index's entries)."""
        root: dict = {}
        for path, (mode, sha) in files.items():
            node = root
            *dirs, name = path.split("/")
            for d in dirs:
                node = node.setdefault(d, {})
                if not isinstance(node, dict):
                    raise ValueError(f"{path!r}: a file is on its way")
            if name in node:
                raise ValueError(f"{path!r} is given twice, or is a directory too")
            node[name] = (mode, sha)
        tops = {name: self._tree(value) for name, value in root.items() if isinstance(value, dict)}
        return self._tree(root, tops), tops

    def _tree(self, node: dict, made: Optional[Mapping[str, bytes]] = None) -> bytes:
        entries: dict[bytes, tuple[bytes, bytes]] = {}
        for name, value in node.items():
            if isinstance(value, dict):
                value = (_DIR, made[name] if made and name in made else self._tree(value))
            entries[name.encode("utf-8", "surrogateescape")] = value
        return self.add(TREE, tree_bytes(entries))


def index_file(
    work: Path,
    files: Iterable[tuple[str, bytes, bytes]],
    skipped: Optional[Callable[[str], bool]] = None,
    sparse_dirs: Optional[Mapping[str, bytes]] = None,
) -> bytes:
    """A git index of ``files`` (path, mode, binary id) with the work tree's stat data.

    ``skipped(path)``: the file is outside a sparse checkout — marked skip-worktree (an
    extended flag, so the index is version 3) with no stat data, as ``git read-tree`` leaves it.
    ``sparse_dirs`` (directory -> tree id): a *sparse index* (cone mode, ``index.sparse``) — each
    of these directories is one skip-worktree entry (mode 040000, its name ending in ``/``) in
    place of its files, and the index carries git's ``sdir`` extension saying so.
    """
    rows = _index_rows(files, sparse_dirs)
    marks = [path.endswith("/") or (skipped is not None and skipped(path)) for path, _, _ in rows]
    out = [b"DIRC", struct.pack(">II", 3 if any(marks) else 2, len(rows))]
    out += [_index_entry(work, path, mode, sha, skip) for (path, mode, sha), skip in zip(rows, marks)]
    if sparse_dirs is not None:
        out.append(b"sdir" + struct.pack(">I", 0))
    body = b"".join(out)
    return body + hashlib.sha1(body).digest()


def _index_rows(
    files: Iterable[tuple[str, bytes, bytes]], sparse_dirs: Optional[Mapping[str, bytes]]
) -> list[tuple[str, bytes, bytes]]:
    """The index's rows in git's order (by the path's bytes): a sparse directory's files give way to
    one row for the directory itself."""
    rows = [f for f in files if not (sparse_dirs and f[0].split("/", 1)[0] in sparse_dirs and "/" in f[0])]
    rows += [(f"{d}/", _DIR, sha) for d, sha in (sparse_dirs or {}).items()]
    rows.sort(key=lambda f: f[0].encode("utf-8", "surrogateescape"))
    return rows


def _index_entry(work: Path, path: str, mode: bytes, sha: bytes, skip: bool) -> bytes:
    """One index entry: the work tree's stat data (none for a skip-worktree entry, which then carries
    the extended flag), the id, the name padded to 8 bytes."""
    name = path.encode("utf-8", "surrogateescape")
    if skip:
        fields: tuple[int, ...] = (0, 0, 0, 0, 0, 0, int(mode, 8), 0, 0, 0)
    else:
        st = os.lstat(work / path)
        fields = (
            int(st.st_ctime),
            st.st_ctime_ns % 1_000_000_000,
            int(st.st_mtime),
            st.st_mtime_ns % 1_000_000_000,
            st.st_dev,
            st.st_ino,
            int(mode, 8),
            st.st_uid,
            st.st_gid,
            st.st_size,
        )
    flags = min(len(name), 0xFFF) | (_EXTENDED if skip else 0)
    entry = struct.pack(">10I", *(v & 0xFFFFFFFF for v in fields)) + sha + struct.pack(">H", flags)
    if skip:
        entry += struct.pack(">H", _SKIP_WORKTREE)
    entry += name
    entry += b"\0" * (8 - len(entry) % 8)  # NUL-terminated, padded to a multiple of 8 bytes
    return entry

"""One commit on the ``git-annex`` branch holding many keys' logs, in the branch's ``abc/def/`` layout.

Three ways, by the number of keys, each moving the branch last (a crash before
leaves it where it was, with unreferenced objects that ``git gc`` removes); only
the trees on the way to a changed log are read from the parent and written
again, so a commit of a few keys costs a few objects however large the branch:

- fewer than ``MEMORY_MIN_KEYS``: one ``git fast-import`` stream of the paths;
- up to ``PACK_MIN_KEYS``: blobs and trees built here into a pack written with its
  own index (:class:`.pack.MemoryPack`), no git child at all.  fast-import places
  each path by scanning the branch root's entries one by one (~3,000 directories
  for a Zarr of 5,000 keys): ~20 us of its CPU per key, twice what the pack costs here;
- more: the log files through fast-import as bare blobs (C, on another core, while
  this process goes on; their ids computed here), the trees built here into a pack
  that ``git index-pack`` installs (memory stays bounded: nothing is held per object).
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Callable, Iterable, Mapping, Optional, Union

from neuromirror.annex.logs import BRANCH
from neuromirror.annex.pack import BLOB, COMMIT, TREE, MemoryPack, PackWriter, object_id, parse_tree, tree_bytes
from neuromirror.util import gitutil
from neuromirror.util.memory.spool import Spool

#: a key's log: fast-import's paths end at a line feed, tree entries' names at a NUL
_LAYOUT = re.compile(rb"[0-9a-f]{3}/[0-9a-f]{3}/[^/\x00\n]+")
_MESSAGE = b"update"
_DIR, _FILE = b"40000", b"100644"

#: a fast-import stream runner: it calls the function with the stream's stdin, then finishes the stream
Runner = Callable[[Callable[[IO[bytes]], None]], None]


#: from this many keys on, blobs and trees are built here, into a pack held in memory (~0.5 KB a
#: key) with its own index: below, a fast-import stream is cheaper than the cat-file reads of the
#: parent's trees it spares (a resync's few changed keys).  Python's time, where fast-import's was
#: C on another core: a gain where the jobs run in processes (util.processes), where threads take
#: turns with one interpreter it moved a cold 40 x 5,000-object dandiset 14 % slower
MEMORY_MIN_KEYS = 2000

#: from this many keys on, the blobs go through fast-import and the trees into a pack on disk
#: (:func:`_write_packed`): memory bounded for a Zarr of 10^6 objects (200 Zarr datasets of 5,000
#: keys, 4 at a time in threads: building their trees in Python cost ~1 s of GIL-bound time per Zarr)
PACK_MIN_KEYS = 20_000


def write_logs(
    repo: Path,
    logs: Iterable[tuple[str, bytes]],
    parent: Optional[str],
    ident: str,
    stamp: str,
    fast_import: Runner,
    keys: int,
    cat: Optional[gitutil.CatFile] = None,
) -> None:
    """Commit ``logs`` (``abc/def/<key>.log...`` -> content) of ``keys`` keys on top of ``parent``
    (``cat``: a reader of the repository's objects the caller has open, else one is started)."""
    if keys >= PACK_MIN_KEYS:
        _write_packed(repo, logs, parent, ident, stamp, fast_import)
    elif keys >= MEMORY_MIN_KEYS:
        _write_in_memory(repo, logs, parent, ident, stamp, cat)
    else:
        fast_import(lambda s: _stream_commit(s, logs, parent, ident, stamp))


def _write_in_memory(
    repo: Path,
    logs: Iterable[tuple[str, bytes]],
    parent: Optional[str],
    ident: str,
    stamp: str,
    cat: Optional[gitutil.CatFile],
) -> Optional[str]:
    pack = MemoryPack()
    buckets: dict[int, list[tuple[bytes, bytes]]] = {}
    add = pack.add
    for path, data in logs:
        p = _log_path(path)
        bucket = buckets.get(p[0])
        if bucket is None:
            bucket = buckets[p[0]] = []
        bucket.append((p, add(BLOB, data)))
    if not buckets:
        return None
    commit = _commit_trees(repo, buckets, parent, ident, stamp, pack, cat)
    git = gitutil.git_dir(repo)
    if git is None:
        raise gitutil.GitError(f"no git directory in {repo}")
    pack.write(git)
    new = commit.hex()
    gitutil.run(repo, "update-ref", BRANCH, new, parent or "0" * 40)
    return new


def _log_path(path: str) -> bytes:
    p = path.encode()
    if not _LAYOUT.fullmatch(p):
        raise ValueError(f"not a key log path of the git-annex branch: {path!r}")
    return p


def _stream_commit(
    s: IO[bytes], logs: Iterable[tuple[str, bytes]], parent: Optional[str], ident: str, stamp: str
) -> None:
    s.write(f"commit {BRANCH}\ncommitter {ident} {stamp}\n".encode() + b"data %d\n%s\n" % (len(_MESSAGE), _MESSAGE))
    if parent:
        s.write(f"from {parent}\n".encode())
    write = s.write
    for path, data in logs:
        write(b"M 100644 inline %s\ndata %d\n%s\n" % (_log_path(path), len(data), data))


def _write_packed(
    repo: Path, logs: Iterable[tuple[str, bytes]], parent: Optional[str], ident: str, stamp: str, fast_import: Runner
) -> Optional[str]:
    buckets: dict[int, Spool] = {}
    pack = PackWriter(repo)
    commit: list[bytes] = []

    def stream(s: IO[bytes]) -> None:
        for path, data in logs:
            p = _log_path(path)
            s.write(b"blob\ndata %d\n%s\n" % (len(data), data))
            bucket = buckets.get(p[0])
            if bucket is None:
                bucket = buckets[p[0]] = Spool()
            bucket.add((p, object_id(BLOB, data)))
        if buckets:  # fast-import still digests the blobs while the trees are built
            commit.append(_commit_trees(repo, buckets, parent, ident, stamp, pack))

    try:
        fast_import(stream)
        if not commit:
            return None
        pack.install()
    finally:
        pack.close()
        for b in buckets.values():
            b.close()
    new = commit[0].hex()
    gitutil.run(repo, "update-ref", BRANCH, new, parent or "0" * 40)
    return new


_FILE_ENTRY, _DIR_ENTRY = b"100644 %s\0%s", b"40000 %s\0%s"


def _new_tree(entry: bytes, names: dict[bytes, bytes]) -> bytes:
    """A tree of ``names`` (name -> id), all files or all directories of the ``abc/def/`` layout: in
    git's order by name alone (a directory sorts as ``name/``, which changes nothing among the
    layout's fixed-length directory names, and files are never beside them)."""
    return b"".join([entry % (name, names[name]) for name in sorted(names)])


def _commit_trees(
    repo: Path,
    buckets: Mapping[int, Iterable[tuple[bytes, bytes]]],
    parent: Optional[str],
    ident: str,
    stamp: str,
    pack: Union[PackWriter, MemoryPack],
    reader: Optional[gitutil.CatFile] = None,
) -> bytes:
    """Build the changed trees into ``pack`` (one bucket of top directories at a time: bounded memory)."""
    with nullcontext(reader) if reader is not None else gitutil.CatFile(repo) as cat:

        def tree(oid: Optional[bytes]) -> dict[bytes, tuple[bytes, bytes]]:
            if oid is None:
                return {}
            data = cat.get(oid.hex())
            return parse_tree(data) if data is not None else {}

        add = pack.add
        root_data = cat.get(f"{parent}^{{tree}}") if parent else None
        root = parse_tree(root_data) if root_data else {}
        for first in sorted(buckets):
            grouped: dict[bytes, dict[bytes, dict[bytes, bytes]]] = {}
            for p, oid in buckets[first]:
                grouped.setdefault(p[:3], {}).setdefault(p[4:7], {})[p[8:]] = oid
            for top in sorted(grouped):
                old_top = root.get(top)
                if old_top is None or old_top[0] != _DIR:  # a new directory (the common case of a new key)
                    subs = {sub: add(TREE, _new_tree(_FILE_ENTRY, files)) for sub, files in grouped[top].items()}
                    root[top] = (_DIR, add(TREE, _new_tree(_DIR_ENTRY, subs)))
                    continue
                top_entries = tree(old_top[1])
                for sub, files in grouped[top].items():
                    old_sub = top_entries.get(sub)
                    if old_sub is None or old_sub[0] != _DIR:
                        top_entries[sub] = (_DIR, add(TREE, _new_tree(_FILE_ENTRY, files)))
                        continue
                    sub_entries = tree(old_sub[1])
                    for name, oid in files.items():
                        sub_entries[name] = (_FILE, oid)
                    top_entries[sub] = (_DIR, add(TREE, tree_bytes(sub_entries)))
                root[top] = (_DIR, add(TREE, tree_bytes(top_entries)))
    root_id = pack.add(TREE, tree_bytes(root))
    lines = [f"tree {root_id.hex()}"] + ([f"parent {parent}"] if parent else [])
    lines += [f"author {ident} {stamp}", f"committer {ident} {stamp}", ""]
    return pack.add(COMMIT, "\n".join(lines).encode() + b"\n" + _MESSAGE + b"\n")

"""Objects written straight into one git pack (format 2, whole objects): with its own index, written
here (:class:`MemoryPack`, the objects of one commit held in memory), or installed by ``git index-pack``
(:class:`PackWriter`, a temporary file: any number of objects).

Why not fast-import or the index: fast-import places each path by scanning the
entries of every tree on the way, one after another.  The git-annex branch keeps
each key's logs under ``abc/def/``, 4,096 directories at its root, so the logs of
10^5 keys cost fast-import about 2x10^5 x 2,000 name comparisons (9 of its 10.5 s
here), and of 10^6 keys ten times as many per path.  ``update-index`` +
``write-tree`` place paths by binary search but write each tree as a loose object
file: 90 s for the 10^5 trees of 10^5 keys on this file system.  Trees built by
the caller, whole, and written here cost a few microseconds each; ``git index-pack``
hashes and inflates each object once more, which a :class:`MemoryPack` spares.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

from neuromirror.util import gitutil

COMMIT, TREE, BLOB = 1, 2, 3
_TYPE_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob"}

#: objects below this size are stored in the zlib stream, not deflated: the trees of the
#: git-annex branch are mostly binary ids, which do not shrink, and setting up a deflate
#: state costs ~10 us per object (10 s for the 10^6 trees of 10^6 keys); git inflates either
_SMALL = 4096


_PREFIXES = {kind: name + b" " for kind, name in _TYPE_NAMES.items()}
#: blobs up to this size are remembered by content in a :class:`MemoryPack`
_REMEMBERED = 100


def object_id(kind: int, data: bytes) -> bytes:
    """The object's binary SHA-1, as git computes it."""
    return hashlib.sha1(_PREFIXES[kind] + b"%d\0" % len(data) + data).digest()


def deflate(data: bytes) -> bytes:
    """An object's bytes as a pack stores them: a zlib stream (stored below :data:`_SMALL`)."""
    n = len(data)
    if n < _SMALL:
        # RFC 1950 header (no dictionary, fastest), one final stored block (RFC 1951), Adler-32
        return b"\x78\x01\x01" + struct.pack("<HH", n, n ^ 0xFFFF) + data + struct.pack(">I", zlib.adler32(data))
    z = zlib.compressobj(1)
    return z.compress(data) + z.flush()


@functools.lru_cache(maxsize=8192)
def _header(kind: int, size: int) -> bytes:
    return object_header(kind, size)


def object_header(kind: int, size: int) -> bytes:
    """A pack entry's header: its type and (variable-length) inflated size."""
    c = (kind << 4) | (size & 15)
    size >>= 4
    out = bytearray()
    while size:
        out.append(c | 0x80)
        c = size & 0x7F
        size >>= 7
    out.append(c)
    return bytes(out)


class PackWriter:
    """Collect objects in a temporary pack file; :meth:`install` hands it to the repository."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.fh = tempfile.TemporaryFile()
        self.fh.write(b"PACK" + struct.pack(">II", 2, 0))  # the count is filled in at the end
        self.count = 0

    def add(self, kind: int, data: bytes) -> bytes:
        """Write one object; return its binary id."""
        self.fh.write(object_header(kind, len(data)) + deflate(data))
        self.count += 1
        return object_id(kind, data)

    def install(self) -> None:
        """Finish the pack and let ``git index-pack`` check it and move it into the object store."""
        try:
            if not self.count:
                return
            self.fh.seek(8)
            self.fh.write(struct.pack(">I", self.count))
            self.fh.seek(0)
            h = hashlib.sha1()
            for chunk in iter(lambda: self.fh.read(1 << 20), b""):
                h.update(chunk)
            self.fh.write(h.digest())
            self.fh.seek(0)
            proc = subprocess.run(
                ["git", "-C", str(self.repo), "index-pack", "--stdin"],
                stdin=self.fh,
                capture_output=True,
                env=gitutil.git_env(),
            )
            if proc.returncode != 0:
                lines = proc.stderr.decode(errors="replace").strip().splitlines()
                raise gitutil.GitError(
                    f"git index-pack failed in {self.repo}: {lines[-1] if lines else proc.returncode}"
                )
        finally:
            self.close()

    def close(self) -> None:
        self.fh.close()


class MemoryPack:
    """Objects collected in memory, written as one pack and its ``.idx`` by this process (no git child).

    For the few thousand objects of one commit, git's own ways cost more than the objects: a
    ``git index-pack`` inflates and hashes every object again, fast-import places every path by
    scanning each tree on its way (see the module).  Objects are kept once each; ``git fsck``
    accepts what is written (tests/test_zarr_many.py, tests/test_annex_branch_pack.py).
    """

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.entries: dict[bytes, tuple[int, int]] = {}  # binary id -> (offset, crc32)
        self.offset = 12
        #: small objects met before, by content: the git-annex branch's location logs of one commit
        #: are mostly the same line, hashed once instead of once per key
        self._small: dict[bytes, bytes] = {}

    def add(self, kind: int, data: bytes) -> bytes:
        """Add one object (once); its binary id."""
        n = len(data)
        remember = kind == BLOB and n <= _REMEMBERED
        if remember:
            known = self._small.get(data)
            if known is not None:
                return known
        sha = object_id(kind, data)
        if sha not in self.entries:
            if self.offset >= 1 << 31:
                raise ValueError("a pack held in memory is for one commit's objects: this one is over 2 GB")
            packed = _header(kind, n) + deflate(data)
            self.entries[sha] = (self.offset, zlib.crc32(packed))
            self.parts.append(packed)
            self.offset += len(packed)
        if remember and len(self._small) < 4096:
            self._small[data] = sha
        return sha

    def write(self, git_dir: Path) -> None:
        """Write the pack and its index into ``git_dir``'s object store (the index last: git
        looks for packs by their ``.idx``)."""
        if not self.entries:
            return
        body = b"PACK" + struct.pack(">II", 2, len(self.entries)) + b"".join(self.parts)
        pack_sha = hashlib.sha1(body).digest()
        entries = self.entries
        names = sorted(entries)
        # one pass over the ids (a small Zarr's pack holds ~100: 256 searches cost more than the pass)
        fanout = [0] * 256
        for sha in names:
            fanout[sha[0]] += 1
        total = 0
        for i in range(256):
            total += fanout[i]
            fanout[i] = total
        idx = b"".join(
            [
                b"\377tOc" + struct.pack(">I", 2),
                struct.pack(">256I", *fanout),
                *names,
                struct.pack(f">{len(names)}I", *[entries[s][1] for s in names]),
                struct.pack(f">{len(names)}I", *[entries[s][0] for s in names]),
                pack_sha,
            ]
        )
        idx += hashlib.sha1(idx).digest()
        base = git_dir / "objects" / "pack" / f"pack-{pack_sha.hex()}"
        with open(base.with_suffix(".pack"), "wb") as fh:
            fh.write(body)
            fh.write(pack_sha)
        base.with_suffix(".idx").write_bytes(idx)


def tree_entries(data: bytes, oid_bytes: int = 20) -> list[tuple[str, str, str]]:
    """(name, mode, hex id) of each entry of a raw git tree object, in the tree's order (names as
    git stores them, undecodable bytes kept by ``surrogateescape``; ``oid_bytes``: 32 in a SHA-256 repository)."""
    return [
        (name.decode("utf-8", "surrogateescape"), mode.decode(), oid.hex())
        for name, (mode, oid) in parse_tree(data, oid_bytes).items()
    ]


def parse_tree(data: bytes, oid_bytes: int = 20) -> dict[bytes, tuple[bytes, bytes]]:
    """A tree object's entries: name -> (mode, binary id), in the tree's order."""
    out: dict[bytes, tuple[bytes, bytes]] = {}
    i = 0
    while i < len(data):
        sp = data.index(b" ", i)
        nul = data.index(b"\0", sp)
        out[data[sp + 1 : nul]] = (data[i:sp], data[nul + 1 : nul + 1 + oid_bytes])
        i = nul + 1 + oid_bytes
    return out


def tree_bytes(entries: dict[bytes, tuple[bytes, bytes]]) -> bytes:
    """A tree object from name -> (mode, binary id), in git's order (directories sort as ``name/``)."""
    if len(entries) == 1:
        ((name, (mode, oid)),) = entries.items()
        return b"%s %s\0%s" % (mode, name, oid)
    order = sorted(
        (name + b"/" if mode == b"40000" else name, name, mode, oid) for name, (mode, oid) in entries.items()
    )
    return b"".join(b"%s %s\0%s" % (mode, name, oid) for _, name, mode, oid in order)

"""git-annex keys and where git-annex expects to find them.

Computing hash directories ourselves (instead of asking ``git annex
examinekey`` per key) is what lets the fast writer emit 10^5 symlinks and
log files in one stream; the tests check every function here against
git-annex's own answer.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

_CHARS = "0123456789zqjxkmvwgpfZQJXKMVWGPF"
_KEY_RE = re.compile(r"^(?P<backend>[A-Z0-9]+)(?:-s(?P<size>\d+))?(?:-[a-zA-Z]\d+)*--(?P<name>.+)$")
#: extensions git-annex keeps in *E keys: short, alphanumeric (annex.maxextensionlength default 4)
_EXT_RE = re.compile(r"^[A-Za-z0-9]{1,4}$")


def key_extension(path: str) -> str:
    """The extension git-annex's *E backends would keep for ``path`` ('' if none).

    git-annex keeps up to two extensions (``.nii.gz``), each of at most
    ``annex.maxextensionlength`` (4) alphanumeric characters.  Keys made by
    us must match what ``git annex add`` would have made for the same file,
    so that a later re-add or ``git annex migrate`` finds the same key.
    """
    name = path[path.rfind("/") + 1 :]
    if "." not in name:  # most Zarr chunks
        return ""
    parts = name.split(".")[1:]
    exts: list[str] = []
    for part in reversed(parts[-2:]):
        if not _EXT_RE.match(part):
            break
        exts.insert(0, part)
    if len(exts) == len(parts) and exts:
        # the whole name is extensions (".bashrc"): git-annex keeps none of the leading dot part
        exts = exts[1:] if name.startswith(".") else exts
    return "".join("." + e for e in exts)


def sha256e_key(sha256: str, size: int, path: str) -> str:
    return f"SHA256E-s{size}--{sha256.lower()}{key_extension(path)}"


def git_file_key(sha256: str, size: int) -> str:
    """The key whose ``.log.web`` holds the archive's URLs of a file kept in git (no file points to it)."""
    return f"SHA256-s{size}--{sha256.lower()}"


def md5e_key(md5: str, size: int, path: str) -> str:
    return f"MD5E-s{size}--{md5.lower()}{key_extension(path)}"


def url_key(url: str, size: Optional[int]) -> str:
    """A VURL key: git-annex records the checksum on first download and verifies later ones.

    Like ``git annex addurl --fast --verifiable``, long URLs are shortened by
    hashing so that the key stays a valid file name.
    """
    sz = f"-s{size}" if size is not None else ""
    base = url.replace("/", "_").replace("%", "&")
    if len(base) > 128:
        base = base[:64] + "-" + hashlib.md5(url.encode()).hexdigest()
    return f"VURL{sz}--{base}"


def parse_key(key: str) -> dict:
    m = _KEY_RE.match(key)
    if not m:
        raise ValueError(f"not a git-annex key: {key!r}")
    backend = m.group("backend")
    name = m.group("name")
    size = int(m.group("size")) if m.group("size") else None
    checksum = None
    if backend in ("SHA256E", "SHA256", "MD5E", "MD5"):
        checksum = name.split(".", 1)[0]
    elif backend == MPETAG:
        named = key_checksum(key)
        checksum = named.digest if named else None
    return {"backend": backend, "size": size, "checksum": checksum}


#: git-annex hash backends -> hashlib names (an ``E`` suffix only adds the file's extension to the key)
HASH_BACKENDS = {
    "SHA256": "sha256",
    "SHA512": "sha512",
    "SHA384": "sha384",
    "SHA224": "sha224",
    "SHA1": "sha1",
    "MD5": "md5",
    "SHA3_224": "sha3_224",
    "SHA3_256": "sha3_256",
    "SHA3_384": "sha3_384",
    "SHA3_512": "sha3_512",
    "BLAKE2B512": "blake2b",
}


def key_hash(key: str) -> Optional[tuple[str, str]]:
    """(hashlib name, hex digest) a key names its bytes by; None for VURL, URL, WORM... keys.

    The one reading of it for keep (which verifies before storing) and verify (which hashes downloads).
    """
    backend, sep, name = key.partition("--")
    backend = backend.split("-", 1)[0]
    if not sep or not name:
        return None
    base = backend[:-1] if backend.endswith("E") and backend[:-1] in HASH_BACKENDS else backend
    algorithm = HASH_BACKENDS.get(base)
    if algorithm is None:
        return None
    return algorithm, name.split(".", 1)[0] if base != backend else name


def hashdir_mixed(key: str) -> str:
    """The ``Xx/Yy/`` directory of a key under .git/annex/objects (non-bare repos).

    git-annex's ``display32bits`` of the MD5's first word, of which the directory takes four
    characters (6-bit groups 1, 0, 3, 2), written out: it runs once per annexed file of a commit.
    """
    w = int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "little")
    c = _CHARS
    return f"{c[(w >> 6) & 31]}{c[w & 31]}/{c[(w >> 18) & 31]}{c[(w >> 12) & 31]}/"


def hashdir_lower(key: str) -> str:
    """The ``abc/def/`` directory of a key's logs on the git-annex branch."""
    h = hashlib.md5(key.encode()).hexdigest()
    return f"{h[0:3]}/{h[3:6]}/"


def log_path(key: str, suffix: str = ".log") -> str:
    """Where ``key``'s log lives on the git-annex branch (``.log``: locations, ``.log.web``: URLs...)."""
    return f"{hashdir_lower(key)}{key_file(key)}{suffix}"


def key_file(key: str) -> str:
    """The file name git-annex uses for ``key`` (object files, branch logs): its ``keyFile``.

    ``&`` -> ``&a``, ``%`` -> ``&s``, ``:`` -> ``&c``, ``/`` -> ``%``; keys made of
    hashes and short extensions (SHA256E, MD5E) come out unchanged, URL keys do not.
    Hash directories are computed from the key itself, not from this name.
    """
    if not _KEY_FILE_SPECIAL.search(key):
        return key
    return "".join(_KEY_FILE_ESC.get(c, c) for c in key)


def key_from_file(name: str) -> str:
    """The inverse of :func:`key_file` (git-annex's ``fileKey``)."""
    if "%" not in name and "&" not in name:
        return name
    out: list[str] = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == "%":
            out.append("/")
        elif c == "&" and name[i + 1 : i + 2] in ("a", "s", "c"):
            out.append({"a": "&", "s": "%", "c": ":"}[name[i + 1]])
            i += 1
        else:
            out.append(c)
        i += 1
    return "".join(out)


_KEY_FILE_ESC = {"&": "&a", "%": "&s", ":": "&c", "/": "%"}
_KEY_FILE_SPECIAL = re.compile("[&%:/]")


def symlink_target(path: str, key: str) -> str:
    """The relative symlink git-annex writes for a locked annexed file at ``path``."""
    depth = path.count("/")
    name = key_file(key)
    return "../" * depth + ".git/annex/objects/" + hashdir_mixed(key) + name + "/" + name


def key_from_symlink(target: str) -> Optional[str]:
    if "/annex/objects/" not in target:
        return None
    return key_from_file(target.rsplit("/", 1)[-1])


_SPACE = re.compile(r"\s")
#: what urlsplit() would call a scheme, without parsing the whole URL (twice per annexed file)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


#: a URL as a log line takes it: a scheme, then no white space (one test for the common case)
_LOGGABLE = re.compile(_SCHEME.pattern + r"\S*")


def url_for_log(url: str) -> str:
    """URLs go into the branch's .log.web one per line: refuse whitespace inside."""
    if _LOGGABLE.fullmatch(url):
        return url
    if _SPACE.search(url):
        raise ValueError(f"URL with white space cannot be registered: {url!r}")
    if not _SCHEME.match(url):
        raise ValueError(f"URL without a scheme: {url!r}")
    return url


_HEX = re.compile(r"[0-9a-f]+")


#: the external backend naming an object by its S3 multipart ETag (``git-annex-backend-XMPETAG``,
#: :mod:`neuromirror.remotes.mpetag`): ``XMPETAG-s<size>--<md5 of the parts' MD5s>-<parts>-p<part size>``
MPETAG = "XMPETAG"
#: :attr:`Checksum.algorithm` of an XMPETAG key: S3's ETag of a multipart upload
MPETAG_ALGORITHM = "s3-multipart-etag"
_MPETAG_NAME = re.compile(r"([0-9a-f]{32}-[1-9][0-9]{0,4})-p([1-9][0-9]*)")


def mpetag_key(etag: str, size: int, part_size: int) -> str:
    """The XMPETAG key of an object whose S3 ETag is the multipart ``etag`` (``<md5>-<parts>``), uploaded
    in parts of ``part_size`` bytes (the last one shorter): the ETag alone does not say how to make it again."""
    return f"{MPETAG}-s{size}--{etag.lower()}-p{part_size}"


def guess_part_size(size: int, parts: int) -> Optional[int]:
    """The part size a ``size``-byte object's multipart upload of ``parts`` parts most likely used (an S3 listing
    names the parts' count, never their size); None when no rule known here makes that many parts.

    DANDI's rule first (dandischema's ``PartGenerator``: the archive hands out the same part URLs for a
    multipart Zarr's chunks as for its blobs), then the usual clients' sizes (5 MiB, 8 MiB: boto3's, 16 MiB,
    ...), then any power of two (a small part size of a test or a tool).  A wrong guess makes a key no bytes
    match: keep and verify then say so, and nothing is lost."""
    from dandischema.digests.dandietag import PartGenerator

    if parts == 1:
        return max(size, 1)
    dandi = PartGenerator.for_file_size(size) if size else None
    candidates = [dandi.initial_part_size] if dandi is not None and len(dandi) == parts else []
    candidates += [m << 20 for m in (5, 8, 16, 32, 64, 100, 128, 256, 512)]
    candidates += [1 << b for b in range(10, 36)]
    return next((p for p in candidates if -(-size // p) == parts), None)


class PartsHash:
    """S3's multipart ETag of the bytes fed to it, as hashlib's objects are fed: the MD5 of each ``part_size``
    bytes, then the MD5 of those digests, ``-<parts>`` (what keep, verify and restore check an XMPETAG key by)."""

    name = MPETAG_ALGORITHM

    def __init__(self, part_size: int):
        self.part_size = part_size
        self._md5s: list[bytes] = []
        self._part = hashlib.md5()
        self._left = part_size

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while len(view) > self._left:
            self._part.update(view[: self._left])
            view = view[self._left :]
            self._md5s.append(self._part.digest())
            self._part, self._left = hashlib.md5(), self.part_size
        self._part.update(view)
        self._left -= len(view)

    def hexdigest(self) -> str:
        md5s = self._md5s if self._left == self.part_size and self._md5s else [*self._md5s, self._part.digest()]
        return f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"


@dataclass(frozen=True)
class Checksum:
    """How a key checks its bytes: a hashlib algorithm and the digest the key names (an XMPETAG key: the
    multipart ETag, and the part size that makes it)."""

    algorithm: str
    digest: str
    part_size: int = 0

    def new(self) -> Any:
        if self.algorithm == MPETAG_ALGORITHM:
            return PartsHash(self.part_size)
        return _constructor(self.algorithm)()


@functools.cache
def _constructor(algorithm: str) -> Callable[[], Any]:
    """hashlib's own constructor of ``algorithm`` (``hashlib.md5``), where there is one: ``hashlib.new`` looks
    the name up again for each of 10^5 keys a verify hashes."""
    return getattr(hashlib, algorithm, None) or functools.partial(hashlib.new, algorithm)


@functools.cache
def _hex_length(algorithm: str) -> Optional[int]:
    """The length of ``algorithm``'s hex digest; None when this Python cannot compute it."""
    if algorithm not in hashlib.algorithms_available:
        return None
    return int(hashlib.new(algorithm).digest_size) * 2


def key_checksum(key: str) -> Optional[Checksum]:
    """The checksum a key carries (:func:`key_hash`), when its digest is one this Python can compute and has
    the algorithm's length, or an XMPETAG key's multipart ETag; None otherwise (VURL, URL, WORM keys).  What
    keep, verify and restore check bytes against."""
    if key.startswith(MPETAG + "-"):
        m = _MPETAG_NAME.fullmatch(key.partition("--")[2])
        return Checksum(MPETAG_ALGORITHM, m.group(1), int(m.group(2))) if m else None
    named = key_hash(key)
    if named is None:
        return None
    algorithm, digest = named
    if len(digest) != _hex_length(algorithm) or not _HEX.fullmatch(digest):
        return None
    return Checksum(algorithm, digest)

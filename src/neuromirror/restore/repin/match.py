"""Whether an object version holds a key's bytes, told from what S3 says of it (size, ETag, checksum).

A git-annex key names its size and, for most backends, a checksum: MD5E the content's MD5, which a
single-part upload's ETag is; XMPETAG a multipart upload's ETag itself; SHA256E a SHA-256, which S3
states only where it keeps a checksum.  So a version is the key's bytes without reading them when the
size agrees and the ETag (or the kept SHA-256) is the key's checksum; it holds *other* bytes as soon as
the size or one of those differs.  A multipart ETag says nothing of an MD5 or SHA-256 (:data:`READ`:
the version's bytes must be read and hashed); a key without a checksum (VURL) cannot be matched at all:
a size alone names no bytes.
"""

from __future__ import annotations

import re
from typing import Optional

from neuromirror.annex.keys import MPETAG_ALGORITHM, key_checksum, parse_key
from neuromirror.restore.repin.s3 import Seen

SAME = "same"
DIFFERS = "differs"
READ = "read"  # only the bytes can tell: read and hash them
UNKNOWN = "unknown"  # the key names no checksum: nothing tells

_SINGLE_PART = re.compile(r"^[0-9a-f]{32}$")


def judge(key: str, seen: Seen, md5: Optional[str] = None) -> tuple[str, str]:
    """(verdict, evidence) for ``seen`` as the bytes of ``key``; ``md5``: the bytes' MD5 when known
    otherwise (a file the dataset keeps in git)."""
    size = parse_key(key)["size"]
    if size is not None and seen.size != size:
        return DIFFERS, f"{seen.size} bytes, the key's are {size}"
    named = key_checksum(key)
    algorithm, digest = (named.algorithm, named.digest.lower()) if named else ("", "")
    if md5 is not None:
        algorithm, digest = "md5", md5.lower()
    said = f"size {seen.size}"
    if algorithm == "md5" and _SINGLE_PART.match(seen.etag):
        if seen.etag == digest:
            return SAME, f"{said}, ETag {seen.etag} = the key's MD5"
        return DIFFERS, f"ETag {seen.etag}, the key's MD5 is {digest}"
    if algorithm == MPETAG_ALGORITHM:
        if seen.etag == digest:
            return SAME, f"{said}, ETag {seen.etag} = the key's multipart ETag"
        return DIFFERS, f"ETag {seen.etag}, the key's is {digest}"
    if algorithm == "sha256" and seen.sha256:
        if seen.sha256 == digest:
            return SAME, f"{said}, S3's SHA-256 checksum = the key's"
        return DIFFERS, f"S3's SHA-256 checksum {seen.sha256[:16]}…, the key's is {digest[:16]}…"
    if not algorithm:
        return UNKNOWN, f"{said}; the key names no checksum, and a size alone names no bytes"
    return READ, f"{said}; ETag {seen.etag} says nothing of the key's {algorithm}"


def checksum_of(key: str) -> tuple[str, str]:
    """(algorithm, hex digest) of the key's checksum ("", "" without one)."""
    named = key_checksum(key)
    return (named.algorithm, named.digest.lower()) if named else ("", "")

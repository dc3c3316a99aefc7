"""``git-annex-backend-XMPETAG``: git-annex's way to verify an object named by its S3 multipart ETag.

A chunk of a DANDI Zarr the archive marks ``upload_type: multipart`` went up as a multipart upload, and the
archive builds the Zarr's checksum from each chunk's multipart ETag (``<md5 of the parts' MD5s>-<parts>``),
not from its MD5: the listing gives no MD5 to make an MD5E key of.  ``sync`` names such a chunk by an
``XMPETAG-s<size>--<etag>-p<part size>`` key (:func:`neuromirror.annex.keys.mpetag_key`), and git-annex,
meeting a key whose backend starts with ``X``, runs this program (found on PATH) to check the bytes of a
``get`` against it, as it hashes an MD5E key's.  The external backend protocol
(https://git-annex.branchable.com/design/external_backend_protocol/): one request a line on stdin, one reply
a line on stdout.

GENKEY (``git annex add --backend XMPETAG``) makes the key DANDI's own uploads would: its parts are the
ones dandischema's ``PartGenerator`` hands out, unless ``NEUROMIRROR_MPETAG_PART_SIZE`` names a part size.
"""

from __future__ import annotations

import os
import sys
from typing import IO

from neuromirror.annex.keys import key_checksum, mpetag_key, parse_key
from neuromirror.util.text import one_line

_READ = 1 << 20


def _etag_of(path: str, part_size: int) -> tuple[str, int]:
    """(multipart ETag, size) of the file's bytes in parts of ``part_size``."""
    from neuromirror.annex.keys import PartsHash

    digest, size = PartsHash(part_size), 0
    with open(path, "rb") as fh:
        while data := fh.read(_READ):
            digest.update(data)
            size += len(data)
    return digest.hexdigest(), size


def _part_size(size: int) -> int:
    """The part size GENKEY uses: the environment's, else DANDI's rule for ``size`` bytes."""
    from dandischema.digests.dandietag import PartGenerator

    named = os.environ.get("NEUROMIRROR_MPETAG_PART_SIZE", "")
    if named.isdigit() and int(named) > 0:
        return int(named)
    return PartGenerator.for_file_size(size).initial_part_size or 1


def genkey(path: str) -> str:
    """The key of the file at ``path``."""
    size = os.path.getsize(path)
    part = _part_size(size)
    etag, got = _etag_of(path, part)
    return mpetag_key(etag, got, part)


def verify(key: str, path: str) -> bool:
    """Whether the file at ``path`` holds the bytes ``key`` names (size, then the ETag of its parts)."""
    checksum = key_checksum(key)
    size = parse_key(key)["size"]
    if checksum is None or (size is not None and os.path.getsize(path) != size):
        return False
    return _etag_of(path, checksum.part_size)[0] == checksum.digest


_FIXED = {
    "GETVERSION": "VERSION 1",
    "CANVERIFY": "CANVERIFY-YES",
    "ISSTABLE": "ISSTABLE-YES",
    "ISCRYPTOGRAPHICALLYSECURE": "ISCRYPTOGRAPHICALLYSECURE-NO",  # MD5s
}


def answer(line: str) -> str:
    """The reply to one request line."""
    command, _, rest = line.partition(" ")
    if command in _FIXED:
        return _FIXED[command]
    try:
        if command == "GENKEY":
            return "GENKEY-SUCCESS " + genkey(rest)
        if command == "VERIFYKEYCONTENT":
            key, _, path = rest.partition(" ")
            return "VERIFYKEYCONTENT-SUCCESS" if verify(key, path) else "VERIFYKEYCONTENT-FAILURE"
    except (OSError, ValueError) as exc:
        return (
            ("GENKEY-FAILURE " + one_line(exc, 300, joined=True)) if command == "GENKEY" else "VERIFYKEYCONTENT-FAILURE"
        )
    return "ERROR unknown request " + command


def serve(lines: IO[str], out: IO[str]) -> None:
    for line in lines:
        out.write(answer(line.rstrip("\n")) + "\n")
        out.flush()


def main() -> None:
    """Entry point of the ``git-annex-backend-XMPETAG`` console script."""
    serve(sys.stdin, sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    main()

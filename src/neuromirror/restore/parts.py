"""The parts an object is written in, so that its S3 ETag is the one the archive recorded.

DANDI's blobs were all uploaded in the parts its API hands out (dandischema's ``PartGenerator``:
64 MiB parts, larger when 64 MiB ones would make 10,000 or more; a blob up to 64 MiB is one part), and an asset's ``dandi:dandi-etag`` is that upload's S3 ETag: the MD5 of its
parts' MD5s, ``-N``.  A blob written back in one ``PutObject`` would carry its plain MD5 instead,
and a mirror made later, which pins a blob behind a delete marker by the noncurrent version whose
ETag is the dandi-etag, would find none.  So a DANDI blob is written in the same parts (the parts its
archive's record says: ``part_spans`` of :class:`~neuromirror.archives.Archive`).  Other
objects (Zarr chunks, AIND's) went up in one ``PUT``: one part up to :data:`MULTIPART`, then parts
of :data:`PART` (S3's single ``PUT`` tops out at 5 GiB) -- except a multipart Zarr's chunk, whose XMPETAG
key names the part size its ETag was made with: it is written in parts of that size.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any, Optional

from neuromirror import archives
from neuromirror.annex.keys import MPETAG_ALGORITHM, key_checksum
from neuromirror.restore.objects import ArchiveObject
from neuromirror.store.transfer import CHUNK

MIB = 1 << 20
#: larger objects other than DANDI's blobs go up as a multipart upload, in parts of :data:`PART`
MULTIPART = 256 * MIB
PART = 64 * MIB
#: the metadata field of a multipart object restore wrote: the ETag its parts make
META_ETAG = "neuromirror-etag"


def _spans(size: int, part: int) -> list[tuple[int, int]]:
    return [(offset, min(part, size - offset)) for offset in range(0, size, part)]


def spans_for(obj: ArchiveObject, size: int) -> Optional[list[tuple[int, int]]]:
    """The parts ``obj`` is uploaded in; None: one ``PutObject``."""
    archive = archives.of_source(obj.source)
    spans = archive.part_spans(obj.archive_key, size) if archive else None
    if spans is not None:
        return spans
    checksum = key_checksum(obj.key)
    if checksum is not None and checksum.algorithm == MPETAG_ALGORITHM:  # a multipart Zarr's chunk: its own parts
        return _spans(size, checksum.part_size) or [(0, 0)]
    if size <= MULTIPART:
        return None
    return _spans(size, PART)


def multipart_etag(part_md5s: list[bytes]) -> str:
    """S3's ETag of a multipart upload of parts with these MD5 digests."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def put_parts(
    client: Any, bucket: str, name: str, fh: Any, spans: list[tuple[int, int]], meta: dict[str, str]
) -> Optional[str]:
    """``fh``'s bytes as a multipart upload of ``spans``, each part sent with its ``Content-MD5``, the ETag
    they make in the metadata (:data:`META_ETAG`); completed only at the end, aborted on any error (nothing
    half written stays).  The ETag S3 gives must be that one.  The new object's versionId (or None)."""
    md5s = [_part_md5(fh, offset, size) for offset, size in spans]  # a first pass over the local spool
    etag = multipart_etag(md5s)
    uid = client.create_multipart_upload(Bucket=bucket, Key=name, Metadata={**meta, META_ETAG: etag})["UploadId"]
    try:
        done = []
        for number, ((offset, size), md5) in enumerate(zip(spans, md5s), 1):
            part = client.upload_part(
                Bucket=bucket,
                Key=name,
                UploadId=uid,
                PartNumber=number,
                Body=_Slice(fh, offset, size),
                ContentLength=size,
                ContentMD5=base64.b64encode(md5).decode(),
            )
            done.append({"ETag": part["ETag"], "PartNumber": number})
        got = client.complete_multipart_upload(Bucket=bucket, Key=name, UploadId=uid, MultipartUpload={"Parts": done})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=uid)
        raise
    if str(got.get("ETag", "")).strip('"').lower() != etag:
        raise OSError(f"S3 gave the upload the ETag {got.get('ETag')}, its parts make {etag}")
    return got.get("VersionId")


def _part_md5(fh: Any, offset: int, size: int) -> bytes:
    digest = hashlib.md5()
    fh.seek(offset)
    left = size
    while left > 0:
        chunk = fh.read(min(CHUNK, left))
        if not chunk:
            raise OSError(f"the verified bytes end before {offset + size}")
        digest.update(chunk)
        left -= len(chunk)
    return digest.digest()


class _Slice(io.RawIOBase):
    """``size`` bytes of ``fh`` from ``offset`` as a seekable file: one part's body, which botocore reads
    (and rewinds to retry)."""

    def __init__(self, fh: Any, offset: int, size: int):
        self._fh, self._start, self._size, self._pos = fh, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + pos))
        return self._pos

    def read(self, n: Optional[int] = -1) -> bytes:
        left = self._size - self._pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(n)
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

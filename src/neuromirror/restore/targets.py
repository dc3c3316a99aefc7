"""Where restored objects go: an S3 bucket (the archive's own, or a scratch one) or a directory.

Both answer the same three questions per object: is it there with the right bytes (``same``, left
alone), absent, or holding other bytes (``differs``: never overwritten unless forced); and both
write whole objects only — a ``PutObject`` (one request, or a multipart upload completed only at
its end) or a temporary file renamed into place — so a run killed at any point leaves each
object either as it was or right, and a rerun converges.

S3: ``HEAD``; a size other than the key's is other bytes; an object this module wrote carries the
git-annex key and the MD5 of its verified bytes in its metadata (a multipart upload: also the ETag
its parts make), and S3's own ETag (the MD5 of what it stored, or of its parts' MD5s) must equal
that; an MD5E key is checked against the ETag directly; anything else is read back and hashed.
Objects go up in the parts :mod:`.parts` names (a DANDI blob: the archive's own, so that its ETag is
the asset's ``dandi-etag``), each part with its ``Content-MD5``.  With ``force`` an object holding other
bytes is overwritten only in a bucket whose versioning is enabled (its old bytes stay a
noncurrent version).  Endpoint and credentials as for S3 stores (``NEUROMIRROR_STORE_ENDPOINT``,
the AWS environment).

Directory: the archive key is a relative path under the directory; a key that is absolute, climbs
out (``..``), or passes through a symbolic link is refused (:func:`neuromirror.util.paths.check_path`).
"""

from __future__ import annotations

import base64
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Optional, Protocol

from neuromirror.annex.keys import MPETAG_ALGORITHM, key_checksum
from neuromirror.errors import NeuromirrorError
from neuromirror.restore.copies import Verified, drain
from neuromirror.restore.objects import ArchiveObject
from neuromirror.restore.parts import META_ETAG, put_parts, spans_for
from neuromirror.store.s3 import S3Store
from neuromirror.store.transfer import CHUNK
from neuromirror.util.paths import check_path
from neuromirror.util.text import one_line

ABSENT, SAME, DIFFERS = "absent", "same", "differs"
#: a container holding this many objects of a batch is listed whole (fewer: its parent is scanned)
DENSE = 4
#: a parent's scan per batch: one page of listing (1,000 keys) per this many objects it may save a HEAD
PAGES_PER = 10
META_KEY, META_MD5 = "neuromirror-key", "neuromirror-md5"
TMP_DIR = ".neuromirror-restore-tmp"


class Refused(NeuromirrorError, ValueError):
    """An archive key this target must not write (it would land outside the target)."""


class Target(Protocol):
    url: str

    def look(self, obj: ArchiveObject) -> tuple[str, Optional[str]]:
        """:data:`ABSENT`, :data:`SAME` or :data:`DIFFERS` (:class:`Refused` for a hostile key), and the
        object's current versionId (S3, versioned bucket) or None."""
        ...

    def put(self, obj: ArchiveObject, data: Verified, overwrite: bool) -> Optional[str]:
        """Write the verified bytes; the new object's versionId (S3, versioned bucket) or None."""
        ...

    def check(self) -> None:
        """A target that cannot be written at all: a one-line :class:`~neuromirror.errors.UserError`."""
        ...

    def can_overwrite(self) -> Optional[str]:
        """None if an object holding other bytes may be overwritten with ``--force``; else why not."""
        ...

    def locate(self, obj: ArchiveObject) -> tuple[str, str]:
        """(bucket, full key) the object goes to ("" bucket for a directory)."""
        ...


def _judged_by_head(obj: ArchiveObject, head: dict) -> Optional[str]:
    """SAME or DIFFERS when the ``HEAD`` answer tells, None when the bytes must be read and hashed: an object
    this restore wrote carries the key and its MD5 (S3's ETag, of its parts, agrees); a single-part ETag is
    the MD5 an MD5 key names."""
    etag = str(head.get("ETag", "")).strip('"').lower()
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    if meta.get(META_KEY) == obj.key and etag == meta.get(META_ETAG if "-" in etag else META_MD5, "").lower():
        # written here from verified bytes, and S3's own MD5 of what it holds (of its parts) agrees
        return SAME
    checksum = key_checksum(obj.key)
    if checksum is not None and checksum.algorithm == "md5" and "-" not in etag:
        return SAME if etag == checksum.digest else DIFFERS
    if checksum is not None and checksum.algorithm == MPETAG_ALGORITHM and "-" in etag:
        return SAME if etag == checksum.digest else DIFFERS  # a multipart ETag the XMPETAG key names
    return None


def _hash_matches(fh: Any, obj: ArchiveObject) -> bool:
    checksum = key_checksum(obj.key)
    if checksum is None:
        return False
    digest = checksum.new()
    try:
        got = drain(fh, (digest,))
    finally:
        fh.close()
    return (obj.size is None or got == obj.size) and digest.hexdigest() == checksum.digest


class S3Target:
    def __init__(self, bucket: str, prefix: str = ""):
        self._store = S3Store(bucket, prefix)  # endpoint, region, credentials: as for S3 stores
        self.bucket = bucket
        self.prefix = self._store.prefix
        self.url = f"s3://{bucket}/{self.prefix}"
        self._versioning: Optional[str] = None
        self._lock = threading.Lock()
        #: the containers listed (:meth:`prefetch`), and the size of each object they hold, by its name's hash:
        #: ~100 bytes an object held, none for one absent (a first restore, a dry run into an empty target)
        self._containers: set[str] = set()
        self._sizes: dict[int, int] = {}
        #: a parent prefix (``blobs/``) listed in order up to this key (None: to its end)
        self._scanned: dict[str, Optional[str]] = {}

    def client(self) -> Any:
        return self._store.client()

    def locate(self, obj: ArchiveObject) -> tuple[str, str]:
        return self.bucket, self.prefix + obj.archive_key

    def prefetch(self, objs: list[ArchiveObject]) -> None:
        """Listings instead of a ``HEAD`` per absent object: a first restore or a dry run over many keys
        costs a few pages of listing per 1,000 objects.  Called between batches (no thread is looking).

        DANDI's blobs, spread over 4,096 directories, are covered by listing their parent (``blobs/``) in
        key order, one page per :data:`PAGES_PER` objects of the batch at most, going on where the last
        batch stopped: in an empty target one request; in the archive's own full bucket a scan that never
        costs more requests than the ``HEAD``s it saves.  Then a container (a Zarr, an asset, a blob
        directory the scan has not reached) holding :data:`DENSE` objects or more of ``objs`` is listed
        whole, once.  An object a listing shows is still looked at with ``HEAD``."""
        names = [(self.prefix + o.archive_key, container_of(self.prefix + o.archive_key)) for o in objs]
        sparse: dict[str, int] = {}
        for name, c in names:
            parent = _parent(c)
            if parent and c not in self._containers and not self._known(name, c):
                sparse[parent] = sparse.get(parent, 0) + 1
        for parent, n in sparse.items():
            if parent not in self._scanned or self._scanned[parent] is not None:
                self._scan(parent, max(1, n // PAGES_PER))
        dense: dict[str, int] = {}  # what no scan covered
        for name, c in names:
            if c and c not in self._containers and not self._known(name, c):
                dense[c] = dense.get(c, 0) + 1
        for prefix, n in dense.items():
            if n >= DENSE:
                self._list(prefix, None)
                self._containers.add(prefix)

    def _list(self, prefix: str, start: Optional[str], pages: Optional[int] = None) -> Optional[str]:
        """List ``prefix`` after ``start``; the last key seen if it stopped after ``pages``, else None."""
        args = {"Bucket": self.bucket, "Prefix": prefix, **({"StartAfter": start} if start else {})}
        last = None
        for i, page in enumerate(self.client().get_paginator("list_objects_v2").paginate(**args)):
            for c in page.get("Contents", []) or []:
                self._sizes[hash(c["Key"])] = int(c.get("Size", 0))
                last = c["Key"]
            if pages is not None and i + 1 >= pages and page.get("IsTruncated"):
                return last
        return None

    def _scan(self, parent: str, pages: int) -> None:
        self._scanned[parent] = self._list(parent, self._scanned.get(parent), pages)

    def listed_absent(self, obj: ArchiveObject) -> bool:
        """Whether a listing showed ``obj`` absent (looking at it costs no request)."""
        name = self.prefix + obj.archive_key
        return hash(name) not in self._sizes and self._known(name)

    def _known(self, name: str, container: Optional[str] = None) -> bool:
        """Whether a listing covered ``name`` (then an object it did not show is absent)."""
        if container is None:
            container = container_of(name)
        if container in self._containers:
            return True
        parent = _parent(container)
        if parent not in self._scanned:
            return False
        upto = self._scanned[parent]
        return upto is None or name <= upto

    def look(self, obj: ArchiveObject) -> tuple[str, Optional[str]]:
        if self.listed_absent(obj):
            return ABSENT, None  # (a size that differs is left to HEAD: a hash is not a name)
        state, head = self._look(obj)
        vid = head.get("VersionId") if state == SAME else None
        return state, (str(vid) if vid and vid != "null" else None)

    def _look(self, obj: ArchiveObject) -> tuple[str, dict]:
        _, name = self.locate(obj)
        head = self._head(name)
        if head is None:
            return ABSENT, {}
        if obj.size is not None and int(head.get("ContentLength", -1)) != obj.size:
            return DIFFERS, head
        said = _judged_by_head(obj, head)
        if said is not None:
            return said, head
        got = (
            self.client().get_object(Bucket=self.bucket, Key=name, VersionId=head["VersionId"])
            if head.get("VersionId")
            else self.client().get_object(Bucket=self.bucket, Key=name)
        )
        return (SAME if _hash_matches(got["Body"], obj) else DIFFERS), head

    def _head(self, name: str) -> Optional[dict]:
        """``HEAD`` of the object ``name``: its answer, None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            return self.client().head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def version_gone(self, name: str, version_id: str) -> bool:
        """Whether the bucket no longer holds version ``version_id`` of the object ``name`` (``HEAD`` of it:
        404, or 405 for a delete marker): a URL pinned to it can never serve again."""
        from botocore.exceptions import ClientError

        try:
            self.client().head_object(Bucket=self.bucket, Key=name, VersionId=version_id)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            return code in ("404", "NoSuchKey", "NoSuchVersion", "NotFound", "405", "MethodNotAllowed")
        return False

    def check(self) -> None:
        """A bucket that is not there or not ours: one line before any object is looked at."""
        from botocore.exceptions import BotoCoreError, ClientError

        from neuromirror.errors import UserError

        try:
            self.client().head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            why = {"404": "no such bucket", "NoSuchBucket": "no such bucket", "403": "access denied"}.get(code, code)
            raise UserError(f"restore target {self.url}: {why}") from None
        except BotoCoreError as exc:
            raise UserError(f"restore target {self.url}: {one_line(exc, 200, joined=True)}") from None

    def can_overwrite(self) -> Optional[str]:
        with self._lock:
            if self._versioning is None:
                got = self.client().get_bucket_versioning(Bucket=self.bucket)
                self._versioning = str(got.get("Status") or "")
        if self._versioning != "Enabled":
            return f"the bucket {self.bucket} has no versioning enabled: overwriting would lose its bytes"
        return None

    def put(self, obj: ArchiveObject, data: Verified, overwrite: bool) -> Optional[str]:
        _, name = self.locate(obj)
        meta = {META_KEY: obj.key, META_MD5: data.md5}
        spans = spans_for(obj, data.size)
        if spans is None:
            got = self.client().put_object(
                Bucket=self.bucket,
                Key=name,
                Body=data.fh,
                ContentLength=data.size,
                ContentMD5=_b64(data.md5),  # S3 checks what arrived
                Metadata=meta,
            )
            vid = got.get("VersionId")
        else:
            vid = put_parts(self.client(), self.bucket, name, data.fh, spans, meta)
        return str(vid) if vid and vid != "null" else None


def _b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


def _parent(container: str) -> str:
    """``blobs/`` of ``blobs/abc/``; "" for a container at the top (an AIND asset, ``zarr/<id>/``'s own parent
    is ``zarr/``: every Zarr, never scanned for a few objects of one)."""
    parts = container.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] == "zarr":
        return ""
    return "/".join(parts[:-1]) + "/"


def container_of(key: str) -> str:
    """The listing prefix an object shares with its neighbours: ``[PREFIX/]zarr/<id>/``, ``blobs/abc/`` (the
    first three hex digits), else its first path component (an AIND asset); "" for a key at the top."""
    parts = key.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "zarr" and i + 2 < len(parts):
            return "/".join(parts[: i + 2]) + "/"
        if part == "blobs" and i + 2 < len(parts):
            return "/".join(parts[: i + 2]) + "/"
    return parts[0] + "/" if len(parts) > 1 else ""


class DirTarget:
    def __init__(self, root: Path):
        self.root = root.absolute()
        self.url = str(self.root)

    def locate(self, obj: ArchiveObject) -> tuple[str, str]:
        return "", obj.archive_key

    def _path(self, obj: ArchiveObject) -> Path:
        why = check_path(obj.archive_key)
        if why is not None:
            raise Refused(f"{obj.archive_key!r}: {why}")
        path = self.root / obj.archive_key
        real = os.path.realpath(self.root)
        parent = os.path.realpath(path.parent)
        if parent != real and not parent.startswith(real + os.sep):
            raise Refused(f"{obj.archive_key!r}: would be written outside {self.root} (a symbolic link on the way)")
        if path.is_symlink():
            raise Refused(f"{obj.archive_key!r}: is a symbolic link in {self.root}")
        return path

    def look(self, obj: ArchiveObject) -> tuple[str, Optional[str]]:
        path = self._path(obj)
        if not path.exists():
            return ABSENT, None
        if not path.is_file() or (obj.size is not None and path.stat().st_size != obj.size):
            return DIFFERS, None
        return (SAME if _hash_matches(open(path, "rb"), obj) else DIFFERS), None

    def check(self) -> None:
        from neuromirror.errors import UserError

        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"restore target {self.root}: not a directory")

    def can_overwrite(self) -> Optional[str]:
        return None

    def put(self, obj: ArchiveObject, data: Verified, overwrite: bool) -> Optional[str]:
        path = self._path(obj)
        tmp_dir = self.root / TMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "wb") as out:
                while True:
                    chunk = data.fh.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if path.is_dir():
                raise Refused(f"{obj.archive_key!r}: a directory holds that name")
            os.replace(tmp, path)  # whole or not at all
        finally:
            tmp.unlink(missing_ok=True)
        return None

    def clean(self) -> None:
        """A killed run's temporary files, and their directory once empty."""
        tmp_dir = self.root / TMP_DIR
        if tmp_dir.is_dir():
            for p in tmp_dir.iterdir():
                p.unlink(missing_ok=True)
            tmp_dir.rmdir()


def open_target(name: str) -> S3Target | DirTarget:
    """``s3://BUCKET[/PREFIX]`` or a directory (a path or ``file:///path``)."""
    from urllib.parse import unquote, urlsplit

    from neuromirror.errors import UserError

    if name.startswith("s3://"):
        parts = urlsplit(name)
        if not parts.netloc or parts.query or parts.fragment:
            raise UserError(f"{name}: an S3 target is s3://BUCKET[/PREFIX] (the endpoint: NEUROMIRROR_STORE_ENDPOINT)")
        return S3Target(parts.netloc, unquote(parts.path))
    if name.startswith("file://"):
        parts = urlsplit(name)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UserError(f"{name}: a file URL names a local path, as file:///path")
        return DirTarget(Path(unquote(parts.path)))
    if "://" in name:
        raise UserError(f"{name}: restore writes to s3://BUCKET[/PREFIX] or a directory")
    return DirTarget(Path(name))

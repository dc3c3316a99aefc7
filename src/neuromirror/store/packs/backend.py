"""Where a packed store's files go: a directory, or an S3 prefix.  Both put a sealed pack durably (a
directory: renamed into place and the directory synced; S3: an acknowledged upload), put a small file
atomically (the index files, the config), read a byte range (one request per key), list and delete.

Nothing here knows what a pack holds (:mod:`.layout`) or when one is sealed (:mod:`.writer`).
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Protocol, cast

from neuromirror.util.processes import pid_alive
from neuromirror.util.text import one_line

#: S3 storage classes a store may write its packs (and a plain S3 store its objects) in
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
#: the classes S3 refuses to GET until a RestoreObject brought a copy back (hours)
COLD_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
STAGING = "tmp"


@dataclass(frozen=True)
class Listed:
    name: str  # relative to the store's root: packs/<sha>.pack, index/<sha>.json
    size: int
    stamp: str  # what changes when the object is written again (mtime, ETag)


@dataclass(frozen=True)
class Coldness:
    """An object's storage class and whether a thawed copy can be read now."""

    storage_class: str
    readable: bool
    thawing: bool  # a restore was asked for and is under way


class Backend(Protocol):
    where: str
    #: a read costs no round trip (a local file system): nothing is gained by reading beside other work
    nearby: bool

    def staging(self) -> Path: ...

    def put_pack(self, local: Path, name: str, storage_class: str) -> None: ...

    def put_small(self, name: str, data: bytes) -> None: ...

    def create_small(self, name: str, data: bytes) -> bool: ...

    def get(self, name: str) -> bytes: ...

    def open_range(self, name: str, offset: int, length: int) -> IO[bytes]: ...

    def listing(self, folder: str) -> Iterator[Listed]: ...

    def delete(self, name: str) -> None: ...

    def coldness(self, name: str) -> Coldness: ...

    def thaw(self, name: str, days: int, tier: str) -> bool: ...


def host_tag() -> str:
    """``host-pid``: the start of a staged file's name, so that only a dead process's files are removed."""
    return f"{(socket.gethostname() or 'host').replace('-', '_')}-{os.getpid()}"


class _Window(io.RawIOBase):
    """``length`` bytes of an open file from ``offset``: one key of a pack, read as a file of its own."""

    def __init__(self, fh: IO[bytes], offset: int, length: int) -> None:
        self._fh, self._left = fh, length
        fh.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(b)[: self._left]
        n = self._fh.readinto(view)  # type: ignore[attr-defined]
        if not n:
            raise OSError(f"pack cut short: {self._left} bytes missing")
        self._left -= n
        return int(n)

    def close(self) -> None:
        self._fh.close()
        super().close()


class DirectoryBackend:
    """Packs under ``PATH/packs``, index files under ``PATH/index``, staged packs in ``PATH/tmp``."""

    nearby = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def staging(self) -> Path:
        d = self.path / STAGING
        d.mkdir(parents=True, exist_ok=True)
        return d

    def put_pack(self, local: Path, name: str, storage_class: str) -> None:
        final = self.path / name
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(local, 0o444)
        os.replace(local, final)  # the same bytes under the same name if two writers raced: harmless
        _fsync_dir(final.parent)

    def put_small(self, name: str, data: bytes) -> None:
        final = self.path / name
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.staging() / f"{host_tag()}-{uuid.uuid4().hex}.small"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError:  # the disk full, say: nothing of it left in the staging directory
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)

    def create_small(self, name: str, data: bytes) -> bool:
        """Write ``name`` only if absent (two first writers agree on one); False: it was there."""
        final = self.path / name
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f"{final.name}.{host_tag()}.{uuid.uuid4().hex[:8]}"
        try:
            tmp.write_bytes(data)
            os.link(tmp, final)
            _fsync_dir(final.parent)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def open_range(self, name: str, offset: int, length: int) -> IO[bytes]:
        fh = open(self.path / name, "rb")
        size = os.fstat(fh.fileno()).st_size
        if size < offset + length:  # a pack cut short: the keys past its end are gone, not unreadable
            fh.close()
            raise FileNotFoundError(
                f"pack {name} is cut short ({size} bytes): the key's bytes end at {offset + length}"
            )
        return cast(IO[bytes], io.BufferedReader(_Window(fh, offset, length), 1 << 20))

    def listing(self, folder: str) -> Iterator[Listed]:
        try:
            entries = list(os.scandir(self.path / folder))
        except FileNotFoundError:
            return
        for e in entries:
            if e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                yield Listed(f"{folder.rstrip('/')}/{e.name}", st.st_size, f"{st.st_mtime_ns}:{st.st_size}")

    def delete(self, name: str) -> None:
        try:
            (self.path / name).unlink()
        except FileNotFoundError:
            pass

    def coldness(self, name: str) -> Coldness:
        return Coldness("STANDARD", True, False)

    def thaw(self, name: str, days: int, tier: str) -> bool:
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Backend:
    """Packs as ``PREFIX/packs/<sha>.pack`` objects (in the store's storage class), index files as
    ``PREFIX/index/<sha>.json`` (always STANDARD: readers need them); packs staged on local disk."""

    nearby = False

    def __init__(self, s3: Any) -> None:
        self.s3 = s3  # a neuromirror.store.s3.S3Store: endpoint, region, credentials, client
        self.where = s3.url

    def _key(self, name: str) -> str:
        return str(self.s3.prefix) + name

    def _fail(self, what: str, exc: BaseException) -> OSError:
        return OSError(f"S3 store {self.where}: {what} failed: {one_line(exc, 300, joined=True)}")

    def staging(self) -> Path:
        root = os.environ.get("NEUROMIRROR_PACK_STAGING") or tempfile.gettempdir()
        d = Path(root) / "neuromirror-packs"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def put_pack(self, local: Path, name: str, storage_class: str) -> None:
        from boto3.s3.transfer import TransferConfig

        extra = {} if storage_class == "STANDARD" else {"StorageClass": storage_class}
        try:
            self.s3.client().upload_file(
                str(local),
                self.s3.bucket,
                self._key(name),
                ExtraArgs=extra,
                Config=TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20, max_concurrency=4),
            )
        except Exception as exc:  # noqa: BLE001 - botocore's errors and boto3's S3UploadFailedError alike
            raise self._fail(f"uploading {name}", exc) from None
        local.unlink(missing_ok=True)

    def put_small(self, name: str, data: bytes) -> None:
        from neuromirror.store.s3 import boto_errors

        try:
            self.s3.client().put_object(Bucket=self.s3.bucket, Key=self._key(name), Body=data)
        except boto_errors() as exc:
            raise self._fail(f"writing {name}", exc) from None

    def create_small(self, name: str, data: bytes) -> bool:
        from neuromirror.store.s3 import boto_errors, error_code

        try:
            self.s3.client().put_object(Bucket=self.s3.bucket, Key=self._key(name), Body=data, IfNoneMatch="*")
            return True
        except boto_errors() as exc:
            if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                return False
            raise self._fail(f"writing {name}", exc) from None

    def get(self, name: str) -> bytes:
        from neuromirror.store.s3 import boto_errors, error_code

        try:
            return bytes(self.s3.client().get_object(Bucket=self.s3.bucket, Key=self._key(name))["Body"].read())
        except boto_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"{self.where}{name}") from None
            raise self._fail(f"reading {name}", exc) from None

    def open_range(self, name: str, offset: int, length: int) -> IO[bytes]:
        from neuromirror.store.s3 import boto_errors, error_code

        if length == 0:
            return io.BytesIO(b"")
        try:
            got = self.s3.client().get_object(
                Bucket=self.s3.bucket, Key=self._key(name), Range=f"bytes={offset}-{offset + length - 1}"
            )
        except boto_errors() as exc:
            code = error_code(exc)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"{self.where}{name}") from None
            if code == "InvalidObjectState":
                from neuromirror.store.packs.thaw import Frozen

                raise Frozen(name) from None
            raise self._fail(f"reading {name}", exc) from None
        return cast(IO[bytes], got["Body"])

    def listing(self, folder: str) -> Iterator[Listed]:
        from neuromirror.store.s3 import boto_errors

        start = self._key(folder)
        try:
            pages = self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.s3.bucket, Prefix=start)
            for page in pages:
                for o in page.get("Contents", []):
                    yield Listed(o["Key"][len(self.s3.prefix) :], int(o["Size"]), str(o.get("ETag", "")))
        except boto_errors() as exc:
            raise self._fail(f"listing {folder}", exc) from None

    def delete(self, name: str) -> None:
        from neuromirror.store.s3 import boto_errors

        try:
            self.s3.client().delete_object(Bucket=self.s3.bucket, Key=self._key(name))
        except boto_errors() as exc:
            raise self._fail(f"deleting {name}", exc) from None

    def coldness(self, name: str) -> Coldness:
        from neuromirror.store.s3 import boto_errors, error_code

        try:
            head = self.s3.client().head_object(Bucket=self.s3.bucket, Key=self._key(name))
        except boto_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"{self.where}{name}") from None
            raise self._fail(f"HEAD {name}", exc) from None
        klass = str(head.get("StorageClass") or "STANDARD")
        restore = str(head.get("Restore") or "")
        if klass not in COLD_CLASSES:
            return Coldness(klass, True, False)
        if 'ongoing-request="false"' in restore:
            return Coldness(klass, True, False)
        return Coldness(klass, False, 'ongoing-request="true"' in restore)

    def thaw(self, name: str, days: int, tier: str) -> bool:
        """Ask S3 for a readable copy of a cold pack; False when one was asked for already."""
        from neuromirror.store.s3 import boto_errors, error_code

        try:
            self.s3.client().restore_object(
                Bucket=self.s3.bucket,
                Key=self._key(name),
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
            )
            return True
        except boto_errors() as exc:
            if error_code(exc) == "RestoreAlreadyInProgress":
                return False
            raise self._fail(f"asking to thaw {name}", exc) from None


def staged_name() -> str:
    """A staged pack's name: this host and process first, so that only a dead process's are removed."""
    return f"{host_tag()}-{uuid.uuid4().hex}.pack"


def remove_dead_staged(folder: Path) -> int:
    """Staged packs (``host-pid-...``) of this host's dead processes; how many were removed."""
    host = host_tag().rsplit("-", 1)[0]
    removed = 0
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return 0
    for p in entries:
        parts = p.name.split("-", 2)
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit() or pid_alive(int(parts[1])):
            continue
        p.unlink(missing_ok=True)
        removed += 1
    return removed

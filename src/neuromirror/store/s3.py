"""An S3 store: a bucket (and prefix) laid out exactly as git-annex's ``S3`` special remote lays it out.

A key's object is ``FILEPREFIX + KEY`` (git-annex's ``getBucketObject``: the serialised key, no hash
directories; checked against git-annex 10.20261026 with ``initremote type=S3 fileprefix=...`` and
``copy --to`` on the moto stand-in), so git-annex and DataLad read the bucket unchanged. Beside the
keys: ``FILEPREFIX.neuromirror-store.json`` (the store's fixed UUID and remote name, created on first
use) and ``FILEPREFIX + annex-uuid`` (the UUID, as git-annex's own ``initremote`` leaves it).

Bytes stream in order through :class:`S3Incoming`: held in memory up to one part (8 MiB, larger only for
keys over 70 GiB; bounded memory per transfer), then sent as parts of a multipart upload *to the key's final name*. An
object appears under its name only when its upload completes, and :meth:`S3Incoming.commit` — the
one place that completes it — is called by the caller only after it verified size and checksum;
a smaller file is one ``PutObject`` at commit. A copy killed at any point leaves at most an
incomplete multipart upload (invisible, aborted by a later run once a day old; a bucket lifecycle
rule ``AbortIncompleteMultipartUpload`` does the same), never an object under a key's name.

Endpoint and region: ``NEUROMIRROR_STORE_ENDPOINT`` (e.g. ``http://minio.lab:9000``; default AWS)
and ``NEUROMIRROR_STORE_REGION`` (else ``AWS_REGION``/``AWS_DEFAULT_REGION``, else us-east-1).
Credentials come from boto3's own chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile,
an instance role) and are never written anywhere: not in the identity object, not in ``remote.log``.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Collection, Optional, cast
from urllib.parse import quote, urlsplit

from neuromirror.errors import UserError
from neuromirror.network.failures import is_unreachable
from neuromirror.store.base import (
    FIRST_COST,
    LEGACY_NAME,
    Capabilities,
    CopyURL,
    Dropped,
    StoreIdentity,
    StoreWriteError,
    drop_each,
    key_size,
    missing_identity,
    no_answer,
    remote_name,
)
from neuromirror.store.s3_client import CREDENTIAL_ENV, boto_errors, default_region, error_code, make_client
from neuromirror.util.text import one_line

ENDPOINT_ENV = "NEUROMIRROR_STORE_ENDPOINT"
PUBLIC_URL_ENV = "NEUROMIRROR_STORE_PUBLIC_URL"
IDENTITY_OBJECT = ".neuromirror-store.json"
ANNEX_UUID_OBJECT = "annex-uuid"
DEFAULT_NAME = LEGACY_NAME  # the old shared name; each store now has remote_name(uuid)
#: git-annex's cost for the store: before the web's, as a directory store's (issue 57): a clone of a kept file
#: whose archive copy is lost, seen or not, reads the bucket at once instead of retrying the archive's dead URLs
#: (24 files: 77 s against ~1 s).  A reader who would rather spend the archive's free reads first puts it back
#: with ``git config remote.NAME.annex-cost 300``.
COST = FIRST_COST
#: bytes held in memory per transfer before they go out as one part (S3's minimum part is 5 MiB)
PART = 8 << 20
#: S3 allows 10,000 parts: a key larger than PART * MAX_PARTS gets larger parts (1 MiB multiples)
MAX_PARTS = 9_000
#: an incomplete multipart upload older than this is a killed run's: aborted by clean_stale
STALE_UPLOAD = timedelta(days=1)


class S3Store:
    kind = "S3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: Optional[str] = None,
        region: Optional[str] = None,
        public_url: Optional[str] = None,
        storage_class: Optional[str] = None,
        recorded: Optional[dict[str, str]] = None,
        create: bool = True,
    ):
        """``create``: a store may be made here (``keep --to``), else a missing identity is unreachable.
        ``endpoint``, ``public_url``: None takes the process's settings (``NEUROMIRROR_STORE_ENDPOINT``,
        ``NEUROMIRROR_STORE_PUBLIC_URL``), and where it names none, what a dataset's branch ``recorded`` of
        the store (``endpoint``, ``publicurl``): a reader finds the store where keep wrote it."""
        if not bucket:
            raise UserError("an S3 store names its bucket: s3://BUCKET[/PREFIX]")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        recorded = recorded or {}
        if endpoint is None:
            endpoint = os.environ.get(ENDPOINT_ENV) or recorded.get("endpoint", "")
        if public_url is None:
            public_url = os.environ.get(PUBLIC_URL_ENV) or recorded.get("publicurl", "")
        self.endpoint = endpoint.rstrip("/") or None
        self.region = region or default_region()
        self.public_url = public_url or None
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UserError(f"{ENDPOINT_ENV}={self.endpoint}: an S3 endpoint is http(s)://HOST[:PORT]")
        self._identity: Optional[StoreIdentity] = None
        self.create = create
        self.asked_class = storage_class
        #: the S3 storage class its objects are written in (recorded in the store when it is made)
        self.storage_class = storage_class or "STANDARD"
        self._client: Any = None
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return self.url

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def description(self) -> str:
        where = f" on {self.endpoint}" if self.endpoint else ""
        return f"neuromirror store at {self.url}{where}"

    # -- the connection ---------------------------------------------------------
    def client(self) -> Any:
        """A boto3 client (thread-safe, shared); credentials from the environment, never stored."""
        with self._lock:
            if self._client is None:
                self._client = make_client(self.endpoint, self.region)
            return self._client

    def _run_error(self, what: str, exc: BaseException) -> UserError:
        return UserError(f"S3 store {self.url}: {what} failed: {one_line(exc, 300, joined=True)}")

    def object_name(self, key: str) -> str:
        """Where git-annex's S3 remote keeps ``key``: the file prefix and the key itself."""
        return self.prefix + key

    # -- identity ---------------------------------------------------------------
    @property
    def identity(self) -> StoreIdentity:
        if self._identity is None:
            name = self.prefix + IDENTITY_OBJECT
            data = self._get_json(name)
            if data is None:
                if not self.create:
                    raise missing_identity(self.url, IDENTITY_OBJECT)
                self._create_identity(name)
                data = self._get_json(name)
            try:
                assert data is not None
                store_uuid = str(uuid.UUID(data["uuid"]))
                ident = StoreIdentity(store_uuid, remote_name(store_uuid, str(data.get("name") or "")))
            except (AssertionError, ValueError, KeyError, TypeError) as exc:
                raise UserError(f"{self.url}{IDENTITY_OBJECT} is not a neuromirror store's identity: {exc}") from None
            if not ident.name or any(c.isspace() for c in ident.name):
                raise UserError(f"{self.url}{IDENTITY_OBJECT}: the store's name must be one word")
            if data.get("type") not in (None, "S3"):
                raise UserError(f"{self.url}: a {data.get('type')} store, not a plain S3 store (name it as one)")
            recorded = str(data.get("storage_class") or "STANDARD")
            if self.asked_class is not None and self.asked_class != recorded:
                raise UserError(
                    f"storage_class {self.asked_class}: {self.url} was made with storage class {recorded}; "
                    "a store's storage class is fixed"
                ).at("storage_class")
            self.storage_class = recorded
            self._identity = ident
            self._ensure_annex_uuid(ident.uuid)
        return self._identity

    def check_settings(self) -> None:
        """An existing store asked for another ``--storage-class``: the one-line usage error now (exit 2)."""
        if self.asked_class is None:
            return
        try:
            there = self._get_json(self.prefix + IDENTITY_OBJECT)
        except UserError:
            return  # not readable now: the run says so
        if there is not None:
            self.identity  # noqa: B018 - compares the class asked for with the store's

    def _get_json(self, name: str) -> Optional[dict]:
        try:
            body = self.client().get_object(Bucket=self.bucket, Key=name)["Body"].read()
        except boto_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            if error_code(exc) == "NoSuchBucket" or is_unreachable(exc):  # no store answered, none is made here
                raise no_answer(self.url, exc) from None
            raise self._run_error(f"reading {name}", exc) from None
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise UserError(f"{self.url}{IDENTITY_OBJECT} is not a neuromirror store's identity: {exc}") from None
        return data if isinstance(data, dict) else {}

    def _create_identity(self, name: str) -> None:
        ours = {self.prefix + IDENTITY_OBJECT, self.prefix + ANNEX_UUID_OBJECT}
        try:
            listing = self.client().list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=10)
        except boto_errors() as exc:
            raise self._run_error("listing the bucket", exc) from None
        if any(o["Key"] not in ours for o in listing.get("Contents", [])):
            raise UserError(
                f"{self.url} is not empty and is not a neuromirror store (no {IDENTITY_OBJECT}): "
                "name an empty bucket or a new prefix"
            )
        new = str(uuid.uuid4())
        data = {
            "uuid": new,
            "name": remote_name(new),
            "type": "S3",
            "storage_class": self.storage_class,
            "format": "a git-annex S3 special remote: FILEPREFIX + KEY",
        }
        body = (json.dumps(data, indent=2) + "\n").encode()
        try:  # only if absent: two first runs at once agree on one identity
            self.client().put_object(Bucket=self.bucket, Key=name, Body=body, IfNoneMatch="*")
        except boto_errors() as exc:
            if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                raise self._run_error(f"writing {name}", exc) from None

    def _ensure_annex_uuid(self, store_uuid: str) -> None:
        name = self.prefix + ANNEX_UUID_OBJECT
        try:
            self.client().head_object(Bucket=self.bucket, Key=name)
            return
        except boto_errors() as exc:
            if error_code(exc) not in ("NoSuchKey", "404", "NotFound"):
                raise self._run_error(f"reading {name}", exc) from None
        try:
            self.client().put_object(Bucket=self.bucket, Key=name, Body=store_uuid.encode())
        except boto_errors() as exc:
            raise self._run_error(f"writing {name}", exc) from None

    # -- keys -------------------------------------------------------------------
    def has(self, key: str) -> bool:
        """HEAD says the key's object exists with the key's size (only verified bytes are ever completed)."""
        try:
            head = self.client().head_object(Bucket=self.bucket, Key=self.object_name(key))
        except boto_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._run_error(f"HEAD {self.object_name(key)}", exc) from None
        size = key_size(key)
        return size is None or int(head.get("ContentLength", -1)) == size

    def used_bytes(self) -> int:
        ours = {self.prefix + IDENTITY_OBJECT, self.prefix + ANNEX_UUID_OBJECT}
        total = 0
        try:
            for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
                total += sum(o["Size"] for o in page.get("Contents", []) if o["Key"] not in ours)
        except boto_errors() as exc:
            raise self._run_error("listing the bucket", exc) from None
        return total

    @property
    def capabilities(self) -> Capabilities:
        """Enabled in a clone by its bucket (the rest of its place, ``fileprefix=`` and the endpoint, is on the
        ``remote.log`` line keep or ``get --store`` records; the credentials only in the reader's environment);
        no thaw (its class is readable at once); its public URL, if given one."""
        return Capabilities(public_url=self.public_url, enable_field=("bucket", self.bucket), secret_env=CREDENTIAL_ENV)

    def exists(self) -> bool:
        return self._get_json(self.prefix + IDENTITY_OBJECT) is not None

    def copy_location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_name(key)}"

    def read_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
        """One ranged GET (``Range: bytes=start-end``): a reader's slice costs the bytes it reads."""
        return self.open_key(key, f"bytes={start or 0}-{'' if end is None else end - 1}").read()

    def open_key(self, key: str, span: Optional[str] = None) -> IO[bytes]:
        """The object's body, streamed (``FileNotFoundError`` when the bucket has no such object)."""
        try:
            ranged = {"Range": span} if span else {}
            body = self.client().get_object(Bucket=self.bucket, Key=self.object_name(key), **ranged)["Body"]
        except boto_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"{self.url}{key}") from None
            raise OSError(f"S3 store {self.url}: reading {key} failed: {one_line(exc, 300, joined=True)}") from None
        return cast(IO[bytes], body)

    def drop(self, keys: Collection[str]) -> Dropped:
        return drop_each(self, keys)

    def forget_key(self, key: str) -> None:
        try:
            self.client().delete_object(Bucket=self.bucket, Key=self.object_name(key))
        except boto_errors() as exc:
            raise OSError(f"S3 store {self.url}: removing {key} failed: {one_line(exc, 300, joined=True)}") from None

    def receive(self, key: str) -> S3Incoming:
        return S3Incoming(self, key)

    def begin_task(self, task: str) -> int:
        """Nothing to do: a dead attempt's keys are objects in place (found by :meth:`has`), its incomplete
        uploads are a day from :meth:`clean_stale`'s reach (the submitter's, at the run's start)."""
        return 0

    def end_task(self, task: str) -> None:
        pass

    def clean_stale(self) -> int:
        """Abort incomplete multipart uploads under the prefix older than a day (killed runs'); how many."""
        cutoff = datetime.now(timezone.utc) - STALE_UPLOAD
        removed = 0
        try:
            for page in (
                self.client().get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix)
            ):
                for up in page.get("Uploads", []):
                    if up["Initiated"] < cutoff:
                        self.client().abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        removed += 1
        except boto_errors() as exc:
            raise self._run_error("listing incomplete uploads", exc) from None
        return removed

    # -- what clones read -------------------------------------------------------
    def sync(self) -> None:
        """Nothing to do: an object S3 has acknowledged is durable."""

    def remote_config(self) -> dict[str, str]:
        """``remote.log``'s fields for a ``type=S3`` remote: where to read, never who reads."""
        from neuromirror.store.annexlog import escape_value

        fields = {
            "autoenable": "true",
            "bucket": self.bucket,
            "cost": str(COST),
            "datacenter": "US" if self.region == "us-east-1" else self.region,
            "encryption": "none",
            "name": self.identity.name,
            "signature": "v4",
            "type": self.kind,
        }
        if self.prefix:
            fields["fileprefix"] = escape_value(self.prefix)
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            fields["protocol"] = parts.scheme
            fields["host"] = str(parts.hostname)
            fields["port"] = str(parts.port or (443 if parts.scheme == "https" else 80))
            fields["requeststyle"] = "path"
        if self.public_url:
            fields["publicurl"] = escape_value(self.public_url.rstrip("/") + "/")
        return fields

    def class_args(self) -> dict[str, str]:
        """``StorageClass=`` for a store not in STANDARD (S3's default)."""
        return {} if self.storage_class == "STANDARD" else {"StorageClass": self.storage_class}

    def copy_url(self, key: str) -> CopyURL:
        """The object's public URL when the store has one (``NEUROMIRROR_STORE_PUBLIC_URL`` at keep), else ``s3://``."""
        base = (self.public_url or "").rstrip("/") or f"s3://{self.bucket}"
        return CopyURL(f"{base}/{quote(self.object_name(key))}")


def part_size(key: str) -> int:
    """PART, or for a key too large for MAX_PARTS of it, the smallest 1 MiB multiple that fits."""
    size = key_size(key) or 0
    need = -(-size // MAX_PARTS)
    return max(PART, -(-need // (1 << 20)) * (1 << 20))


class S3Incoming:
    """One key's bytes on their way into the bucket: parts out as they fill, completed only by :meth:`commit`."""

    def __init__(self, store: S3Store, key: str):
        self.store = store
        self.key = key
        self.name = store.object_name(key)
        self._buf = bytearray()
        self.part = part_size(key)
        self._upload_id: Optional[str] = None
        self._parts: list[dict] = []
        self.written = 0
        self.done = False

    def _client(self) -> Any:
        return self.store.client()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data  # a copy: the caller reuses its buffer
        self.written += len(data)
        while len(self._buf) >= self.part:
            self._send(bytes(self._buf[: self.part]))
            del self._buf[: self.part]

    def _send(self, part: bytes) -> None:
        try:
            if self._upload_id is None:
                up = self._client().create_multipart_upload(
                    Bucket=self.store.bucket, Key=self.name, **self.store.class_args()
                )
                self._upload_id = str(up["UploadId"])
            n = len(self._parts) + 1
            got = self._client().upload_part(
                Bucket=self.store.bucket, Key=self.name, UploadId=self._upload_id, PartNumber=n, Body=part
            )
            self._parts.append({"PartNumber": n, "ETag": got["ETag"]})
        except boto_errors() as exc:
            raise StoreWriteError(f"uploading to {self.store.url}: {one_line(exc, 300, joined=True)}") from None

    def commit(self) -> bool:
        """Make the verified bytes the key's object; False if the store had the key already."""
        try:
            if self.store.has(self.key):
                self.discard()
                return False
            client = self._client()
            if self._upload_id is None:
                client.put_object(
                    Bucket=self.store.bucket, Key=self.name, Body=bytes(self._buf), **self.store.class_args()
                )
            else:
                if self._buf:
                    self._send(bytes(self._buf))
                client.complete_multipart_upload(
                    Bucket=self.store.bucket,
                    Key=self.name,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                self._upload_id = None
            self._buf = bytearray()
            head = client.head_object(Bucket=self.store.bucket, Key=self.name)
            if int(head.get("ContentLength", -1)) != self.written:
                raise StoreWriteError(f"{self.store.url}{self.key}: the bucket holds {head.get('ContentLength')} bytes")
            return True
        except UserError as exc:
            raise StoreWriteError(str(exc)) from None
        except boto_errors() as exc:
            raise StoreWriteError(
                f"storing {self.name} in {self.store.url}: {one_line(exc, 300, joined=True)}"
            ) from None
        finally:
            self.done = True

    def discard(self) -> None:
        self._buf = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._client().abort_multipart_upload(Bucket=self.store.bucket, Key=self.name, UploadId=upload_id)
            except boto_errors():
                pass  # a later run's clean_stale aborts it
        self.done = True

    def __enter__(self) -> S3Incoming:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.discard()

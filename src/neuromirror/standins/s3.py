"""A real S3 endpoint on loopback for tests, the demo and benchmarks: moto in server mode.

Why moto's *server* mode and not ``mock_aws``: the code under test (boto3 with
``UNSIGNED`` config, ``requests``, git-annex's web remote, the DANDI client following
redirects) talks plain HTTP to the archive's blob store, so the stand-in has to be a
real socket.  ``moto.server.ThreadedMotoServer`` runs the moto WSGI app in a daemon
thread of this process, which starts in milliseconds.

What was checked against moto 5.2 (see ``tests/test_standin_dandi.py``):

* anonymous, unsigned GET/HEAD are evaluated against the bucket policy; without a
  policy they get 403.  HEAD is its own action ``s3:HeadObject`` in moto, hence the
  public policy below grants GetObject, GetObjectVersion, HeadObject, ListBucket and
  ListBucketVersions to ``Principal: "*"``.
* with versioning on, GET/HEAD return ``x-amz-version-id``; ``?versionId=`` serves
  the old bytes after an overwrite and after a delete (delete marker; the plain URL
  then answers 404).
* presigned URLs (``generate_presigned_url``) work for private buckets.

State isolation: moto keeps its backends in module globals, so every moto server
(and every ``mock_aws`` block) in one Python process shares one S3 namespace.  Two
``S3StandIn`` objects alive at once therefore see each other's buckets; give them
different bucket names (every stand-in takes the bucket name as a parameter).
``stop()`` deletes the buckets this instance created (all versions), so
sequential instances do not leak into each other; :meth:`S3StandIn.reset_all`
wipes the whole process-wide moto state (every account, every service) if a test
really needs a blank slate.  For a fully separate namespace run ``moto_server`` in
a subprocess instead.
"""

from __future__ import annotations

import json
import logging
import threading
from types import TracebackType
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote, urlencode

import boto3
import requests
from botocore import UNSIGNED
from botocore.config import Config

__all__ = ["S3StandIn", "PUBLIC_READ_ACTIONS"]

lgr = logging.getLogger(__name__)

#: Actions granted to everyone on a public bucket (moto checks HEAD as s3:HeadObject).
PUBLIC_READ_ACTIONS: tuple[str, ...] = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:HeadObject",
    "s3:ListBucket",
    "s3:ListBucketVersions",
)


def _make_server(
    host: str,
    port: int,
    record: Optional[Callable[[str, str], None]] = None,
    sent: Optional[Callable[[int], None]] = None,
) -> Any:
    """A ThreadedMotoServer whose per-request access log is silent (``record(method, path?query)`` sees each).

    moto's request handler logs every request to stderr through werkzeug; with
    tens of thousands of requests in a benchmark that is pure noise.  Overriding the
    server entry point uses a moto internal, so fall back to the stock server (noisy
    but working) if moto's layout changes.
    """
    from moto.server import ThreadedMotoServer

    try:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError:  # pragma: no cover - depends on moto internals
        return ThreadedMotoServer(ip_address=host, port=port, verbose=False)

    class _QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    class _S3Only:
        """moto's dispatcher, routing only until it has found the S3 application.

        moto's ``DomainDispatcherApplication`` works out, under one process-wide lock, which of
        its ~150 services each request is for (host patterns, then the Authorization header):
        ~40 % of the stand-in's CPU for a stream of small GETs, and every request in turn.  This
        stand-in only ever serves S3, so once a request was routed to the S3 application the
        next ones go straight to it; ``/moto-api`` (reset) still goes through the dispatcher.
        """

        def __init__(self) -> None:
            self.dispatcher = DomainDispatcherApplication(create_backend_app)
            self.s3: Any = None

        def __call__(self, environ: dict, start_response: Any) -> Any:
            if record is not None:
                query = environ.get("QUERY_STRING")
                record(
                    str(environ.get("REQUEST_METHOD")),
                    str(environ.get("PATH_INFO", "")) + (f"?{query}" if query else ""),
                )
            app = self.s3
            if app is None or str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
                app = self.dispatcher.get_application(environ)
                if getattr(app, "service", None) == "s3":
                    self.s3 = app
            body = app(environ, start_response)
            if sent is None:
                return body
            return _counted(body, sent)

    class _QuietServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = _S3Only()
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=_QuietHandler)
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=0.05)  # stop() in 50 ms, not 500

    if not hasattr(ThreadedMotoServer, "_server_entry"):  # pragma: no cover
        return ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    return _QuietServer(ip_address=host, port=port, verbose=False)


def _counted(body: Any, sent: Callable[[int], None]) -> Iterator[bytes]:
    """The response body, each chunk's length told to ``sent`` as it goes out."""
    try:
        for chunk in body:
            sent(len(chunk))
            yield chunk
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


class S3StandIn:
    """An S3 endpoint (moto server mode) on ``host:port``; port 0 picks a free port.

    Use as a context manager or call :meth:`start` / :meth:`stop`.  Writes go
    through :meth:`client` (signed with dummy credentials); readers are expected to
    be anonymous, like the public archives this stands in for.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        region: str = "us-east-1",
        access_key: str = "testing",
        secret_key: str = "testing",
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self._server: Any = None
        self._client: Any = None
        self._anon_client: Any = None
        self._lock = threading.Lock()
        #: Buckets created through this instance (deleted again by :meth:`stop`).
        self.buckets: list[str] = []
        #: ``(method, path?query)`` of each request while :meth:`log_requests` is on (off: None; benchmarks
        #: send millions of requests)
        self.request_log: Optional[list[tuple[str, str]]] = None
        #: response body bytes sent while :meth:`log_requests` is on (what readers fetched)
        self.bytes_sent = 0
        #: where readers reach this server, when not directly (:meth:`through`)
        self.public_endpoint: Optional[str] = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> S3StandIn:
        """Start the moto server thread (idempotent) and return self."""
        if self._server is not None:
            return self
        server = _make_server(self.host, self.port, self._record, self._sent)
        server.start()
        self._server = server
        self.host, self.port = server.get_host_and_port()
        lgr.debug("S3 stand-in listening on %s", self.endpoint_url)
        return self

    def stop(self, *, cleanup: bool = True) -> None:
        """Stop the server; with ``cleanup`` first delete the buckets this instance made."""
        if self._server is None:
            return
        if cleanup:
            for bucket in list(self.buckets):
                try:
                    self.delete_bucket(bucket)
                except Exception as e:  # pragma: no cover - best effort
                    lgr.debug("Could not delete bucket %s: %s", bucket, e)
        self._server.stop()
        self._server = None
        self._client = None
        self._anon_client = None

    def _record(self, method: str, path: str) -> None:
        log = self.request_log
        if log is not None:
            log.append((method, path))

    def _sent(self, n: int) -> None:
        if self.request_log is not None:
            with self._lock:
                self.bytes_sent += n

    def log_requests(self, on: bool = True) -> list[tuple[str, str]]:
        """Start (again, empty) or stop recording requests in :attr:`request_log` (and :attr:`bytes_sent`)."""
        log: list[tuple[str, str]] = []
        if on:
            self.bytes_sent = 0
        self.request_log = log if on else None
        return log

    def __enter__(self) -> S3StandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("S3StandIn is not started")
        return f"http://{self.host}:{self.port}"

    # -- clients -------------------------------------------------------------
    def client(self) -> Any:
        """A boto3 S3 client with explicit dummy credentials, for admin writes.

        Credentials, region and path-style addressing are passed explicitly so that
        whatever AWS_* variables or ~/.aws files the machine has cannot redirect it.
        The client is cached (boto3 clients are safe to share between threads).
        """
        with self._lock:
            if self._client is None:
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key,
                    region_name=self.region,
                    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
                )
            return self._client

    def anonymous_client(self) -> Any:
        """A boto3 S3 client that sends unsigned requests (like public-data readers)."""
        with self._lock:
            if self._anon_client is None:
                self._anon_client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}),
                )
            return self._anon_client

    # -- buckets -------------------------------------------------------------
    def create_bucket(self, name: str, *, versioned: bool = True, public: bool = True) -> None:
        """Create ``name`` (no error if it exists), optionally versioned and world-readable."""
        c = self.client()
        try:
            if self.region == "us-east-1":
                c.create_bucket(Bucket=name)
            else:
                c.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass
        except c.exceptions.BucketAlreadyExists:
            pass
        if name not in self.buckets:
            self.buckets.append(name)
        if versioned:
            c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if public:
            self.make_public(name)

    def make_public(self, name: str) -> None:
        """Attach a policy letting anyone read objects, versions and listings of ``name``."""
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": list(PUBLIC_READ_ACTIONS),
                    "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
                }
            ],
        }
        self.client().put_bucket_policy(Bucket=name, Policy=json.dumps(policy))

    def delete_bucket(self, name: str) -> None:
        """Delete every object version and delete marker of ``name``, then the bucket."""
        c = self.client()
        paginator = c.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            objs = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for i in range(0, len(objs), 1000):
                c.delete_objects(Bucket=name, Delete={"Objects": objs[i : i + 1000], "Quiet": True})
        c.delete_bucket(Bucket=name)
        if name in self.buckets:
            self.buckets.remove(name)

    def reset_all(self) -> None:
        """Wipe *all* moto state of this process (POST /moto-api/reset)."""
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=30).raise_for_status()
        self.buckets.clear()

    # -- objects -------------------------------------------------------------
    def put(self, bucket: str, key: str, data: bytes, **kwargs: Any) -> str:
        """Upload ``data``; return the new VersionId ("null" when unversioned)."""
        r = self.client().put_object(Bucket=bucket, Key=key, Body=data, **kwargs)
        return str(r.get("VersionId") or "null")

    def put_parts(self, bucket: str, key: str, data: bytes, parts: list[tuple[int, int]]) -> str:
        """Upload ``data`` as a multipart upload of ``parts`` ((offset, size) each); the new VersionId.

        The object's ETag is then S3's multipart one (``md5 of the parts' md5s-N``), as the DANDI
        archive's uploads make it: its ``dandi-etag`` is that ETag, computed before the upload.
        """
        if not parts:  # an empty object: no part to upload
            return self.put(bucket, key, data)
        c = self.client()
        upload = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        done = []
        for number, (offset, size) in enumerate(parts, 1):
            r = c.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data[offset : offset + size]
            )
            done.append({"ETag": r["ETag"], "PartNumber": number})
        r = c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})
        version = str(r.get("VersionId") or "null")
        # moto leaves a completed upload's object without an ACL, which it then serves to anyone, even
        # from a private bucket: give it the ACL a put_object gets (the owner's only)
        c.put_object_acl(Bucket=bucket, Key=key, ACL="private", **({} if version == "null" else {"VersionId": version}))
        return version

    def through(self, endpoint: str) -> S3StandIn:
        """The same server as readers see it from a network away: URLs (:meth:`url`) name ``endpoint``
        (a :class:`~neuromirror.standins.network.ShapingProxy` in front of this one); writes and
        :meth:`client` still go straight to the server.  Stopping the copy stops the server."""
        import copy

        seen = copy.copy(self)
        seen.public_endpoint = endpoint.rstrip("/")
        return seen

    def url(self, bucket: str, key: str, version_id: Optional[str] = None) -> str:
        """Path-style http URL of ``key`` (optionally pinned to ``version_id``), at :attr:`public_endpoint`
        when one is set (:meth:`through`)."""
        u = f"{self.public_endpoint or self.endpoint_url}/{bucket}/{quote(key, safe='/~')}"
        if version_id is not None:
            u += "?" + urlencode({"versionId": version_id})
        return u

    def presigned_url(
        self,
        bucket: str,
        key: str,
        *,
        expires: int = 3600,
        method: str = "get_object",
        params: Optional[dict[str, Any]] = None,
    ) -> str:
        """A presigned URL (what an archive hands out for private objects)."""
        p: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if params:
            p.update(params)
        return str(self.client().generate_presigned_url(method, Params=p, ExpiresIn=expires))

"""The inventory tests' helpers (tests/test_audit_inventory.py, tests/test_sync_inventory.py): the archive
bucket's S3 Inventory delivered to a private bucket of the stand-in, and a command run with moto's log on."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from neuromirror.standins.s3_inventory import bucket_inventory


def deliver_inventories(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, when: datetime) -> tuple[str, str]:
    """(destination bucket, the inventory's URL): a private bucket the first date's inventory of ``bucket`` is
    delivered to, and the reader's credentials and endpoint in the environment."""
    dest = f"inv-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(dest, versioned=False, public=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint_url)
    bucket_inventory(s3.client(), bucket, dest, when=when)
    return dest, f"s3://{dest}/inventory/{bucket}/daily"


def logged(cli: Any, s3: Any, *args: str) -> tuple[int, str, list[tuple[str, str]]]:
    """(exit code, stdout and stderr, moto's requests) of one command."""
    log = s3.log_requests()
    try:
        code, out, err = cli(*args)
    finally:
        s3.log_requests(False)
    return code, out + err, log


def listings(log: list[tuple[str, str]], bucket: str) -> list[str]:
    """The ListObjectVersions requests of ``bucket`` in a request log."""
    return [p for m, p in log if m == "GET" and p.startswith(f"/{bucket}?") and "versions" in p]

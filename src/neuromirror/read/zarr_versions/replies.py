"""The ``/zarr/`` route's answers as records the view writes (status, headers, body): the route needs nothing of
the view, and the view nothing of Zarr versions beyond writing a :class:`Reply`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from neuromirror.read.urls import PinnedFile


@dataclass(frozen=True)
class Reply:
    """What the view sends: a status, its headers, a body (not sent for ``HEAD``)."""

    status: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def text(status: str, line: str) -> Reply:
    data = (line.rstrip("\n") + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    return Reply(status, [*headers, ("Cache-Control", "no-store")], data)


def as_json(doc: dict) -> Reply:
    data = json.dumps(doc, indent=1).encode()
    return Reply("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))], data)


def redirect(location: str) -> Reply:
    return Reply("302 Found", [("Location", location), ("Content-Length", "0"), ("Cache-Control", "no-store")])


def gone(f: PinnedFile, why: str) -> Reply:
    return text("410 Gone", f"{f.path}: key {f.key or '-'}: {why}")


def shard(zarr_id: str) -> list[str]:
    """The manifest tree's directories of a Zarr: ``{id[:3]}/{id[3:6]}/{id}``."""
    return [zarr_id[:3], zarr_id[3:6], zarr_id]

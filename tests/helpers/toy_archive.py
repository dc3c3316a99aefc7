"""A toy archive added from the tests alone (issue 77, T4): its stand-in, its source and its ``Archive`` record.

The stand-in is a static-file HTTP server on loopback: ``/NAME/versions.json`` lists the dataset's published
versions, each with its files' path, size and SHA-256, and ``/NAME/VERSION/PATH`` serves a file's bytes.  The
source reads that listing and hands the engine one published snapshot per version not yet recorded, each file
an annexed entry whose URL is the stand-in's.  :func:`registered` makes the archive known for a test and
forgets it after: no product file names it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Optional

from neuromirror import archives
from neuromirror.annex.keys import sha256e_key
from neuromirror.records import AnnexEntry, Snapshot, SourceState, VersionKind
from neuromirror.spec import Spec, SpecError

NAME = "toy"
#: where the toy archive's stand-in is (set by the test that serves it)
URL_ENV = "TOY_URL"


class ToyServer:
    """The stand-in: a directory of versions served read-only over HTTP, on a free loopback port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_Quiet, directory=str(root))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, name: str, version: str, files: dict[str, bytes], when: datetime) -> None:
        """A new published version of dataset ``name`` holding ``files``."""
        listing = self.root / name / "versions.json"
        versions = json.loads(listing.read_text()) if listing.exists() else []
        for path, data in files.items():
            target = self.root / name / version / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        rows = [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in files.items()]
        versions.append({"version": version, "date": when.isoformat(), "files": rows})
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text(json.dumps(versions))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class ToySource:
    """One dataset of the toy archive, as the engine's ``Source`` protocol asks."""

    reserved: tuple[str, ...] = ()

    def __init__(self, name: str, url: str) -> None:
        self.archive, self.remote_id, self.url = NAME, name, url
        self.id = f"{NAME}:{name}"
        self.relpath = f"{NAME}/{name}"

    def describe(self) -> str:
        return f"Toy Archive dataset {self.remote_id}"

    def prepare_dataset(self, path: Path) -> dict[str, str]:
        return {}

    def snapshots(self, state: SourceState, progress: Optional[Any] = None) -> Iterator[Snapshot]:
        with urllib.request.urlopen(f"{self.url}/{self.remote_id}/versions.json") as r:
            versions = json.load(r)
        done = state.labels()
        for v in versions:
            if v["version"] in done:
                continue
            base = f"{self.url}/{self.remote_id}/{v['version']}"
            entries = [
                AnnexEntry(
                    f["path"], sha256e_key(f["sha256"], f["size"], f["path"]), f["size"], (f"{base}/{f['path']}",)
                )
                for f in v["files"]
            ]
            label = v["version"]
            yield Snapshot(
                label=label,
                kind=VersionKind.PUBLISHED,
                entries=entries,
                date=datetime.fromisoformat(v["date"]).astimezone(timezone.utc),
                message=f"Toy {self.remote_id} {label}",
                tag=label,
                tag_message=f"Toy {self.remote_id} {label}",
            )


def expand(spec: Spec, options: dict) -> Iterator[ToySource]:
    """The source a toy SPEC names (no globs: the toy archive lists no datasets), at the stand-in ``$TOY_URL``
    names (a sync's options are the product's: a toy archive adds none)."""
    yield ToySource(spec.name, os.environ[URL_ENV])


def add_options(group: Any) -> None:
    """The toy archive adds no ``sync`` option."""


def check_name(text: str, name: str) -> str:
    if not name.startswith("ds"):
        raise SpecError(f"{text!r}: a toy dataset is named ds..., e.g. toy:ds000001")
    return name


@contextmanager
def registered() -> Iterator[archives.Archive]:
    """The toy archive known for the length of a ``with`` (its record names this module for everything)."""
    record = archives.Archive(
        NAME, __name__, check_name, publisher="Toy Archive", options_module=__name__, name_parts=1
    )
    archives.register(record)
    try:
        yield record
    finally:
        archives.unregister(NAME)

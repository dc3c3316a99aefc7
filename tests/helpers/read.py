"""The read tests' helpers (tests/test_read*.py and their neighbours): a mirrored dandiset with HDF5 and Zarr, the view server."""

from __future__ import annotations

import io
import json
import queue
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import numpy as np

from helpers.keep import T0
from helpers.retrieve import Runner
from helpers.service import ENV

H5 = "sub-01/sub-01_ecephys.nwb"


ZARR = "sub-09/sample.zarr"


OTHER = "sub-02/b.dat"


def h5_bytes(tag: str = "") -> bytes:
    """An HDF5 file; ``tag`` (an attribute) makes its bytes those of one dandiset only: the archive keeps one blob
    per content, so tests that delete a blob's every S3 version must not share it with another test's dandiset."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("data", data=np.arange(400_000, dtype="float64"), chunks=(5_000,))
        if tag:  # an attribute moves the file's layout: the range-read counts below are of the untagged file
            f.attrs["dandiset"] = tag
    return buf.getvalue()


def zarr_files(values: np.ndarray) -> dict[str, bytes]:
    """The objects of a Zarr v2 array of ``values`` (4 x 4, chunks of 2 x 2, uncompressed), as zarr-python writes them."""
    import zarr
    from zarr.core.buffer import default_buffer_prototype

    store = zarr.storage.MemoryStore()
    arr = zarr.create_array(store=store, shape=(4, 4), chunks=(2, 2), dtype="int32", zarr_format=2, compressors=None)
    arr[:] = values
    proto = default_buffer_prototype()
    out = {}
    for key in store._store_dict:
        buf = store._store_dict[key]
        out[key] = buf.to_bytes() if hasattr(buf, "to_bytes") else proto.buffer.from_buffer(buf).to_bytes()
    return out


class Mirrored:
    def __init__(self, archive, root: Path, *, own_bytes: bool = False) -> None:  # noqa: ANN001
        """``own_bytes``: the NWB file's bytes this dandiset's alone, for a test that deletes its blob (see h5_bytes)."""
        self.archive = archive
        self.run = Runner(root)
        self.root = root
        when = T0 + timedelta(days=400 + len(archive.dandiset_ids()))
        self.id = archive.create_dandiset(name="read in place", created=when)
        self.h5 = h5_bytes(self.id if own_bytes else "")
        self.other = f"other bytes of {self.id}\n".encode() * 1000
        self.old = np.arange(16, dtype="int32").reshape(4, 4)
        archive.put_asset(self.id, H5, self.h5, when=when + timedelta(minutes=1))
        archive.put_asset(self.id, OTHER, self.other, when=when + timedelta(minutes=2))
        archive.put_asset(self.id, "README.md", b"# read in place\n", when=when + timedelta(minutes=3))
        aid = archive.add_zarr_asset(self.id, ZARR, zarr_files(self.old), when=when + timedelta(minutes=4))
        self.zarr_id = archive.asset(aid).zarr.zarr_id
        self.sync()
        self.first = self.pin("draft")
        # upstream rewrites one chunk in place (same key, a new S3 version)
        self.new = self.old.copy()
        self.new[0:2, 0:2] = -1
        changed = {k: v for k, v in zarr_files(self.new).items() if k == "0.0"}
        archive.modify_zarr(self.zarr_id, put=changed, when=when + timedelta(hours=1))
        self.sync()
        self.second = self.pin("draft")
        assert self.first != self.second

    @property
    def source(self) -> str:
        return f"dandi:{self.id}"

    def sync(self) -> None:
        self.run.ok("sync", self.source, "--dandi-api", self.archive.api_url)

    def pin(self, version: str) -> str:
        return json.loads(self.run.ok("pin", f"{self.source}@{version}", "--json"))["commit"]

    def urls(self, *args: str) -> list[dict]:
        return json.loads(self.run.ok("urls", *args, "--json"))


@contextmanager
def view_server(root: Path, *args: str, address: str = "127.0.0.1:0") -> Iterator[str]:
    """``neuromirror serve --http ADDRESS --no-schedule`` (default ``127.0.0.1:0``): its base URL once it says it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuromirror", "--root", str(root), "serve", "--http", address, "--no-schedule"]
        + list(args),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True).start()
    seen = []
    try:
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError("the view did not say where it listens:\n" + "".join(seen)) from None
            seen.append(line)
            m = re.search(r"read-only on (http://[\d.]+:\d+/)dav/", line)
            if m:
                break
            assert proc.poll() is None, "the view exited:\n" + "".join(seen)
        yield m.group(1)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


MANIFEST_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


def manifest_shape(text: str) -> list[tuple[str, list]]:
    """Check a manifest against the design document's fields and the proof of concept's layout; its files."""
    doc = json.loads(text)
    assert list(doc) == ["schemaVersion", "fields", "statistics", "entries"]
    assert doc["schemaVersion"] == 2 and doc["fields"] == ["versionId", "lastModified", "size", "ETag"]
    stats = doc["statistics"]
    assert ["entries", "depth", "totalSize", "lastModified", "zarrChecksum"] == list(stats)[:5]
    assert re.fullmatch(r"[0-9a-f]{32}-\d+--\d+", stats["zarrChecksum"]) and MANIFEST_TIME.match(stats["lastModified"])
    lines = [line.rstrip(",") for line in text.splitlines()]
    assert lines[:4] == [
        "{",
        ' "schemaVersion": 2',
        ' "fields": ["versionId","lastModified","size","ETag"]',
        ' "statistics": {',
    ]
    files: list[tuple[str, list]] = []

    def walk(tree: dict, prefix: str, depth: int) -> None:
        assert list(tree) == sorted(tree), "S3 key order"
        for name, value in tree.items():
            if isinstance(value, dict):
                walk(value, prefix + name + "/", depth + 1)
                continue
            version, modified, size, etag = value
            assert isinstance(version, str) and version and MANIFEST_TIME.match(modified)
            assert isinstance(size, int) and re.fullmatch(r"[0-9a-f]{32}(-\d+)?", etag)
            # one array per line, indented one space per level, as the proof of concept's encoder writes it
            assert f"{' ' * (depth + 2)}{json.dumps(name)}: {json.dumps(value, separators=(',', ':'))}" in lines
            files.append((prefix + name, value))

    walk(doc["entries"], "", 0)
    return files

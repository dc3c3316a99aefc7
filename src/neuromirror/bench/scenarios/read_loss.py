"""``read-loss`` (issue 39): first byte of a pinned file and Zarr chunk, and how fast a loss spreads.

A stand-in dandiset holds an 8 MiB file and a Zarr of four chunks; it is published, every chunk is
rewritten upstream (the published pin's S3 versions become noncurrent) and two of the published
chunks are kept in a directory store.  The view runs (``serve --http``); readers are processes of
their own (this module run as a script), so that the S3 stand-in in this process does not share
their interpreter.

1. ``read-loss-ttfb``: medians of the time to the first byte (``Range: bytes=0-0`` / ``cat_file``
   of one byte, warm) of the file and of a chunk from the archive's pinned URL, through the view
   (its 307 followed; a Zarr chunk costs the view a ``HEAD`` of the archive before each redirect)
   and through ``neuromirror://``.
2. ``read-loss-spread``: every S3 version of the pin's chunks deleted; reader A (``neuromirror://``)
   reads a kept chunk, then reader B (another process) and the view (plain HTTP) read it: the
   archive requests each made for it (A: the ``GET`` that failed, then the ``HEAD`` of the
   git-annex branch mark; B and the view: none, the index's ``lost_urls`` sends them to the store
   at once), and the view alone on a kept chunk no reader read yet (its ``HEAD`` and the mark's,
   then the store) and on an unkept one (410).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import child_env, neuromirror_cmd, say
from neuromirror.bench.scenarios.read_client import pattern
from neuromirror.bench.scenarios.read_view import view_server
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge

ZARR = "sub-01/sub-01_sample.zarr"
BIG = "sub-01/sub-01_big.nwb"
CHUNKS = ("0.0", "0.1", "1.0", "1.1")
KEPT = ("0.0", "0.1")
TARGETS = [
    ("read-loss-ttfb", "view_extra_ms", 20.0, "max", "first byte through the view: p50 ms more than the archive's"),
    ("read-loss-ttfb", "fsspec_extra_ms", 20.0, "max", "first byte through neuromirror://: p50 ms more"),
    ("read-loss-spread", "reader_b_archive_requests", 0, "max", "archive requests of reader B after A saw the loss"),
    ("read-loss-spread", "view_archive_requests", 0, "max", "archive requests of the view after A saw the loss"),
    ("read-loss-spread", "wrong_bytes", 0, "max", "reads that gave other bytes than the pin's"),
]


def _chunks(tag: str) -> dict[str, bytes]:
    return {k: f"{tag}:{k}:".encode() * 4096 for k in CHUNKS}


def _run(root: Path, *args: str) -> str:
    cmd = [*neuromirror_cmd(), "--root", str(root), *args]
    return subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=True).stdout


def _reader(job: dict) -> dict:
    """This module as a reader process of its own: ``job`` in, its answer (JSON) out."""
    cmd = [sys.executable, "-m", "neuromirror.bench.scenarios.read_loss", json.dumps(job)]
    out = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def bench_read_loss(archives: Archives, work: Path, startup: float, rounds: int = 50) -> list[dict]:
    d = archives.dandi
    when = datetime(2025, 12, 1, tzinfo=timezone.utc)
    ident = d.create_dandiset(name="read after loss", created=when)
    d.put_asset(ident, BIG, pattern(0, 8 << 20), when=when)
    aid = d.add_zarr_asset(ident, ZARR, {".zarray": b"{}", **_chunks("old")}, when=when + timedelta(minutes=1))
    zarr = d.asset(aid).zarr
    assert zarr is not None
    version = d.publish(ident, when=when + timedelta(hours=1))
    root, api = work / "root-read-loss", ["--dandi-api", d.api_url]
    run_sync("read-loss-sync", 6, root, f"dandi:{ident}", api, archives, startup)
    d.modify_zarr(zarr.zarr_id, put=_chunks("new"), when=when + timedelta(hours=2))
    run_sync("read-loss-resync", 6, root, f"dandi:{ident}", api, archives, startup)
    spec = f"dandi:{ident}@{version}"
    includes = [a for k in KEPT for a in ("--include", f"{ZARR}/{k}")]
    _run(root, "keep", spec, "--to", str(work / "store-read-loss"), *includes)
    urls = {r["path"]: r["url"] for r in json.loads(_run(root, "urls", spec, "--json")) if r.get("url")}
    old = _chunks("old")
    with view_server(root, child_env()) as (base, _pid):
        view = f"{base}dav/dandi/{ident}/{version}/"
        files = {"file": BIG, "chunk": f"{ZARR}/0.0"}
        job = {"root": str(root), "rounds": rounds, "nm": {k: f"dandi/{ident}@{version}/{p}" for k, p in files.items()}}
        job["archive"] = {k: urls[p] for k, p in files.items()}
        job["view"] = {k: view + p for k, p in files.items()}
        say(f"read-loss: first byte, {rounds} rounds: archive, view, neuromirror:// ...")
        ttfb = _reader({"phase": "ttfb", **job})
        p50 = {k: {f: round(statistics.median(ttfb[k][f]), 2) for f in files} for k in ttfb}
        first = {"scenario": "read-loss-ttfb", "n": len(CHUNKS) + 1, "p50_ms": p50, "rounds": rounds}
        for kind, field in (("view", "view_extra_ms"), ("nm", "fsspec_extra_ms")):  # the worse of file and chunk
            first[field] = round(max(p50[kind][f] - p50["archive"][f] for f in files), 2)
        say(f"read-loss-ttfb: {first['p50_ms']}")
        client = archives.s3.client()
        listing = client.list_object_versions(Bucket=zarr.bucket, Prefix=f"zarr/{zarr.zarr_id}/")
        for ver in listing["Versions"]:
            if not ver["IsLatest"]:
                client.delete_object(Bucket=zarr.bucket, Key=ver["Key"], VersionId=ver["VersionId"])
        spread: dict[str, Any] = {"scenario": "read-loss-spread", "n": len(CHUNKS) + 1, "wrong_bytes": 0}

        def counted(name: str, chunk: str, read: dict) -> None:
            log = archives.s3.log_requests()
            try:
                got = _reader(read)
            finally:
                archives.s3.log_requests(False)
            spread[f"{name}_archive_requests"] = sum(1 for _m, p in log if f"/{chunk}?" in p or p.endswith(f"/{chunk}"))
            spread[f"{name}_answer"] = got["answer"]
            want = old[chunk].hex() if chunk in KEPT else None
            spread["wrong_bytes"] += int(got.get("hex") != want)

        nm = {"root": str(root), "phase": "nm"}
        counted("reader_a", "0.0", {**nm, "path": f"dandi/{ident}@{version}/{ZARR}/0.0"})
        counted("reader_b", "0.0", {**nm, "path": f"dandi/{ident}@{version}/{ZARR}/0.0"})
        counted("view", "0.0", {"phase": "http", "url": f"{view}{ZARR}/0.0"})
        counted("view_alone", "0.1", {"phase": "http", "url": f"{view}{ZARR}/0.1"})
        counted("view_alone_unkept", "1.1", {"phase": "http", "url": f"{view}{ZARR}/1.1"})
        say(f"read-loss-spread: {spread}")
    out = [first, spread]
    judge(out, TARGETS)
    return out


# -- the reader process ------------------------------------------------------------------------------------
def _ttfb(job: dict) -> dict:
    import fsspec
    import requests

    session = requests.Session()
    fs = fsspec.filesystem("neuromirror", root=job["root"])

    def http(url: str) -> float:
        t = time.perf_counter()
        with session.get(url, headers={"Range": "bytes=0-0"}, stream=True) as r:
            r.raise_for_status()
            next(r.iter_content(1))
        return time.perf_counter() - t

    def nm(path: str) -> float:
        t = time.perf_counter()
        assert len(fs.cat_file(path, start=0, end=1)) == 1
        return time.perf_counter() - t

    times: dict[str, dict[str, list[float]]] = {k: {"file": [], "chunk": []} for k in ("archive", "view", "nm")}
    for i in range(int(job["rounds"]) + 1):  # the first round warms connections and listings: not counted
        for f in ("file", "chunk"):
            for kind, how in (("archive", http), ("view", http), ("nm", nm)):
                took = how(job[kind][f])
                if i:
                    times[kind][f].append(round(took * 1000, 3))
    return times


def _main(job: dict) -> dict:
    if job["phase"] == "ttfb":
        return _ttfb(job)
    if job["phase"] == "nm":
        import fsspec

        try:
            body = fsspec.filesystem("neuromirror", root=job["root"]).cat_file(job["path"])
        except OSError as exc:
            return {"answer": type(exc).__name__}
        return {"answer": "bytes", "hex": body.hex()}
    import requests

    r = requests.get(job["url"], timeout=60)
    if r.status_code != 200:
        return {"answer": str(r.status_code)}
    return {"answer": "200" + (" via redirect" if r.history else " from the view"), "hex": r.content.hex()}


if __name__ == "__main__":
    print(json.dumps(_main(json.loads(sys.argv[1]))))

"""``icechunk-read`` (issue 78): a pinned Zarr state exported as an Icechunk repository, and a slice read through it
beside zarr-python over ``neuromirror://``.

The archive is behind the bench's shaping proxies (:mod:`neuromirror.bench.network`), as in ``inventory-cold``.  A
stand-in dandiset holds one Zarr v2 array of 20 x 20 chunks (written by zarr-python, compressed); it is synced and
pinned at RTT 0, its state kept with ``keep SPEC@C --to pack+file://DIR`` and exported with ``neuromirror export
SPEC@C/PATH.zarr --icechunk DIR --from pack+file://DIR`` (the ``--from`` form: the Icechunk side reads the kept
pack's bytes by offset and length, locally); where this process may listen on port 80 of a loopback address (root),
also in the view-URL form (``serve --http HOST:80``: Icechunk keeps no port), whose conditional reads the view
answers with the archive's answer for the pinned URL.  Then, at ``--icechunk-rtt`` (default 50 ms), rounds alternate:

1. ``icechunk-read``: a slice of ``--icechunk-slice`` chunks (default 100) read with icechunk + zarr-python;
2. ``icechunk-read-view``: the same through the view-URL form's export (only where port 80 could be had);
3. ``icechunk-read-nm``: the same slice by zarr-python over ``neuromirror://`` (a fresh filesystem each round), which
   reads the archive's pinned URLs through the proxies.

Each side's values are checked against the array written.  ``icechunk-export``: a second Zarr state of
``--icechunk-chunks`` chunks (default 10^5, 4-byte chunks), synced and pinned, whose export alone is timed, in the
view-URL form (``--view-url http://127.0.0.1``: writing the references asks the view nothing; keeping 10^5 keys
first would take this machine minutes).

``icechunk-view-first``: then the view's first answer for a chunk of that state (a 307 on ``serve --http`` at
any port), which lists the chunk's directory whole and reads every chunk's logs.

Targets: the Icechunk read <= 1.2x the ``neuromirror://`` read's median; the 10^5-chunk export < 30 s.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from neuromirror.bench.archives import Archives, direct_puts
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge

TARGETS = (
    (
        "icechunk-read",
        "x_neuromirror",
        1.2,
        "max",
        "icechunk-read: slice via Icechunk --from a pack over neuromirror://",
    ),
    (
        "icechunk-read-view",
        "x_neuromirror",
        1.2,
        "max",
        "icechunk-read: slice via Icechunk through the view over nm://",
    ),
    ("icechunk-export", "wall_s", 30.0, "under", "icechunk-export of a Zarr state: s"),
)
ZARR = "sub-01/sub-01_image.zarr"
SIDE, CHUNK, ROUNDS = 200, 10, 3


def _array_files() -> tuple[dict[str, bytes], Any]:
    """A Zarr v2 array of 20 x 20 chunks as zarr-python writes it: its objects and its values."""
    import numpy as np
    import zarr

    values = np.arange(SIDE * SIDE, dtype="int32").reshape(SIDE, SIDE)
    store = zarr.storage.MemoryStore()
    a = zarr.create_array(store, name="data", shape=values.shape, chunks=(CHUNK, CHUNK), dtype="int32", zarr_format=2)
    a[:] = values
    return {k: v.to_bytes() for k, v in store._store_dict.items()}, values


def _many_chunks(n: int) -> dict[str, bytes]:
    """A Zarr v2 array of ``n`` chunks of one int32 each, uncompressed."""
    meta = {"zarr_format": 2, "shape": [n], "chunks": [1], "dtype": "<i4", "compressor": None}
    meta.update(fill_value=0, order="C", filters=None)
    files = {".zgroup": b'{"zarr_format": 2}', "data/.zarray": json.dumps(meta).encode()}
    files.update({f"data/{i}": i.to_bytes(4, "little") for i in range(n)})
    return files


def _nm(root: Path, *args: str) -> dict:
    r = run_measured([*neuromirror_cmd(), "--root", str(root), *args, "--json"], env=child_env())
    return dict(json.loads(r["stdout"]), wall_s=round(r["wall"], 3), peak_rss_mb=round(r["rss_mb"], 1))


def _mirrored(
    net: Any, work: Path, startup: float, name: str, files: dict[str, bytes], keep: bool = True
) -> tuple[Path, str, str]:
    """A dandiset of one Zarr synced, pinned and (``keep``) kept: its root, ``SPEC@COMMIT`` and the packed store."""
    d = net.dandi
    when = datetime(2025, 10, 1, tzinfo=timezone.utc)
    ident = d.create_dandiset(name=f"bench {name}", created=when)
    with direct_puts(net):
        d.add_zarr_asset(ident, ZARR, files, when=when)
    root, store = work / f"root-{name}", f"pack+file://{work / f'{name}-packs'}"
    run_sync(f"{name}-sync", len(files), root, f"dandi:{ident}", ["--dandi-api", net.api_url], net, startup)
    spec = f"dandi:{ident}@{_nm(root, 'pin', f'dandi:{ident}@draft')['commit']}"
    if not keep:
        return root, spec, store
    kept = _nm(root, "keep", spec, "--to", store)
    say(f"{name}: kept {spec} into {store} in {kept['wall_s']} s")
    return root, spec, store


def _export(root: Path, spec: str, repo: Path, *where: str) -> dict:
    got = _nm(root, "export", f"{spec}/{ZARR}", "--icechunk", str(repo), *where)
    if not got.get("containers"):
        raise RuntimeError(f"icechunk export of {spec}: {got}")
    return got


def _read_icechunk(repo: Path, containers: list[str], box: tuple[slice, slice]) -> tuple[float, Any]:
    import icechunk
    import zarr

    t = time.perf_counter()
    opened = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(repo)), authorize_virtual_chunk_access={c: None for c in containers}
    )
    got = zarr.open_array(opened.readonly_session(branch="main").store, path="data", mode="r")[box]
    return time.perf_counter() - t, got


def _read_nm(root: Path, spec: str, box: tuple[slice, slice]) -> tuple[float, Any]:
    import zarr

    t = time.perf_counter()
    url = f"neuromirror://{spec.replace(':', '/', 1)}/{ZARR}"
    a = zarr.open_array(url, path="data", mode="r", storage_options={"root": str(root), "skip_instance_cache": True})
    got = a[box]
    return time.perf_counter() - t, got


def _loopback_80() -> Optional[str]:
    """A loopback address whose port 80 this process may listen on (Icechunk keeps no port), else None."""
    for host in ("127.0.0.1", "127.78.0.1"):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the view binds: a run's TIME_WAITs
            try:
                sock.bind((host, 80))
            except OSError:
                continue
            return host
    return None


def _rounds(readers: dict[str, Any], values: Any, box: tuple[slice, slice]) -> dict[str, float]:
    """Each reader's median over alternating rounds, each read's values checked."""
    took: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(ROUNDS):
        for name, read in readers.items():
            s, v = read(box)
            if not (v == values[box]).all():
                raise RuntimeError(f"{name}: a slice read is not the values written")
            took[name].append(s)
    return {name: round(statistics.median(t), 3) for name, t in took.items()}


def _slice_rows(net: Any, work: Path, startup: float, args: Any) -> list[dict]:
    from neuromirror.bench.scenarios.read_view import view_server

    files, values = _array_files()
    root, spec, store = _mirrored(net, work, startup, "icechunk-read", files)
    packed = _export(root, spec, work / "icechunk-read.icechunk", "--from", store)
    side = max(1, int(round(int(args.icechunk_slice) ** 0.5)))
    box = (slice(0, side * CHUNK), slice(0, side * CHUNK))
    readers: dict[str, Any] = {
        "icechunk-read": lambda b: _read_icechunk(work / "icechunk-read.icechunk", packed["containers"], b),
        "icechunk-read-nm": lambda b: _read_nm(root, spec, b),
    }
    host = _loopback_80()
    with view_server(root, child_env(), f"{host}:80") if host else nullcontext() as served:
        if served:
            repo = work / "icechunk-read-view.icechunk"
            viewed = _export(root, spec, repo, "--view-url", f"http://{host}")
            readers["icechunk-read-view"] = lambda b: _read_icechunk(repo, viewed["containers"], b)
        net.set_rtt(float(args.icechunk_rtt))
        medians = _rounds(readers, values, box)
        net.set_rtt(0.0)
    rtt_ms, chunks = round(float(args.icechunk_rtt) * 1000), side * side
    forms = {"icechunk-read": "--from pack+file (the kept pack, read locally)", "icechunk-read-view": "the view on :80"}
    rows: list[dict[str, Any]] = []
    for name, wall in medians.items():
        note = f"{chunks} chunks at RTT {rtt_ms} ms" + (f"; Icechunk by {forms[name]}" if name in forms else "")
        result: dict[str, Any] = {"scenario": name, "n": chunks, "wall_s": wall, "note": note}
        if name in forms:
            result["x_neuromirror"] = round(wall / medians["icechunk-read-nm"], 2)
        rows.append(result)
    rows[0]["export_s"] = packed["wall_s"]
    say(f"icechunk-read (medians of {ROUNDS}): {medians}" + ("" if host else "; no view form: port 80 taken"))
    return rows


def _export_rows(net: Any, work: Path, startup: float, n: int) -> list[dict]:
    root, spec, _ = _mirrored(net, work, startup, "icechunk-export", _many_chunks(n), keep=False)
    # the view-URL form: writing the references asks the view nothing (keeping 10^5 keys first would take minutes)
    got = _export(root, spec, work / "icechunk-export.icechunk", "--view-url", "http://127.0.0.1")
    say(f"icechunk-export: {n:,} chunks in {got['wall_s']} s")
    first = _view_first(root, spec)
    say(f"icechunk-view-first: the view's first chunk answer from the {n:,}-chunk directory in {first} s")
    return [
        {
            "scenario": "icechunk-export",
            "n": n,
            "wall_s": got["wall_s"],
            "peak_rss_mb": got["peak_rss_mb"],
            "chunks_per_s": round(n / got["wall_s"], 1),
            "note": f"{n:,} chunks, the view-URL form (no view needed to write)",
        },
        {"scenario": "icechunk-view-first", "n": n, "wall_s": first, "note": f"a 307 from a directory of {n:,}"},
    ]


def _view_first(root: Path, spec: str) -> float:
    """The view's first answer for a chunk of the state (a 307): its whole directory listed, its chunks' logs read."""
    from neuromirror.bench.scenarios.read_view import view_server
    from neuromirror.network import identity

    source, commit = spec.split("@", 1)
    with view_server(root, child_env()) as (base, _):
        url = f"{base}dav/{source.replace(':', '/', 1)}/{commit}/{ZARR}/data/0"
        t = time.perf_counter()
        r = identity.session().get(url, allow_redirects=False, timeout=600)
        took = round(time.perf_counter() - t, 2)
    if r.status_code != 307:
        raise RuntimeError(f"the view's first chunk answer: {r.status_code} {r.text[:200]}")
    return took


def bench(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    from neuromirror.bench.network import NetworkArchives

    net = NetworkArchives(archives)
    try:
        out = _slice_rows(net, work, startup, args)
        if int(args.icechunk_chunks) > 0:
            out += _export_rows(net, work, startup, int(args.icechunk_chunks))
    finally:
        net.close()
    judge(out, TARGETS)
    if not args.keep:
        for name in ("root-icechunk-read", "root-icechunk-export", "icechunk-read-packs", "icechunk-export-packs"):
            shutil.rmtree(work / name, ignore_errors=True)
    archives.drop_objects(NetworkArchives.BUCKET)
    return out

"""``lost-get-stores`` (issue 57): a fresh clone's ``datalad get`` of lost keys from a packed and an S3 store.

A stand-in dandiset holds the 24 blobs of ``lost-get`` (4 kB to 1 MiB) and a Zarr of ``--lost-stores-chunks``
small chunks; it is published and synced into one mirror root per store kind, and each root keeps the
published version (``keep dandi:ID@VERSION --to STORE``) into its one store:

* ``directory``: a directory store (the reference);
* ``pack``: ``pack+file://`` (packs of :data:`PACK_SIZE`, so that the keys lie in several packs);
* ``pack-s3``: ``pack+s3://BUCKET/packed`` on the S3 stand-in (the same pack size);
* ``s3``: ``s3://BUCKET/plain`` on the S3 stand-in.

Then loss as loss, the mirrors never told: every S3 version of the 24 blobs and of the Zarr's chunks is
deleted from the archive's bucket.  Each get is in a fresh ``datalad clone`` of the root's dataset (the
version checked out, ``annex.security.allowed-ip-addresses all``, the S3 endpoint and a reader's
credentials in the environment, as docs/keep.md tells a lab):

* ``lost-stores-files-<kind>``: ``datalad get`` of the 24 files (every kind);
* ``lost-stores-chunks-<kind>``: ``datalad get .`` inside the Zarr's subdataset, installed first by
  ``datalad get -n`` (not timed: ``install_s``), for ``directory``, ``pack`` and ``pack-s3``, and for
  ``floor``: git-annex's own floor for an external special remote, the directory store's clone reading the
  same keys through the most trivial external remote (:mod:`.floor`, registered in the clone, not timed);
  ``floor-noverify`` and ``pack-noverify`` are the same with ``annex.verify=false`` in the clone, a
  diagnostic only (how much of the floor is git-annex re-hashing what an external remote wrote).

The kinds alternate for ``--lost-stores-rounds`` rounds (who goes first too); each res carries the kind's
median wall and CPU, DataLad's start-up (``datalad --version`` in the same clone, just after), the requests
the archive saw (S3 outside the stores' bucket, and the API: 0 expected), the store's requests (the
stores' bucket, S3 kinds) and per key, and the keys left missing.  ``x_directory`` = (wall - start-up) /
(the directory store's wall - start-up): the target's "beyond DataLad's start-up"; the chunks' rows also
carry ``floor_external_s`` (the ``floor`` kind's wall) and ``x_floor``, the same ratio to the floor's.

``lost-stores-read-<kind>`` (S3 kinds, and ``pack``): the same lost keys read in the mirror by
``neuromirror://`` (a reader process of its own, :func:`_main`) and then through the view (``serve
--http``): the 24 files and every :data:`READ_EVERY`-th chunk; bytes checked; archive and store
requests per key for each reader.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from neuromirror.bench.archives import Archives, direct_puts
from neuromirror.bench.measure import neuromirror_cmd, run_measured, say
from neuromirror.bench.scenarios.lost.lost_get import BLOBS, _blobs, _delete_versions, _present, _zarr
from neuromirror.bench.scenarios.packs import floor
from neuromirror.bench.scenarios.packs.restore import blob_keys, lose
from neuromirror.bench.scenarios.read_view import view_server
from neuromirror.bench.scenarios.restore import _env
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported

ZARR = "sub-01/sub-01_kept.zarr"
#: the packed stores' pack size: the 24 files (~5 MB) and the chunks lie in several packs
PACK_SIZE = 1 << 20
KINDS = ("directory", "pack", "pack-s3", "s3")
#: ``floor``: the directory store's keys through a trivial external remote; ``-noverify``: a diagnostic
CHUNK_KINDS = ("directory", "floor", "pack", "pack-s3", "floor-noverify", "pack-noverify")
#: the readers in the mirror read the 24 files and every READ_EVERY-th chunk
READ_EVERY = 10
TARGETS = (
    ("lost-stores-chunks-pack", "x_directory", 1.5, "max", "lost get: datalad get of lost chunks from pack+file:// over a directory store's, beyond start-up"),
    ("lost-stores-chunks-pack-s3", "x_directory", 1.5, "max", "lost get: datalad get of lost chunks from pack+s3:// over a directory store's, beyond start-up"),
    ("lost-stores-files-s3", "x_directory", 1.5, "max", "lost get: datalad get of 24 lost files from s3:// over a directory store's, beyond start-up"),
    *[(f"lost-stores-{w}-{k}", "archive_requests", 0, "max", f"lost get {w} from {k}: requests to the archive") for w in ("files", "chunks") for k in KINDS],
    *[(f"lost-stores-{w}-{k}", "missing", 0, "max", f"lost get {w} from {k}: keys left without content") for w in ("files", "chunks") for k in KINDS],
    ("lost-stores-chunks-floor", "missing", 0, "max", "lost get chunks through the trivial external remote (the floor): keys left without content"),
    *[(f"lost-stores-{w}-{k}", "store_requests_per_key", 2.0, "max", f"lost get {w} from {k}: store requests per key") for w in ("files", "chunks") for k in ("pack-s3", "s3")],
    *[(f"lost-stores-read-{k}", f"{r}_store_requests_per_key", 2.0, "max", f"{k}: store requests per lost key read by {r}") for k in ("pack-s3", "s3") for r in ("fsspec", "view")],
    *[(f"lost-stores-read-{k}", f"{r}_wrong", 0, "max", f"{k}: lost keys {r} did not give the kept bytes of") for k in ("pack", "pack-s3", "s3") for r in ("fsspec", "view")],
)  # fmt: skip


def _store_url(kind: str, work: Path, bucket: str) -> str:
    return {
        "directory": str(work / "lost-stores-directory"),
        "pack": f"pack+file://{work / 'lost-stores-pack'}",
        "pack-s3": f"pack+s3://{bucket}/packed",
        "s3": f"s3://{bucket}/plain",
    }[kind]


class _Requests:
    """The requests the archive (S3 outside the stores' bucket, and the API) and the stores' bucket saw while
    ``action`` ran."""

    def __init__(self, archives: Archives, bucket: str) -> None:
        self.archives, self.bucket = archives, bucket

    def __call__(self, action: Callable[[], dict]) -> dict:
        s3_log = self.archives.s3.log_requests()
        self.archives.dandi.reset_request_log()
        try:
            got = action()
        finally:
            self.archives.s3.log_requests(False)
        ours = [p for _m, p in s3_log if p.startswith(f"/{self.bucket}/") or p.startswith(f"/{self.bucket}?")]
        archive = len(s3_log) - len(ours) + len(list(self.archives.dandi.request_log))
        return {**got, "archive_requests": archive, "store_requests": len(ours)}


def _kept_then_lost(archives: Archives, work: Path, startup: float, chunks: int, env: dict) -> tuple[Any, ...]:
    """The dandiset published, synced into a root per store kind, kept there, then lost: (ident, version,
    blobs, Zarr files, the stores' bucket, roots, keep seconds per kind)."""
    d = archives.dandi
    when = datetime(2026, 2, 2, tzinfo=timezone.utc)
    ident = d.create_dandiset(name="lost get from stores", created=when)
    blobs = _blobs()
    zarr_files = _zarr(chunks, "kept")
    with direct_puts(archives):
        for path, data in blobs.items():
            d.put_asset(ident, path, data, when=when)
        aid = d.add_zarr_asset(ident, ZARR, zarr_files, when=when + timedelta(minutes=1))
    zarr = d.asset(aid).zarr
    assert zarr is not None
    version = d.publish(ident, when=when + timedelta(hours=1))
    bucket = f"bench-lost-stores-{uuid.uuid4().hex[:8]}"
    archives.s3.create_bucket(bucket, versioned=False, public=False)
    spec, n = f"dandi:{ident}@{version}", BLOBS + len(zarr_files)
    roots: dict[str, Path] = {}
    keeps: dict[str, float] = {}
    for kind in KINDS:
        root = work / f"root-lost-stores-{kind}"
        run_sync(f"lost-stores-sync-{kind}", n, root, f"dandi:{ident}", ["--dandi-api", d.api_url], archives, startup)
        cmd = [*neuromirror_cmd(), "--root", str(root), "keep", spec, "--to", _store_url(kind, work, bucket), "-q"]
        say(f"lost-stores: keep {spec} into the {kind} store ...")
        extra = ["--pack-size", str(PACK_SIZE)] if "pack" in kind else []
        keeps[kind] = round(run_measured([*cmd, *extra], env=env)["wall"], 2)
        roots[kind] = root
    lost = lose(archives, blob_keys(archives, ident))
    lost += _delete_versions(archives.s3.client(), zarr.bucket, f"zarr/{zarr.zarr_id}/", old_only=False)
    say(f"lost-stores: deleted {lost} S3 versions of the 24 blobs and the {len(zarr_files)} Zarr objects")
    return ident, version, blobs, zarr_files, bucket, roots, keeps


def bench_lost_stores(
    archives: Archives, work: Path, startup: float, chunks: int, rounds: int, keep: bool = False
) -> list[dict]:
    """The scenario's rows (see the module), judged; with ``keep`` (``--keep``) the stores stay, for a profile."""
    env = _env(archives)
    env["PATH"] = f"{floor.install(work / 'lost-stores-bin').parent}{os.pathsep}{env['PATH']}"
    ident, version, blobs, zarr_files, bucket, roots, keeps = _kept_then_lost(archives, work, startup, chunks, env)
    flat = work / "lost-stores-floor"
    say(f"lost-stores: the floor's flat directory: {floor.fill(work / 'lost-stores-directory', flat)} keys")
    counted = _Requests(archives, bucket)
    paths = sorted(blobs)
    clones = iter(range(10**9))

    def fresh(kind: str) -> Path:
        clone = work / f"lost-stores-clone-{next(clones)}"
        run_measured(["datalad", "clone", str(roots[_base(kind)] / "dandi" / ident), str(clone)], env=env)
        for cmd in (["config", "annex.security.allowed-ip-addresses", "all"], ["checkout", "-q", version]):
            subprocess.run(["git", *cmd], cwd=clone, check=True, capture_output=True)
        return clone

    def get(what: str, kind: str) -> dict:
        clone, extra = fresh(kind), {}
        where, cmd, keys = clone, ["datalad", "get", "--", *paths], BLOBS
        if what == "chunks":
            extra["install_s"] = round(run_measured(["datalad", "get", "-n", ZARR], env=env, cwd=clone)["wall"], 3)
            where, cmd, keys = clone / ZARR, ["datalad", "get", "."], len(zarr_files)
            extra.update(_prepare(kind, where, flat, env))

        def timed() -> dict:
            r = run_measured(cmd, env=env, cwd=where, check=False)
            got, missing = _present(where, *(paths if what == "files" else []))
            out = {"wall_s": round(r["wall"], 3), "cpu_s": round(r["cpu"], 2), "present": got, "missing": missing}
            if r["rc"]:
                out["error"] = r["stderr"].decode(errors="replace").strip()[-300:]
            return out

        got = {**counted(timed), **extra, "keys": keys}
        got["startup_s"] = round(run_measured(["datalad", "--version"], env=env, cwd=where)["wall"], 3)
        shutil.rmtree(clone, ignore_errors=True)
        return got

    out: list[dict] = []
    for what, kinds in (("files", KINDS), ("chunks", CHUNK_KINDS)):
        runs: dict[str, list[dict]] = {k: [] for k in kinds}
        for i in range(rounds):
            for kind in kinds if i % 2 == 0 else tuple(reversed(kinds)):
                say(f"lost-stores {what}: round {i + 1} of {rounds}: datalad get from the {kind} store ...")
                runs[kind].append(get(what, kind))
                say(f"lost-stores {what} {kind}: {runs[kind][-1]}")
        out += _rows(what, runs, keeps)
    wanted = {p: blobs[p] for p in paths}
    wanted.update({f"{ZARR}/{k}": v for i, (k, v) in enumerate(sorted(zarr_files.items())) if i % READ_EVERY == 0})
    for kind in ("pack", "pack-s3", "s3"):
        out.append(_readers(roots[kind], env, ident, version, wanted, counted, f"lost-stores-read-{kind}"))
    judge(out, TARGETS)
    if not keep:
        for kind in (*KINDS, "floor"):
            shutil.rmtree(work / f"lost-stores-{kind}", ignore_errors=True)
        archives.drop_objects(bucket)
    return out


def _prepare(kind: str, where: Path, flat: Path, env: dict) -> dict:
    """A chunks kind's clone made ready, not timed: the floor's remote registered (the keys told), the
    diagnostic kinds' ``annex.verify`` off."""
    got = {"floor_keys": floor.enable(where, flat, env)} if kind.startswith("floor") else {}
    if kind.endswith("-noverify"):
        subprocess.run(["git", "config", "annex.verify", "false"], cwd=where, check=True)
    return got


def _rows(what: str, runs: dict[str, list[dict]], keeps: dict[str, float]) -> list[dict]:
    """Each kind's row, with its ratios to the directory store's get and (chunks) to the floor's."""
    rows = {k: _row(f"lost-stores-{what}-{k}", r, keeps[_base(k)]) for k, r in runs.items()}
    for res in rows.values():
        res.update(_ratio(res, rows["directory"], "x_directory"))
        if "floor" in rows:
            res["floor_external_s"] = rows["floor"]["wall_s"]
            res.update(_ratio(res, rows["floor"], "x_floor"))
    return list(rows.values())


def _base(kind: str) -> str:
    """The store kind a kind's clone is made from: the floor reads the directory store's keys."""
    kind = kind.removesuffix("-noverify")
    return "directory" if kind == "floor" else kind


def _ratio(res: dict, ref: dict, name: str) -> dict:
    """``name``: ``res``'s wall beyond its start-up over ``ref``'s, and ``name_wall``: the walls' ratio."""
    beyond, ref_beyond = res["wall_s"] - res["startup_s"], ref["wall_s"] - ref["startup_s"]
    return {
        name: round(beyond / ref_beyond, 2) if ref_beyond > 0 else None,
        f"{name}_wall": round(res["wall_s"] / ref["wall_s"], 2) if ref["wall_s"] else None,
    }


def _row(scenario: str, runs: list[dict], keep_s: float) -> dict:
    """A kind's medians over its rounds (wall, CPU, start-up), the worst requests and misses, every round."""

    def median(f: str) -> float:
        return round(statistics.median(r[f] for r in runs), 3)

    keys = runs[0]["keys"]
    res: dict[str, Any] = {"scenario": scenario, "n": keys, "rounds": runs, "keep_s": keep_s}
    res.update(wall_s=median("wall_s"), cpu_s=median("cpu_s"), startup_s=median("startup_s"))
    res.update({f: max(r[f] for r in runs) for f in ("archive_requests", "store_requests", "missing")})
    res["store_requests_per_key"] = round(res["store_requests"] / keys, 3) if keys else None
    errors = [r["error"] for r in runs if r.get("error")]
    if errors:
        res["error_seen"] = errors[0]
    return res


def _readers(
    root: Path, env: dict, ident: str, version: str, wanted: dict[str, bytes], counted: _Requests, scenario: str
) -> dict:
    """The lost keys read in the mirror by ``neuromirror://`` (first: it is the one to meet the loss), then by
    the view; requests per key and wrong answers of each."""
    res: dict[str, Any] = {"scenario": scenario, "n": len(wanted)}
    job = {"root": str(root), "paths": {f"dandi/{ident}@{version}/{p}": b.hex() for p, b in wanted.items()}}
    say(f"{scenario}: {len(wanted)} lost keys read by neuromirror:// ...")
    got = counted(lambda: _reader({**job, "phase": "nm"}, env))
    with view_server(root, env) as (base, _pid):
        view = f"{base}dav/dandi/{ident}/{version}/"
        urls = {view + p: b.hex() for p, b in wanted.items()}
        say(f"{scenario}: the same keys through the view ...")
        seen = counted(lambda: _reader({"phase": "http", "paths": urls}, env))
    for name, r in (("fsspec", got), ("view", seen)):
        res.update({f"{name}_{f}": r[f] for f in ("wall_s", "wrong", "archive_requests", "store_requests")})
        res[f"{name}_store_requests_per_key"] = round(r["store_requests"] / len(wanted), 3)
        res[f"{name}_archive_requests_per_key"] = round(r["archive_requests"] / len(wanted), 3)
        if r.get("first_error"):
            res[f"{name}_first_error"] = r["first_error"]
    res["wall_s"] = res["fsspec_wall_s"]
    say(f"{scenario}: {res}")
    return res


def _reader(job: dict, env: dict) -> dict:
    """This module as a reader process of its own (``env``: the endpoint and a reader's credentials, as a lab's
    process has them): ``job`` in, its answer (JSON) out."""
    cmd = [sys.executable, "-m", "neuromirror.bench.scenarios.packs.lostget"]
    proc = subprocess.run(cmd, input=json.dumps(job), env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"reader failed: {proc.stderr[-1500:]}")
    return dict(json.loads(proc.stdout))


def _main(job: dict) -> dict:
    """Read each of ``job["paths"]`` (neuromirror:// paths, or view URLs) whole; count the wrong answers."""
    import time

    wrong, first_error = 0, None
    t = time.perf_counter()
    if job["phase"] == "nm":
        import fsspec

        fs = fsspec.filesystem("neuromirror", root=job["root"])
        read: Callable[[str], Optional[bytes]] = fs.cat_file
    else:
        import requests

        session = requests.Session()

        def read(url: str) -> Optional[bytes]:
            r = session.get(url, timeout=120)
            if r.status_code != 200:
                raise OSError(f"{r.status_code} for {url}")
            return bytes(r.content)

    for path, want in job["paths"].items():
        try:
            body = read(path)
        except Exception as exc:  # every failure is a wrong answer, the first one said
            body, first_error = None, first_error or f"{type(exc).__name__}: {exc}"[:300]
        wrong += int(body is None or body.hex() != want)
    return {"wall_s": round(time.perf_counter() - t, 3), "wrong": wrong, "first_error": first_error}


def lost_stores_targets(results: list[dict]) -> list[dict[str, Any]]:
    """:data:`TARGETS` as rows of the run's target report."""
    out: list[dict[str, Any]] = []
    for result in results:
        if str(result.get("scenario", "")).startswith("lost-stores-"):
            out += reported(result, f"{result['n']} keys, median of the rounds, {PACK_SIZE >> 20} MiB packs")
    return out


if __name__ == "__main__":
    sys.stdout.write(json.dumps(_main(json.loads(sys.stdin.read()))))

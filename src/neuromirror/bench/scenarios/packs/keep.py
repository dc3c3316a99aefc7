"""``keep-pack``, ``keep-pack-s3``, ``verify-pack`` (issue 57): keep into packed stores, both sides in one run.

Two shapes of Zarr content from the DANDI stand-in, every object ~10 kB of distinct random bytes (each
object's real content, so every side downloads and verifies every byte):

* ``zarr``: one dandiset holding one Zarr of ``objects`` objects (AIND's shape: one store of 10^6 chunks);
* ``zarrs``: one dandiset of ``objects / per_zarr`` Zarrs x ``per_zarr`` objects (20,000 x 50 at 10^6).

Each shape is synced once (:func:`neuromirror.bench.syncs.run_sync`), its mirror shared by the three
scenarios of one run.  Then, each a ``neuromirror`` (or ``git annex``) subprocess measured by
:func:`neuromirror.bench.measure.run_measured` (wall, CPU and peak RSS of the process tree):

``keep-pack`` — ``keep-pack-<shape>``: ``keep SPEC --to pack+file:///P --pack-size SIZE -J 8``; its objects/s,
the store's files (every file under it: config, packs, index files, ``tmp/``) against the rule
``2 * ceil(bytes / pack size) + 16``; ``keep-pack-<shape>-directory``: the same keep into a directory store;
``keep-pack-<shape>-annex``: ``git annex copy --all --from web --to DIR -J 8`` into a directory special
remote in each Zarr's dataset (for ``zarrs`` on the first ``PEER_ZARRS`` Zarrs only, one ``git annex`` per
dataset as a lab would run it; for a ``zarr`` of more than ``PEER_OBJECTS``, on its first folders holding as
many: the rate over that sample); ``keep-pack-<shape>-rerun``: the packed keep
again, everything kept.  Targets: files <= the rule; objects/s >= 1.0x the directory store's and >= 3x
git-annex's; peak RSS < 500 MB; the rerun < 2 s.

``keep-pack-s3`` — ``keep-pack-s3-<shape>``: the same keep into ``pack+s3://BUCKET/packed`` and
(``keep-pack-s3-<shape>-s3``) into ``s3://BUCKET/plain`` on the S3 stand-in (moto); the bucket's objects
under the packed prefix against the same rule; objects/s >= 0.8x the ``s3://`` store's (past ``S3_OBJECTS``
its rate over a sample, as git-annex's: moto's ~50 PutObject/s would take 10^6 over five hours).

``verify-pack`` — ``verify-pack-<shape>``: ``verify --stores --store P --fraction 1`` of the packed store
and (``verify-pack-<shape>-directory``) of the directory store, same keys; packed <= 0.5x the time.

Sizes: ``objects`` defaults to 10^5 (the targets are for 10^6, ~2.5 h a shape here); the stand-in keeps
object bytes on disk (:class:`~neuromirror.bench.moto_patch.Slab`) and the Zarrs are made as they are
stored (:class:`LazyZarr`), so 10^6 fits the machine.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from neuromirror.bench.archives import Archives, direct_puts, zarr_path
from neuromirror.bench.measure import neuromirror_cmd, run_measured, say
from neuromirror.bench.scenarios.keep_archive import _remove, count_objects
from neuromirror.bench.scenarios.restore import _env
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported

JOBS = 8
#: bytes of each object (a Zarr chunk)
OBJECT_SIZE = 10_000
#: ``zarrs``: git annex copy runs in this many Zarrs' datasets (one process each), its rate taken over them
PEER_ZARRS = 40
#: ``zarr``: past this many objects (``--keep-pack-peer-objects``), git annex copy runs on the Zarr's first
#: folders of 1,000 chunks that hold as many (at its ~47 objects/s, 10^6 would take six hours)
PEER_OBJECTS = 20_000
S3_OBJECTS = 50_000  # keep-pack-s3: past this many (--keep-pack-s3-objects), the s3:// side keeps a sample
SHAPES = ("zarr", "zarrs")
#: keep-pack's sides (``--keep-pack-sides``)
SIDES = ("pack", "rerun", "directory", "annex")
#: the target's rule: files (objects) in a packed store at most 2 * ceil(bytes / pack size) + SLACK
SLACK = 16


def _targets() -> tuple:
    out: list[tuple] = []
    for s in SHAPES:
        out += [
            (f"keep-pack-{s}", "files_over_rule", 1.0, "max", f"keep-pack {s}: files in the store / (2 ceil(bytes / pack size) + 16)"),
            (f"keep-pack-{s}", "x_directory", 1.0, "min", f"keep-pack {s}: objects/s over a directory store's"),
            (f"keep-pack-{s}", "x_annex", 3.0, "min", f"keep-pack {s}: objects/s over git annex copy --to a directory remote"),
            (f"keep-pack-{s}", "rss_mb", 500.0, "under", f"keep-pack {s}: peak RSS (MB)"),
            (f"keep-pack-{s}-rerun", "wall_s", 2.0, "under", f"keep-pack {s}: no-op rerun (s)"),
            (f"keep-pack-s3-{s}", "files_over_rule", 1.0, "max", f"keep-pack-s3 {s}: objects in the bucket / (2 ceil(bytes / pack size) + 16)"),
            (f"keep-pack-s3-{s}", "x_s3", 0.8, "min", f"keep-pack-s3 {s}: objects/s over an s3:// store's"),
            (f"verify-pack-{s}", "x_directory", 0.5, "max", f"verify-pack {s}: verify --stores --fraction 1 time over a directory store's"),
        ]  # fmt: skip
    return tuple(out)


#: (result, field, bound, kind, what) for :func:`neuromirror.bench.targets.judge`
TARGETS = _targets()


@dataclass
class Mirror:
    """One shape synced: its root, dataset, Zarrs' datasets, objects and bytes; the stores kept into."""

    shape: str
    root: Path
    spec: str
    ds: Path
    zarrs: list[Path]
    objects: int
    nbytes: int
    stores: dict[str, str] = field(default_factory=dict)


#: the mirrors of this run, shared by its scenarios: (archives, shape, objects, per Zarr) -> Mirror
_MIRRORS: dict[tuple[int, str, int, int], Mirror] = {}


class LazyZarr(Mapping[str, bytes]):
    """A Zarr of ``n`` objects of ~10 kB, each made when it is read (distinct: an index prefix on a slice of
    one random block).  Why lazy: the stand-in only iterates it into S3, and at 10^6 objects the Zarr as a
    dict of bytes was another 10 GB in the bench's process."""

    def __init__(self, n: int, block: bytes, tag: int):
        self.meta = {".zgroup": b'{"zarr_format": 2}', ".zattrs": json.dumps({"tag": tag}).encode()}
        self.chunks, self.block, self.tag = max(0, n - len(self.meta)), block, tag

    def __len__(self) -> int:
        return len(self.meta) + self.chunks

    def __iter__(self) -> Iterator[str]:
        yield from self.meta
        for i in range(self.chunks):
            yield f"0/{i // 1000}/{i % 1000}"

    def __getitem__(self, path: str) -> bytes:
        if path in self.meta:
            return self.meta[path]
        try:
            _, folder, item = path.split("/")
            i = int(folder) * 1000 + int(item)
        except ValueError:
            raise KeyError(path) from None
        if not 0 <= i < self.chunks or path != f"0/{i // 1000}/{i % 1000}":
            raise KeyError(path)
        start = ((self.tag + 1) * 1_000_003 + i * 2_654_435_761) % (len(self.block) - OBJECT_SIZE)
        return f"{self.tag}:{i}:".encode() + self.block[start : start + OBJECT_SIZE - 16]

    def nbytes(self) -> int:
        """The Zarr's bytes, without making them."""
        prefixes = sum(len(f"{self.tag}:{i}:") for i in range(self.chunks))
        return sum(len(b) for b in self.meta.values()) + prefixes + self.chunks * (OBJECT_SIZE - 16)


def mirror(archives: Archives, work: Path, startup: float, shape: str, objects: int, per_zarr: int) -> Mirror:
    """The shape's dandiset in the stand-in, synced (once per run)."""
    cache = (id(archives), shape, objects, per_zarr)
    if cache in _MIRRORS:
        return _MIRRORS[cache]
    rng = random.Random(57)
    block = rng.randbytes(4 << 20)
    when = datetime(2025, 9, 1, tzinfo=timezone.utc)
    d = archives.dandi
    ident = d.create_dandiset(name=f"bench keep-pack {shape} {objects}", created=when)
    sizes = [objects] if shape == "zarr" else [per_zarr] * max(1, objects // per_zarr)
    t = time.perf_counter()
    nbytes = 0
    with direct_puts(archives):
        for i, n in enumerate(sizes):
            files = LazyZarr(n, block, i)
            nbytes += files.nbytes()
            d.add_zarr_asset(ident, zarr_path(i), files, when=when)
    total = sum(max(n, 2) for n in sizes)
    say(
        f"keep-pack {shape}: {len(sizes)} Zarr(s), {total} objects, {nbytes / 2**20:.0f} MiB put in {time.perf_counter() - t:.1f} s"
    )
    root = work / f"root-keep-pack-{shape}"
    spec = f"dandi:{ident}"
    run_sync(f"keep-pack-{shape}-sync", total, root, spec, ["--dandi-api", d.api_url], archives, startup)
    ds = root / "dandi" / ident
    m = Mirror(shape, root, spec, ds, [ds / zarr_path(i) for i in range(len(sizes))], total, nbytes)
    _MIRRORS[cache] = m
    return m


def _keep(
    m: Mirror, env: dict, url: str, name: str, pack_size: Optional[int] = None, sample: Sequence[str] = ()
) -> dict:
    """One measured ``keep`` of the shape's dandiset into ``url`` (``sample``: ``--include`` globs): a result."""
    cmd = [*neuromirror_cmd(), "--root", str(m.root), "keep", m.spec, "--to", url, "-J", str(JOBS), "--json", "-q"]
    if pack_size is not None:
        cmd += ["--pack-size", str(pack_size)]
    cmd += [arg for glob in sample for arg in ("--include", glob)]
    say(f"{name}: keep {'a sample of ' if sample else ''}{m.objects} objects into {url} ...")
    r = run_measured(cmd, env=env)
    report = json.loads(r["stdout"] or "null") or {}
    stores = report.get("stores") or [report]  # one store: its fields at the top
    moved = sum((s.get("transferred") or {}).get("files", 0) for s in stores)
    moved_bytes = sum((s.get("transferred") or {}).get("bytes", 0) for s in stores)
    n = moved if sample else m.objects
    return {
        "scenario": name,
        "n": n,
        "sampled": bool(sample),
        "bytes": moved_bytes if sample else m.nbytes,
        "transferred": moved,
        "transferred_bytes": moved_bytes,
        "wall_s": round(r["wall"], 3),
        "objects_per_s": round(n / r["wall"], 1) if r["wall"] else None,
        "cpu_s": round(r["cpu"], 2),
        "cpu_sys_s": round(r["cpu_sys"], 2),
        "rss_mb": round(r["rss_mb"], 1),
        "rss_at_peak": r["rss_at_peak"],  # the processes making up the peak (MB, name): what to bound next
        "load": round(os.getloadavg()[0], 2),
    }


def rule(nbytes: int, pack_size: int) -> int:
    """The most files (objects) a packed store of ``nbytes`` may have: ``2 * ceil(bytes / pack size) + 16``."""
    return 2 * math.ceil(nbytes / pack_size) + SLACK


def _files(path: Path) -> dict[str, int]:
    """Every file under a store's directory, by top-level folder ('.' for the top)."""
    out: dict[str, int] = {}
    for dirpath, _, names in os.walk(path):
        rel = os.path.relpath(dirpath, path).split(os.sep)[0]
        out[rel] = out.get(rel, 0) + len(names)
    return out


def _with_rule(result: dict, files: dict[str, int], nbytes: int, pack_size: int) -> dict:
    total = sum(files.values())
    bound = rule(nbytes, pack_size)
    return {
        **result,
        "store_files": total,
        "store_files_by_folder": files,
        "rule": bound,
        "files_over_rule": round(total / bound, 3),
    }


def _annex_peer(m: Mirror, env: dict, work: Path, peer_objects: int = PEER_OBJECTS) -> dict:
    """``git annex copy --all --from web --to peer -J 8`` in each sampled Zarr dataset: the git-annex floor."""
    sample = m.zarrs if m.shape == "zarr" else m.zarrs[:PEER_ZARRS]
    peer = work / f"keep-pack-{m.shape}-peer"
    wall = cpu = rss = 0.0
    for i, ds in enumerate(sample):
        where = peer / str(i)
        where.mkdir(parents=True)
        run_measured(
            ["git", "annex", "initremote", "peer", "type=directory", f"directory={where}", "encryption=none"],
            env=env,
            cwd=ds,
        )
    say(
        f"keep-pack {m.shape}: git annex copy --all --from web --to peer -J {JOBS} in {len(sample)} Zarr dataset(s) ..."
    )
    which = [["--all"]]
    if m.shape == "zarr" and m.objects > peer_objects:  # a Zarr's chunks are not checked out: its tree's folders
        which = [["--branch", f"HEAD:0/{k}"] for k in range(math.ceil(peer_objects / 1000))]
    for ds in sample:
        for part in which:
            r = run_measured(
                ["git", "annex", "copy", "--from", "web", "--to", "peer", "-J", str(JOBS), "--quiet", *part],
                env=env,
                cwd=ds,
            )
            wall, cpu, rss = wall + r["wall"], cpu + r["cpu"], max(rss, r["rss_mb"])
    copied = sum(count_objects(peer / str(i)) for i in range(len(sample)))
    _remove(peer)
    return {
        "scenario": f"keep-pack-{m.shape}-annex",
        "n": copied,
        "datasets": len(sample),
        "wall_s": round(wall, 3),
        "objects_per_s": round(copied / wall, 1) if wall else None,
        "cpu_s": round(cpu, 2),
        "rss_mb": round(rss, 1),
        "load": round(os.getloadavg()[0], 2),
    }


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 3) if a and b else None


def keep_file(
    m: Mirror,
    archives: Archives,
    work: Path,
    pack_size: int,
    peer_objects: int = PEER_OBJECTS,
    sides: Sequence[str] = SIDES,
) -> list[dict]:
    """``keep-pack``'s results for one shape (see the module); ``sides`` leaves some out (no ratio then)."""
    env = _env(archives)
    packed, plain = _unused(work / f"keep-pack-{m.shape}-packed"), _unused(work / f"keep-pack-{m.shape}-directory")
    url = f"pack+file://{packed}"
    ours = _keep(m, env, url, f"keep-pack-{m.shape}", pack_size)
    ours = _with_rule(ours, _files(packed), ours["transferred_bytes"] or m.nbytes, pack_size)
    m.stores["pack"] = url
    out = [ours]
    if "rerun" in sides:
        out.append(_keep(m, env, url, f"keep-pack-{m.shape}-rerun"))
    if "directory" in sides:
        directory = _keep(m, env, str(plain), f"keep-pack-{m.shape}-directory")
        m.stores["directory"] = str(plain)
        ours["x_directory"] = _ratio(ours["objects_per_s"], directory["objects_per_s"])
        out.append(directory)
    if "annex" in sides:
        peer = _annex_peer(m, env, work, peer_objects)
        ours["x_annex"] = _ratio(ours["objects_per_s"], peer["objects_per_s"])
        out.append(peer)
    say(
        f"keep-pack {m.shape}: "
        + "; ".join(
            f"{r['scenario']} {r.get('objects_per_s')} objects/s, {r['wall_s']} s, {r['rss_mb']} MB" for r in out
        )
        + f"; packed store {ours['store_files']} files (rule {ours['rule']})"
    )
    return out


def _unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``-3``... when a round before filled it: each round of ``--compare`` keeps
    into stores of its own (into the same one, every round after the first was a no-op rerun)."""
    n, out = 1, path
    while out.exists():
        n += 1
        out = path.with_name(f"{path.name}-{n}")
    return out


def _bucket_objects(archives: Archives, bucket: str, prefix: str) -> int:
    from neuromirror.bench.moto_patch import moto_bucket_backend

    keys = moto_bucket_backend(bucket).buckets[bucket].keys
    return sum(1 for k in list(keys.keys()) if k.startswith(prefix))


def _sample(m: Mirror, objects: int) -> list[str]:
    """``--include`` globs selecting about ``objects`` of the shape's objects (none: all of them)."""
    if m.objects <= objects:
        return []
    if m.shape == "zarr":  # its chunks lie in folders of 1,000 (LazyZarr)
        return [f"*/0/{k}/*" for k in range(math.ceil(objects / 1000))]
    return [f"{zarr_path(i)}/*" for i in range(math.ceil(objects * len(m.zarrs) / m.objects))]


def keep_s3(m: Mirror, archives: Archives, pack_size: int, s3_objects: int = S3_OBJECTS) -> list[dict]:
    """``keep-pack-s3``'s results for one shape (see the module)."""
    env = _env(archives)
    bucket = f"bench-keep-pack-{uuid.uuid4().hex[:8]}"
    archives.s3.create_bucket(bucket, versioned=False, public=False)
    ours = _keep(m, env, f"pack+s3://{bucket}/packed", f"keep-pack-s3-{m.shape}", pack_size)
    objects = _bucket_objects(archives, bucket, "packed/")
    ours = _with_rule(ours, {"packed/": objects}, ours["transferred_bytes"] or m.nbytes, pack_size)
    theirs = _keep(m, env, f"s3://{bucket}/plain", f"keep-pack-s3-{m.shape}-s3", sample=_sample(m, s3_objects))
    theirs["bucket_objects"] = _bucket_objects(archives, bucket, "plain/")
    ours["x_s3"] = _ratio(ours["objects_per_s"], theirs["objects_per_s"])
    say(
        f"keep-pack-s3 {m.shape}: packed {ours['objects_per_s']} objects/s, {objects} objects (rule {ours['rule']}); "
        f"s3:// {theirs['objects_per_s']} objects/s, {theirs['bucket_objects']} objects"
    )
    archives.drop_objects(bucket)
    return [ours, theirs]


def _verify(m: Mirror, env: dict, store: str, name: str) -> dict:
    cmd = [*neuromirror_cmd(), "--root", str(m.root), "verify", "--stores", "--store", store, "--fraction", "1"]
    say(f"{name}: verify --stores --store {store} --fraction 1 ...")
    r = run_measured([*cmd, "-J", "4", "--json", "-q"], env=env, check=False)
    report = json.loads(r["stdout"] or "null") or {}
    if r["rc"] != 0:
        raise RuntimeError(f"{name}: verify failed ({r['rc']}): {r['stderr'].decode(errors='replace')[-1500:]}")
    return {
        "scenario": name,
        "n": m.objects,
        "checked": report.get("checked"),
        "good": report.get("good"),
        "wall_s": round(r["wall"], 3),
        "cpu_s": round(r["cpu"], 2),
        "rss_mb": round(r["rss_mb"], 1),
        "load": round(os.getloadavg()[0], 2),
    }


def _median_round(runs: list[dict]) -> dict:
    """The run of median wall time, with every round's walls beside it."""
    out = dict(sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2])
    out["walls_s"] = [r["wall_s"] for r in runs]
    return out


def verify_pack(m: Mirror, archives: Archives, work: Path, pack_size: int, rounds_of_verify: int = 1) -> list[dict]:
    """``verify-pack``'s results for one shape: the stores ``keep-pack`` made (kept here first if it did not run)."""
    env = _env(archives)
    if not m.stores:
        for kind, where in (
            ("pack", f"pack+file://{work / f'keep-pack-{m.shape}-packed'}"),
            ("directory", str(work / f"keep-pack-{m.shape}-directory")),
        ):
            _keep(m, env, where, f"verify-pack-{m.shape}-keep-{kind}", pack_size if kind == "pack" else None)
            m.stores[kind] = where
    rounds: list[tuple[dict, dict]] = []
    for _ in range(max(1, rounds_of_verify)):  # alternating, so that a busy minute falls on both sides
        rounds.append(
            (
                _verify(m, env, m.stores["pack"], f"verify-pack-{m.shape}"),
                _verify(m, env, m.stores["directory"], f"verify-pack-{m.shape}-directory"),
            )
        )
    ours, theirs = _median_round([r[0] for r in rounds]), _median_round([r[1] for r in rounds])
    ours["x_directory"] = _ratio(ours["wall_s"], theirs["wall_s"])
    ours["x_directory_cpu"] = _ratio(ours["cpu_s"], theirs["cpu_s"])
    return [ours, theirs]


def bench_keep_pack(args: Any, archives: Archives, work: Path, startup: float, part: str) -> list[dict]:
    """One of the three scenarios (``part``: keep-pack, keep-pack-s3, verify-pack) over both shapes, judged."""
    results: list[dict] = []
    pack_size = int(args.keep_pack_size)
    shapes = [s for s in SHAPES if s in getattr(args, "keep_pack_shapes", SHAPES)]
    if not shapes:
        raise ValueError(f"keep_pack_shapes {args.keep_pack_shapes}: none of {', '.join(SHAPES)}")
    for shape in shapes:
        m = mirror(archives, work, startup, shape, args.keep_pack_objects, args.keep_pack_zarr_objects)
        if part == "keep-pack":
            results += keep_file(
                m,
                archives,
                work,
                pack_size,
                getattr(args, "keep_pack_peer_objects", PEER_OBJECTS),
                getattr(args, "keep_pack_sides", SIDES),
            )
        elif part == "keep-pack-s3":
            results += keep_s3(m, archives, pack_size, getattr(args, "keep_pack_s3_objects", S3_OBJECTS))
        else:
            results += verify_pack(m, archives, work, pack_size, getattr(args, "verify_pack_rounds", 1))
    for result in results:
        result["pack_size"] = pack_size
    judge(results, TARGETS)
    return results


def keep_pack_targets(results: list[dict]) -> list[dict[str, Any]]:
    """Issue 57's keep targets (:data:`TARGETS`) as results of the run's target report."""
    out: list[dict[str, Any]] = []
    for result in results:
        if str(result.get("scenario", "")).startswith(("keep-pack", "verify-pack")):
            out += reported(
                result,
                f"measured at {result.get('n', 0):,} objects (target: 10^6), pack size {result.get('pack_size')}",
            )
    return out

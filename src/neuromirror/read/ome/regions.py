"""A region of a pinned OME-Zarr level written as a multi-page TIFF: what ndpull and ndwebtools give BOSS users.

``neuromirror get boss:COLL/EXP@V --region X0:X1,Y0:Y1,Z0:Z1 [--res N] [--channel C] --format tiff --to FILE``
(and ``get SPEC@V PATH.ome.zarr --region ...`` for any OME-Zarr image of a pin).  The region is in the voxels
of the level asked, half-open, as intern's ``get_cutout(resource, res, [x0, x1], [y0, y1], [z0, z1])``
takes them; the TIFF holds one page per z plane (y, x), in the channel's dtype, as ``get_cutout``'s
(z, y, x) array would.

Everything a user can get wrong (a malformed region, one outside the level's extent, an unknown channel or
level) is said before a chunk is read (:class:`~neuromirror.errors.UserError`, exit 2).  Then the region is
read a z-slab of chunk depth at a time, the chunks of the next slab fetched concurrently while the planes
of this one are written (memory: about two slabs), into a temp file beside FILE renamed at the end: a
failure leaves nothing.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from neuromirror.errors import UserError
from neuromirror.read.ome.level import Chunks, Counts, Level, open_level, read_json
from neuromirror.spec import Spec

_SPAN = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*$")
#: past this many bytes a TIFF must be a BigTIFF (classic TIFF's offsets are 32 bits)
BIGTIFF_FROM = 2**32 - 2**25


@dataclass(frozen=True)
class Region:
    """A box of voxels of one level, half-open on each axis: ``X0:X1,Y0:Y1,Z0:Z1`` as the user wrote it."""

    x: tuple[int, int]
    y: tuple[int, int]
    z: tuple[int, int]

    @classmethod
    def parse(cls, text: str) -> Region:
        parts = text.split(",")
        spans = [_SPAN.match(p) for p in parts]
        if len(parts) != 3 or not all(spans):
            raise UserError(f"--region {text!r}: give X0:X1,Y0:Y1,Z0:Z1 (integers, stops exclusive)")
        (x0, x1), (y0, y1), (z0, z1) = ((int(m.group(1)), int(m.group(2))) for m in spans if m)
        for axis, a, b in (("x", x0, x1), ("y", y0, y1), ("z", z0, z1)):
            if a < 0 or b <= a:
                raise UserError(f"--region {text!r}: {axis} {a}:{b} is empty or negative (need 0 <= {axis}0 < {axis}1)")
        return cls((x0, x1), (y0, y1), (z0, z1))

    @property
    def zyx(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        return self.z, self.y, self.x

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z[1] - self.z[0], self.y[1] - self.y[0], self.x[1] - self.x[0])

    def __str__(self) -> str:
        return f"{self.x[0]}:{self.x[1]},{self.y[0]}:{self.y[1]},{self.z[0]}:{self.z[1]}"

    def check(self, level: Level) -> None:
        """The region lies inside the level's extent (a BOSS level's, as the sync recorded it)."""
        for axis, (a, b), lo, hi in zip("xyz", self.zyx[::-1], level.start[::-1], level.stop[::-1]):
            if a < lo or b > hi:
                raise UserError(
                    f"--region {self}: {axis} {a}:{b} is outside {level.name}, whose extent is {level.extent()}"
                )


@dataclass(frozen=True)
class RegionRequest:
    """What ``get --region ... --format tiff`` asks for."""

    root: Path
    index: Optional[str]
    spec: Spec
    region: Region
    dest: Path
    res: Optional[int] = None
    channel: Optional[str] = None  # a BOSS channel
    image: Optional[str] = None  # an OME-Zarr image's path in the pin (any archive)
    jobs: int = 4


@dataclass(frozen=True)
class TiffReport:
    path: Path
    source: str
    version: str
    commit: str
    image: str
    level: str
    region: Region
    shape: tuple[int, int, int]
    dtype: str
    counts: Counts

    def line(self) -> str:
        c = self.counts
        notes = [
            (c.from_boss, "from the BOSS, checked against the pin"),
            (c.missing, "not in the pin (fill value)"),
            (c.unchecked, "with no checksum to check (--no-hash): as the archive serves them now"),
        ]
        parts = [f"{c.read} chunk(s) read from their pinned copies"] + [f"{n} {text}" for n, text in notes if n]
        z, y, x = self.shape
        return (
            f"{self.source}@{self.version} (commit {self.commit[:12]}) {self.image} level {self.level} "
            f"region {self.region}: {z} page(s) of {y} x {x} {self.dtype} in {self.path}; {', '.join(parts)}"
        )

    def to_json(self) -> dict:
        c = self.counts
        return {
            "source": self.source,
            "version": self.version,
            "commit": self.commit,
            "image": self.image,
            "level": self.level,
            "region": str(self.region),
            "shape_zyx": list(self.shape),
            "dtype": self.dtype,
            "file": str(self.path),
            "chunks": {"read": c.read, "from_boss": c.from_boss, "missing": c.missing, "unchecked": c.unchecked},
        }


def export_tiff(req: RegionRequest) -> TiffReport:
    """The region of the pinned level written to ``req.dest`` as a TIFF stack: every check first (UserError),
    then the chunks (:class:`~neuromirror.read.ome.level.RegionError` when one cannot be read as pinned)."""
    from neuromirror.dataset.mirror import Mirror
    from neuromirror.read.fsspec_fs import NeuromirrorFileSystem
    from neuromirror.read.pinned import resolve

    dest = _destination(req.dest)
    mirror = Mirror(req.root, req.index)
    if not mirror.index_path.exists():
        raise UserError(f"no mirror at {mirror.root} (no index {mirror.index_path}; pass --root)")
    try:
        pin = resolve(mirror, req.spec)
    finally:
        mirror.close()
    fs = NeuromirrorFileSystem(root=str(mirror.root), index=req.index, skip_instance_cache=True)
    head = f"{req.spec.archive}/{req.spec.name}@{pin.commit}"
    image, boss_url = _image(fs, head, req)
    level = open_level(fs, f"{head}/{image}", req.res, f"{req.spec.source}@{pin.version} {image}")
    req.region.check(level)
    chunks = Chunks(fs, level, pin.dataset, boss_url)
    try:
        _write(dest, _planes(chunks, req.region, max(1, req.jobs)), req, pin, image, level)
    finally:
        chunks.close()
    return TiffReport(
        dest,
        req.spec.source,
        pin.version,
        pin.commit,
        image,
        level.path.rsplit("/", 1)[-1],
        req.region,
        req.region.shape,
        str(level.dtype),
        chunks.counts,
    )


def _destination(dest: Path) -> Path:
    dest = dest.absolute()
    if dest.is_dir():
        raise UserError(f"--to {dest}: a directory; with --format tiff, --to names the TIFF file to write")
    if not dest.parent.is_dir():
        raise UserError(f"--to {dest}: no directory {dest.parent}")
    if not os.access(dest.parent, os.W_OK):
        raise UserError(f"--to {dest}: cannot write in {dest.parent}")
    return dest


def _image(fs: Any, head: str, req: RegionRequest) -> tuple[str, Optional[str]]:
    """The image's path in the pin (a BOSS channel's ``C.ome.zarr``, or the PATH given) and, for a BOSS
    mirror, the BOSS URL its sync read."""
    if req.image is not None and req.channel is not None:
        raise UserError("give the image's PATH or --channel, not both")
    if req.spec.archive != "boss":
        if req.image is None:
            raise UserError(f"{req.spec.source}: name the OME-Zarr image to read, as a PATH of the version")
        return req.image.strip("/"), None
    doc = read_json(fs, f"{head}/boss.json", str(req.spec))
    if req.image is not None:
        return req.image.strip("/"), doc.get("boss_url")
    channels = {str(k): v for k, v in (doc.get("channels") or {}).items()}
    name = req.channel
    if name is None:
        if len(channels) != 1:
            raise UserError(f"{req.spec}: name a channel with --channel (one of: {', '.join(sorted(channels))})")
        name = next(iter(channels))
    if name not in channels:
        raise UserError(
            f"{req.spec}: no channel {name!r} in this version (channels: {', '.join(sorted(channels)) or 'none'})"
        )
    return str(channels[name].get("path") or f"{name}.ome.zarr"), doc.get("boss_url")


def _planes(chunks: Chunks, region: Region, jobs: int) -> Iterator[np.ndarray]:
    """The region's z planes, a slab of chunk depth at a time; the next slab's chunks are fetched while
    this slab's planes are written."""
    lv = chunks.level
    cz = lv.chunks[lv.zyx[0]]
    slabs = list(range(region.z[0] // cz, (region.z[1] - 1) // cz + 1))
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="region-read")
    try:
        pending = _fetch(pool, chunks, region, slabs[0])
        for i, iz in enumerate(slabs):
            upcoming = _fetch(pool, chunks, region, slabs[i + 1]) if i + 1 < len(slabs) else []
            slab = _assemble(lv, region, iz, pending)
            pending = upcoming
            yield from slab
            del slab
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a failure: the chunks not yet started are not read


def _fetch(pool: ThreadPoolExecutor, chunks: Chunks, region: Region, iz: int) -> list[tuple[tuple, Future]]:
    lv = chunks.level
    cy, cx = lv.chunks[lv.zyx[1]], lv.chunks[lv.zyx[2]]
    out = []
    for iy in range(region.y[0] // cy, (region.y[1] - 1) // cy + 1):
        for ix in range(region.x[0] // cx, (region.x[1] - 1) // cx + 1):
            index = [0] * len(lv.shape)
            index[lv.zyx[0]], index[lv.zyx[1]], index[lv.zyx[2]] = iz, iy, ix
            out.append(((iz, iy, ix), pool.submit(chunks.get, tuple(index))))
    return out


def _assemble(lv: Level, region: Region, iz: int, got: list[tuple[tuple, Future]]) -> np.ndarray:
    """The part of slab ``iz`` inside the region, (z, y, x), from its chunks (the fill value where none)."""
    cz, cy, cx = (lv.chunks[a] for a in lv.zyx)
    z0, z1 = max(region.z[0], iz * cz), min(region.z[1], (iz + 1) * cz)
    out = np.full((z1 - z0, *region.shape[1:]), lv.fill or 0, dtype=lv.dtype)
    try:
        for (_, iy, ix), future in got:
            data = future.result()
            if data is None:
                continue
            zyx = data.transpose(list(lv.zyx) + [a for a in range(data.ndim) if a not in lv.zyx])
            zyx = zyx.reshape(zyx.shape[:3])  # the other axes are of length 1
            y0, y1 = max(region.y[0], iy * cy), min(region.y[1], (iy + 1) * cy)
            x0, x1 = max(region.x[0], ix * cx), min(region.x[1], (ix + 1) * cx)
            out[:, y0 - region.y[0] : y1 - region.y[0], x0 - region.x[0] : x1 - region.x[0]] = zyx[
                z0 - iz * cz : z1 - iz * cz, y0 - iy * cy : y1 - iy * cy, x0 - ix * cx : x1 - ix * cx
            ]
    except BaseException:
        for _, future in got:
            future.cancel()
        raise
    return out


def _write(dest: Path, planes: Iterator[np.ndarray], req: RegionRequest, pin: Any, image: str, level: Level) -> None:
    """The planes as one TIFF series (axes ZYX), written beside ``dest`` and renamed onto it at the end."""
    import tifffile

    shape = req.region.shape
    about = {
        "axes": "ZYX",
        "source": req.spec.source,
        "version": pin.version,
        "commit": pin.commit,
        "image": image,
        "level": level.path.rsplit("/", 1)[-1],
        "region_xyz": str(req.region),
    }
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        big = int(np.prod(shape)) * level.dtype.itemsize >= BIGTIFF_FROM
        with tifffile.TiffWriter(tmp, bigtiff=big) as tw:
            tw.write(planes, shape=shape, dtype=level.dtype, photometric="minisblack", metadata=about)
        os.replace(tmp, dest)
    except BaseException:
        planes_close = getattr(planes, "close", None)
        if planes_close is not None:
            planes_close()
        tmp.unlink(missing_ok=True)
        raise


def describe(path: Path) -> dict:
    """The provenance a TIFF this module wrote carries (its first page's description, JSON)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return json.loads(tif.pages[0].description or "{}")

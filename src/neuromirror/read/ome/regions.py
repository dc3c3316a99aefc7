"""A region of a pinned OME-Zarr level written as a multi-page TIFF: what ndpull and ndwebtools give BOSS users.

``neuromirror get boss:COLL/EXP@V --region X0:X1,Y0:Y1,Z0:Z1 [--res N] [--channel C] --format tiff --to FILE``
(and ``get SPEC@V PATH.ome.zarr --region ...`` for any OME-Zarr image of a pin).  The region is in the voxels
of the level asked, half-open, as intern's ``get_cutout(resource, res, [x0, x1], [y0, y1], [z0, z1])``
takes them; the TIFF holds one page per z plane (y, x), in the channel's dtype, as ``get_cutout``'s
(z, y, x) array would.

Everything a user can get wrong (a malformed region, one outside the level's extent, an unknown channel or
level) is said before a chunk is read (:class:`~neuromirror.errors.UserError`, exit 2).  Then the region is
written in place: tifffile writes the TIFF's page directories with the pixel data left a hole (one block,
C order), then the region is assembled a band at a time (a chunk row of the region, at most
:data:`BAND_BYTES` of chunks) and each band's rows are written straight into their pages, while the
chunks of the bands after it are fetched on ``-J`` threads (at least ``2 x -J`` of them).  Memory follows
the band and ``-J``, not the region (a 1 GiB region: ~250 MB, where assembling whole z-slabs took 1.15 GB; issue 60's
bench, ``scripts/bench --scenarios tiff-region``).  All into a temp file beside FILE renamed at the end: a
failure leaves nothing.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from neuromirror import archives
from neuromirror.errors import BadInput, NotMirrored, UserError
from neuromirror.read.ome.level import Chunks, Counts, Level, RegionError, open_level, read_json
from neuromirror.spec import Spec
from neuromirror.util.disk import DiskFull, check_room, filesystem, is_full
from neuromirror.util.sizes import human_bytes

_SPAN = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*$")
#: past this many bytes a TIFF must be a BigTIFF (classic TIFF's offsets are 32 bits)
BIGTIFF_FROM = 2**32 - 2**25
#: the chunks of one band (assembled, then written) come to at most this many bytes (one chunk, if larger)
BAND_BYTES = 64 << 20


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
            raise BadInput(f"region {text!r}: give X0:X1,Y0:Y1,Z0:Z1 (integers, stops exclusive)").at("region")
        (x0, x1), (y0, y1), (z0, z1) = ((int(m.group(1)), int(m.group(2))) for m in spans if m)
        for axis, a, b in (("x", x0, x1), ("y", y0, y1), ("z", z0, z1)):
            if a < 0 or b <= a:
                raise BadInput(
                    f"region {text!r}: {axis} {a}:{b} is empty or negative (need 0 <= {axis}0 < {axis}1)"
                ).at("region")
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
                raise BadInput(
                    f"region {self}: {axis} {a}:{b} is outside {level.name}, whose extent is {level.extent()}"
                ).at("region")


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
    force: bool = False  # an existing file at dest replaced


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
            (c.unchecked, "with no checksum to check (synced without hashing): as the archive serves them now"),
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


@dataclass(frozen=True)
class OpenRegion:
    """A region's level at its pin, checked, with the reader of its chunks (close it)."""

    pin: Any
    image: str
    level: Level
    chunks: Chunks


def open_region(req: RegionRequest) -> OpenRegion:
    """The pin, image and level ``req`` names, the region checked against the level's extent (UserError), and
    a :class:`~neuromirror.read.ome.level.Chunks` reading its chunks."""
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.read.fsspec_fs import NeuromirrorFileSystem
    from neuromirror.read.pinned import resolve

    mirror = Datasets(req.root, req.index)
    if not mirror.index_path.exists():
        raise NotMirrored(f"no mirror at {mirror.root} (no index {mirror.index_path})").at("root")
    try:
        pin = resolve(mirror, req.spec)
    finally:
        mirror.close()
    fs = NeuromirrorFileSystem(root=str(mirror.root), index=req.index, skip_instance_cache=True)
    head = f"{req.spec.archive}/{req.spec.name}@{pin.commit}"
    image, boss_url = _image(fs, head, req)
    level = open_level(fs, f"{head}/{image}", req.res, f"{req.spec.source}@{pin.version} {image}")
    req.region.check(level)
    return OpenRegion(pin, image, level, Chunks(fs, level, pin.dataset, boss_url))


def chunk_index(level: Level, iz: int, iy: int, ix: int) -> tuple[int, ...]:
    """A chunk's index in the level's array (chunk numbers, one per axis; 0 on the other axes)."""
    index = [0] * len(level.shape)
    index[level.zyx[0]], index[level.zyx[1]], index[level.zyx[2]] = iz, iy, ix
    return tuple(index)


def chunk_span(level: Level, region: Region) -> tuple[range, range, range]:
    """The chunk numbers in z, y and x the region meets."""
    return tuple(  # type: ignore[return-value]
        range(a // level.chunks[axis], (b - 1) // level.chunks[axis] + 1) for (a, b), axis in zip(region.zyx, level.zyx)
    )


def export_tiff(req: RegionRequest) -> TiffReport:
    """The region of the pinned level written to ``req.dest`` as a TIFF stack: every check first (UserError),
    then the chunks (:class:`~neuromirror.read.ome.level.RegionError` when one cannot be read as pinned)."""
    dest = _destination(req.dest, req.force)
    opened = open_region(req)
    pin, image, level, chunks = opened.pin, opened.image, opened.level, opened.chunks
    try:
        need = _tiff_bytes(req.region.shape, level.dtype.itemsize)
        check_room(dest.parent, need, f"writing {dest}", option=0)  # no min_free: not the mirror's disk
        _write(dest, _filled(chunks, req.region, max(1, req.jobs)), req, opened)
    except OSError as exc:
        if is_full(exc):
            raise DiskFull(
                f"{filesystem(dest)} is full: {dest} was not written (it needs {human_bytes(need)})"
            ) from None
        if exc.errno not in _UNWRITABLE:  # a read of the chunks (requests' errors are OSErrors too)
            raise
        raise BadInput(f"to {dest}: cannot be written ({exc.strerror or exc})").at("to") from None
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


def read_array(req: RegionRequest) -> tuple[OpenRegion, np.ndarray]:
    """The region of the pinned level in memory (z, y, x), for a format registered to write it whole."""
    opened = open_region(req)
    out = np.empty(req.region.shape, dtype=opened.level.dtype)
    (z, _), (y, _), (x, _) = req.region.zyx
    try:
        for band, data in _filled(opened.chunks, req.region, max(1, req.jobs)):
            (z0, z1), (y0, y1), (x0, x1) = band.zyx
            out[z0 - z : z1 - z, y0 - y : y1 - y, x0 - x : x1 - x] = data
    finally:
        opened.chunks.close()
    return opened, out


#: the errors of a TIFF file that cannot be written where ``to`` names it
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ETXTBSY)


def _tiff_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """What the TIFF of a region takes: its voxels, and a page's directory (well under 4 KiB) per plane."""
    n = 1
    for d in shape:
        n *= d
    return n * itemsize + 4096 * (shape[0] + 1)


def _destination(dest: Path, force: bool) -> Path:
    dest = dest.absolute()
    if dest.is_dir():
        raise BadInput(f"to {dest}: a directory; a region is written as one TIFF file, to names it").at("to")
    if dest.exists() and not force:
        raise BadInput(f"force: {dest} exists; not replaced without it").at("force")
    if not dest.parent.is_dir():
        raise BadInput(f"to {dest}: no directory {dest.parent}").at("to")
    if not os.access(dest.parent, os.W_OK):
        raise BadInput(f"to {dest}: cannot write in {dest.parent}").at("to")
    return dest


def _image(fs: Any, head: str, req: RegionRequest) -> tuple[str, Optional[str]]:
    """The image's path in the pin (a BOSS channel's ``C.ome.zarr``, or the PATH given) and, for a BOSS
    mirror, the BOSS URL its sync read."""
    if req.image is not None and req.channel is not None:
        raise BadInput("channel: give the image's PATH or a channel, not both").at("channel")
    archive = archives.get(req.spec.archive)
    document = archive.channels_document if archive else None
    if document is None:
        if req.image is None:
            raise UserError(f"{req.spec.source}: name the OME-Zarr image to read, as a PATH of the version")
        return req.image.strip("/"), None
    doc = read_json(fs, f"{head}/{document}", str(req.spec))
    if req.image is not None:
        return req.image.strip("/"), doc.get("boss_url")
    channels = {str(k): v for k, v in (doc.get("channels") or {}).items()}
    name = req.channel
    if name is None:
        if len(channels) != 1:
            raise BadInput(f"channel: name one of this version's channels ({', '.join(sorted(channels))})").at(
                "channel"
            )
        name = next(iter(channels))
    if name not in channels:
        raise UserError(
            f"{req.spec}: no channel {name!r} in this version (channels: {', '.join(sorted(channels)) or 'none'})"
        )
    return str(channels[name].get("path") or f"{name}.ome.zarr"), doc.get("boss_url")


@dataclass(frozen=True)
class Band:
    """Chunks ``(iz, iy, ix)`` for ``ix`` in ``xs`` (one chunk row of the region, or part of one), and the
    region's voxels they cover, (z, y, x) spans: what is assembled and written at once."""

    iz: int
    iy: int
    xs: range
    zyx: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def bands(level: Level, region: Region) -> Iterator[Band]:
    """The region's bands in file order (z slab, then chunk row), each at most :data:`BAND_BYTES` of chunks."""
    cz, cy, cx = (level.chunks[a] for a in level.zyx)
    zs, ys, xs = chunk_span(level, region)
    per = max(1, BAND_BYTES // (cz * cy * cx * level.dtype.itemsize))
    for iz in zs:
        for iy in ys:
            for i in range(0, len(xs), per):
                cols = xs[i : i + per]
                x = (max(region.x[0], cols[0] * cx), min(region.x[1], (cols[-1] + 1) * cx))
                yield Band(iz, iy, cols, (_clip(region.z, iz, cz), _clip(region.y, iy, cy), x))


def _clip(span: tuple[int, int], i: int, n: int) -> tuple[int, int]:
    return max(span[0], i * n), min(span[1], (i + 1) * n)


def _filled(chunks: Chunks, region: Region, jobs: int) -> Iterator[tuple[Band, np.ndarray]]:
    """The region's bands, each assembled from its chunks, in file order.  The chunks of the bands behind the
    one being assembled are fetched meanwhile, at least ``2 x jobs`` of them so that no thread waits (memory:
    the band and about two bands' chunks, whatever the region's size)."""
    lv = chunks.level
    todo = bands(lv, region)
    queued: deque[tuple[Band, list[Future]]] = deque()
    spare: Optional[np.ndarray] = None  # the last band's memory, written: the next one of its shape reuses it
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="region-read")
    try:
        while True:
            while sum(len(f) for _, f in queued) - (len(queued[0][1]) if queued else 0) < 2 * jobs:
                band = next(todo, None)
                if band is None:
                    break
                futures = [pool.submit(chunks.get, chunk_index(lv, band.iz, band.iy, ix)) for ix in band.xs]
                queued.append((band, futures))
            if not queued:
                return
            band, futures = queued.popleft()
            spare = _assemble(lv, band, futures, spare)
            yield band, spare
    finally:
        for _, futures in queued:
            for future in futures:
                future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)  # a failure: the chunks not yet started are not read


def _assemble(lv: Level, band: Band, futures: list[Future], spare: Optional[np.ndarray]) -> np.ndarray:
    """The band's voxels, (z, y, x), little-endian, from its chunks (the fill value where the pin has none), in
    ``spare`` when it has the band's shape (fresh memory costs a page fault per 4 kB, in the thread that writes)."""
    cz, cy, cx = (lv.chunks[a] for a in lv.zyx)
    (z0, z1), (y0, y1), (x0, x1) = band.zyx
    shape = (z1 - z0, y1 - y0, x1 - x0)
    out = spare if spare is not None and spare.shape == shape else np.empty(shape, dtype=lv.dtype.newbyteorder("<"))
    for ix, future in zip(band.xs, futures):
        a, b = max(x0, ix * cx), min(x1, (ix + 1) * cx)
        data = future.result()
        if data is None:
            out[:, :, a - x0 : b - x0] = lv.fill or 0
            continue
        zyx = data.transpose(list(lv.zyx) + [i for i in range(data.ndim) if i not in lv.zyx])
        zyx = zyx.reshape(zyx.shape[:3])  # the other axes are of length 1
        iz, iy = band.iz, band.iy
        out[:, :, a - x0 : b - x0] = zyx[
            z0 - iz * cz : z1 - iz * cz, y0 - iy * cy : y1 - iy * cy, a - ix * cx : b - ix * cx
        ]
    return out


def _write(dest: Path, filled: Iterator[tuple[Band, np.ndarray]], req: RegionRequest, opened: OpenRegion) -> None:
    """The region as one TIFF series (axes ZYX, a page per plane): its directories first, then each band written
    in place into the pages' data; beside ``dest``, renamed onto it at the end."""
    about = {
        "axes": "ZYX",
        "source": req.spec.source,
        "version": opened.pin.version,
        "commit": opened.pin.commit,
        "image": opened.image,
        "level": opened.level.path.rsplit("/", 1)[-1],
        "region_xyz": str(req.region),
    }
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        offset = _skeleton(tmp, req.region.shape, opened.level.dtype.newbyteorder("<"), about)
        fd = os.open(tmp, os.O_WRONLY)
        try:
            for band, data in filled:
                _put(fd, offset, req.region, band, data)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        close = getattr(filled, "close", None)
        if close is not None:
            close()
        tmp.unlink(missing_ok=True)
        raise


def _skeleton(tmp: Path, shape: tuple[int, int, int], dtype: np.dtype, about: dict) -> int:
    """The TIFF's header and page directories (tifffile), its pixel data a hole still: the offset of that data,
    one contiguous C-order (z, y, x) block.  Written in place, the region never has to be in memory whole, nor
    a page of it in the order tifffile would take it."""
    import tifffile

    big = int(np.prod(shape)) * dtype.itemsize >= BIGTIFF_FROM
    offset, _ = tifffile.imwrite(  # type: ignore[misc]
        tmp, shape=shape, dtype=dtype, byteorder="<", bigtiff=big, photometric="minisblack", metadata=about,
        returnoffset=True,
    )  # fmt: skip
    with tifffile.TiffFile(tmp) as tif:
        if tif.series[0].dataoffset != offset:
            raise RegionError(f"tifffile {tifffile.__version__} did not lay the pages out as one block")
    return int(offset)


def _put(fd: int, offset: int, region: Region, band: Band, data: np.ndarray) -> None:
    """A band's voxels into their places in the pages: a plane's rows at once when the band is as wide as the
    region (they follow each other in the page), else row by row."""
    _, ny, nx = region.shape
    (z0, _), (y0, _), (x0, x1) = band.zyx
    item, whole = data.dtype.itemsize, (x0, x1) == region.x
    for dz in range(data.shape[0]):
        at = offset + (((z0 - region.z[0] + dz) * ny + y0 - region.y[0]) * nx + x0 - region.x[0]) * item
        if whole:
            _pwrite(fd, data[dz], at)
            continue
        for dy in range(data.shape[1]):
            _pwrite(fd, data[dz, dy], at + dy * nx * item)


def _pwrite(fd: int, data: np.ndarray, at: int) -> None:
    view = data.data.cast("B")
    while view:
        n = os.pwrite(fd, view, at)
        view, at = view[n:], at + n


def describe(path: Path) -> dict:
    """The provenance a TIFF this module wrote carries (its first page's description, JSON)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return json.loads(tif.pages[0].description or "{}")

"""Which chunks a sync mirrors: per channel, the resolution levels, their extents and the chunk grid.

The plan is made from the experiment's metadata and the settings alone, before
any cutout is read, and fixes the order of the chunks (a sync's output must not
depend on which cutout answers first).  Each channel's ``data_digest`` names what
the bytes of its image chunks depend on besides their URL: when it is unchanged,
a chunk's key from an earlier sync still holds.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, TypeVar

from neuromirror.sources.boss.api import BossError
from neuromirror.sources.boss.chunks import Chunk
from neuromirror.sources.boss.context import Experiment

_T = TypeVar("_T")


def _zyx(values: Iterable[_T]) -> tuple[_T, _T, _T]:
    """One value per axis, (z, y, x)."""
    z, y, x = values
    return z, y, x


def _halve(n: int, times: int, up: bool) -> int:
    for _ in range(times):
        n = -(-n // 2) if up else n // 2
    return n


@dataclass
class LevelPlan:
    res: int
    start: tuple[int, int, int]  # (z, y, x), inclusive
    stop: tuple[int, int, int]  # (z, y, x), exclusive: the level's extent
    voxel: tuple[float, float, float]  # (z, y, x)
    lo: tuple[int, int, int]  # the selected box at this level, (z, y, x)
    hi: tuple[int, int, int]

    def grid(self, chunk: tuple[int, int, int]) -> list[range]:
        return [range(lo // c, -(-hi // c)) if hi > lo else range(0) for lo, hi, c in zip(self.lo, self.hi, chunk)]

    def count(self, chunk: tuple[int, int, int]) -> int:
        return math.prod(len(r) for r in self.grid(chunk))


@dataclass
class ChannelPlan:
    name: str
    raw: dict[str, Any]
    levels: list[LevelPlan]
    times: Optional[list[int]]  # None: the default time sample, no t axis
    data_digest: str  # what the bytes of an image chunk depend on (besides its URL)
    zattrs: bytes = b""

    @property
    def type(self) -> str:
        return str(self.raw.get("type") or "image")

    @property
    def datatype(self) -> str:
        return str(self.raw.get("datatype") or "uint8")

    @property
    def annotation(self) -> bool:
        return self.type == "annotation"

    @property
    def root(self) -> str:
        return f"{self.name}.ome.zarr"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def plan_channels(src: Experiment, info: dict[str, Any], warnings: list[str]) -> list[ChannelPlan]:
    """A plan per channel to mirror (a warning for each channel or level left out, and why)."""
    s = src.settings
    exp, cf = info["experiment"], info["coord_frame"]
    n_levels = int(exp.get("num_hierarchy_levels") or 1)
    iso = exp.get("hierarchy_method") == "isotropic"
    start0 = (int(cf["z_start"]), int(cf["y_start"]), int(cf["x_start"]))
    stop0 = (int(cf["z_stop"]), int(cf["y_stop"]), int(cf["x_stop"]))
    voxel0 = (float(cf["z_voxel_size"]), float(cf["y_voxel_size"]), float(cf["x_voxel_size"]))
    if s.bbox:
        (bx0, bx1), (by0, by1), (bz0, bz1) = s.bbox
        blo, bhi = (bz0, by0, bx0), (bz1, by1, bx1)
    else:
        blo, bhi = start0, stop0
    times: Optional[list[int]] = None
    if s.time_range:
        n_t = int(exp.get("num_time_samples") or 1)
        t0, t1 = s.time_range
        if t1 > n_t:
            raise BossError(f"--time-range {t0}:{t1}: experiment {src.remote_id} has {n_t} time sample(s)")
        times = list(range(t0, t1))
    if s.resolutions is not None:
        bad = [r for r in s.resolutions if r >= n_levels]
        if bad:
            raise BossError(
                f"--resolutions: experiment {src.remote_id} has levels 0-{n_levels - 1}, not {', '.join(map(str, bad))}"
            )
    plans: list[ChannelPlan] = []
    for name, raw in info["channels"].items():
        if raw.get("datatype") not in ("uint8", "uint16", "uint64"):
            warnings.append(f"channel {name}: datatype {raw.get('datatype')!r} not supported; skipped")
            continue
        levels_wanted = list(s.resolutions) if s.resolutions is not None else list(range(n_levels))
        if raw.get("downsample_status") != "DOWNSAMPLED" and any(r > 0 for r in levels_wanted):
            levels_wanted = [r for r in levels_wanted if r == 0]
            warnings.append(
                f"channel {name} is not downsampled upstream "
                f"({raw.get('downsample_status')}): only resolution 0 mirrored"
            )
        levels: list[LevelPlan] = []
        for r in levels_wanted:
            zr = r if iso else 0
            times_ = (zr, r, r)
            # The BOSS checks cutout ranges against the level-0 frame at every level
            # (bosscore.request.set_cutoutargs), so a level is readable from the frame's
            # start on; below it the chunks keep the fill value.
            start = start0
            stop = _zyx(_halve(v, k, True) for v, k in zip(stop0, times_))
            lo = _zyx(max(_halve(v, k, False), a) for v, k, a in zip(blo, times_, start))
            hi = _zyx(min(_halve(v, k, True), b) for v, k, b in zip(bhi, times_, stop))
            voxel = _zyx(v * 2**k for v, k in zip(voxel0, times_))
            lp = LevelPlan(r, start, stop, voxel, lo, hi)
            if lp.count(s.chunk) == 0:
                warnings.append(
                    f"channel {name} resolution {r}: no voxels to mirror "
                    "(outside the bounding box, or below the frame's start at this level)"
                )
            levels.append(lp)
        if not levels:
            continue
        data_digest = _digest(
            {
                "boss": s.url,
                "experiment": {k: v for k, v in exp.items() if k not in ("description", "metadata")},
                "coord_frame": {k: v for k, v in cf.items() if k != "description"},
                "channel": {k: v for k, v in raw.items() if k not in ("description", "metadata")},
                "chunk": list(s.chunk),
                "layout": 1,
            }
        )
        plans.append(ChannelPlan(name, raw, levels, times, data_digest))
    if not plans:
        raise BossError(f"BOSS at {s.url}: nothing to mirror in {src.remote_id} with these settings")
    return plans


def chunks_of(src: Experiment, plan: ChannelPlan) -> Iterator[tuple[str, Chunk]]:
    """(path, chunk) of every chunk file of a channel, in a fixed order."""
    s = src.settings
    cz, cy, cx = s.chunk
    for lv in plan.levels:
        gz, gy, gx = lv.grid(s.chunk)
        for t in plan.times if plan.times is not None else [None]:
            for iz in gz:
                z = (max(iz * cz, lv.start[0]), min((iz + 1) * cz, lv.stop[0]))
                for iy in gy:
                    y = (max(iy * cy, lv.start[1]), min((iy + 1) * cy, lv.stop[1]))
                    for ix in gx:
                        x = (max(ix * cx, lv.start[2]), min((ix + 1) * cx, lv.stop[2]))
                        chunk = Chunk(
                            s.protocol,
                            s.host,
                            src.collection,
                            src.experiment,
                            plan.name,
                            lv.res,
                            x,
                            y,
                            z,
                            (t, t + 1) if t is not None else None,
                            s.chunk,
                            plan.datatype,
                        )
                        tpart = f"{t}/" if t is not None else ""
                        yield f"{plan.root}/{lv.res}/{tpart}{iz}/{iy}/{ix}", chunk

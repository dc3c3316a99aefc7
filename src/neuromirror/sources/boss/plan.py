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

from neuromirror.errors import BadInput
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


@dataclass(frozen=True)
class _Frame:
    """The experiment's level-0 frame, (z, y, x), and the box of it to mirror (the settings' bbox or all)."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    voxel: tuple[float, float, float]
    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    levels: int  # the experiment's resolution levels
    iso: bool  # isotropic: z halves with x and y at each level


def plan_channels(src: Experiment, info: dict[str, Any], warnings: list[str]) -> list[ChannelPlan]:
    """A plan per channel to mirror (a warning for each channel or level left out, and why)."""
    s = src.settings
    exp, cf = info["experiment"], info["coord_frame"]
    frame = _frame(src, exp, cf)
    times = _times(src, exp)
    if s.resolutions is not None:
        bad = [r for r in s.resolutions if r >= frame.levels]
        if bad:
            raise BadInput(
                f"resolutions: experiment {src.remote_id} has levels 0-{frame.levels - 1}, "
                f"not {', '.join(map(str, bad))}"
            ).at("resolutions")
    plans: list[ChannelPlan] = []
    for name, raw in info["channels"].items():
        if raw.get("datatype") not in ("uint8", "uint16", "uint64"):
            warnings.append(f"channel {name}: datatype {raw.get('datatype')!r} not supported; skipped")
            continue
        levels = [_level(src, name, r, frame, warnings) for r in _levels_wanted(src, name, raw, frame, warnings)]
        if levels:
            plans.append(ChannelPlan(name, raw, levels, times, _data_digest(src, exp, cf, raw)))
    if not plans:
        raise BossError(f"BOSS at {s.url}: nothing to mirror in {src.remote_id} with these settings")
    return plans


def _frame(src: Experiment, exp: dict[str, Any], cf: dict[str, Any]) -> _Frame:
    """The level-0 frame the coordinate frame gives, and the settings' bounding box within it."""
    start0 = (int(cf["z_start"]), int(cf["y_start"]), int(cf["x_start"]))
    stop0 = (int(cf["z_stop"]), int(cf["y_stop"]), int(cf["x_stop"]))
    voxel0 = (float(cf["z_voxel_size"]), float(cf["y_voxel_size"]), float(cf["x_voxel_size"]))
    if src.settings.bbox:
        (bx0, bx1), (by0, by1), (bz0, bz1) = src.settings.bbox
        blo, bhi = (bz0, by0, bx0), (bz1, by1, bx1)
    else:
        blo, bhi = start0, stop0
    n_levels = int(exp.get("num_hierarchy_levels") or 1)
    return _Frame(start0, stop0, voxel0, blo, bhi, n_levels, exp.get("hierarchy_method") == "isotropic")


def _times(src: Experiment, exp: dict[str, Any]) -> Optional[list[int]]:
    """The time samples the settings ask for (None: the default one, no t axis); past the experiment's: an error."""
    if not src.settings.time_range:
        return None
    n_t = int(exp.get("num_time_samples") or 1)
    t0, t1 = src.settings.time_range
    if t1 > n_t:
        raise BadInput(f"time_range {t0}:{t1}: experiment {src.remote_id} has {n_t} time sample(s)").at("time_range")
    return list(range(t0, t1))


def _levels_wanted(src: Experiment, name: str, raw: dict[str, Any], frame: _Frame, warnings: list[str]) -> list[int]:
    """The channel's resolution levels to mirror: those asked (or all), only level 0 when the archive
    has not downsampled the channel (said in ``warnings``)."""
    s = src.settings
    wanted = list(s.resolutions) if s.resolutions is not None else list(range(frame.levels))
    if raw.get("downsample_status") != "DOWNSAMPLED" and any(r > 0 for r in wanted):
        wanted = [r for r in wanted if r == 0]
        warnings.append(
            f"channel {name} is not downsampled upstream ({raw.get('downsample_status')}): only resolution 0 mirrored"
        )
    return wanted


def _level(src: Experiment, name: str, r: int, frame: _Frame, warnings: list[str]) -> LevelPlan:
    """Level ``r``'s extent, voxel size and the box in it to mirror (a warning when the box is empty)."""
    zr = r if frame.iso else 0
    times_ = (zr, r, r)
    # The BOSS checks cutout ranges against the level-0 frame at every level
    # (bosscore.request.set_cutoutargs), so a level is readable from the frame's
    # start on; below it the chunks keep the fill value.
    start = frame.start
    stop = _zyx(_halve(v, k, True) for v, k in zip(frame.stop, times_))
    lo = _zyx(max(_halve(v, k, False), a) for v, k, a in zip(frame.lo, times_, start))
    hi = _zyx(min(_halve(v, k, True), b) for v, k, b in zip(frame.hi, times_, stop))
    voxel = _zyx(v * 2**k for v, k in zip(frame.voxel, times_))
    lp = LevelPlan(r, start, stop, voxel, lo, hi)
    if lp.count(src.settings.chunk) == 0:
        warnings.append(
            f"channel {name} resolution {r}: no voxels to mirror "
            "(outside the bounding box, or below the frame's start at this level)"
        )
    return lp


def _data_digest(src: Experiment, exp: dict[str, Any], cf: dict[str, Any], raw: dict[str, Any]) -> str:
    """What the channel's image chunks' bytes depend on besides their URL (descriptions left out)."""
    s = src.settings
    return _digest(
        {
            "boss": s.url,
            "experiment": {k: v for k, v in exp.items() if k not in ("description", "metadata")},
            "coord_frame": {k: v for k, v in cf.items() if k != "description"},
            "channel": {k: v for k, v in raw.items() if k not in ("description", "metadata")},
            "chunk": list(s.chunk),
            "layout": 1,
        }
    )


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

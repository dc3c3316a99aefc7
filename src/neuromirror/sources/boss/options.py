"""What to mirror of an experiment, and how: the ``sync`` options of the BOSS and their parsing.

The same settings come from the command line and from a mirror definition's
``options``; :class:`BossSettings` is where both end up, checked once, before
the BOSS is asked anything.  :meth:`BossSettings.selection` is the part that
decides which files a dataset has, recorded in ``boss.json``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from neuromirror.errors import BadInput
from neuromirror.sources.boss.api import DEFAULT_URL, NAME_RE, boss_url_of, split_boss_url

log = logging.getLogger("neuromirror.boss")

#: chunk shape (z, y, x): the BOSS cuboid, so each chunk is one server-side read
DEFAULT_CHUNK = (16, 512, 512)
DEFAULT_JOBS = 4


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for v in value:
            out += _as_list(v)
        return out
    return [p.strip() for p in str(value).split(",") if p.strip()]


def _range(text: str, what: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) >= int(m.group(2)):
        raise BadInput(f"{what}: expected START:STOP with START < STOP, got {text!r}").at(what)
    return int(m.group(1)), int(m.group(2))


def parse_resolutions(value: Any) -> Optional[tuple[int, ...]]:
    """``"0,1"``, ``"0-2"``, ``[0, 2]``, ``"all"`` -> levels (None = all)."""
    items = _as_list(value)
    if not items or items == ["all"]:
        return None
    out: set[int] = set()
    for item in items:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise BadInput(f"resolutions: expected e.g. 0,1 or 0-2 or all, got {item!r}").at("resolutions")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise BadInput(f"resolutions: empty range {item!r}").at("resolutions")
        out.update(range(lo, hi + 1))
    return tuple(sorted(out))


def parse_bbox(value: Any) -> Optional[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]:
    """``"X0:X1,Y0:Y1,Z0:Z1"`` (level-0 voxels, stops exclusive) -> ((x0, x1), (y0, y1), (z0, z1))."""
    items = _as_list(value)
    if not items:
        return None
    if len(items) != 3:
        raise BadInput(f"bbox: expected X0:X1,Y0:Y1,Z0:Z1, got {value!r}").at("bbox")
    x, y, z = (_range(i, "bbox") for i in items)
    return x, y, z


def parse_time_range(value: Any) -> Optional[tuple[int, int]]:
    items = _as_list(value)
    if not items:
        return None
    if len(items) != 1:
        raise BadInput(f"time_range: expected T0:T1, got {value!r}").at("time_range")
    return _range(items[0], "time_range")


def parse_chunk(value: Any) -> tuple[int, int, int]:
    """``"16x512x512"`` (z x y x x) -> (16, 512, 512)."""
    if value is None or value == "":
        return DEFAULT_CHUNK
    if isinstance(value, (list, tuple)) and len(value) == 3:
        parts = [str(v) for v in value]
    else:
        parts = re.split(r"[x,]", str(value).strip().lower())
    try:
        z, y, x = (int(p) for p in parts)
    except ValueError:  # not numbers, or not three
        z = y = x = 0
    if min(z, y, x) < 1:
        raise BadInput(f"chunk: expected ZxYxX, e.g. 16x512x512, got {value!r}").at("chunk")
    return z, y, x


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class BossSettings:
    """What to mirror and how; from ``sync`` options or a mirror definition's ``options``."""

    url: str = DEFAULT_URL
    channels: Optional[tuple[str, ...]] = None  # None = all
    resolutions: Optional[tuple[int, ...]] = None  # None = every level
    bbox: Optional[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = None  # (x, y, z) level 0
    time_range: Optional[tuple[int, int]] = None
    hash: bool = True
    chunk: tuple[int, int, int] = DEFAULT_CHUNK
    jobs: int = DEFAULT_JOBS
    reread: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BossSettings:
        url = options.get("boss_url") or os.environ.get("NEUROMIRROR_BOSS_URL") or DEFAULT_URL
        protocol, host = split_boss_url(str(url))
        channels = tuple(_as_list(options.get("channels"))) or None
        for ch in channels or ():
            if not NAME_RE.match(ch):
                raise BadInput(f"channels: {ch!r} is not a BOSS channel name").at("channels")
        no_hash = options.get("no_hash")
        if no_hash is None:
            no_hash = _truthy(os.environ.get("NEUROMIRROR_BOSS_NO_HASH", ""))
        jobs = options.get("boss_jobs") or os.environ.get("NEUROMIRROR_BOSS_JOBS") or DEFAULT_JOBS
        try:
            jobs = max(1, int(jobs))
        except ValueError:
            raise BadInput(f"boss_jobs: expected a number, got {jobs!r}").at("boss_jobs") from None
        return cls(
            url=boss_url_of(protocol, host),
            channels=channels,
            resolutions=parse_resolutions(options.get("resolutions")),
            bbox=parse_bbox(options.get("bbox")),
            time_range=parse_time_range(options.get("time_range")),
            hash=not bool(no_hash),
            chunk=parse_chunk(options.get("chunk")),
            jobs=jobs,
            reread=bool(options.get("reread")),
        )

    @property
    def protocol(self) -> str:
        return split_boss_url(self.url)[0]

    @property
    def host(self) -> str:
        return split_boss_url(self.url)[1]

    def selection(self) -> dict[str, Any]:
        """The settings that decide which files the dataset has (recorded in boss.json)."""
        return {
            "channels": list(self.channels) if self.channels else "all",
            "resolutions": list(self.resolutions) if self.resolutions is not None else "all",
            "bbox": {"x": list(self.bbox[0]), "y": list(self.bbox[1]), "z": list(self.bbox[2])} if self.bbox else None,
            "time_range": list(self.time_range) if self.time_range else None,
            "chunk_zyx": list(self.chunk),
        }


# --------------------------------------------------------------------------- CLI plumbing


def add_options(group: Any) -> None:
    def add(*flags: str, **kw: Any) -> None:
        taken = getattr(group, "_option_string_actions", {})
        if any(f in taken for f in flags):
            log.debug("boss: option %s already defined", flags[0])
            return
        group.add_argument(*flags, **kw)

    add(
        "--boss-url",
        default=None,
        metavar="URL",
        help=f"BOSS: API URL (env NEUROMIRROR_BOSS_URL; default {DEFAULT_URL}); "
        "the token comes from INTERN_TOKEN or ~/.intern/intern.cfg",
    )
    add("--channels", default=None, metavar="NAMES", help="BOSS: channels to mirror, comma-separated (default: all)")
    add(
        "--resolutions",
        default=None,
        metavar="LEVELS",
        help="BOSS: resolution levels, e.g. 0,1 or 0-2 (default: all the experiment has)",
    )
    add(
        "--bbox",
        default=None,
        metavar="X0:X1,Y0:Y1,Z0:Z1",
        help="BOSS: mirror only chunks meeting this box (level-0 voxels, stops exclusive)",
    )
    add(
        "--time-range",
        default=None,
        metavar="T0:T1",
        help="BOSS: time samples T0..T1-1 as a t axis (default: the channel's default time sample, no t axis)",
    )
    add("--chunk", default=None, metavar="ZxYxX", help="BOSS: chunk shape (default 16x512x512, the BOSS cuboid)")
    add(
        "--no-hash",
        action="store_true",
        default=None,
        help="BOSS: do not read image chunks; record VURL keys checked on first retrieval "
        "(annotation channels are always read) (env NEUROMIRROR_BOSS_NO_HASH=1)",
    )
    add(
        "--reread",
        action="store_true",
        default=None,
        help="BOSS: re-read and hash image chunks too, even when their metadata did not change",
    )
    add(
        "--boss-jobs",
        type=int,
        default=None,
        metavar="N",
        help=f"BOSS: cutouts read at once (env NEUROMIRROR_BOSS_JOBS; default {DEFAULT_JOBS})",
    )

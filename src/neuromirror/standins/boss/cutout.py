"""The cutout route: a box of voxels at a resolution, checked like the BOSS and encoded as asked.

Why its own module: this is the route a mirror fetches thousands of times in
parallel.  Ranges are validated against the coordinate frame at every level (voxels
past a level's extent come back as zeros), the 520 MiB limit answers 413, and the
body is ``blosc`` (intern's choice), ``blosc.pack_array`` or a zlib'd ``.npy``; the
slicing and encoding run outside the lock.
"""

from __future__ import annotations

import io
import zlib
from typing import Mapping

import blosc
import numpy as np

from neuromirror.standins.boss.archive import BossArchive
from neuromirror.standins.boss.model import Channel, CoordFrame, Experiment
from neuromirror.standins.boss.protocol import (
    DATATYPE_NOT_SUPPORTED,
    INVALID_CUTOUT_ARGS,
    INVALID_URL,
    REQUEST_TOO_LARGE,
    RESOURCE_NOT_FOUND,
    TYPE_ERROR,
    ApiError,
    boss_error,
    require_read,
)
from neuromirror.standins.boss.volumes import region

#: settings.CUTOUT_MAX_SIZE of the real server (bytes, uncompressed).
CUTOUT_MAX_BYTES = 520 * 1048576

_CUTOUT_FORMATS = ("application/blosc", "application/blosc-python", "application/npygz")


class Cutouts(BossArchive):
    """Answers cutout requests from the archive's levels."""

    #: uncompressed size limit for one cutout; lower it to test the 413 path
    cutout_max_bytes: int = CUTOUT_MAX_BYTES

    def _cutout(
        self, p: Mapping[str, str], query: Mapping[str, str], authed: bool, accept: str | None
    ) -> tuple[int, bytes, str]:
        fmt = _negotiate(accept)
        with self._lock:
            exp, chan = self._channel_of(p)
            require_read(chan, authed)
            cf = self._coords[exp.coord_frame]
            res = int(p["resolution"])
            if not 0 <= res < exp.num_hierarchy_levels:
                raise boss_error(
                    400, TYPE_ERROR,
                    f"Invalid resolution {res}. The resolution has to be within 0 and {exp.num_hierarchy_levels}",
                )  # fmt: skip
            (x0, x1), (y0, y1), (z0, z1) = _box(p, cf, res)
            time_request = "t" in p
            t0, t1 = _time_range(p, exp, chan)
            ids = _filter_ids(query, chan)
            bits = chan.dtype.itemsize * 8
            nbytes = (x1 - x0) * (y1 - y0) * (z1 - z0) * (t1 - t0) * bits / 8
            if bits == 64:
                nbytes /= 4  # the BOSS lets (well-compressing) annotations be 4x larger
            if nbytes > self.cutout_max_bytes:
                raise boss_error(
                    413, REQUEST_TOO_LARGE, "Cutout request is over 500MB when uncompressed. Reduce cutout dimensions."
                )
            level = self._level(exp, chan, res)
        # Slicing and encoding outside the lock: level arrays are never mutated.
        data = region(level, (t0, t1), (z0, z1), (y0, y1), (x0, x1))
        if ids is not None:
            data = np.where(np.isin(data, ids), data, np.zeros((), dtype=data.dtype))
        if not time_request:
            data = data[0]
        return 200, _encode(np.ascontiguousarray(data), fmt, bits), fmt

    def _channel_of(self, p: Mapping[str, str]) -> tuple[Experiment, Channel]:
        """The experiment and channel the route names; 404 for the first of collection,
        experiment and channel that does not exist, as the BOSS says it (call with the lock held)."""
        coll = self._collections.get(p["collection"])
        if coll is None:
            raise boss_error(404, RESOURCE_NOT_FOUND, f"Collection {p['collection']} not found")
        exp = coll.experiments.get(p["experiment"])
        if exp is None:
            raise boss_error(404, RESOURCE_NOT_FOUND, f"Experiment {p['experiment']} not found")
        chan = exp.channels.get(p["channel"])
        if chan is None:
            raise boss_error(404, RESOURCE_NOT_FOUND, f"Channel {p['channel']} not found")
        return exp, chan


def _box(p: Mapping[str, str], cf: CoordFrame, res: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The route's x, y and z ranges, each (start, stop); 400 unless each is non-empty and
    inside the coordinate frame (whatever the resolution, as the BOSS checks it)."""
    (x0, x1), (y0, y1), (z0, z1) = (tuple(map(int, p[a].split(":"))) for a in "xyz")
    if (
        x0 >= x1 or y0 >= y1 or z0 >= z1
        or x0 < cf.x_start or x1 > cf.x_stop
        or y0 < cf.y_start or y1 > cf.y_stop
        or z0 < cf.z_start or z1 > cf.z_stop
    ):  # fmt: skip
        raise boss_error(400, INVALID_CUTOUT_ARGS, f"Incorrect cutout arguments {res}/{p['x']}/{p['y']}/{p['z']}")
    return (x0, x1), (y0, y1), (z0, z1)


def _time_range(p: Mapping[str, str], exp: Experiment, chan: Channel) -> tuple[int, int]:
    """The route's time range (start, stop); without one, the channel's default time sample."""
    if "t" not in p:
        t0 = chan.default_time_sample
        return t0, t0 + 1
    t0, t1 = map(int, p["t"].split(":"))
    if not 0 <= t0 < t1 <= exp.num_time_samples:
        raise boss_error(
            400, INVALID_URL,
            f"Invalid time range {p['t']}. Out of bounds with maximum time sample {exp.num_time_samples}",
        )  # fmt: skip
    return t0, t1


def _filter_ids(query: Mapping[str, str], chan: Channel) -> np.ndarray | None:
    """The ids of ``?filter=`` (an annotation channel's voxels of other ids come back as zeros), or None."""
    if not query.get("filter"):
        return None
    if chan.type != "annotation":
        raise boss_error(
            400, DATATYPE_NOT_SUPPORTED,
            f"The channel in request has type {chan.type}. Filter is only valid for annotation channels",
        )  # fmt: skip
    try:
        return np.array([int(i) for i in query["filter"].split(",")], dtype=np.uint64)
    except ValueError:
        raise boss_error(400, INVALID_URL, f"Invalid id in list of filter ids {query['filter']}") from None


def _encode(data: np.ndarray, fmt: str, bits: int) -> bytes:
    """The cutout's body in the negotiated encoding (``data`` C-contiguous)."""
    if fmt == "application/blosc":
        return blosc.compress(data.data.cast("B"), typesize=bits)
    if fmt == "application/blosc-python":
        return blosc.pack_array(data)
    buf = io.BytesIO()
    np.save(buf, data, allow_pickle=False)
    return zlib.compress(buf.getvalue())


def _negotiate(accept: str | None) -> str:
    """Pick the cutout encoding; like DRF, no Accept (or */*) means the first
    renderer, blosc.  Anything else we do not render gets 406."""
    if not accept:
        return "application/blosc"
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in _CUTOUT_FORMATS:
            return media
        if media in ("*/*", "application/*"):
            return "application/blosc"
    raise ApiError(406, {"detail": "Could not satisfy the request Accept header."})

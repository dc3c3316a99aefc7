"""Building and reading the BOSS's data: collections, frames, experiments, channels and their volumes.

Why a Python API: tests and the demo shape the archive they mirror (a public
experiment, an edited annotation, a channel not yet downsampled) without going
through a write API the mirror never uses.  Every check here is one the BOSS makes
(names, datatypes, shapes against the coordinate frame), and levels above 0 are
computed on first use and cached, read-only.
"""

from __future__ import annotations

import math
import threading
import zlib
from typing import Any, Iterable

import numpy as np

from neuromirror.standins.boss.model import (
    ALLOWED_DATATYPES,
    CUBOID_SIZE,
    DOWNSAMPLE_STATUSES,
    HIERARCHY_METHODS,
    TIME_UNITS,
    VOXEL_UNITS,
    Channel,
    Collection,
    CoordFrame,
    Experiment,
    check_name,
)
from neuromirror.standins.boss.volumes import downsample, read_only, synthetic_volume


class BossArchive:
    """The BOSS's resources and voxels in memory, all guarded by one lock.

    Served arrays are never modified in place (a change replaces them), so a request
    may slice one outside the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._collections: dict[str, Collection] = {}
        self._coords: dict[str, CoordFrame] = {}

    # -- building the data model

    def add_collection(self, name: str, description: str = "", *, public: bool = False) -> None:
        """Add an (empty) collection; ``public`` makes it readable without a token."""
        check_name("collection", name)
        with self._lock:
            if name in self._collections:
                raise ValueError(f"collection {name!r} exists")
            self._collections[name] = Collection(name, description, public)

    def add_coord_frame(
        self,
        name: str,
        x_stop: int,
        y_stop: int,
        z_stop: int,
        x_voxel_size: float = 1.0,
        y_voxel_size: float = 1.0,
        z_voxel_size: float = 1.0,
        voxel_unit: str = "nanometers",
        *,
        x_start: int = 0,
        y_start: int = 0,
        z_start: int = 0,
        description: str = "",
    ) -> None:
        """Add a coordinate frame; stops are exclusive, as in the BOSS."""
        check_name("coordinate frame", name)
        if voxel_unit not in VOXEL_UNITS:
            raise ValueError(f"voxel_unit must be one of {VOXEL_UNITS}")
        for axis, start, stop in (("x", x_start, x_stop), ("y", y_start, y_stop), ("z", z_start, z_stop)):
            if not 0 <= start < stop:
                raise ValueError(f"need 0 <= {axis}_start < {axis}_stop, got {start}, {stop}")
        with self._lock:
            if name in self._coords:
                raise ValueError(f"coordinate frame {name!r} exists")
            self._coords[name] = CoordFrame(
                name, description, int(x_start), int(x_stop), int(y_start), int(y_stop), int(z_start), int(z_stop),
                float(x_voxel_size), float(y_voxel_size), float(z_voxel_size), voxel_unit,
            )  # fmt: skip

    def add_experiment(
        self,
        collection: str,
        name: str,
        coord_frame: str,
        *,
        description: str = "",
        num_hierarchy_levels: int = 2,
        hierarchy_method: str = "anisotropic",
        num_time_samples: int = 1,
        time_step: int | None = None,
        time_step_unit: str = "",
        public: bool = False,
    ) -> None:
        """Add an experiment to a collection, on an existing coordinate frame."""
        check_name("experiment", name)
        if hierarchy_method not in HIERARCHY_METHODS:
            raise ValueError(f"hierarchy_method must be one of {HIERARCHY_METHODS}")
        if time_step_unit not in TIME_UNITS:
            raise ValueError(f"time_step_unit must be one of {TIME_UNITS}")
        if num_hierarchy_levels < 1 or num_time_samples < 1:
            raise ValueError("num_hierarchy_levels and num_time_samples must be >= 1")
        with self._lock:
            coll = self._collection(collection)
            if coord_frame not in self._coords:
                raise KeyError(f"no coordinate frame {coord_frame!r}")
            if name in coll.experiments:
                raise ValueError(f"experiment {collection}/{name} exists")
            coll.experiments[name] = Experiment(
                name, description, coord_frame, int(num_hierarchy_levels), hierarchy_method,
                int(num_time_samples), time_step, time_step_unit, public,
            )  # fmt: skip

    def add_channel(
        self,
        collection: str,
        experiment: str,
        name: str,
        *,
        type: str = "image",  # noqa: A002 - the BOSS field name
        datatype: str = "uint8",
        data: np.ndarray | None = None,
        description: str = "",
        default_time_sample: int = 0,
        sources: Iterable[str] = (),
        related: Iterable[str] = (),
        downsample_status: str = "DOWNSAMPLED",
        public: bool = False,
        seed: int | None = None,
    ) -> None:
        """Add a channel.

        ``data`` is the level-0 volume indexed by absolute coordinates: shape
        ``(z_stop, y_stop, x_stop)`` of the experiment's coordinate frame, or
        ``(num_time_samples, z_stop, y_stop, x_stop)``.  Without it, deterministic
        synthetic content is generated on first use (from ``seed``, by default
        derived from the channel's path).  A channel whose ``downsample_status``
        is not DOWNSAMPLED serves zeros above level 0, as an un-downsampled BOSS
        channel does.
        """
        check_name("channel", name)
        if type not in ALLOWED_DATATYPES:
            raise ValueError(f"type must be one of {tuple(ALLOWED_DATATYPES)}")
        if datatype not in ALLOWED_DATATYPES[type]:
            raise ValueError(f"a {type} channel must have datatype in {ALLOWED_DATATYPES[type]}")
        if downsample_status not in DOWNSAMPLE_STATUSES:
            raise ValueError(f"downsample_status must be one of {DOWNSAMPLE_STATUSES}")
        with self._lock:
            exp = self._experiment(collection, experiment)
            if name in exp.channels:
                raise ValueError(f"channel {collection}/{experiment}/{name} exists")
            if not 0 <= default_time_sample < exp.num_time_samples:
                raise ValueError("default_time_sample out of range")
            if seed is None:
                seed = zlib.crc32(f"{collection}/{experiment}/{name}".encode())
            chan = Channel(
                name, description, type, datatype, int(default_time_sample), list(sources), list(related),
                downsample_status, public, seed,
            )  # fmt: skip
            if data is not None:
                chan.levels[0] = self._validated(exp, chan, data)
            exp.channels[name] = chan

    def set_volume(self, collection: str, experiment: str, channel: str, data: np.ndarray) -> None:
        """Replace a channel's level-0 data (e.g. an upstream annotation edit).

        Lower levels are recomputed on next use.  Takes the same shapes as
        ``add_channel(data=...)``; the array is copied.
        """
        with self._lock:
            exp = self._experiment(collection, experiment)
            chan = self._channel(exp, collection, experiment, channel)
            chan.levels = {0: self._validated(exp, chan, data)}

    def set_metadata(self, resource: str, key: str, value: str) -> None:
        """Set a metadata key on ``"coll"``, ``"coll/exp"`` or ``"coll/exp/chan"``."""
        with self._lock:
            self._meta_store(resource.strip("/").split("/"))[key] = str(value)

    def volume(
        self, collection: str, experiment: str, channel: str, resolution: int = 0, *, time_sample: int | None = None
    ) -> np.ndarray:
        """The read-only (z, y, x) array served at ``resolution`` for one time
        sample (default: the channel's default_time_sample).  Index it with the
        same absolute coordinates as a cutout: ``volume(...)[z0:z1, y0:y1, x0:x1]``."""
        with self._lock:
            exp = self._experiment(collection, experiment)
            chan = self._channel(exp, collection, experiment, channel)
            if not 0 <= resolution < exp.num_hierarchy_levels:
                raise ValueError(f"resolution must be in [0, {exp.num_hierarchy_levels})")
            t = chan.default_time_sample if time_sample is None else time_sample
            return self._level(exp, chan, resolution)[t]

    def downsample_info(self, collection: str, experiment: str, channel: str) -> dict[str, Any]:
        """What ``GET /v1/downsample/{c}/{e}/{ch}`` returns."""
        with self._lock:
            exp = self._experiment(collection, experiment)
            chan = self._channel(exp, collection, experiment, channel)
            cf = self._coords[exp.coord_frame]
            voxel = [cf.x_voxel_size, cf.y_voxel_size, cf.z_voxel_size]
            extent = [cf.x_stop, cf.y_stop, cf.z_stop]
            info: dict[str, Any] = {
                "status": chan.downsample_status,
                "num_hierarchy_levels": exp.num_hierarchy_levels,
                "voxel_size": {},
                "extent": {},
                "cuboid_size": {},
            }
            for res in range(exp.num_hierarchy_levels):
                if res:
                    zf = 2 if exp.hierarchy_method == "isotropic" else 1
                    voxel = [voxel[0] * 2, voxel[1] * 2, voxel[2] * zf]
                    extent = [math.ceil(extent[0] / 2), math.ceil(extent[1] / 2), math.ceil(extent[2] / zf)]
                info["voxel_size"][str(res)] = list(voxel)
                info["extent"][str(res)] = list(extent)
                info["cuboid_size"][str(res)] = list(CUBOID_SIZE)
            return info

    # -- internals: lookups (call with the lock held)

    def _collection(self, name: str) -> Collection:
        try:
            return self._collections[name]
        except KeyError:
            raise KeyError(f"no collection {name!r}") from None

    def _experiment(self, collection: str, name: str) -> Experiment:
        try:
            return self._collection(collection).experiments[name]
        except KeyError:
            raise KeyError(f"no experiment {collection}/{name}") from None

    def _channel(self, exp: Experiment, collection: str, experiment: str, name: str) -> Channel:
        try:
            return exp.channels[name]
        except KeyError:
            raise KeyError(f"no channel {collection}/{experiment}/{name}") from None

    def _meta_store(self, parts: list[str]) -> dict[str, str]:
        if len(parts) == 1:
            return self._collection(parts[0]).metadata
        if len(parts) == 2:
            return self._experiment(*parts).metadata
        if len(parts) == 3:
            exp = self._experiment(parts[0], parts[1])
            return self._channel(exp, *parts).metadata
        raise ValueError("metadata resource must be coll, coll/exp or coll/exp/chan")

    def _validated(self, exp: Experiment, chan: Channel, data: np.ndarray) -> np.ndarray:
        cf = self._coords[exp.coord_frame]
        arr = np.asarray(data)
        if arr.ndim == 3:
            arr = arr[None]
        want = (exp.num_time_samples, cf.z_stop, cf.y_stop, cf.x_stop)
        if arr.shape != want:
            raise ValueError(f"data must have shape {want[1:]} or {want} (t, z, y, x), got {np.shape(data)}")
        if not np.can_cast(arr.dtype, chan.dtype, casting="safe"):
            raise ValueError(f"data of dtype {arr.dtype} does not fit channel datatype {chan.datatype}")
        return read_only(np.array(arr, dtype=chan.dtype, order="C", copy=True))

    def _level(self, exp: Experiment, chan: Channel, res: int) -> np.ndarray:
        """The (t, z, y, x) array of a level, computed and cached on first use."""
        arr = chan.levels.get(res)
        if arr is not None:
            return arr
        if res == 0:
            cf = self._coords[exp.coord_frame]
            shape = (exp.num_time_samples, cf.z_stop, cf.y_stop, cf.x_stop)
            arr = synthetic_volume(chan.type, chan.datatype, shape, chan.seed)
        else:
            prev = self._level(exp, chan, res - 1)
            factors = (2 if exp.hierarchy_method == "isotropic" else 1, 2, 2)
            if chan.downsample_status == "DOWNSAMPLED":
                arr = downsample(prev, factors, chan.type == "annotation")
            else:
                arr = np.zeros(
                    (prev.shape[0],) + tuple(-(-n // f) for n, f in zip(prev.shape[1:], factors)), dtype=chan.dtype
                )
        chan.levels[res] = arr = read_only(arr)
        return arr

"""The BOSS's resources as records: collections, coordinate frames, experiments, channels.

Why these names and limits: they are the BOSS's own (``bosscore`` models and
serializers), and a mirror that meets a name, a datatype or a hierarchy method the
BOSS would not allow is testing the stand-in, not itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The BOSS stores data in cuboids of 512 x 512 x 16 (x, y, z) at every level.
CUBOID_SIZE: tuple[int, int, int] = (512, 512, 16)

DTYPES: dict[str, type[np.unsignedinteger[Any]]] = {
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint64": np.uint64,
}
# The BOSS only accepts these type/datatype pairs.
ALLOWED_DATATYPES = {"image": ("uint8", "uint16"), "annotation": ("uint64",)}
HIERARCHY_METHODS = ("anisotropic", "isotropic")
VOXEL_UNITS = ("nanometers", "micrometers", "millimeters", "centimeters")
TIME_UNITS = ("", "nanoseconds", "microseconds", "milliseconds", "seconds")
DOWNSAMPLE_STATUSES = ("NOT_DOWNSAMPLED", "IN_PROGRESS", "DOWNSAMPLED", "FAILED", "QUEUED")
_NAME_RE = re.compile(r"^[\w-]+$")


def check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid {kind} name {name!r}: the BOSS allows letters, digits, '_' and '-'")


@dataclass
class CoordFrame:
    name: str
    description: str
    x_start: int
    x_stop: int
    y_start: int
    y_stop: int
    z_start: int
    z_stop: int
    x_voxel_size: float
    y_voxel_size: float
    z_voxel_size: float
    voxel_unit: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "x_start": self.x_start,
            "x_stop": self.x_stop,
            "y_start": self.y_start,
            "y_stop": self.y_stop,
            "z_start": self.z_start,
            "z_stop": self.z_stop,
            "x_voxel_size": self.x_voxel_size,
            "y_voxel_size": self.y_voxel_size,
            "z_voxel_size": self.z_voxel_size,
            "voxel_unit": self.voxel_unit,
        }


@dataclass
class Channel:
    name: str
    description: str
    type: str
    datatype: str
    default_time_sample: int
    sources: list[str]
    related: list[str]
    downsample_status: str
    public: bool
    seed: int
    # level -> read-only (t, z, y, x) array, filled on first use (level 0 from
    # synthetic content unless data was given)
    levels: dict[int, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(DTYPES[self.datatype])


@dataclass
class Experiment:
    name: str
    description: str
    coord_frame: str
    num_hierarchy_levels: int
    hierarchy_method: str
    num_time_samples: int
    time_step: int | None
    time_step_unit: str
    public: bool
    channels: dict[str, Channel] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Collection:
    name: str
    description: str
    public: bool
    experiments: dict[str, Experiment] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

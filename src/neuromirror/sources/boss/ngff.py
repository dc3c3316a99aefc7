"""OME-Zarr (NGFF 0.4) metadata: the small JSON files that make a chunk store an image.

An OME-Zarr image is a Zarr v2 group (``.zgroup``) whose ``.zattrs`` holds a
``multiscales`` list naming one array per resolution level, its axes (with
units) and the scale of each level; each level is a Zarr array described by
its ``.zarray``.  The chunk files themselves are written elsewhere (they stay
in git-annex); this module only builds the metadata, deterministically: the
same inputs give the same bytes, so a re-sync that changed nothing leaves
them unchanged in git.

Chunks are stored uncompressed (``compressor: null``), C order, with the
``/`` dimension separator NGFF recommends (``0/3/1/2`` is chunk z=3, y=1, x=2
of level 0), and full-size at the edges (padded with ``fill_value``), so a
chunk's bytes depend on the data alone.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional, Sequence

NGFF_VERSION = "0.4"

#: BOSS voxel_unit / time_step_unit -> UDUNITS-2 names NGFF 0.4 accepts
_UNITS = {
    "nanometers": "nanometer",
    "micrometers": "micrometer",
    "millimeters": "millimeter",
    "centimeters": "centimeter",
    "meters": "meter",
    "nanoseconds": "nanosecond",
    "microseconds": "microsecond",
    "milliseconds": "millisecond",
    "seconds": "second",
}

#: numpy dtype name -> Zarr v2 dtype string (little-endian, as the chunks are written)
_ZARR_DTYPES = {
    "uint8": "|u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "int8": "|i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "float32": "<f4",
    "float64": "<f8",
}


def unit(name: Optional[str]) -> Optional[str]:
    """``"nanometers"`` -> ``"nanometer"``; None for no unit; other names passed through."""
    if not name:
        return None
    return _UNITS.get(name.strip().lower(), name.strip().lower())


def zarr_dtype(dtype: str) -> str:
    try:
        return _ZARR_DTYPES[dtype]
    except KeyError:
        raise ValueError(f"no Zarr dtype for {dtype!r}") from None


def axes(space_unit: Optional[str], *, time: bool = False, time_unit: Optional[str] = None) -> list[dict[str, Any]]:
    """NGFF axes, ``t`` first when present, then ``z, y, x``."""
    out: list[dict[str, Any]] = []
    if time:
        t: dict[str, Any] = {"name": "t", "type": "time"}
        if unit(time_unit):
            t["unit"] = unit(time_unit)
        out.append(t)
    for name in "zyx":
        a: dict[str, Any] = {"name": name, "type": "space"}
        if unit(space_unit):
            a["unit"] = unit(space_unit)
        out.append(a)
    return out


def multiscales(
    name: str,
    axes_: list[dict[str, Any]],
    datasets: Iterable[tuple[str, Sequence[float]]],
    *,
    type_: Optional[str] = None,
    metadata: Optional[dict[str, Any]] = None,
) -> list[dict[str, Any]]:
    """The ``multiscales`` value: one entry, ``datasets`` as (path, scale) highest resolution first."""
    entry: dict[str, Any] = {
        "version": NGFF_VERSION,
        "name": name,
        "axes": axes_,
        "datasets": [
            {"path": path, "coordinateTransformations": [{"type": "scale", "scale": [float(s) for s in scale]}]}
            for path, scale in datasets
        ],
    }
    if type_:
        entry["type"] = type_
    if metadata:
        entry["metadata"] = metadata
    return [entry]


def zarray(shape: Sequence[int], chunks: Sequence[int], dtype: str, *, fill_value: int = 0) -> dict[str, Any]:
    """A Zarr v2 ``.zarray``: uncompressed, C order, ``/``-separated chunk keys."""
    if len(shape) != len(chunks):
        raise ValueError("shape and chunks must have the same length")
    return {
        "zarr_format": 2,
        "shape": [int(n) for n in shape],
        "chunks": [int(n) for n in chunks],
        "dtype": zarr_dtype(dtype),
        "compressor": None,
        "fill_value": fill_value,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


def zgroup() -> dict[str, Any]:
    return {"zarr_format": 2}


def dumps(obj: Any) -> bytes:
    """Stable, readable JSON bytes (the files live in git: diffs should be readable)."""
    return (json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode()

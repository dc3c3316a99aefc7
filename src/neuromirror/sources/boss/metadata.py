"""What the BOSS says about an experiment: its collection, experiment, coordinate frame and channels.

Read once per sync, before anything else, and recorded whole (in ``boss.json`` and
each channel's ``.zattrs``): it decides the plan (extents, levels, datatypes), and
the part of it a chunk's bytes depend on decides whether an image chunk must be
read again.  Volatile or derived fields (lists of children) are left out, so that
an unchanged experiment gives the same files.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from neuromirror.sources.boss.api import BossAuthError, BossError
from neuromirror.sources.boss.context import ExperimentReader

log = logging.getLogger("neuromirror.boss")

#: the resource fields recorded (volatile or derived fields such as lists of children are left out)
EXPERIMENT_FIELDS = (
    "name",
    "description",
    "collection",
    "coord_frame",
    "num_hierarchy_levels",
    "hierarchy_method",
    "num_time_samples",
    "time_step",
    "time_step_unit",
)
CHANNEL_FIELDS = (
    "name",
    "description",
    "type",
    "datatype",
    "base_resolution",
    "default_time_sample",
    "sources",
    "related",
    "downsample_status",
)
COORD_FIELDS = (
    "name",
    "description",
    "x_start",
    "x_stop",
    "y_start",
    "y_stop",
    "z_start",
    "z_stop",
    "x_voxel_size",
    "y_voxel_size",
    "z_voxel_size",
    "voxel_unit",
)


def _fields(raw: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {k: raw.get(k) for k in names}


def read_metadata(src: ExperimentReader) -> dict[str, Any]:
    """Collection, experiment, coordinate frame and the selected channels, with their key-value metadata."""
    from intern.resource.boss.resource import ChannelResource, CollectionResource, ExperimentResource

    rmt, c, e = src.remote, src.collection, src.experiment
    coll = src.call(f"collection {c}", lambda: rmt.get_project(CollectionResource(c)))
    exp = src.call(f"experiment {c}/{e}", lambda: rmt.get_experiment(c, e))
    exp_raw = dict(exp.raw or {})
    cf_name = exp_raw.get("coord_frame") or exp.coord_frame
    cf = src.call(f"coordinate frame {cf_name}", lambda: rmt.get_coordinate_frame(cf_name))
    cf_raw = dict(cf.raw or {}) or {k: getattr(cf, k, None) for k in COORD_FIELDS}
    names = src.call(f"channels of {c}/{e}", lambda: rmt.list_channels(c, e))
    names = _selected(src, names)
    channels: dict[str, dict[str, Any]] = {}
    for name in names:
        ch = src.call(f"channel {c}/{e}/{name}", lambda name=name: rmt.get_channel(name, c, e))
        raw = _fields(dict(ch.raw or {}), CHANNEL_FIELDS)
        raw["metadata"] = _kv(src, ChannelResource(name, c, e), f"channel {c}/{e}/{name}")
        channels[name] = raw
    return {
        "collection": {
            **_fields(dict(coll.raw or {}), ("name", "description")),
            "metadata": _kv(src, CollectionResource(c), f"collection {c}"),
        },
        "experiment": {
            **_fields(exp_raw, EXPERIMENT_FIELDS),
            "metadata": _kv(src, ExperimentResource(e, c), f"experiment {c}/{e}"),
        },
        "coord_frame": _fields(cf_raw, COORD_FIELDS),
        "channels": channels,
    }


def _selected(src: ExperimentReader, names: list[str]) -> list[str]:
    """The experiment's channels the settings select (all without a selection), in the archive's order;
    a selected channel the experiment lacks is an error naming what it has."""
    wanted = src.settings.channels
    if not wanted:
        return names
    missing = [n for n in wanted if n not in names]
    if missing:
        raise BossError(
            f"BOSS at {src.settings.url}: experiment {src.collection}/{src.experiment} has no channel "
            f"{', '.join(missing)} (it has: {', '.join(names) or 'none'})"
        )
    return [n for n in names if n in wanted]


def _kv(src: ExperimentReader, resource: Any, what: str) -> dict[str, str]:
    """The resource's key-value metadata (BOSS /v1/meta); {} when the server will not say."""
    try:
        keys = src.call(f"metadata of {what}", lambda: src.remote.list_metadata(resource))
        if not keys:
            return {}
        values = src.call(f"metadata of {what}", lambda: src.remote.get_metadata(resource, list(keys)))
        return {str(k): str(v) for k, v in sorted((values or {}).items())}
    except BossAuthError as exc:
        if "rejected the token" in str(exc):
            raise
        return {}
    except BossError as exc:
        log.info("%s: no key-value metadata for %s: %s", src.id, what, exc)
        return {}

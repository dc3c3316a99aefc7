"""The files a BOSS dataset keeps in git: ``boss.json`` and each channel's OME-Zarr metadata.

They carry what the BOSS said about the experiment and what was selected of it,
so that a clone can be read as OME-Zarr without the BOSS and a later sync can
tell by their checksums whether the metadata changed.  Their bytes are
deterministic (:mod:`.ngff`): an unchanged experiment leaves them unchanged in git.
"""

from __future__ import annotations

from typing import Any

from neuromirror.records import GitEntry
from neuromirror.sources.boss import ngff
from neuromirror.sources.boss.chunks import SCHEME, SCHEME_HTTP
from neuromirror.sources.boss.context import Experiment
from neuromirror.sources.boss.metadata import CHANNEL_FIELDS
from neuromirror.sources.boss.plan import ChannelPlan

METADATA_FILE = "boss.json"


def git_files(src: Experiment, info: dict[str, Any], plans: list[ChannelPlan]) -> list[GitEntry]:
    """``boss.json``, then each channel's ``.zgroup``, ``.zattrs`` and one ``.zarray`` per level."""
    s = src.settings
    exp, cf = info["experiment"], info["coord_frame"]
    doc = {
        "boss_url": s.url,
        "collection": info["collection"],
        "experiment": exp,
        "coord_frame": cf,
        "channels": {p.name: {**p.raw, "path": p.root, "resolutions": [lv.res for lv in p.levels]} for p in plans},
        "mirror": {
            **s.selection(),
            "layout": "OME-Zarr (NGFF 0.4): <channel>.ome.zarr/<level>/[<t>/]<z>/<y>/<x>, "
            "uncompressed C-order chunks padded with 0",
            "chunk_url": f"{SCHEME if s.protocol == 'https' else SCHEME_HTTP}://{s.host}/"
            "COLL/EXP/CHAN/RES/X0:X1/Y0:Y1/Z0:Z1/[T0:T1/]?chunk=Z,Y,X&dtype=DTYPE",
        },
    }
    out = [GitEntry(METADATA_FILE, ngff.dumps(doc))]
    for p in plans:
        out += _ngff_entries(src, p, info)
    return out


def _ngff_entries(src: Experiment, p: ChannelPlan, info: dict[str, Any]) -> list[GitEntry]:
    """A channel's OME-Zarr metadata files: its group, its multiscales (with where it came from) and
    each level's array."""
    exp, cf = info["experiment"], info["coord_frame"]
    timed = p.times is not None
    axes = ngff.axes(cf.get("voxel_unit"), time=timed, time_unit=exp.get("time_step_unit"))
    t_scale = [float(exp.get("time_step") or 1)] if timed else []
    datasets = [(str(lv.res), t_scale + list(lv.voxel)) for lv in p.levels]
    zattrs = {
        "multiscales": ngff.multiscales(
            p.name,
            axes,
            datasets,
            metadata={
                "description": p.raw.get("description") or "",
                "method": f"BOSS downsampling ({exp.get('hierarchy_method')})",
            },
        ),
        "boss": _provenance(src, p, exp, cf),
    }
    out = [
        GitEntry(f"{p.root}/.zgroup", ngff.dumps(ngff.zgroup())),
        GitEntry(f"{p.root}/.zattrs", ngff.dumps(zattrs)),
    ]
    n_t = int(exp.get("num_time_samples") or 1)
    for lv in p.levels:
        shape = ([n_t] if timed else []) + list(lv.stop)
        chunks = ([1] if timed else []) + list(src.settings.chunk)
        out.append(GitEntry(f"{p.root}/{lv.res}/.zarray", ngff.dumps(ngff.zarray(shape, chunks, p.datatype))))
    return out


def _provenance(src: Experiment, p: ChannelPlan, exp: dict[str, Any], cf: dict[str, Any]) -> dict[str, Any]:
    """Where a channel's mirror came from and how it was cut (the ``boss`` block of its .zattrs):
    enough to ask the archive for any chunk again."""
    s = src.settings
    timed = p.times is not None
    return {
        "api": s.url,
        "collection": src.collection,
        "experiment": src.experiment,
        "channel": p.name,
        "coord_frame": cf.get("name"),
        **{k: p.raw.get(k) for k in CHANNEL_FIELDS if k != "name"},
        "hierarchy_method": exp.get("hierarchy_method"),
        "num_hierarchy_levels": exp.get("num_hierarchy_levels"),
        "time_sample": None if timed else p.raw.get("default_time_sample"),
        "time_range": list(s.time_range) if s.time_range else None,
        "bbox": s.selection()["bbox"],
        "levels": {
            str(lv.res): {"start_zyx": list(lv.start), "stop_zyx": list(lv.stop), "voxel_size_zyx": list(lv.voxel)}
            for lv in p.levels
        },
        "chunk_zyx": list(s.chunk),
        "chunk_url": f"{SCHEME if s.protocol == 'https' else SCHEME_HTTP}://{s.host}/{src.collection}/"
        f"{src.experiment}/{p.name}/RES/X0:X1/Y0:Y1/Z0:Z1/"
        f"{'T0:T1/' if timed else ''}?chunk={','.join(map(str, s.chunk))}&dtype={p.datatype}",
    }

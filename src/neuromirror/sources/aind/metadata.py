"""What an AIND asset says about itself: its name (platform, subject, date, derived-from) and its
sidecars (data_description.json, subject.json), made into the fields the index keeps (``versions.meta``).

AIND names carry much of the metadata by convention, and the sidecar schemas changed
over the years (aind-data-schema): every generation is read, the name fills what the
sidecars leave out.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from neuromirror.sources.aind.listing import SIDECAR_MAX_BYTES, Obj
from neuromirror.sources.aind.options import S3Settings
from neuromirror.sources.aind.s3 import WORKERS, fetch_object

log = logging.getLogger("neuromirror.aind")

_DT = r"(?P<date>\d{4}-\d{2}-\d{2})_(?P<time>\d{2}-\d{2}-\d{2})"
_DERIVED_RE = re.compile(r"^(?P<source>.+_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})_(?P<label>.+?)_" + _DT + r"$")
_RAW_RE = re.compile(r"^(?P<platform>[A-Za-z0-9-]+)_(?P<subject>[A-Za-z0-9-]+)_" + _DT + r"$")
_RAW_NEW_RE = re.compile(r"^(?P<subject>[A-Za-z0-9-]+)_" + _DT + r"$")


def parse_asset_name(name: str) -> dict:
    """What an AIND asset name says: platform, subject, acquisition date/time, derived-from."""
    out: dict[str, Any] = {}
    m = _DERIVED_RE.match(name)
    if m:
        out["derived_from"] = m.group("source")
        out["process_label"] = m.group("label")
        raw = m.group("source")
        while True:  # a derived asset of a derived asset: walk down to the raw one
            m2 = _DERIVED_RE.match(raw)
            if not m2:
                break
            raw = m2.group("source")
        out["raw_asset"] = raw
        base = parse_asset_name(raw) if raw != name else {}
        for k in ("platform", "subject_id", "acquisition_date", "acquisition_time"):
            if k in base:
                out[k] = base[k]
        return out
    m = _RAW_RE.match(name) or _RAW_NEW_RE.match(name)
    if m:
        if "platform" in m.groupdict():
            out["platform"] = m.group("platform")
        out["subject_id"] = m.group("subject")
        out["acquisition_date"] = m.group("date")
        out["acquisition_time"] = m.group("time").replace("-", ":")
    return out


def _abbreviations(value: Any) -> list[str]:
    """Modality abbreviations from every schema generation (string, dict, list of either)."""
    out: list[str] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
        elif isinstance(item, dict):
            v = item.get("abbreviation") or item.get("name")
            if isinstance(v, str) and v.strip():
                out.append(v.strip())
    return out


def asset_meta(name: str, sidecars: dict[str, bytes]) -> dict:
    """The index fields of an asset: from data_description.json / subject.json, else from its name."""
    from_name = parse_asset_name(name)
    dd = _sidecar(name, sidecars, "data_description.json")
    subj = _sidecar(name, sidecars, "subject.json")
    meta: dict[str, Any] = {"name": name}
    if isinstance(dd.get("name"), str) and dd["name"] != name:
        meta["described_name"] = dd["name"]
    subject = dd.get("subject_id") or subj.get("subject_id") or from_name.get("subject_id")
    meta["subject_id"] = str(subject) if subject not in (None, "") else None
    mods = _modalities(dd, from_name)
    meta["modalities"] = mods
    meta["modality"] = ",".join(mods) or None
    meta["creation_time"] = _creation_time(dd, from_name)
    meta["data_level"] = _data_level(dd, from_name)
    project = dd.get("project_name") or dd.get("project")
    meta["project_name"] = str(project) if project else None
    inst = _institution(dd)
    if inst:
        meta["institution"] = inst
    acq = from_name.get("acquisition_date")
    if not acq and meta["creation_time"] and meta["data_level"] == "raw":
        acq = meta["creation_time"][:10]
    meta["acquisition_date"] = acq
    meta.update(_lineage(dd, from_name))
    return meta


def _sidecar(name: str, sidecars: dict[str, bytes], fname: str) -> dict:
    """A sidecar's JSON object, or {} when it is absent, not JSON (said in the log) or not an object:
    a bad sidecar leaves the name to say what it can."""
    raw = sidecars.get(fname)
    if not raw:
        return {}
    try:
        obj = json.loads(raw)
    except ValueError:
        log.warning("AIND %s: %s is not valid JSON", name, fname)
        return {}
    return obj if isinstance(obj, dict) else {}


def _modalities(dd: dict, from_name: dict) -> list[str]:
    """The asset's modalities, lower case: the description's (either schema generation's field), else
    the platform its name carries."""
    mods = _abbreviations(dd.get("modalities")) or _abbreviations(dd.get("modality"))
    if not mods and from_name.get("platform"):
        mods = [from_name["platform"]]
    return [m.lower() for m in mods]


def _creation_time(dd: dict, from_name: dict) -> Optional[str]:
    """When the asset was made: the description's time (joined to its date, as aind-data-schema < 0.10
    split them), else a raw asset's acquisition time from its name."""
    ctime = dd.get("creation_time")
    cdate = dd.get("creation_date")
    if isinstance(ctime, str) and "T" not in ctime and isinstance(cdate, str):
        ctime = f"{cdate}T{ctime}"  # aind-data-schema < 0.10 split date and time
    elif not ctime and isinstance(cdate, str):
        ctime = cdate
    if not ctime and from_name.get("acquisition_date") and "derived_from" not in from_name:
        ctime = f"{from_name['acquisition_date']}T{from_name['acquisition_time']}"
    return str(ctime) if ctime else None


def _data_level(dd: dict, from_name: dict) -> Any:
    """raw / derived: the description's word (its " data" suffix dropped), else what the name's shape says."""
    level = dd.get("data_level")
    if isinstance(level, str):
        level = level.lower().replace(" data", "").strip()
    return level or ("derived" if "derived_from" in from_name else ("raw" if from_name else None))


def _institution(dd: dict) -> Optional[str]:
    """The institution's abbreviation (or name) when the description gives one, as a string or an object."""
    inst = dd.get("institution")
    if isinstance(inst, dict):
        inst = inst.get("abbreviation") or inst.get("name")
    return inst if isinstance(inst, str) and inst else None


def _lineage(dd: dict, from_name: dict) -> dict[str, Any]:
    """source_data, derived_from and raw_asset, in this order: the name's lineage, else a single source
    the description names."""
    src = dd.get("source_data")
    source_data = [str(s) for s in src] if isinstance(src, list) else ([str(src)] if src else [])
    derived = from_name.get("derived_from")
    if not derived and len(source_data) == 1:
        derived = posixpath.basename(source_data[0].rstrip("/"))
    raw = from_name.get("raw_asset") or (derived if derived else None)
    return {"source_data": source_data, "derived_from": derived, "raw_asset": raw}


def read_sidecars(s: S3Settings, asset_prefix: str, objs: list[Obj]) -> dict[str, bytes]:
    """The bytes of the sidecars ``objs``, by their path in the asset, read side by side."""
    out: dict[str, bytes] = {}
    if not objs:
        return out
    with ThreadPoolExecutor(min(WORKERS, len(objs))) as pool:
        datas = pool.map(lambda o: fetch_object(s, o.key, o.version_id, o.etag, SIDECAR_MAX_BYTES), objs)
        for o, data in zip(objs, datas):
            out[o.key[len(asset_prefix) :]] = data
    return out

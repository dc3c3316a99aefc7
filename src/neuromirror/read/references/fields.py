"""The fields an NWB file's reference holds, in the index: a search across every mirrored NWB file, no streaming.

A search by brain region over one dandiset by streaming took ~15 minutes (lindi#85): every file opened
remotely for a few strings.  Its reference holds them inline (small datasets), so the fields are read once,
when the reference is made, into the index table ``nwb_fields (key, field, value)`` (one row per value; the
electrodes' ``location`` gives one per distinct region), and ``search --nwb-field FIELD=VALUE`` is one query
(:func:`search`): every file state whose key has the value, with the newest version holding it.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

#: the fields kept, and where NWB puts them
FIELDS: dict[str, str] = {
    "session_description": "session_description",
    "identifier": "identifier",
    "session_id": "general/session_id",
    "subject_id": "general/subject/subject_id",
    "species": "general/subject/species",
    "sex": "general/subject/sex",
    "age": "general/subject/age",
    "location": "general/extracellular_ephys/electrodes/location",
}
#: at most this many distinct values of one field per file (a table of 10^5 electrodes names few regions)
MAX_VALUES = 1000


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _values(h5: Any, where: str) -> list[str]:
    """The distinct text values of the dataset at ``where`` (a scalar: one), in order; none when absent."""
    try:
        node = h5.get(where)
    except Exception:  # noqa: BLE001 - a link lindi cannot follow: the field is not there
        return []
    if node is None or not hasattr(node, "shape"):
        return []
    raw = node[()]
    items = [raw] if node.shape == () else list(raw.ravel() if hasattr(raw, "ravel") else raw)
    return list(dict.fromkeys(_text(v) for v in items))[:MAX_VALUES]


def nwb_fields(h5: Any) -> dict[str, list[str]]:
    """The kept fields of an opened NWB file (h5py or lindi), field -> values (absent fields left out)."""
    out = {}
    for field, where in FIELDS.items():
        got = _values(h5, where)
        if got:
            out[field] = got
    return out


def _rows(key: str, fields: dict[str, list[str]]) -> Iterator[tuple[str, str, str]]:
    for field, values in fields.items():
        for v in values:
            yield key, field, v


def record_fields(conn: Any, key: str, fields: dict[str, list[str]]) -> None:
    """``key``'s fields in ``nwb_fields``, replacing what was there (one transaction)."""
    with conn:
        conn.execute("DELETE FROM nwb_fields WHERE key = ?", [key])
        conn.executemany("INSERT OR IGNORE INTO nwb_fields (key, field, value) VALUES (?, ?, ?)", _rows(key, fields))


def keys_with_fields(conn: Any) -> set[str]:
    return {r[0] for r in conn.execute("SELECT DISTINCT key FROM nwb_fields")}


_SEARCH = (
    "SELECT e.source AS source, v.label AS version, e.path AS path, e.key AS key, f.field AS field,"
    " f.value AS value{newest} FROM nwb_fields f JOIN entries e ON e.key = f.key"
    " JOIN version_files vf ON vf.entry_id = e.id JOIN versions v ON v.id = vf.version_id"
    " WHERE f.field = ? AND f.value = ? COLLATE NOCASE{source}{group} ORDER BY e.source, e.path, v.id"
)


def search(conn: Any, field: str, value: str, *, source: str = "", all_versions: bool = False) -> list[dict]:
    """Every file state whose ``field`` has ``value`` (case-insensitive), with the newest version holding it (or
    every version); ``source``: a source id glob."""
    sql = _SEARCH.format(
        newest="" if all_versions else ", MAX(v.id) AS newest",
        source=" AND e.source GLOB ?" if source else "",
        group="" if all_versions else " GROUP BY e.source, e.path, e.key",
    )
    params = [field, value] + ([source] if source else [])
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [{k: v for k, v in zip(names, row) if k != "newest"} for row in cur]


def search_all(conn: Any, pairs: list[tuple[str, str]], *, source: str = "", all_versions: bool = False) -> list[dict]:
    """The file states matching every ``(field, value)`` of ``pairs`` (each row also names the values matched)."""
    from neuromirror.index.schema import ensure_named

    ensure_named(conn)  # an index made before the table: no NWB file has fields yet
    if source and ":" not in source:
        source = f"{source}:*"  # an archive's name: all its sources
    found: Optional[dict[tuple, dict]] = None
    for field, value in pairs:
        rows = {
            (r["source"], r["path"], r["key"], r["version"]): r
            for r in search(conn, field, value, source=source, all_versions=all_versions)
        }
        if found is None:
            found = rows
            for r in found.values():
                r["fields"] = {r.pop("field"): r.pop("value")}
            continue
        for k in list(found):
            if k in rows:
                found[k]["fields"][field] = rows[k]["value"]
            else:
                del found[k]
    return list((found or {}).values())

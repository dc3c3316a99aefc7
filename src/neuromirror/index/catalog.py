"""The questions users ask of the index: ``neuromirror search``'s query, and the browsable catalog
(``neuromirror browse``): Datasette metadata and canned queries.

Datasette serves the SQLite index read-only (it opens a file it may not write with
``?mode=ro``: the service can keep writing the index, and the catalog sees each
committed run at once, WAL included, which ``immutable=1`` would not).  The canned
queries answer the questions users ask of a mirror; each also has a JSON form
(``.../QUERY.json?...&_shape=array``) for scripts.

While it runs, ``browse`` writes ``ROOT/.neuromirror/browse.json`` (pid, URL) so
that the service's status page links to it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from neuromirror.index.db import Index

BROWSE_FILE = "browse.json"
DEFAULT_PORT = 8643

#: name -> (title, description, SQL with :named parameters)
QUERIES: dict[str, tuple[str, str, str]] = {
    "files_by_sha256": (
        "Which datasets hold a file with this sha256?",
        "Every mirrored file state with this content sha256 (DANDI blobs, files in git, hashed AIND objects), "
        "with its dataset and the newest version holding it.",
        # SQLite's bare columns: label, commit and tag come from the row of MAX(v.id), the newest version
        """SELECT e.source, s.dataset, e.path, e.size, e.key, v.label AS newest_version, v."commit", v.tag,
  MAX(v.id) AS version_id, COUNT(*) AS versions_holding_it
FROM entries e
JOIN sources s ON s.id = e.source
JOIN version_files vf ON vf.entry_id = e.id
JOIN versions v ON v.id = vf.version_id
WHERE e.checksum = lower(trim(:sha256)) AND e.checksum_kind IN ('sha256', 'git')
GROUP BY e.id
ORDER BY e.source, e.path""",
    ),
    "source_versions": (
        "The versions of a source",
        "Each recorded version of a source (e.g. dandi:000027), newest first, with its DOI, commit and tag: "
        "what `neuromirror pin` and `get` take.",
        """SELECT label AS version, kind, date, doi, "commit", tag, files, bytes, synced_at
FROM versions
WHERE source = :source
ORDER BY id DESC""",
    ),
    "version_files": (
        "The files of a version",
        "The files of one version of a source (e.g. dandi:000027 and 0.230629.1955, or draft for the current "
        "state), with their keys, checksums and URLs.",
        """SELECT e.path, e.size, e.checksum_kind, e.checksum, e.key, e.urls
FROM version_files vf
JOIN entries e ON e.id = vf.entry_id
WHERE vf.version_id = (SELECT MAX(id) FROM versions WHERE source = :source AND label = :version)
ORDER BY e.path""",
    ),
    "failed_runs_last_week": (
        "Failed runs of the last week",
        "Every sync that failed in the last 7 days, newest first, with its error.",
        """SELECT id, source, started, ended, trigger, error
FROM runs
WHERE outcome = 'failed' AND started >= strftime('%Y-%m-%dT%H:%M:%S', 'now', '-7 days')
ORDER BY id DESC""",
    ),
}


def database_name(index_path: Path) -> str:
    """The name Datasette gives the index (its file name without the suffix): the first part of its URLs."""
    return Path(index_path).stem


def metadata(index_path: Path, *, with_queries: bool = True) -> dict:
    """Datasette metadata: titles, descriptions of the tables, and (Datasette < 1.0) the canned queries."""
    tables = {
        "sources": "One row per mirrored source: its id (dandi:000027), archive and dataset (path under the root).",
        "versions": "One row per recorded state of a source: label, kind, commit, tag, DOI, files and bytes.",
        "entries": "Distinct file states: path, annex key, size, checksum and URLs.",
        "version_files": "Which entries make each version (a view of filesets and fileset_spans).",
        "filesets": "Each distinct file list of a source, stored once; versions point at one.",
        "fileset_spans": "Entry entry_id is in every fileset of its source from since up to (not including) until.",
        "runs": "Every sync attempt: when, outcome, error, files added/removed/changed.",
        "pending": "Items seen in an archive but not mirrored yet, and why.",
        "cache": "Facts that never change (a blob's S3 versionId).",
    }
    return {
        "title": "neuromirror index",
        "description": "The mirror's SQLite index, read-only. See the canned queries below the tables.",
        "databases": {
            database_name(index_path): {
                "tables": {name: {"description": text} for name, text in tables.items()},
                **(queries(index_path)["databases"][database_name(index_path)] if with_queries else {}),
            }
        },
    }


def queries(index_path: Path) -> dict:
    """The canned queries as Datasette configuration (where Datasette 1.0 reads them; < 1.0: in the metadata)."""
    return {
        "databases": {
            database_name(index_path): {
                "queries": {
                    name: {"title": title, "description": desc, "sql": sql}
                    for name, (title, desc, sql) in QUERIES.items()
                }
            }
        }
    }


def datasette_major() -> int:
    from importlib.metadata import version

    head = version("datasette").split(".")[0]
    return int(head) if head.isdigit() else 0


def datasette_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("datasette") is not None


def datasette_command(index_path: Path, workdir: Path, host: str, port: int) -> list[str]:
    """``datasette serve`` for the index: read-only (a mutable file, opened ``mode=ro``), no writes configured.

    Writes the metadata (and, for Datasette 1.0, the configuration holding the
    canned queries) into ``workdir``.
    """
    import sys

    modern = datasette_major() >= 1
    meta = workdir / "metadata.json"
    meta.write_text(json.dumps(metadata(index_path, with_queries=not modern), indent=2))
    cmd = [
        sys.executable,
        "-m",
        "datasette",
        "serve",
        str(index_path),
        "--metadata",
        str(meta),
        "--host",
        host,
        "--port",
        str(port),
        "--setting",
        "sql_time_limit_ms",
        "10000",
        "--setting",
        "max_returned_rows",
        "5000",
    ]
    if modern:
        config = workdir / "datasette.json"
        config.write_text(json.dumps(queries(index_path), indent=2))
        cmd += ["--config", str(config)]
    return cmd


def state_path(root: Path) -> Path:
    return Path(root) / ".neuromirror" / BROWSE_FILE


def write_state(root: Path, url: str, index_path: Path) -> None:
    path = state_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"pid": os.getpid(), "url": url, "index": str(index_path)}, indent=2))
    os.replace(tmp, path)


def remove_state(root: Path) -> None:
    path = state_path(root)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running_catalog(root: Path) -> Optional[dict[str, Any]]:
    """The catalog of this root's index while ``neuromirror browse`` runs (``{pid, url, index}``), else None."""
    from neuromirror.util.processes import pid_alive

    try:
        data = json.loads(state_path(root).read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or not isinstance(data.get("url"), str) or not pid_alive(pid):
        return None
    return data


# -- search: the index's files and versions by content, key, path or an asset's metadata -------------


@dataclass(frozen=True)
class SearchFilters:
    """What ``neuromirror search`` was asked, checked (hex digests lower-case, dates YYYY[-MM[-DD]])."""

    sha256: Optional[str] = None
    md5: Optional[str] = None
    key: Optional[str] = None
    path: Optional[str] = None  # glob
    subject: Optional[str] = None
    modality: Optional[str] = None
    date_from: Optional[str] = None
    date_to: Optional[str] = None
    project: Optional[str] = None  # glob
    data_level: Optional[str] = None
    derived_from: Optional[str] = None
    source: Optional[str] = None  # glob, or an archive's name
    all_versions: bool = False
    limit: Optional[int] = None

    @property
    def of_files(self) -> bool:
        """A question about files (a digest, a key or a path), not only about versions' metadata."""
        return any((self.sha256, self.md5, self.key, self.path))


#: the date an asset is searched by: acquisition date (from the AIND name), else creation time
_DATE_SQL = (
    "coalesce(json_extract(v.meta, '$.acquisition_date'), substr(json_extract(v.meta, '$.creation_time'), 1, 10))"
)


#: a version's metadata filter: (the SearchFilters field, its SQL condition, its parameters from the value asked)
_VERSION_FILTERS: tuple[tuple[str, str, Callable[[str], list[Any]]], ...] = (
    ("source", "v.source GLOB ?", lambda v: [v if ":" in v else f"{v}:*"]),
    ("subject", "json_extract(v.meta, '$.subject_id') = ?", lambda v: [v]),
    (
        "modality",
        "(EXISTS (SELECT 1 FROM json_each(v.meta, '$.modalities') m WHERE lower(m.value) = lower(?))"
        " OR lower(json_extract(v.meta, '$.modality')) = lower(?))",
        lambda v: [v, v],
    ),
    ("date_from", f"substr({_DATE_SQL}, 1, ?) >= ?", lambda v: [len(v), v]),
    ("date_to", f"substr({_DATE_SQL}, 1, ?) <= ?", lambda v: [len(v), v]),
    ("project", "lower(json_extract(v.meta, '$.project_name')) GLOB lower(?)", lambda v: [v]),
    ("data_level", "lower(json_extract(v.meta, '$.data_level')) = lower(?)", lambda v: [v]),
    (
        "derived_from",
        "(json_extract(v.meta, '$.derived_from') = ? OR json_extract(v.meta, '$.raw_asset') = ?"
        " OR EXISTS (SELECT 1 FROM json_each(v.meta, '$.source_data') sd WHERE sd.value = ?))",
        lambda v: [v] * 3,
    ),
)

#: the columns of a file found; each of the two file queries fills the placeholders its own way
_FILE_COLUMNS = (
    "e.source AS source, v.label AS version, {path} AS path, {key} AS key, {size} AS size,"
    " {kind} AS checksum_kind, {checksum} AS checksum, {urls} AS urls, {remote_id} AS remote_id,"
    ' v."commit" AS "commit", v.tag AS tag, v.kind AS kind, v.id AS version_id, s.dataset AS dataset,'
    " {store} AS store"
)
#: the placeholders of _FILE_COLUMNS, in the order _FILE_SOURCES fills them
_PLACES = ("path", "key", "size", "kind", "checksum", "urls", "remote_id", "store")
#: the dataset's own files, then those inside its stores (index.zarr_catalog): (columns, joins, grouping)
_FILE_SOURCES = (
    (
        dict(zip(_PLACES, ("e.path", "e.key", "e.size", "e.checksum_kind", "e.checksum", "e.urls", "e.remote_id", "NULL"))),
        "",
        "e.id",
    ),
    (
        dict(zip(_PLACES, ("(e.path || '/' || sf.path)", "sf.key", "sf.size", "sf.checksum_kind", "sf.checksum", "'[]'", "NULL", "e.path"))),
        " JOIN zarr_files sf ON sf.\"commit\" = e.checksum AND e.checksum_kind = 'subdataset'",
        "e.id, sf.path",
    ),
)  # fmt: skip


def build_query(args: SearchFilters) -> tuple[str, str, list[Any]]:
    """(mode, SQL, parameters) for the filters given; mode is "files" or "versions"."""
    where: list[str] = []
    params: list[Any] = []
    for name, sql, values in _VERSION_FILTERS:
        value = getattr(args, name)
        if value:
            where.append(sql)
            params += values(value)
    if args.of_files:
        return "files", *_files_query(args, where, params)
    if not args.all_versions:
        where.append("v.id = (SELECT MAX(id) FROM versions WHERE source = v.source)")
    cond = " AND ".join(where) if where else "1"
    sql = (
        'SELECT v.source AS source, v.label AS version, v.kind AS kind, v."commit" AS "commit", v.tag AS tag,'
        " v.date AS date, v.files AS files, v.bytes AS bytes, v.meta AS meta, s.dataset AS dataset"
        " FROM versions v JOIN sources s ON s.id = v.source"
        f" WHERE {cond} ORDER BY v.source, v.id"
    )
    return "versions", sql, params


def _files_query(args: SearchFilters, where: list[str], params: list[Any]) -> tuple[str, list[Any]]:
    """The files asked for (a digest, a key, a path) among the versions ``where`` keeps: the dataset's
    own files and its stores' in one UNION, each file once at its newest version unless all are asked."""
    parts, all_params = [], []
    for c, joins, group in _FILE_SOURCES:
        conds, cparams = _file_conditions(c, args.sha256, args.md5, args.key, args.path)
        cond = " AND ".join(where + conds)
        parts.append(
            f"SELECT {_FILE_COLUMNS.format(**c)}{', MAX(v.id) AS newest' if not args.all_versions else ''}"
            f" FROM entries e{joins} JOIN version_files vf ON vf.entry_id = e.id"
            " JOIN versions v ON v.id = vf.version_id JOIN sources s ON s.id = e.source"
            f" WHERE {cond}" + (f" GROUP BY {group}" if not args.all_versions else "")
        )
        all_params += params + cparams
    return " UNION ALL ".join(parts) + " ORDER BY source, path, version_id", all_params


def _file_conditions(
    c: dict[str, str], sha: Optional[str], md5: Optional[str], key: Optional[str], path: Optional[str]
) -> tuple[list[str], list[Any]]:
    """The file filters over the columns ``c`` names (a dataset's own files, or a store's)."""
    given = (
        (sha, f"{c['checksum']} = ? AND {c['kind']} IN ('sha256', 'git')"),
        (md5, f"{c['checksum']} = ? AND {c['kind']} = 'md5'"),
        (key, f"{c['key']} = ?"),
        (path, f"{c['path']} GLOB ?"),
    )
    conds = [cond for value, cond in given if value]
    params: list[Any] = [value for value, _ in given if value]
    return conds, params


def search(index: Index, args: SearchFilters) -> tuple[str, list[dict]]:
    """``(mode, rows)``: what the filters match, each row as ``search --json`` prints it (the Zarrs' own files
    catalogued first by the caller: :func:`neuromirror.index.zarr_catalog.catalog_zarrs`)."""
    mode, sql, params = build_query(args)
    if args.limit is not None:
        sql += " LIMIT ?"
        params = [*params, args.limit]
    latest = {r[0]: r[1] for r in index.db.conn.execute("SELECT source, MAX(id) FROM versions GROUP BY source")}
    rows: list[dict] = []
    # a file state found both as a file of an older version and inside a newer version's store
    # (a mirror converted to store datasets): shown once, with the newest version (rows come by version)
    at: dict[tuple, int] = {}
    for r in index.db.query(sql, params):
        r = dict(r)
        r.pop("newest", None)
        vid = r.pop("version_id", None)
        if mode == "files":
            r["urls"] = json.loads(r["urls"] or "[]")
            r["in_latest"] = vid == latest.get(r["source"])
            r["zarr"] = r["store"]  # the nested Zarr store a file lies in; "store", its name before issue 41, kept
            state = (r["source"], r["path"], r["key"], r["checksum"])
            if not args.all_versions and state in at:
                rows[at[state]] = r
                continue
            at[state] = len(rows)
        else:
            r["meta"] = json.loads(r["meta"] or "{}")
        rows.append(r)
    return mode, rows

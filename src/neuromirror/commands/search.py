"""``neuromirror search``: which mirrored datasets hold a file or an asset, from the index alone.

Two kinds of questions, one command:

* files — ``--sha256``, ``--md5``, ``--key``, ``--path GLOB``: every file state
  recorded in the index that matches, across all sources (DANDI blobs carry their
  sha256, files in git the sha256 of their bytes, AIND objects an MD5 from a
  single-part ETag or a sha256 when hashed).  By default each file state is shown
  with the newest version that holds it; ``--all-versions`` lists every version.
* assets/versions — ``--subject``, ``--modality``, ``--date-from/--date-to``,
  ``--project``, ``--data-level``, ``--derived-from``: the fields a source recorded
  in ``versions.meta`` (AIND's data_description.json), for each source's latest
  version (or all versions).  Combined with file filters they narrow the files.

``--source GLOB`` (``aind:ecephys_*``, ``dandi:*`` or just ``aind``) narrows both.
Exit status 0 when something matched, 1 when nothing did (like grep).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

from neuromirror.commands.common import UserError, add_json, print_json, print_table, require_mirror

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
#: the date an asset is searched by: acquisition date (from the AIND name), else creation time
_DATE_SQL = (
    "coalesce(json_extract(v.meta, '$.acquisition_date'), substr(json_extract(v.meta, '$.creation_time'), 1, 10))"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="find mirrored files (by sha256, md5, key, path) or assets (by subject, modality, date) in the index",
        description="Search the index. File filters: --sha256 --md5 --key --path. Asset filters (AIND metadata): "
        "--subject --modality --date-from --date-to --project --data-level --derived-from. "
        "Exit 1 when nothing matches.",
    )
    f = p.add_argument_group("file filters")
    f.add_argument("--sha256", metavar="HEX", help="content sha256 (DANDI blobs, hashed AIND objects, files in git)")
    f.add_argument("--md5", metavar="HEX", help="content md5 (AIND objects with a single-part ETag)")
    f.add_argument("--key", help="exact git-annex key")
    f.add_argument("--path", metavar="GLOB", help="path in the dataset, glob ('*' also matches '/'), e.g. '*.nwb'")
    a = p.add_argument_group("asset filters (version metadata, e.g. AIND data_description.json)")
    a.add_argument("--subject", help="subject id")
    a.add_argument("--modality", help="modality abbreviation, e.g. ecephys, SPIM (case-insensitive)")
    a.add_argument(
        "--date-from", metavar="DATE", help="acquisition (else creation) date >= DATE (YYYY, YYYY-MM or YYYY-MM-DD)"
    )
    a.add_argument("--date-to", metavar="DATE", help="acquisition (else creation) date <= DATE (inclusive, same forms)")
    a.add_argument("--project", metavar="GLOB", help="project name (glob, case-insensitive)")
    a.add_argument("--data-level", help="raw or derived")
    a.add_argument("--derived-from", metavar="ASSET", help="derived assets of ASSET (direct parent or raw asset)")
    p.add_argument("--source", metavar="GLOB", help="source id glob: aind:ecephys_*, dandi:000027, or an archive name")
    p.add_argument("--all-versions", action="store_true", help="every version that matches, not only the newest")
    p.add_argument("--limit", type=int, default=None, help="at most N results")
    add_json(p)
    p.set_defaults(func=run)


def _hex(value: Optional[str], length: int, what: str) -> Optional[str]:
    if value is None:
        return None
    v = value.strip().lower()
    if len(v) != length or not _HEX.match(v):
        raise UserError(f"--{what} wants {length} hex digits, got {value!r}")
    return v


def _date(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return None
    if not _DATE.match(value):
        raise UserError(f"--{what} wants YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}")
    return value


def build_query(args: argparse.Namespace) -> tuple[str, str, list[Any]]:
    """(mode, SQL, parameters) for the filters given; mode is "files" or "versions"."""
    sha = _hex(args.sha256, 64, "sha256")
    md5 = _hex(args.md5, 32, "md5")
    date_from = _date(args.date_from, "date-from")
    date_to = _date(args.date_to, "date-to")
    where: list[str] = []
    params: list[Any] = []

    if args.source:
        pattern = args.source if ":" in args.source else f"{args.source}:*"
        where.append("v.source GLOB ?")
        params.append(pattern)
    if args.subject:
        where.append("json_extract(v.meta, '$.subject_id') = ?")
        params.append(args.subject)
    if args.modality:
        where.append(
            "(EXISTS (SELECT 1 FROM json_each(v.meta, '$.modalities') m WHERE lower(m.value) = lower(?))"
            " OR lower(json_extract(v.meta, '$.modality')) = lower(?))"
        )
        params += [args.modality, args.modality]
    if date_from:
        where.append(f"substr({_DATE_SQL}, 1, ?) >= ?")
        params += [len(date_from), date_from]
    if date_to:
        where.append(f"substr({_DATE_SQL}, 1, ?) <= ?")
        params += [len(date_to), date_to]
    if args.project:
        where.append("lower(json_extract(v.meta, '$.project_name')) GLOB lower(?)")
        params.append(args.project)
    if args.data_level:
        where.append("lower(json_extract(v.meta, '$.data_level')) = lower(?)")
        params.append(args.data_level)
    if args.derived_from:
        where.append(
            "(json_extract(v.meta, '$.derived_from') = ? OR json_extract(v.meta, '$.raw_asset') = ?"
            " OR EXISTS (SELECT 1 FROM json_each(v.meta, '$.source_data') sd WHERE sd.value = ?))"
        )
        params += [args.derived_from] * 3

    files = [c for c in (sha, md5, args.key, args.path) if c]
    if files:
        cols = (
            "e.source AS source, v.label AS version, {path} AS path, {key} AS key, {size} AS size,"
            " {kind} AS checksum_kind, {checksum} AS checksum, {urls} AS urls, {remote_id} AS remote_id,"
            ' v."commit" AS "commit", v.tag AS tag, v.kind AS kind, v.id AS version_id, s.dataset AS dataset,'
            " {store} AS store"
        )
        # the dataset's own files, then those inside its stores (index.zarr_catalog)
        own = dict(
            path="e.path",
            key="e.key",
            size="e.size",
            kind="e.checksum_kind",
            checksum="e.checksum",
            urls="e.urls",
            remote_id="e.remote_id",
            store="NULL",
        )
        nested = dict(
            path="(e.path || '/' || sf.path)", key="sf.key", size="sf.size", kind="sf.checksum_kind",
            checksum="sf.checksum", urls="'[]'", remote_id="NULL", store="e.path",
        )  # fmt: skip
        parts, all_params = [], []
        for c, joins, group in (
            (own, "", "e.id"),
            (
                nested,
                " JOIN zarr_files sf ON sf.\"commit\" = e.checksum AND e.checksum_kind = 'subdataset'",
                "e.id, sf.path",
            ),
        ):
            conds, cparams = _file_conditions(c, sha, md5, args.key, args.path)
            cond = " AND ".join(where + conds)
            parts.append(
                f"SELECT {cols.format(**c)}{', MAX(v.id) AS newest' if not args.all_versions else ''}"
                f" FROM entries e{joins} JOIN version_files vf ON vf.entry_id = e.id"
                " JOIN versions v ON v.id = vf.version_id JOIN sources s ON s.id = e.source"
                f" WHERE {cond}" + (f" GROUP BY {group}" if not args.all_versions else "")
            )
            all_params += params + cparams
        sql = " UNION ALL ".join(parts) + " ORDER BY source, path, version_id"
        return "files", sql, all_params

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


def search(index: Any, args: argparse.Namespace, root: Optional[Path] = None) -> tuple[str, list[dict]]:
    if root is not None and any((args.sha256, args.md5, args.key, args.path)):
        from neuromirror.dataset.version import iter_version
        from neuromirror.index.zarr_catalog import catalog_zarrs

        catalog_zarrs(index, root, iter_version)  # the Zarrs' files, catalogued once per new Zarr commit
    else:
        from neuromirror.index.zarr_catalog import ensure_schema

        ensure_schema(index)
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


def run(args: argparse.Namespace) -> int:
    mirror = require_mirror(args)
    try:
        mode, rows = search(mirror.index, args, mirror.root)
    finally:
        mirror.close()
    if args.json:
        print_json(rows)
    elif mode == "files":
        print_table(rows, ["source", "version", "path", "key"])
    else:
        table = []
        for r in rows:
            m = r["meta"]
            table.append(
                {
                    "source": r["source"],
                    "version": r["version"],
                    "subject": m.get("subject_id"),
                    "modality": m.get("modality"),
                    "date": m.get("acquisition_date") or (m.get("creation_time") or "")[:10] or None,
                    "level": m.get("data_level"),
                    "derived_from": m.get("derived_from"),
                    "files": r["files"],
                }
            )
        print_table(table, ["source", "version", "subject", "modality", "date", "level", "derived_from", "files"])
    if not rows:
        if not args.json:
            print("neuromirror: no match", file=sys.stderr)
        return 1
    return 0

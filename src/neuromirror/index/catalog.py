"""The browsable catalog of the index (``neuromirror browse``): Datasette metadata and canned queries.

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
from pathlib import Path
from typing import Any, Optional

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

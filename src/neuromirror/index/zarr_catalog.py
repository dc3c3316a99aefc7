"""The files inside Zarrs (AIND's nested ``*.zarr/`` subdatasets, DANDI's Zarr assets), for ``search`` and the backup record.

A version's rows in the index name a Zarr once, as a subdataset pinned at a commit;
its millions of objects live in the Zarr's own dataset.  ``search --path/--md5/--key``
must still find them, so their files are catalogued here, once per Zarr commit
(``zarr_files``, keyed by the commit: a Zarr unchanged across versions is read once),
read from the Zarr's dataset — the dataset is the truth, this table a view of it that
is filled on demand (:func:`catalog_zarrs`, called by ``search``; :func:`catalog_states`, by the backup record,
whose counts of a Zarr's objects are its rows) and can be emptied (its tables are
made when the index is opened: :data:`.schema.ZARR_CATALOG`).

Which subdatasets are such Zarrs: the commits the sync's nested Zarr run made (the index cache
``store-commit``); DANDI Zarr assets (thousands of small subdatasets) are not read for ``search``, only for
the backup record of the sources it is asked about.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from neuromirror.records import SUBDATASET, VersionFile
from neuromirror.util import gitutil
from neuromirror.util.text import one_line

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: the cache namespace the nested Zarr run records its commits in (the name from before issues 41 and 51: it stays) (engine.zarr.nested.NESTED_COMMIT_CACHE)
NESTED_COMMIT_CACHE = "store-commit"
_BATCH = 5000
log = logging.getLogger("neuromirror.index")


def ensure_schema(index: Index) -> None:
    """Nothing to do: the tables are made when the index is opened (:data:`.schema.ZARR_CATALOG`)."""


#: a version's files read from its dataset (:func:`neuromirror.annex.tree.iter_version`: this layer is below it)
ReadVersion = Callable[[Path, str], Iterable[VersionFile]]


def catalog_zarrs(index: Index, root: Path, read_version: ReadVersion) -> int:
    """Catalogue every nested Zarr commit a version pins and the table lacks; the number of files added."""
    todo = index.db.execute(
        "SELECT DISTINCT s.dataset, e.path, e.checksum FROM entries e JOIN sources s ON s.id = e.source"
        " WHERE e.checksum_kind = ? AND e.checksum IN (SELECT value FROM cache WHERE namespace = ?)"
        ' AND e.checksum NOT IN (SELECT "commit" FROM zarr_catalog)',
        [SUBDATASET, NESTED_COMMIT_CACHE],
    ).fetchall()
    return _catalog(index, root, read_version, todo)


def catalog_states(index: Index, root: Path, read_version: ReadVersion, sources: Iterable[str]) -> int:
    """Catalogue every Zarr state (a subdataset commit: a DANDI Zarr asset's, a nested Zarr's) the recorded
    states of ``sources`` pin and the table lacks, where its dataset is on this host: what the backup record
    counts a Zarr's objects by (``status --backup``, ``/backup/``); the number of files added."""
    todo: list[tuple] = []
    for sid in sources:
        todo += index.db.execute(
            "SELECT DISTINCT s.dataset, e.path, e.checksum FROM entries e JOIN sources s ON s.id = e.source"
            ' WHERE e.source = ? AND e.checksum_kind = ? AND e.checksum NOT IN (SELECT "commit" FROM zarr_catalog)',
            [sid, SUBDATASET],
        ).fetchall()
    return _catalog(index, root, read_version, todo)


def _catalog(index: Index, root: Path, read_version: ReadVersion, todo: list[tuple]) -> int:
    """The files of each (dataset, path, commit) of ``todo`` into the table, once per commit."""
    added = 0
    done: set[str] = set()
    for dataset, path, commit in todo:
        repo = root / dataset / path
        if commit in done or not (repo / ".git").exists():
            continue  # not on this host (yet): catalogued once it is
        done.add(commit)
        try:
            added += _one(index, repo, commit, read_version)
        except sqlite3.Error:
            raise  # the index's (read-only, locked): the caller's to say
        except Exception as exc:  # noqa: BLE001 - a state its dataset cannot give here (not fetched): left uncounted
            log.warning("%s: Zarr state %s not catalogued: %s", repo, commit[:12], one_line(exc, 200))
    return added


def _one(index: Index, repo: Path, commit: str, read_version: ReadVersion) -> int:
    """One Zarr state's files into the table, in one transaction: how many (a commit its dataset lacks here is
    refused, never catalogued as an empty Zarr)."""
    if gitutil.run(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode != 0:
        raise LookupError(f"its dataset here has no commit {commit}")
    rows: list[tuple] = []
    n = 0
    with index.transaction():
        for f in read_version(repo, commit):
            if f.is_subdataset:
                continue
            rows.append((commit, f.path, f.key, f.size, f.checksum_kind, f.checksum))
            n += 1
            if len(rows) >= _BATCH:
                _insert(index, rows)
                rows = []
        _insert(index, rows)
        index.db.execute('INSERT OR REPLACE INTO zarr_catalog ("commit", files) VALUES (?, ?)', [commit, n])
    return n


def _insert(index: Index, rows: list[tuple]) -> None:
    if rows:
        index.db.conn.executemany(
            'INSERT OR IGNORE INTO zarr_files ("commit", path, key, size, checksum_kind, checksum)'
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

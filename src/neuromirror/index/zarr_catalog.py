"""The files inside nested Zarr stores (AIND's ``*.zarr/`` subdatasets), for ``search``.

A version's rows in the index name a Zarr store once, as a subdataset pinned at a commit;
its millions of objects live in the store's own dataset.  ``search --path/--md5/--key``
must still find them, so their files are catalogued here, once per store commit
(``zarr_files``, keyed by the commit: a store unchanged across versions is read once),
read from the store's dataset — the dataset is the truth, this table a view of it that
is filled on demand (:func:`catalog_zarrs`, called by ``search``) and can be dropped.

Which subdatasets are Zarr stores: the commits the sync's nested Zarr run made (the index cache
``store-commit``); DANDI Zarr assets (thousands of small subdatasets) are not read here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from neuromirror.annex.keys import key_from_symlink, parse_key
from neuromirror.records import GIT, MD5, SHA256, SUBDATASET, VERIFY_ON_GET
from neuromirror.util import gitutil

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: the cache namespace the nested Zarr run records its commits in (the name from before issue 41) (engine.zarr.nested.NESTED_COMMIT_CACHE)
NESTED_COMMIT_CACHE = "store-commit"
_KIND = {"MD5E": MD5, "MD5": MD5, "SHA256E": SHA256, "SHA256": SHA256}
_BATCH = 5000

SCHEMA = (
    # the catalogue's names before issue 41 ("store" is the lab's store only): a cache, filled again on demand
    "DROP TABLE IF EXISTS store_files",
    "DROP TABLE IF EXISTS store_catalog",
    'CREATE TABLE IF NOT EXISTS zarr_files ("commit" TEXT NOT NULL, path TEXT NOT NULL, key TEXT, size INTEGER,'
    ' checksum_kind TEXT, checksum TEXT, PRIMARY KEY ("commit", path)) WITHOUT ROWID',
    "CREATE INDEX IF NOT EXISTS idx_zarr_files_checksum ON zarr_files(checksum)",
    "CREATE INDEX IF NOT EXISTS idx_zarr_files_key ON zarr_files(key)",
    'CREATE TABLE IF NOT EXISTS zarr_catalog ("commit" TEXT PRIMARY KEY, files INTEGER)',
)


def ensure_schema(index: Index) -> None:
    for sql in SCHEMA:
        index.db.execute(sql)


def catalog_zarrs(index: Index, root: Path) -> int:
    """Catalogue every store commit a version pins and the table lacks; the number of files added."""
    ensure_schema(index)
    todo = index.db.execute(
        "SELECT DISTINCT s.dataset, e.path, e.checksum FROM entries e JOIN sources s ON s.id = e.source"
        " WHERE e.checksum_kind = ? AND e.checksum IN (SELECT value FROM cache WHERE namespace = ?)"
        ' AND e.checksum NOT IN (SELECT "commit" FROM zarr_catalog)',
        [SUBDATASET, NESTED_COMMIT_CACHE],
    ).fetchall()
    added = 0
    done: set[str] = set()
    for dataset, path, commit in todo:
        repo = root / dataset / path
        if commit in done or not (repo / ".git").exists():
            continue  # not on this host (yet): catalogued once it is
        done.add(commit)
        rows: list[tuple] = []
        n = 0
        with index.transaction():
            for row in _files(repo, commit):
                rows.append((commit, *row))
                n += 1
                if len(rows) >= _BATCH:
                    _insert(index, rows)
                    rows = []
            _insert(index, rows)
            index.db.execute('INSERT OR REPLACE INTO zarr_catalog ("commit", files) VALUES (?, ?)', [commit, n])
        added += n
    return added


def _insert(index: Index, rows: list[tuple]) -> None:
    if rows:
        index.db.conn.executemany(
            'INSERT OR IGNORE INTO zarr_files ("commit", path, key, size, checksum_kind, checksum)'
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def _files(repo: Path, commit: str) -> Iterator[tuple]:
    """(path, key, size, checksum kind, checksum) of the store's files at ``commit``, streamed."""
    listed = (
        (mode, sha, path)
        for mode, typ, sha, path in gitutil.ls_tree(repo, commit)
        if typ == "blob" and not path.startswith(".datalad/") and path not in (".gitattributes", ".gitmodules")
    )
    with gitutil.CatFile(repo) as cat:
        batch: list[tuple[str, str, str]] = []
        for item in listed:
            batch.append(item)
            if len(batch) >= _BATCH:
                yield from _resolve(cat, batch)
                batch = []
        yield from _resolve(cat, batch)


def _resolve(cat: gitutil.CatFile, batch: list[tuple[str, str, str]]) -> Iterator[tuple]:
    """One batch's rows: an annexed file by its key (read from the symlink), a file in git by its sha256."""
    for (mode, _, path), data in zip(batch, cat.get_many(sha for _, sha, _ in batch)):
        data = data or b""
        if mode == "120000":
            key = key_from_symlink(data.decode("utf-8", "surrogateescape"))
            if key:
                info = parse_key(key)
                yield path, key, info["size"], _KIND.get(info["backend"], VERIFY_ON_GET), info["checksum"]
                continue
        yield path, None, len(data), GIT, hashlib.sha256(data).hexdigest()

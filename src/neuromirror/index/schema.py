"""The index's schema: created whole on a new file, migrated in place on an older one.

Schema 1 stored a row per file per version (``version_files``); schema 2 stores each
distinct file list once, shared with the states around it (:mod:`.filesets`), and keeps
``version_files`` as a view for SQL readers.  A new file gets ``auto_vacuum=INCREMENTAL``
(set by :class:`~.db.Index` before anything is written) so that :mod:`.retention` can give
pages back to the disk without rewriting the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuromirror.errors import UserError
from neuromirror.index import filesets
from neuromirror.index.connection import transaction
from neuromirror.index.migrate import migrate, schema_version

SCHEMA_VERSION = 2


def ensure_schema(db: Any, path: Path) -> None:
    """Create the schema on a new index; migrate an older one (:mod:`.migrate`); refuse a newer one."""
    conn = db.conn
    if "sources" not in db.table_names():
        create_schema(db)
        return
    have = schema_version(conn)
    if have > SCHEMA_VERSION:
        raise UserError(
            f"{path}: index schema {have} is newer than this neuromirror knows ({SCHEMA_VERSION}); upgrade neuromirror"
        )
    if have < SCHEMA_VERSION:
        migrate(conn, path, have, SCHEMA_VERSION)


def create_schema(db: Any) -> None:
    """Every table of the current schema, in one transaction."""
    with transaction(db.conn):
        db["meta"].create({"name": str, "value": str}, pk="name", if_not_exists=True)
        db["meta"].upsert({"name": "schema_version", "value": str(SCHEMA_VERSION)}, pk="name")
        db["sources"].create(
            {"id": str, "archive": str, "remote_id": str, "dataset": str, "created": str, "meta": str},
            pk="id",
            if_not_exists=True,
        )
        db["versions"].create(
            {
                "id": int,
                "source": str,
                "label": str,
                "kind": str,
                "commit": str,
                "tag": str,
                "synced_at": str,
                "remote_modified": str,
                "date": str,
                "files": int,
                "bytes": int,
                "doi": str,
                "citation": str,
                "meta": str,
                "fileset": int,
            },
            pk="id",
            foreign_keys=[("source", "sources", "id")],
            if_not_exists=True,
        )
        db["versions"].create_index(["source", "id"], if_not_exists=True)
        db["versions"].create_index(["source", "label"], if_not_exists=True)
        db["versions"].create_index(["source", "commit", "label"], unique=True, if_not_exists=True)
        db["entries"].create(
            {
                "id": int,
                "source": str,
                "path": str,
                "key": str,
                "size": int,
                "checksum_kind": str,
                "checksum": str,
                "urls": str,
                "remote_id": str,
            },
            pk="id",
            if_not_exists=True,
        )
        db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS idx_entries_identity ON entries"
            "(source, path, ifnull(key, ''), ifnull(checksum, ''), urls)"
        )
        db["entries"].create_index(["checksum"], if_not_exists=True)
        db["entries"].create_index(["key"], if_not_exists=True)
        db["runs"].create(
            {
                "id": int,
                "source": str,
                "started": str,
                "ended": str,
                "outcome": str,
                "error": str,
                "added": int,
                "removed": int,
                "changed": int,
                "refused": int,
                "pending": int,
                "report": str,
                "trigger": str,
            },
            pk="id",
            if_not_exists=True,
        )
        db["runs"].create_index(["source", "id"], if_not_exists=True)
        db["cache"].create({"namespace": str, "key": str, "value": str}, pk=("namespace", "key"), if_not_exists=True)
        db["pending"].create(
            {"source": str, "path": str, "reason": str, "remote_id": str, "seen": str},
            pk=("source", "path"),
            if_not_exists=True,
        )

        filesets.create(db.conn)

"""The index's schema has one home: every table is made in ``src/neuromirror/index/`` when the index is
opened, and docs/architecture.md's table of the index's tables names each of them (issue 51).

Why: tables made at the top of the functions that use them, in modules of other layers, were missing
from the docs and from any index those functions had not yet run on.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from neuromirror.index import store_checks
from neuromirror.index.db import Index
from neuromirror.index.schema import NAMED

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "src" / "neuromirror"
DOC = REPO / "docs" / "architecture.md"
#: a statement that makes a table (or an index or view) of its own
DDL = re.compile(r"\bcreate\s+(?:unique\s+)?(?:temp\s+|temporary\s+|virtual\s+)?(?:table|index|view)\b", re.I)
#: packages outside index/ that may create tables of unrelated databases of their own; bench/ and standins/
#: create none (checked: no match there), so nothing is excused
OWN_DATABASES: tuple[str, ...] = ()
#: modules that make a database file of their own, not the index: ``sync --inventory``'s pins (issue 75), a
#: SQLite file beside the index loaded from the archive's S3 Inventory and read by the sync's processes while it
#: runs (the sources layer, below index/, reads it); made again from the inventory whenever it is lost
OWN_DATABASE_MODULES = {"sources/inventory_pins.py"}


def documented_tables() -> set[str]:
    """The first column of the table under docs/architecture.md's heading "The index"."""
    text = DOC.read_text()
    section = text[text.index("## The index (SQLite") :]
    section = section[: section.index("\n## ", 1)]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| table ")]
    return {ln.split("|")[1].strip() for ln in rows if not set(ln.split("|")[1].strip()) <= {"-", " "}}


def index_tables(conn: sqlite3.Connection) -> set[str]:
    """The tables and views of the file, SQLite's own (sqlite_*) and FTS shadow tables left out (there are none)."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")
    return {r[0] for r in rows if not re.search(r"_(data|idx|content|docsize|config)$", r[0])}


def test_docs_name_every_table_of_a_fresh_index(tmp_path: Path) -> None:
    index = Index(tmp_path / ".neuromirror" / "index.sqlite")  # as every command opens it
    try:
        tables = index_tables(index.db.conn)
    finally:
        index.close()
    documented = documented_tables()
    assert documented == tables, (
        f"docs/architecture.md's index tables differ from a fresh index's: only in the docs {sorted(documented - tables)},"
        f" only in the index {sorted(tables - documented)}"
    )


def test_no_table_is_made_outside_index() -> None:
    found = sorted(
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in PKG.rglob("*.py")
        if "index" != path.relative_to(PKG).parts[0]
        and path.relative_to(PKG).parts[0] not in OWN_DATABASES
        and path.relative_to(PKG).as_posix() not in OWN_DATABASE_MODULES
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if DDL.search(line)
    )
    assert not found, "tables made outside src/neuromirror/index/ (make them in index/schema.py):\n" + "\n".join(found)


def _older(path: Path) -> None:
    """The index file as a neuromirror before issue 51 left it: the schema's own tables; store_checks made
    (and written) by a keep; no other table of the named migrations, no ``migrations``."""
    Index(path).close()
    conn = sqlite3.connect(path)
    with conn:
        for table in ("zarr_files", "zarr_catalog", "lost_urls", "drills", "migrations"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("INSERT INTO store_checks (store, key, checked) VALUES ('uuid-1', 'MD5E-s1--x', 1.0)")
    conn.close()


def test_an_index_of_an_older_release_gets_the_tables_it_lacks_on_open(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    _older(path)
    index = Index(path)
    try:
        assert index_tables(index.db.conn) == documented_tables()
        assert store_checks.checks_of(index, ["MD5E-s1--x"]) == {"MD5E-s1--x": {"uuid-1": 1.0}}  # its rows kept
        applied = {r[0] for r in index.db.conn.execute("SELECT name FROM migrations")}
        assert applied == {name for name, _ in NAMED}
    finally:
        index.close()


def test_a_reader_of_an_older_index_makes_the_lost_urls_table(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    _older(path)
    conn = store_checks.open_losses(path)
    try:
        store_checks.record_lost(conn, "https://example.org/gone", "MD5E-s1--x", "HTTP 404")
        assert store_checks.lost_status(conn, "https://example.org/gone") == "HTTP 404"
    finally:
        conn.close()


def test_a_read_only_older_index_opens_and_knows_nothing(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    _older(path)
    index = Index(path, readonly=True)
    try:
        assert store_checks.lags(index) == [] and store_checks.drill_rows(index) == []
    finally:
        index.close()

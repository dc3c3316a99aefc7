"""Readers are registered things (issue 77): nothing outside the reader's package chooses by it.

``get --format`` and the index-time readers (LINDI references) are looked up in :mod:`neuromirror.readers`;
the sync (the API's and the service's) iterates the registered index-time readers instead of naming one.
The house rule here: outside ``read/references/`` and the registry, no module imports the references
package or a module named for lindi, nor names lindi in its code (messages, help texts, docstrings and
comments may say what is made). The sites left are listed, and the list may only shrink; ``urls --references``'
listing is the reader's ``list_files`` hook, what ``keep`` puts beside a key and ``prune`` drops with it its ``kept``
hook, ``Mirror.open_hdf5`` and ``Mirror.reference`` its ``opens`` and ``made_for`` hooks.
"""

from __future__ import annotations

import ast
from pathlib import Path

from neuromirror import readers

SRC = Path(__file__).resolve().parents[1] / "src" / "neuromirror"

#: module -> what it still does; an entry that no longer holds must be taken out (the list only shrinks)
ALLOWED = {
    "store/lindi.py": "",  # where a store keeps a reference (named for it; nothing in it chooses by it)
}


def _hits(tree: ast.Module) -> set[str]:
    hits = set()
    for n in ast.walk(tree):
        modules = [n.module or ""] if isinstance(n, ast.ImportFrom) else []
        modules += [a.name for a in n.names] if isinstance(n, ast.Import) else []
        if isinstance(n, ast.ImportFrom) and n.module == "neuromirror.read":
            modules += [f"neuromirror.read.{a.name}" for a in n.names]
        if any(m.startswith("neuromirror.read.references") or "lindi" in m for m in modules):
            hits.add("imports")
        name = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else ""
        name = getattr(n, "name", name) if isinstance(n, (ast.FunctionDef, ast.ClassDef)) else name
        if "lindi" in name.lower():
            hits.add("names lindi")
    return hits


def test_nothing_outside_the_reader_chooses_by_it() -> None:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(("read/references/", "bench/", "demo/")) or rel == "readers.py":
            continue  # the reader itself, the registry; the bench and the demo measure and show it by name
        hits = _hits(ast.parse(path.read_text()))
        if hits or rel in ALLOWED:
            found[rel] = ", ".join(sorted(hits))
    assert found == ALLOWED, "modules outside read/references/ that import or name it (ALLOWED may only shrink)"


def test_the_references_reader_is_registered_with_its_hooks() -> None:
    reader = readers.index_time_readers()["references"]
    assert reader.asks({"references": "nwb"}) and not reader.asks({}) and reader.after_sync is not None
    kept = reader.kept  # keep puts it beside the key, prune drops it with the key: through the hook, not by name
    assert kept is not None and kept.wants("MD5E-s9--0123.nwb") and not kept.wants("MD5E-s9--0123.zarr")
    assert kept.name("MD5E-s9--0123.nwb").endswith(".lindi.json")
    assert readers.opening() is reader and reader.opens is not None and reader.made_for is not None  # open_hdf5's
    assert "tiff" in readers.formats() and readers.formats()["tiff"].needs_region

"""docs/architecture.md's file map ("Where things are") against the tree under src/neuromirror.

Every module is named in the map, and every name the map gives as a file or folder exists. A
package's modules are named either as entries of their own (``name.py`` at the start of a line,
one level deeper than the package) or in the package's text (``util/``: ``gitutil (...), spool
(...)``; ``standins/dandi/``: ``model, state, render``; ``*_routes`` as a pattern).
``commands/`` and ``bench/scenarios/`` are one entry each for a group (the map says "one module per
command" and "one module per scenario"): the modules inside them are not checked one by one.
src/neuromirror's own modules (cli.py, api.py...) must be entries.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "neuromirror"
DOC = ROOT / "docs" / "architecture.md"
#: packages the map names as a group, whose modules it need not list: a command each (docs/cli.md), a scenario each
GROUPS = {"commands", "bench/scenarios"}
_ENTRY = re.compile(r"^( *)(\S+\.py|\S+/)(?:\s+(.*))?$")
_WORD = re.compile(r"[A-Za-z_*][A-Za-z0-9_*]*")
_FILE_IN_TEXT = re.compile(r"(?<![\w./])([a-z_][a-z0-9_]*\.py)\b")  # not one inside a path (tests/x.py)


@dataclass
class Package:
    path: str  # "" for src/neuromirror itself, else "util", "sources/dandi"...
    text: list[str] = field(default_factory=list)  # the package's own description, continuation lines included
    notes: list[str] = field(default_factory=list)  # its entries' descriptions
    entries: set[str] = field(default_factory=set)  # "name.py" / "name/" named as entries one level down


def read_map() -> dict[str, Package]:
    """The file map's packages, each with its entries and its text."""
    doc = DOC.read_text()
    block = doc.split("## Where things are", 1)[1].split("```", 2)[1]
    lines = block.splitlines()
    assert lines[1].strip() == "src/neuromirror/", lines[:2]
    packages = {"": Package("")}
    stack: list[tuple[int, str]] = [(0, "")]  # (indent of the entries, package path)
    last: Package = packages[""]
    last_text: list[str] = []  # where a continuation line goes: an entry's description, or a package's
    for line in lines[2:]:
        m = _ENTRY.match(line)
        if m is None or len(m.group(1)) % 2:  # a continuation line: more of the text above
            (last_text or last.text).append(line)
            continue
        indent, name, text = len(m.group(1)), m.group(2), m.group(3) or ""
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        packages[parent].entries.add(name)
        if name.endswith("/"):
            path = f"{parent}/{name[:-1]}".strip("/")
            last = packages[path] = Package(path, [text])
            last_text = last.text
            stack.append((indent, path))
        else:
            last = packages[parent]
            last.notes.append(text)
            last_text = last.notes
    return packages


def tree() -> dict[str, set[str]]:
    """Per package under src/neuromirror: its modules and subpackages ("name.py", "name/")."""
    out: dict[str, set[str]] = {}
    for init in sorted(SRC.rglob("__init__.py")):
        pkg = init.parent
        rel = pkg.relative_to(SRC).as_posix()
        rel = "" if rel == "." else rel
        names = {p.name for p in pkg.glob("*.py") if p.name != "__init__.py"}
        names |= {p.name + "/" for p in pkg.iterdir() if (p / "__init__.py").exists()}
        out[rel] = names
    return out


def _named(pkg: Package, name: str) -> bool:
    if name in pkg.entries or not pkg.path:  # src/neuromirror's own modules are entries of their own
        return name in pkg.entries
    stem = name.rstrip("/").removesuffix(".py")
    words = {w for line in pkg.text for w in _WORD.findall(line)}
    if any(fnmatch.fnmatchcase(stem, w) for w in words):  # in the package's own text: "gitutil (...), spool (...)"
        return True
    # in a sibling's description, as a file or a list item: "faults.py ...", "network_faults (the plan), ..."
    return any(re.search(rf"(?<![\w./]){re.escape(stem)}(\.py\b| \(|,)", line) for line in pkg.notes)


def test_every_module_is_in_the_map() -> None:
    packages = read_map()
    missing = []
    for rel, names in tree().items():
        if any(rel == g or rel.startswith(g + "/") for g in GROUPS):
            continue
        pkg = packages.get(rel)
        if pkg is None:
            missing.append(f"{rel}/ (the package)")
            continue
        missing += [f"{rel}/{name}".lstrip("/") for name in sorted(names) if not _named(pkg, name)]
    assert not missing, f"docs/architecture.md's file map does not name: {', '.join(missing)}"


def test_every_name_in_the_map_exists() -> None:
    absent = []
    for rel, pkg in read_map().items():
        where = SRC / rel
        for name in sorted(pkg.entries):
            target = where / name.rstrip("/")
            if not (target.is_file() if name.endswith(".py") else (target / "__init__.py").exists()):
                absent.append(f"{rel}/{name}".lstrip("/"))
        for line in pkg.text:  # files named in a package's text ("faults.py deterministic fault injection")
            absent += [f"{rel}/{f}".lstrip("/") for f in _FILE_IN_TEXT.findall(line) if not (where / f).exists()]
    assert not absent, f"docs/architecture.md's file map names what is not in src/neuromirror: {', '.join(absent)}"


def test_the_map_reader_sees_entries_and_text() -> None:
    packages = read_map()
    assert "cli.py" in packages[""].entries and "util/" in packages[""].entries
    assert "keys.py" in packages["annex"].entries and "dandi/" in packages["sources"].entries
    assert _named(packages["util"], "gitutil.py") and not _named(packages["util"], "nothing_such.py")

"""Archives as registered things (issue 77, T1): each archive's package registers one ``Archive`` record, and
nothing outside ``sources/<name>/``, the stand-ins, bench, demo and the registry names an archive to choose
what to do.

The house rule reads the source: a string that *is* an archive's name (``archive == "boss"``, a table keyed
``{"dandi": ...}``, ``.get("boss")``) or begins a source id of one (``startswith("dandi:")``,
``f"dandi:{id}"``) or its special remote's URLs (``neuromirror+boss``) is a site; docstrings, ``help=`` texts and the messages of a ``raise`` are not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import toy_archive
from neuromirror import archives
from neuromirror.spec import SpecError, parse_spec

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "neuromirror"

#: where naming an archive is the point: its own package, the stand-ins, bench, demo, the registry
EXEMPT = ("sources/*/", "standins/", "bench/", "demo/", "archives.py")

#: the sites left (module: how many), each to move into its archive's record; this table may only shrink
LEFT: dict[str, int] = {}


def _exempt(rel: str) -> bool:
    parts = rel.split("/")
    if parts[0] == "sources" and len(parts) > 2:
        return True
    return any(rel == e or (e.endswith("/") and rel.startswith(e)) for e in EXEMPT if "*" not in e)


def _skipped(tree: ast.AST) -> set[int]:
    """ids of the nodes a site never is: docstrings, ``help=`` texts, what a ``raise`` says."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            skip.add(id(body[0].value))
        if isinstance(node, ast.keyword) and node.arg == "help":
            skip.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.Raise):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _names_an_archive(text: str, names: tuple[str, ...]) -> bool:
    """An archive's name, a source id's ``NAME:``, or its special remote's URL scheme (``neuromirror+NAME``)."""
    return text in names or any(text.startswith((f"{n}:", f"neuromirror+{n}")) for n in names)


def sites_in(path: Path, names: tuple[str, ...]) -> int:
    """How many strings in ``path`` name an archive to choose by it (its name, or a source id's ``NAME:``)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _skipped(tree)
    found = 0
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            head = node.values[0] if node.values else None
            text = head.value if isinstance(head, ast.Constant) else ""
            found += isinstance(text, str) and _names_an_archive(text, names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += _names_an_archive(node.value, names)
    return found


def archive_sites(root: Path = PKG, names: tuple[str, ...] = ()) -> dict[str, int]:
    names = names or archives.names()
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if not _exempt(rel) and (n := sites_in(path, names)):
            found[rel] = n
    return found


def test_no_module_outside_the_archives_packages_names_an_archive() -> None:
    """T1: what is left is the table above, exactly (a site gone: take it off the table, which only shrinks)."""
    found = archive_sites()
    assert found == LEFT, (
        "modules naming an archive outside sources/<name>/ (register what they need in the archive's record, "
        f"neuromirror.archives.Archive): {found}, expected {LEFT}"
    )


def test_the_checker_sees_a_branch_a_table_and_a_source_id(tmp_path: Path) -> None:
    planted = tmp_path / "neuromirror"
    (planted / "sources" / "toy").mkdir(parents=True)
    (planted / "read").mkdir()
    (planted / "read" / "x.py").write_text(
        '"""Reads dandi:000027."""\n'
        'T = {"dandi": 1}\n'
        "def f(a, s):\n"
        '    """For "boss"."""\n'
        '    if a == "boss" or s.startswith("aind:"):\n'
        '        raise ValueError(f"dandi:{s} is wrong")\n'
        '    return f"dandi:{s}"\n'
    )
    (planted / "sources" / "toy" / "__init__.py").write_text('NAME = "dandi"\n')
    assert archive_sites(planted, ("dandi", "aind", "boss")) == {"read/x.py": 4}


def test_every_archive_is_registered_by_its_package() -> None:
    known = archives.known()
    assert list(known) == ["dandi", "aind", "boss"]
    for name, archive in known.items():
        assert archive.source_module == f"neuromirror.sources.{name}.source"
    assert archives.get("boss").name_parts == 2 and archives.keeps_at_sync("boss")
    assert archives.of_source("dandi:000027").publisher == "DANDI Archive"
    assert archives.get("openneuro") is None


def test_a_toy_archive_registered_from_a_test_reads_as_a_spec() -> None:
    """An archive added from outside the product: its SPECs parse with its own name check, and it goes again."""
    with toy_archive.registered():
        assert parse_spec("toy:ds000001@1.0.0").source == "toy:ds000001"
        with pytest.raises(SpecError, match="e.g. toy:ds000001"):
            parse_spec("toy:000001")
    with pytest.raises(SpecError, match="unknown archive 'toy'"):
        parse_spec("toy:ds000001")


def test_a_toy_archive_syncs_resyncs_pins_and_cites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """T4's archive half: the toy archive, registered from the tests with its own stand-in, passes the basic
    contract through the API a script uses, with no product file naming it."""
    from datetime import datetime, timezone

    from neuromirror import api

    server = toy_archive.ToyServer(tmp_path / "served")
    when = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    server.publish("ds000001", "1.0.0", {"README": b"toy\n", "sub-01/data.bin": b"x" * 3000}, when)
    monkeypatch.setenv(toy_archive.URL_ENV, server.url)
    try:
        with toy_archive.registered(), api.open(tmp_path / "mirror", create=True) as m:
            first = m.sync("toy:ds000001")
            assert first.ok, first.lines()
            assert [(v.label, v.kind.value) for v in first.sources[0].versions] == [("1.0.0", "published")]
            again = m.sync("toy:ds000001")
            assert again.ok and not again.sources[0].versions  # nothing new upstream: nothing written
            pin = m.pin("toy:ds000001@1.0.0")
            assert pin.commit == first.sources[0].versions[0].commit
            cited = m.cite("toy:ds000001@1.0.0")
            assert (cited.publisher, cited.title) == ("Toy Archive", "Toy Archive ds000001")
            assert pin.commit in cited.render("text")
    finally:
        server.close()
    ds = tmp_path / "mirror" / "toy" / "ds000001"
    assert _git(ds, "tag", "--list") == "1.0.0"
    urls = _git(ds, "annex", "whereis", "--json", "sub-01/data.bin")
    assert f"{server.url}/ds000001/1.0.0/sub-01/data.bin" in urls


def _git(ds: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(ds), *args], capture_output=True, text=True, check=True).stdout.strip()

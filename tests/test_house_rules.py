"""The house's rules that a reader of the code relies on (issue 51), checked on the tree as it is.

* The index's rows are records: no ``row["column"]`` lookup outside ``index/`` (where the SQL is); a
  reader elsewhere reads ``VersionRow``/``SourceRow`` attributes, which mypy checks.
* The commands are thin: each command's ``run()`` is under 40 lines, the work being in the API and the
  packages below it.

(The branch writer's and the schema's rules: ``test_branch_writer``, ``test_schema_home``; complexity:
ruff's C901 at 15, in ``pyproject.toml``.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "neuromirror"
RUN_MAX_LINES = 40


def _row_lookups(path: Path) -> list[int]:
    """Lines of ``path`` that look a row up by a column's name: ``row["..."]`` (read or written)."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "row"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ]


def _long_runs(path: Path) -> dict[str, int]:
    """``run`` functions of ``path`` (module level) and their length in lines, those of 40 or more."""
    tree = ast.parse(path.read_text(), str(path))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "run":
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines >= RUN_MAX_LINES:
                found[f"{path.name}:{node.lineno}"] = lines
    return found


def test_no_row_is_looked_up_by_column_name_outside_the_index() -> None:
    stray = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("index/"):
            continue
        lines = _row_lookups(path)
        if lines:
            stray[rel] = lines
    assert not stray, f"read the index's records (index/rows.py) by attribute: {stray}"


def test_every_commands_run_is_under_40_lines() -> None:
    commands = sorted((SRC / "commands").glob("*.py"))
    long = {k: v for p in commands for k, v in _long_runs(p).items()}
    assert not long, f"a command's run() is one call into the API plus printing: {long}"
    assert sum(1 for p in commands if "\ndef run(" in p.read_text()) >= 20, "the check sees the commands' run()"


def test_the_checks_see_a_lookup_and_a_long_run(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(RUN_MAX_LINES))
    f.write_text(f'def run(args):\n{body}\n    row = {{}}\n    row["label"] = 1\n    return row["label"]\n')
    assert _row_lookups(f) == [RUN_MAX_LINES + 3, RUN_MAX_LINES + 4]
    assert _long_runs(f) == {"m.py:1": RUN_MAX_LINES + 4}


def test_an_error_is_said_in_one_line_one_way() -> None:
    """``util/text.one_line`` is the one way to make an exception one line: no hand-cut copies of it."""
    copy = re.compile(r"join\(str\((exc|e|err|error|ex)\)\.split\(\)\)")
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if copy.search(line)
    ]
    assert not found, f"hand-cut copies of util.text.one_line: {found}"


def test_no_dead_functions() -> None:
    """No module-level function or class that nothing calls (vulture over src and tests, 60 %): dead code is read,
    kept up and trusted as if it mattered.  Methods are left out: git-annex's special-remote protocol, WsgiDAV's
    resources and http.server's handlers call theirs by name."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "vulture", str(SRC), str(SRC.parents[1] / "tests"), "--min-confidence", "60"],
        capture_output=True,
        text=True,
    )
    dead = [
        line
        for line in done.stdout.splitlines()
        if line.startswith(str(SRC)) and re.search(r"unused (function|class) ", line) and "'__getattr__'" not in line
    ]
    assert not dead, "dead code:\n" + "\n".join(dead)

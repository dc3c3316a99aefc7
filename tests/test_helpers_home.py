"""Test modules share helpers through tests/helpers/ and fixtures through tests/conftest.py, never by
importing one another: a test module that imports another runs the other's module-level code, and a
helper whose home is a test file is hard to find and easy to break by editing that file (issue 51)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(path: Path) -> list[str]:
    """The ``test_*`` modules ``path`` imports, at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [n for n in names if n.split(".")[0].startswith("test_")]
    return found


def test_no_test_module_imports_another() -> None:
    files = sorted(TESTS.glob("*.py")) + sorted((TESTS / "helpers").glob("*.py"))
    assert len(files) > 50
    offenders = {str(p.relative_to(TESTS)): m for p in files if (m := imported_test_modules(p))}
    assert offenders == {}, "move what they share into tests/helpers/ (fixtures: tests/conftest.py)"


def test_the_check_sees_both_forms_of_import(tmp_path: Path) -> None:
    planted = tmp_path / "test_planted.py"
    planted.write_text("from test_keep import key_of\n\n\ndef f():\n    import test_service\n")
    assert imported_test_modules(planted) == ["test_keep", "test_service"]
    planted.write_text("from helpers.keep import key_of\nimport conftest\n")
    assert imported_test_modules(planted) == []

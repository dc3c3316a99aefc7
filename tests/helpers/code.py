"""Reading the house's own source as a house-rule test does: what of it is prose."""

from __future__ import annotations

import ast


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of ``tree``'s docstring constants (prose, not code: a docstring may name what code may not do)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out

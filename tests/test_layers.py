"""The house's shape, read from its own imports: layers that import downwards only, no cycles, small modules.

Every ``import`` in ``src/neuromirror`` counts, at module level or inside a function (a lazy import is
still a dependency), except those under ``if TYPE_CHECKING:``. Each package's ``__init__`` docstring
says in words what the table below says in numbers.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "neuromirror"

#: the layers, bottom (0) to top: a module may import its own package and anything of a lower layer
LAYERS: dict[str, int] = {
    # the base: what every layer may use (and which imports nothing above it)
    "util": 0,
    "errors": 0,
    "records": 0,
    "identifiers": 0,
    "spec": 0,
    "standins": 1,  # the stand-in archives: servers of their own, sharing nothing with the tool
    "annex": 1,  # git-annex: keys, logs, the writer
    "sources": 2,  # one archive each: snapshots of records, nothing of datasets or the index
    "index": 3,  # the SQLite view of the datasets
    "dataset": 4,  # the root, its datasets, locks, recovery
    "store": 4,  # where a lab keeps content (keep): a git-annex special remote's layout, recorded in datasets
    "engine": 5,  # the sync: snapshots -> URL rule -> diff -> commit -> tag -> index -> root
    "remotes": 5,  # git-annex special remotes (programs git-annex starts)
    "config": 6,  # mirror definitions
    "reproduce": 6,  # get, lock, cite, verify, publish
    "service": 7,  # the scheduled mirror service
    "demo": 8,
    "bench": 8,
    "commands": 9,  # one module per command
    "cli": 10,
    "__main__": 11,
}
#: the base modules may use one another (spec reads identifiers; util reads nothing)
BASE = {name for name, layer in LAYERS.items() if layer == 0}

MAX_LINES = 500
TOP_LEVEL_MODULES = 12


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (annotations only, no runtime dependency)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for sub in node.body:
                for n in ast.walk(sub):
                    lines.add(getattr(n, "lineno", -1))
    return lines


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The neuromirror modules ``name`` imports (a package's name when a name is not a module of it)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_only(tree)
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if node.__dict__.get("lineno") in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: None if is_pkg else -1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "neuromirror":
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_package_and_top_level_module_has_a_layer() -> None:
    tops = {layer_of(m) for m in modules() if m != "neuromirror"}
    assert tops <= set(LAYERS) | {"__init__"}, f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


def against_layers(g: dict[str, set[str]]) -> list[str]:
    wrong = []
    for mod, deps in g.items():
        a = layer_of(mod)
        for dep in deps:
            b = layer_of(dep)
            if a == b or (a in BASE and b in BASE) or LAYERS[a] > LAYERS[b]:
                continue
            wrong.append(f"{mod} -> {dep} ({a}: layer {LAYERS[a]}, {b}: layer {LAYERS[b]})")
    return sorted(wrong)


def cycles_in(g: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return cycles


def test_imports_run_downwards() -> None:
    wrong = against_layers(graph())
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycle() -> None:
    cycles = cycles_in(graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_modules_stay_small() -> None:
    big = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concept): {big}"


def test_few_modules_at_the_top() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= TOP_LEVEL_MODULES, top


def test_every_package_says_what_it_may_import() -> None:
    silent = [
        str(p.relative_to(SRC)) for p in PKG.rglob("__init__.py") if not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert not silent, f"packages without a docstring: {silent}"


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The walker itself: relative, lazy and package imports are all followed."""
    known = {"neuromirror.engine.sync": Path(), "neuromirror.engine.a": Path(), "neuromirror.service.x": Path()}
    f = tmp_path / "sync.py"
    f.write_text("from . import a\ndef f():\n    from ..service import x\n")
    assert imports_of("neuromirror.engine.sync", f, known) == {"neuromirror.engine.a", "neuromirror.service.x"}
    g = {"neuromirror.engine.sync": {"neuromirror.engine.a", "neuromirror.service.x"}, "neuromirror.engine.a": set()}
    assert against_layers(g) == ["neuromirror.engine.sync -> neuromirror.service.x (engine: layer 5, service: layer 7)"]
    g["neuromirror.engine.a"] = {"neuromirror.engine.sync"}
    assert cycles_in(g) == [["neuromirror.engine.a", "neuromirror.engine.sync"]]

"""The house's shape, read from its own imports: layers that import downwards only, no cycles, small modules.

Every ``import`` in ``src/neuromirror`` counts, at module level or inside a function (a lazy import is
still a dependency). An import under ``if TYPE_CHECKING:`` is no runtime dependency, so the layers
ignore it; the cycle check does not: two modules that name each other, even for annotations only,
cannot be read apart. Each package's ``__init__`` docstring says in words what the table below says
in numbers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "neuromirror"

#: the layers, bottom (0) to top: a module may import its own package and anything of a lower layer
LAYERS: dict[str, int] = {
    # the base: what every layer may use (and which imports nothing above it)
    "util": 0,
    "network": 0,  # requests to the archives: the per-endpoint pace, connection pools
    "errors": 0,
    "records": 0,
    "results": 0,  # one shape for what every verb returns: items with a status, to_json(), lines()
    "spec": 0,
    "registry": 0,  # Registry[T]: records by name their packages register (archives' and readers' registries)
    "archives": 0,  # the archives, each an Archive record its sources package registers
    "readers": 0,  # get's formats, each a FormatWriter record its reader's package registers
    "standins": 1,  # the stand-in archives: servers of their own, sharing nothing with the tool
    "inventory": 1,  # an archive bucket's S3 Inventory read as typed rows (manifest, MD5-checked CSV files)
    "annex": 1,  # git-annex: keys, logs, the writer
    "sources": 2,  # one archive each: snapshots of records, nothing of datasets or the index
    "index": 3,  # the SQLite view of the datasets
    "dataset": 4,  # the root, its datasets, locks, recovery
    "store": 4,  # where a lab keeps content (keep): a git-annex special remote's layout, recorded in datasets
    "engine": 5,  # the sync: snapshots -> URL rule -> diff -> commit -> tag -> index -> root
    "remotes": 5,  # git-annex special remotes (programs git-annex starts)
    "config": 6,  # mirror definitions
    "pin": 6,  # a pinned state: pin, lock, cite, clone, get, reproduce, file lists
    "keep": 7,  # pinned content copied into the lab's store
    "publish": 7,  # datasets pushed to siblings and RIA stores
    "read": 7,  # a pin read in place: its files by URL, fsspec
    "verify": 8,  # dataset, index, archive, bytes and store checked against each other
    "audit": 8,  # what the mirror saw wrong upstream, from what the syncs recorded
    "restore": 8,  # kept content written back in the archive's key layout; drills
    "maintain": 8,  # git packed where the mirror writes and publishes
    "account": 9,  # the mirror's account of itself: the status report, the backup numbers, live risk (verify's, audit's)
    "api": 10,  # the Python API (neuromirror.api): every verb, for scripts; the commands and the service stand on it
    "service": 11,  # the scheduled mirror service: each cycle's keep, checks and drills are API calls
    "demo": 12,
    "bench": 12,
    "commands": 13,  # one module per command
    "cli": 14,
    "clidoc": 15,  # docs/cli.md made from cli's parser
    "__main__": 15,
}
#: the base modules may use one another (spec reads archives; util reads nothing)
BASE = {name for name, layer in LAYERS.items() if layer == 0}

MAX_LINES = 500
TOP_LEVEL_MODULES = 12
#: modules side by side in one package: past this, the package wants rooms of its own
MAX_MODULES_PER_PACKAGE = 15
#: packages of one module per command (or per scenario) are the exception: their names are their index
ONE_MODULE_PER_THING = {"neuromirror.commands"}
#: a package holds at least this many rooms (modules beside its ``__init__``, subpackages): fewer is a module's
#: worth of thought behind a door of its own; merge it into its parent or a sibling (issue 77)
MIN_MODULES_PER_PACKAGE = 3
#: the packages that may hold fewer, each with why
FEW_MODULES = {
    # a layer of the table (12), the program ``neuromirror demo`` starts (commands/demo.py imports it as a program):
    # its two modes are its ``__init__`` (the one-shot demo) and ``serve`` (demo --serve); as one module at the top
    # it would be a ~480-line module of two programs, and the top at its limit of modules
    "neuromirror.demo": "a layer of its own: the program `neuromirror demo` starts, in two modes",
}


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path = SRC) -> dict[str, Path]:
    return {module_name(p, src): p for p in (src / "neuromirror").rglob("*.py")}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (annotations only, no runtime dependency)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for sub in node.body:
                for n in ast.walk(sub):
                    lines.add(getattr(n, "lineno", -1))
    return lines


def imports_of(name: str, path: Path, known: dict[str, Path], *, type_only: bool = False) -> set[str]:
    """The neuromirror modules ``name`` imports (a package's name when a name is not a module of it);
    with ``type_only``, those imported under ``if TYPE_CHECKING:`` too."""
    tree = ast.parse(path.read_text(), str(path))
    skip = set() if type_only else _type_checking_only(tree)
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


def graph(src: Path = SRC, *, type_only: bool = False) -> dict[str, set[str]]:
    known = modules(src)
    return {name: imports_of(name, path, known, type_only=type_only) for name, path in known.items()}


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
    """No cycle anywhere, type-only imports included: inside one package as much as across packages."""
    cycles = cycles_in(graph(type_only=True))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def crowded_packages(src: Path = SRC) -> dict[str, int]:
    """Packages holding more than MAX_MODULES_PER_PACKAGE modules side by side (``__init__`` not counted)."""
    crowded = {}
    for init in (src / "neuromirror").rglob("__init__.py"):
        name = module_name(init, src)
        n = sum(1 for p in init.parent.glob("*.py") if p.name != "__init__.py")
        if n > MAX_MODULES_PER_PACKAGE and name not in ONE_MODULE_PER_THING:
            crowded[name] = n
    return crowded


def test_no_package_is_crowded() -> None:
    crowded = crowded_packages()
    assert not crowded, f"packages with more than {MAX_MODULES_PER_PACKAGE} modules (give them rooms): {crowded}"


def thin_packages(src: Path = SRC) -> dict[str, int]:
    """Packages with fewer than MIN_MODULES_PER_PACKAGE rooms (modules beside ``__init__``, subpackages)."""
    thin = {}
    for init in (src / "neuromirror").rglob("__init__.py"):
        name = module_name(init, src)
        rooms = [p for p in init.parent.glob("*.py") if p.name != "__init__.py"]
        rooms += [d for d in init.parent.iterdir() if (d / "__init__.py").is_file()]
        if name != "neuromirror" and len(rooms) < MIN_MODULES_PER_PACKAGE:
            thin[name] = len(rooms)
    return thin


def test_no_package_is_a_room_of_one_or_two() -> None:
    thin = {name: n for name, n in thin_packages().items() if name not in FEW_MODULES}
    assert not thin, (
        f"packages with fewer than {MIN_MODULES_PER_PACKAGE} modules (merge them into their parent or a sibling, "
        f"or say why in FEW_MODULES): {thin}"
    )
    gone = sorted(set(FEW_MODULES) - set(thin_packages()))
    assert not gone, f"FEW_MODULES names packages that are no longer thin (or gone): {gone}"


def test_a_planted_thin_package_is_found(tmp_path: Path) -> None:
    src = _plant(
        tmp_path, {"reproduce/a.py": "", "reproduce/b.py": "", "pin/x.py": "", "pin/y.py": "", "pin/z/q.py": ""}
    )
    assert thin_packages(src) == {"neuromirror.reproduce": 2, "neuromirror.pin.z": 1}


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


#: a package docstring's import sentence: "May import ``a``, ``b`` and below; must not import ``c`` or ``d``."
MAY = re.compile(r"\b[Mm]ay import (.+?)(?:;|\.(?:\s|$)|$)")
MUST_NOT = re.compile(r"\b[Mm]ust not import (.+?)(?:;|\.(?:\s|$)|$)")
#: a Sphinx reference to a module (``:mod:``) or to a name in one (``:class:``, ``:func:``...)
REFERENCE = re.compile(r":(mod|class|func|data|exc|attr|meth):`~?([\w.]+)`")


def allowed_imports(package: str) -> set[str]:
    """What the table lets ``package`` import, in numbers: its own package and every lower layer."""
    if package in BASE:
        return set(BASE)
    return {package} | {p for p, layer in LAYERS.items() if layer < LAYERS[package]}


def named_packages(clause: str, package: str, known: dict[str, Path]) -> tuple[set[str], list[str]]:
    """The packages a clause names in double backquotes (``annex.keys`` is ``annex``; ``s3urls``, a module
    of the package itself, is the package), and the names that are no package or module at all."""
    found, unknown = set(), []
    for name in re.findall(r"``([\w.]+)/?``", clause):
        top = name.split(".")[0]
        if top in LAYERS:
            found.add(top)
        elif f"neuromirror.{package}.{name}" in known:
            found.add(package)
        else:
            unknown.append(name)
    return found, unknown


def docstring_against_layers(package: str, doc: str, known: dict[str, Path]) -> list[str]:
    """What a package's docstring says it may and must not import, checked against LAYERS: the packages it
    names exist, those it may import are allowed, those it must not import are not, and together with
    "and below" (everything up to the highest layer named), "anything below" and "the base modules" the
    sentence covers every package the table allows."""
    text = " ".join(doc.split())
    allowed = allowed_imports(package)
    if package in BASE and "imports nothing" in text.lower():
        return []  # stricter than the table: util needs none of the other base modules
    may, must_not = MAY.search(text), MUST_NOT.search(text)
    if not may:
        return [f"{package}: no sentence says what it may import ('May import ``x``, ``y`` and below; ...')"]
    wrong = []
    named, unknown = named_packages(may.group(1), package, known)
    wrong += [f"{package}: names ``{u}``, no package or module of neuromirror" for u in unknown]
    wrong += [f"{package}: says it may import {p}, which the table forbids" for p in sorted(named - allowed)]
    if must_not:
        forbidden, unknown = named_packages(must_not.group(1), package, known)
        wrong += [f"{package}: names ``{u}``, no package or module of neuromirror" for u in unknown]
        wrong += [
            f"{package}: says it must not import {p}, which the table allows" for p in sorted(forbidden & allowed)
        ]
    covered = set(named) | {package}
    clause = may.group(1)
    if "base modules" in clause:
        covered |= BASE
    if re.search(r"\b(anything|everything) below\b", clause):
        covered |= allowed
    elif "and below" in clause and named:
        top = max(LAYERS[p] for p in named)
        covered |= {p for p, layer in LAYERS.items() if layer <= top}
    missing = allowed - covered
    if missing:
        wrong.append(f"{package}: the table lets it import {sorted(missing)}, which its docstring does not say")
    return wrong


def stale_references(name: str, doc: str, known: dict[str, Path]) -> list[str]:
    """Modules a docstring refers to (``:mod:`.urls```, ``:class:`~neuromirror.x.y.Z```) that do not exist."""
    stale = []
    for role, target in REFERENCE.findall(doc):
        module = target if role == "mod" else target.rpartition(".")[0]
        if not module:
            continue  # a bare class name: the package's own
        full = name + module if module.startswith(".") else module
        if full not in known:
            stale.append(f"{name}: :{role}:`{target}` names no module ({full})")
    return stale


def test_package_docstrings_say_what_the_layer_table_says() -> None:
    """Each package's ``__init__`` docstring says in words what LAYERS says in numbers: what it may import
    (every package it names exists and is allowed; nothing the table allows is left unsaid), what it must not;
    and every module it refers to exists (a package moved or removed leaves no docstring naming it)."""
    known = modules()
    wrong = []
    for init in sorted(PKG.rglob("__init__.py")):
        name = module_name(init)
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        wrong += stale_references(name, doc, known)
        if init.parent.parent == PKG:
            wrong += docstring_against_layers(init.parent.name, doc, known)
    assert not wrong, "package docstrings against the layer table (tests/test_layers.py LAYERS):\n" + "\n".join(wrong)


def test_the_docstring_checker_sees_a_removed_package_and_a_wrong_word() -> None:
    known = modules()
    good = "May import ``engine``, ``dataset`` and below; must not import ``keep``, ``service`` or ``cli``."
    assert docstring_against_layers("pin", good, known) == []
    assert docstring_against_layers("pin", good.replace("``keep``", "``reproduce``"), known) == [
        "pin: names ``reproduce``, no package or module of neuromirror"
    ]
    assert docstring_against_layers("pin", good.replace("``engine``", "``keep``, ``engine``"), known) == [
        "pin: says it may import keep, which the table forbids"
    ]
    assert docstring_against_layers("engine", "May import ``dataset`` and the base modules.", known) == [
        "engine: the table lets it import ['annex', 'index', 'inventory', 'sources', 'standins', 'store'], "
        "which its docstring does not say"
    ]
    assert stale_references("neuromirror.read", "the rule (:mod:`neuromirror.engine.gone`)", known) == [
        "neuromirror.read: :mod:`neuromirror.engine.gone` names no module (neuromirror.engine.gone)"
    ]


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The walker itself: relative, lazy and package imports are all followed."""
    known = {"neuromirror.engine.sync": Path(), "neuromirror.engine.a": Path(), "neuromirror.service.x": Path()}
    f = tmp_path / "sync.py"
    f.write_text("from . import a\ndef f():\n    from ..service import x\n")
    assert imports_of("neuromirror.engine.sync", f, known) == {"neuromirror.engine.a", "neuromirror.service.x"}
    g = {"neuromirror.engine.sync": {"neuromirror.engine.a", "neuromirror.service.x"}, "neuromirror.engine.a": set()}
    assert against_layers(g) == [
        "neuromirror.engine.sync -> neuromirror.service.x (engine: layer 5, service: layer 11)"
    ]
    g["neuromirror.engine.a"] = {"neuromirror.engine.sync"}
    assert cycles_in(g) == [["neuromirror.engine.a", "neuromirror.engine.sync"]]


def _plant(root: Path, files: dict[str, str]) -> Path:
    """A tree of modules under ``root/neuromirror`` (every folder a package), for the checker to read."""
    for rel, text in files.items():
        path = root / "neuromirror" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for parent in path.relative_to(root).parents:
            if parent != Path(".") and not (root / parent / "__init__.py").exists():
                (root / parent / "__init__.py").write_text('"""A planted package."""\n')
    return root


def test_a_planted_type_only_cycle_inside_one_package_is_found(tmp_path: Path) -> None:
    """A helper that takes the whole class of the module that calls it, imported for annotations only:
    the layers do not see it (no runtime dependency), the cycle check does."""
    src = _plant(
        tmp_path,
        {
            "sources/toy/source.py": "from neuromirror.sources.toy import entries\nclass ToySource: ...\n",
            "sources/toy/entries.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from neuromirror.sources.toy.source import ToySource\n"
                "def entries(source: 'ToySource') -> list: return []\n"
            ),
        },
    )
    assert cycles_in(graph(src)) == []  # at run time there is no cycle
    assert against_layers(graph(src)) == []
    assert cycles_in(graph(src, type_only=True)) == [
        ["neuromirror.sources.toy.entries", "neuromirror.sources.toy.source"]
    ]
    # the helper takes a small record of its own package instead: the cycle is gone
    (src / "neuromirror/sources/toy/record.py").write_text("class Toy: ...\n")
    (src / "neuromirror/sources/toy/entries.py").write_text(
        "from neuromirror.sources.toy.record import Toy\ndef entries(source: Toy) -> list: return []\n"
    )
    assert cycles_in(graph(src, type_only=True)) == []


def test_a_planted_crowded_package_is_found(tmp_path: Path) -> None:
    n = MAX_MODULES_PER_PACKAGE + 1
    src = _plant(tmp_path, {**{f"reproduce/m{i}.py": "" for i in range(n)}, "commands/c.py": ""})
    for i in range(n):
        (src / f"neuromirror/commands/c{i}.py").write_text("")
    assert crowded_packages(src) == {"neuromirror.reproduce": n}


#: the packages above the API that stand on it as the commands do: nothing of the index's modules (issue 77)
ON_THE_API = ("service",)


def past_the_api(g: dict[str, set[str]], packages: tuple[str, ...] = ON_THE_API, below: str = "index") -> list[str]:
    """Imports (type-only ones too) of a module of the layer ``below`` by a module of ``packages``."""
    return sorted(
        f"{m} -> {d}" for m, deps in g.items() if layer_of(m) in packages for d in deps if layer_of(d) == below
    )


def test_the_service_imports_nothing_of_the_index() -> None:
    """The service reads and writes the mirror's records through the API (``neuromirror.api.records``), as the
    commands stand on it: a runs table read is the API's, so the service and a script cannot drift apart."""
    wrong = past_the_api(graph(type_only=True))
    assert not wrong, "the service past the API, into the index:\n" + "\n".join(wrong)
    g = {"neuromirror.service.x": {"neuromirror.index.runs", "neuromirror.api.records"}}
    assert past_the_api(g) == ["neuromirror.service.x -> neuromirror.index.runs"], "the check sees an index import"


def test_the_service_holds_the_api_not_the_datasets() -> None:
    """The service opens :class:`neuromirror.api.Mirror` and calls its verbs and its typed doors (``writer_lock``,
    ``register_quietly``, ``dataset_path``), never the lower ``Datasets`` of ``neuromirror.dataset``: what the
    service does to a mirror is what a script on the API can do, and the two cannot drift apart."""
    wrong = past_the_api(graph(type_only=True), below="dataset")
    assert not wrong, "the service past the API, into the datasets:\n" + "\n".join(wrong)
    g = {"neuromirror.service.x": {"neuromirror.dataset.mirror", "neuromirror.api.base"}}
    assert past_the_api(g, below="dataset") == ["neuromirror.service.x -> neuromirror.dataset.mirror"]


#: what :class:`neuromirror.api.Mirror` holds below itself: the lower ``Datasets`` and its untyped index
BELOW_THE_MIRROR = ("datasets", "index")
#: attributes of those names in the service that are nobody's mirror: the serve command's ``--index`` (a path)
NOT_THE_MIRRORS = {"options.index"}


def reaches_below(paths: list[Path]) -> list[str]:
    """``DIR/FILE:LINE OBJ.ATTR`` of each attribute of :data:`BELOW_THE_MIRROR` read in ``paths``, in line order."""
    out = []
    for p in paths:
        found = [n for n in ast.walk(ast.parse(p.read_text(), str(p))) if isinstance(n, ast.Attribute)]
        for node in sorted(found, key=lambda n: (n.lineno, n.col_offset)):
            what = f"{ast.unparse(node.value)}.{node.attr}"
            if node.attr in BELOW_THE_MIRROR and what not in NOT_THE_MIRRORS:
                out.append(f"{p.parent.name}/{p.name}:{node.lineno} {what}")
    return out


def test_the_service_reaches_nothing_below_the_mirror(tmp_path: Path) -> None:
    """The service calls the Mirror's verbs and typed records (``mirror.records``, ``mirror.publish``,
    ``mirror.expiry``...), never ``mirror.datasets`` or ``mirror.index`` behind them: an import check cannot see
    the lower objects reached through the Mirror's attributes, untyped, so this reads every attribute access."""
    wrong = reaches_below(sorted((PKG / "service").rglob("*.py")))
    assert not wrong, "the service past the API, through the Mirror's lower objects:\n" + "\n".join(wrong)
    planted = tmp_path / "x.py"
    planted.write_text(
        "def f(mirror, svc, options):\n"
        "    Records(mirror.index).newest_run()\n"
        "    publish_to_ria(mirror.datasets, [], '')\n"
        "    svc.mirror().index.cache_get('quiet', 'x')\n"
        "    return options.index, mirror.records, mirror.index_path\n"
    )
    assert reaches_below([planted]) == [
        f"{tmp_path.name}/x.py:2 mirror.index",
        f"{tmp_path.name}/x.py:3 mirror.datasets",
        f"{tmp_path.name}/x.py:4 svc.mirror().index",
    ]

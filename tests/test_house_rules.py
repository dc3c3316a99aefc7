"""The house's rules that a reader of the code relies on (issue 51), checked on the tree as it is.

* The index's rows are records: no ``row["column"]`` lookup outside ``index/`` (where the SQL is); a
  reader elsewhere reads ``Version``/``SourceRow`` attributes, which mypy checks.
* The commands are thin: each command's ``run()`` is under 40 lines, the work being in the API and the
  packages below it.

* Every exception is a ``NeuromirrorError``; at most ten ``type: ignore``; git-annex's journal is flushed in
  ``annex/`` only; nothing outside ``store/`` asks a store's kind; the read path holds a store's copy as a
  record, never as a string parsed back, and no module global holds stores (issue 77).

(The branch writer's and the schema's rules: ``test_branch_writer``, ``test_schema_home``; complexity:
ruff's C901 at 15, in ``pyproject.toml``.  A module's length has one cap, in ``test_layers``, the one
docs/architecture.md states: a signal for the review, not a reason to cut a thing in the middle.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers.code import docstrings

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


#: radon's cyclomatic complexity (boolean operators counted, as ruff's mccabe does not) above which a function
#: wants named steps
CC_MAX = 15


def test_no_function_over_complexity() -> None:
    """No function or method with radon's cc over 15: what ruff's C901 misses (``a and b or c`` is one branch
    to mccabe, three to a reader) is counted here."""
    from radon.complexity import cc_visit

    over: set[str] = set()
    for path in sorted(SRC.rglob("*.py")):
        for block in cc_visit(path.read_text()):
            for fn in [*getattr(block, "methods", []), *getattr(block, "closures", [])] or [block]:
                if fn.complexity > CC_MAX:
                    over.add(f"{path.relative_to(SRC)}:{fn.lineno} {fn.fullname} {fn.complexity}")
    assert not over, "functions over radon cc 15:\n" + "\n".join(sorted(over))


#: the commands that start a program standing on the API rather than call it: the demo, and the service
PROGRAMS = {"demo.py": "neuromirror.demo", "serve.py": "neuromirror.service"}


def test_commands_stand_on_the_api() -> None:
    """A command imports nothing of neuromirror but ``neuromirror.api`` and its own helpers (commands/), so that
    what a script does through the API and what the command line does cannot drift apart."""
    wrong = []
    for path in sorted((SRC / "commands").glob("*.py")):
        allowed = ("neuromirror.api", "neuromirror.commands", PROGRAMS.get(path.name, "neuromirror.api"))
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.module != "neuromirror" else [f"neuromirror.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("neuromirror") and not any(name == a or name.startswith(a + ".") for a in allowed):
                    wrong.append(f"commands/{path.name}:{node.lineno} imports {name}")
    assert not wrong, "commands import below the API:\n" + "\n".join(wrong)


def test_no_error_names_a_command_line_flag() -> None:
    """What a script can read names the thing (the API's argument: ``pack_size 10: ...``), never a flag
    (``--pack-size``): a script meets these messages too, and ``cli.main`` says the argument as its option
    (``NeuromirrorError.cli_line``) in one place.  Checked: every string but a docstring in every module below the
    command line (errors, notes, reasons, lines, log lines, pages), and the text of every ``raise`` (its string
    constants and the literal parts of its f-strings, not the expressions inside them: ``gitutil.out(..., '--get',
    ...)`` is a git argument).  Not checked: the command line's own modules, the bench and the demo, git-annex's
    special remotes (remotes/: their errors are for a user of git-annex, told which neuromirror command to run);
    for every string but the raises, the archives' stand-ins.  A
    program's argument (a string that is one option, or starts with ``--opt=``: ``"--cached"``,
    ``"--grep=^X: "``) is not a message; a hint of what to run may name a flag when it is said as the command, in
    backticks: ``run `neuromirror verify --stores```."""
    skipped = ("commands/", "cli.py", "clidoc.py", "bench/", "demo/", "remotes/")
    #: only their raises are checked: the stand-ins' words are the archives'
    raises_only = ("standins/",)
    #: a hint of what to run, said as the command (`neuromirror verify --stores`, or to the end of a clause)
    command = re.compile(r"`neuromirror [^`]*`|\bneuromirror [a-z][a-z-]* [^`;()]*")
    #: a program's argument: one option, or an option with its value (``--cached``, ``--grep=^X: ``)
    argument = re.compile(r"-+[A-Za-z0-9-]*(=|$)")
    #: (module, the flag it names) -> why that text must name it
    allowed = {
        # a publish's refused push is an error of its report, which the API's result and the command's output
        # share word for word (publish --json is the result's JSON): no place to say it two ways, and the command
        # line's user is told the option that overwrites (tests/test_publish.py checks it)
        ("publish/sibling.py", "--force"): "a report's error, the same bytes on both sides",
        ("publish/ria/put.py", "--force"): "a report's error, the same bytes on both sides",
        # a dandiset held back from a publish as embargoed: the report's why (publish --json's "why"), the same
        # bytes from the API and the command; the command line's user is told the option that publishes it
        ("publish/ria/publish.py", "--include-embargoed"): "a report's why, the same bytes on both sides",
        # the shell scripts run on a RIA store's host over ssh: git's own options, and the line that marks where
        # the listing ends and the tar stream begins
        ("publish/ria/ssh.py", "--bare"): "git init's option, in a script the store's host runs",
        ("publish/ria/ssh.py", "--git-dir"): "git's option, in a script the store's host runs",
        ("publish/ria/ssh.py", "--file"): "git config's option, in a script the store's host runs",
        ("publish/ria/ssh.py", "--neuromirror-tar--"): "a marker line between the listing and the tar stream",
        # the landing page's example commands: rclone's own option for a WebDAV remote
        ("read/landing.py", "--webdav-url"): "rclone's option, in an example of reading the view",
        # a pattern reading git-annex verifyremote's output, which names its own option and the ID to pass it
        ("pin/stores.py", "--safe"): "git-annex's option, matched in its output",
    }
    flag = re.compile(r"--[A-Za-z][A-Za-z-]*")

    def texts(node: ast.AST) -> list[str]:
        if isinstance(node, ast.FormattedValue):
            return []  # an expression inside an f-string: not the message's words
        own = [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []
        return own + [t for child in ast.iter_child_nodes(node) for t in texts(child)]

    def strings(tree: ast.AST) -> list[tuple[int, str]]:
        """Each string's words but the docstrings' (an f-string's expressions as ``{}``; not strings inside them)."""
        docs = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
        }
        inner = {id(c) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for c in ast.walk(n) if c is not n}
        out = []
        for n in ast.walk(tree):
            if isinstance(n, ast.JoinedStr) and id(n) not in inner:
                words = (v.value if isinstance(v, ast.Constant) else "{}" for v in n.values)
                out.append((n.lineno, "".join(str(w) for w in words)))
            elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs | inner:
                out.append((n.lineno, n.value))
        return [(line, text) for line, text in out if not argument.match(text)]

    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(skipped):
            continue
        tree = ast.parse(path.read_text(), rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                flags = [t for t in texts(node.exc) for f in flag.findall(t) if (rel, f) not in allowed]
                if flags:
                    found.append(f"{rel}:{node.lineno}: {flags}")
        whole = not rel.startswith(raises_only)
        for line, text in strings(tree) if whole else []:
            flags = [f for f in flag.findall(command.sub("", text)) if (rel, f) not in allowed]
            if flags:
                found.append(f"{rel}:{line}: {flags} in {text!r}")
    assert not found, "texts that name a command-line flag (name the argument: .at(argument)):\n" + "\n".join(found)
    probe = ast.parse("raise BadInput(f\"x {gitutil.out(d, '--get')}: --to DIR\")").body[0]
    assert isinstance(probe, ast.Raise) and probe.exc is not None
    assert [t for t in texts(probe.exc) if flag.search(t)] == [": --to DIR"], "the check sees a flag, not git's"
    said_probe = ast.parse(
        '"""doc --x"""\nn = f"pass --url {u}"\nh = "run `neuromirror verify --stores`"\ngit("--cached")\n'
        'g = "--grep=^X: "\nr = "--recheck only"'
    )
    got = [flag.findall(command.sub("", t)) for _, t in strings(said_probe)]
    assert got == [["--url"], [], ["--recheck"]], "a note's flag, not a program's argument"


#: exceptions that are not errors but signals a caller catches to change course (issue 77): a task asking its
#: submitter to act first, and the private stops of one module's loops (a leading underscore says so)
SIGNALS = {"NeedsSubmitter", "NeuromirrorError"}  # and the base itself


def _off_base(path: Path, root: Path = SRC) -> list[str]:
    """Exception classes of ``path`` not on ``NeuromirrorError``, by their bases as written (a class on another
    of the module's own off-base classes counts through it)."""
    tree = ast.parse(path.read_text(), str(path))
    plain = {"Exception", "RuntimeError", "ValueError", "OSError", "KeyError", "LookupError", "IOError", "TypeError"}
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_") or node.name in SIGNALS:
            continue
        bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
        if "BaseException" in bases:
            continue  # a stop signal (SIGTERM, Ctrl-C) is meant to pass every ``except Exception``
        if bases and all(b in plain for b in bases):
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return found


def test_every_error_is_on_the_one_base() -> None:
    """Every exception neuromirror raises is a ``NeuromirrorError`` (a kind of it: ``UserError``, ``Unavailable``):
    a script catches one base, and the command line maps each kind to its line and exit code in one place
    (``cli.main``).  Signals and private stops aside; the stand-ins and the bench impersonate and drive."""
    found = [
        hit
        for path in sorted(SRC.rglob("*.py"))
        if not {"standins", "bench"} & set(path.relative_to(SRC).parts)
        for hit in _off_base(path)
    ]
    assert not found, f"exception classes off NeuromirrorError: {found}"


def test_the_base_check_sees_a_plain_error(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("class Planted(RuntimeError):\n    pass\n\n\nclass _Private(Exception):\n    pass\n")
    assert _off_base(planted, tmp_path) == ["planted.py:1 Planted"]


TYPE_IGNORES_MAX = 10


def test_few_type_ignores() -> None:
    """At most ten ``# type: ignore`` in src (issue 77): each one is a place mypy cannot check, so a new one
    takes an old one's place (a Protocol, a typed record or a ``cast`` with a reason reads better)."""
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "type: ignore" in line
    ]
    assert len(found) <= TYPE_IGNORES_MAX, f"{len(found)} type: ignore (at most {TYPE_IGNORES_MAX}): {found}"


def test_no_hand_flushed_journal_outside_annex() -> None:
    """git-annex's journal is committed by the branch's one door (``annex/logs.branch_head``, which every reader
    of the logs starts from, and the writer): no package outside ``annex/`` flushes it by hand (issue 77)."""
    hand = re.compile(r"flush_journal|\"annex\", \"merge\"|'annex', 'merge'")
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] != "annex"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if hand.search(line)
    ]
    assert not found, f"git-annex's journal flushed by hand outside annex/: {found}"


#: the words a store's kind is said in (``Store.kind``, ``remote.log``'s ``type=``, a store URL's scheme)
STORE_KIND_WORDS = {"directory", "S3", "s3", "file", "pack", "pack+file", "pack+s3", "external"}
#: T2's sites not yet asking a capability (issue 77): this list may only shrink (T3 emptied it)
STORE_KIND_ALLOWED: dict[str, int] = {}


def _asks_store_kind(path: Path, store_classes: set[str]) -> list[int]:
    """Lines of ``path`` that ask which kind a store is: ``isinstance(x, <a store class>)``, or ``kind``, ``.kind``,
    ``fields.get("type")`` compared with a kind's word."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            if any(isinstance(k, ast.Name) and k.id in store_classes for k in kinds):
                found.append(node.lineno)
        elif isinstance(node, ast.Compare) and _is_kind(node.left):
            words = [c for c in ast.walk(node) if isinstance(c, ast.Constant) and c.value in STORE_KIND_WORDS]
            if words:
                found.append(node.lineno)
    return found


def _is_kind(node: ast.expr) -> bool:
    if isinstance(node, ast.Name) or isinstance(node, ast.Attribute):
        return (node.id if isinstance(node, ast.Name) else node.attr) == "kind"
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == "type"
    )


def _store_kind_asks(root: Path) -> dict[str, int]:
    store_classes = {
        node.name
        for path in (root / "store").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name.endswith("Store")
    }
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("store", "standins", "bench"):
            continue
        if hits := _asks_store_kind(path, store_classes):
            found[rel.as_posix()] = len(hits)
    return found


def test_nothing_outside_store_asks_which_kind_a_store_is() -> None:
    """T2 (issue 77): outside ``store/``, code asks a store's capabilities (``store.capabilities.packed``,
    ``.local``, ``.thaw``, ``.enable_field``), never its class or kind, so a new store kind is one registered
    module (``store.location.register``)."""
    found = _store_kind_asks(SRC)
    over = {p: n for p, n in found.items() if n > STORE_KIND_ALLOWED.get(p, 0)}
    assert not over, f"store kinds asked outside store/ (ask store.capabilities instead): {over}"
    shrunk = {p: n for p, n in STORE_KIND_ALLOWED.items() if found.get(p, 0) < n}
    assert not shrunk, f"fewer store-kind asks than allowed, shrink STORE_KIND_ALLOWED: {shrunk}"


def test_the_store_kind_check_sees_a_kind_asked(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "x.py").write_text("class PackStore:\n    pass\n")
    (tmp_path / "planted.py").write_text(
        "def f(s, fields):\n    a = isinstance(s, PackStore)\n    b = s.kind == 'pack'\n"
        "    return fields.get('type') == 'directory' or a or b or s.kind == 'record'\n"
    )
    assert _store_kind_asks(tmp_path) == {"planted.py": 3}


#: what opens a store: called in ``read/`` only by an object that holds what it opened for its lifetime
STORE_OPENERS = {"open_store", "open_recorded", "Stores"}
#: the types a store is held as; a module-level name of ``read/`` annotated with one holds stores for the process
STORE_TYPES = re.compile(r"\b(Store|StoreCopy|StoreReaders?|\w+Store)\b")


def _copy_as_string(tree: ast.Module) -> list[str]:
    """Where a module builds or parses a store's copy as a URL string: a ``pack+`` URL written or tested, a
    key joined on as a fragment,
    a URL's ``#`` fragment partitioned off to find a key (a request path's fragment dropped with ``split`` is not)."""
    docs, found = docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if "pack+" in node.value:
                found.append(f"{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.JoinedStr) and any(
            isinstance(v, ast.Constant) and str(v.value).startswith("#") and not str(v.value).startswith("#bytes=")
            for v in node.values[1:]
        ):  # f"{store_url}#{key}"; a copy printed where it lies (``#bytes=FIRST-LAST``) is what ``urls`` shows
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("partition", "rpartition") and any(
                isinstance(a, ast.Constant) and a.value == "#" for a in node.args
            ):
                found.append(f"{node.lineno}: .{node.func.attr}('#')")
    return found


def _stores_held_by_the_module(tree: ast.Module) -> list[str]:
    """Module-level names holding stores (annotated with a store type, or filled from a store opener), and
    openers called outside a class (no object holds what they open)."""
    found = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            note = ast.unparse(node.annotation) if isinstance(node, ast.AnnAssign) else ""
            value = ast.unparse(node.value) if node.value is not None else ""
            if STORE_TYPES.search(note) or any(f"{o}(" in value for o in STORE_OPENERS):
                found.append(f"{node.lineno}: module global {ast.unparse(node).splitlines()[0]}")
    names = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) for t in _targets(n)}
    for node in ast.walk(tree):  # a module-level dict filled with opened stores: ``_stores[url] = open_store(url)``
        if not (isinstance(node, ast.Assign) and _opens(node.value)):
            continue
        if any(
            isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in names for t in node.targets
        ):
            found.append(f"{node.lineno}: a module global filled with opened stores")
    in_class = {id(n) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for n in ast.walk(c)}
    for node in ast.walk(tree):
        name = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
        if name in STORE_OPENERS and id(node) not in in_class:
            found.append(f"{node.lineno}: {name}() outside an object that holds it")
    return found


def _targets(node: ast.Assign | ast.AnnAssign) -> list[ast.Name]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [t for t in targets if isinstance(t, ast.Name)]


def _opens(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in STORE_OPENERS for n in ast.walk(node)
    )


def _read_path_copies(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((root / "read").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        if hits := _copy_as_string(tree) + _stores_held_by_the_module(tree):
            found[path.relative_to(root).as_posix()] = hits
    return found


def test_the_read_path_holds_a_store_copy_as_a_record_and_no_global_holds_stores() -> None:
    """T3 (issue 77): a store's copy is a :class:`~neuromirror.read.store_reads.StoreCopy` (the store, the key),
    carried through the readers and read through the store; the stores a reader opens belong to the reader
    (``StoreReaders``: a listing, a filesystem, the view).  Before, ``read/`` wrote ``pack+s3://...#KEY``,
    parsed it back at each read and reopened its store through a module-global dict."""
    assert _read_path_copies(SRC) == {}


def test_the_copy_check_sees_a_copy_as_a_string_and_a_global_store_cache(tmp_path: Path) -> None:
    (tmp_path / "read").mkdir()
    (tmp_path / "read" / "old.py").write_text(
        '''"""pack+file:///PATH#KEY named in a docstring is fine."""
_stores: dict[str, "Store"] = {}
_cache: dict = {}


def packed_copy(store_url, key):
    return f"{store_url}#{key}"


def read(url):
    if url.startswith("pack+"):
        head, _, key = url.partition("#")
        _cache[head] = open_store(head)
        return _stores.setdefault(head, _cache[head]).read_range(key)
'''
    )
    (tmp_path / "read" / "new.py").write_text(
        "class Readers:\n    def open(self, url):\n        return self.opened.setdefault(url, open_store(url))\n"
    )
    got = _read_path_copies(tmp_path)
    assert list(got) == ["read/old.py"] and len(got["read/old.py"]) == 6, got


def _class_constants(tree: ast.AST) -> dict[str, dict[str, object]]:
    """Each class of a module: the constants its body assigns by name (``protocol_version = "HTTP/1.1"``)."""
    found: dict[str, dict[str, object]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            found[node.name] = {
                t.id: stmt.value.value
                for stmt in node.body
                if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                for t in stmt.targets
                if isinstance(t, ast.Name)
            }
    return found


def test_every_kept_alive_http_server_sends_without_nagle() -> None:
    """An ``http.server`` handler that keeps connections alive (HTTP/1.1) writes its headers and its body
    apart: with Nagle's algorithm the body waits for the client's delayed ACK, ~40 ms an answer.  The bench's
    S3 front lacked it, which put 40 ms on every GET of a keep "25 ms away"; each such handler says
    ``disable_nagle_algorithm = True``."""
    slow = []
    for path in sorted(SRC.rglob("*.py")):
        for name, consts in _class_constants(ast.parse(path.read_text(), str(path))).items():
            if consts.get("protocol_version") == "HTTP/1.1" and consts.get("disable_nagle_algorithm") is not True:
                slow.append(f"{path.relative_to(SRC)}: {name}")
    assert not slow, slow

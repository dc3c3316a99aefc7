"""The Python API as a notebook uses it: every example in docs/python-api.md runs, in order, in one namespace.

The mirror is made the way a user makes one (``neuromirror sync`` of the demo's sample dandiset from the
stand-in DANDI archive), and again as the demo makes it (a BOSS source sorting first: no example may take the
first source); the examples find it through ``$NEUROMIRROR_ROOT`` as the commands do.  A rule: every verb of
``api.Mirror`` is called in one of the page's python blocks.  Then the API's answers are checked against the
command line's own ``--json``, so that the CLI standing on the API stays true.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shutil
import signal
from pathlib import Path

import pytest

from helpers.keep import make_dandiset
from helpers.retrieve import Runner

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def examples() -> list[str]:
    """The page's ```python blocks, in order (its ```python sync blocks need an archive: tests/test_api_sync.py)."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def every_python_block() -> list[str]:
    return re.findall(r"```python[^\n]*\n(.*?)```", DOC.read_text(), re.S)


def run_the_page(root: Path, where: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Every example of the page, in order, in one namespace, on the mirror at ``root`` (found as the commands
    find it, ``$NEUROMIRROR_ROOT``), from the directory ``where``; SIGINT/SIGTERM's handlers are the caller's
    again after (``browse`` sets its own while Datasette runs, and must put them back: a notebook's Ctrl-C)."""
    monkeypatch.setenv("NEUROMIRROR_ROOT", str(root))
    monkeypatch.chdir(where)
    blocks = examples()
    assert len(blocks) >= 10, "the doc lost its examples"
    namespace: dict = {}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i, code in enumerate(blocks):
            exec(compile(code, f"{DOC.name} example {i + 1}", "exec"), namespace)
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers, "a verb left its signal handlers"
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return namespace


def sample_dandiset(archive, root: Path) -> tuple[str, str]:  # noqa: ANN001
    """The demo's sample dandiset (``demo --serve``'s: a published version with a real NWB file, then a later
    draft) on the stand-in archive, mirrored into ``root`` by ``neuromirror sync``: (source, published version)."""
    from neuromirror.demo import build_sample_dandiset
    from neuromirror.demo.serve import NWB_PATH, real_nwb

    sample = build_sample_dandiset(archive, extra={NWB_PATH: real_nwb()})
    Runner(root).ok("sync", f"dandi:{sample.identifier}", "--dandi-api", archive.api_url)
    return f"dandi:{sample.identifier}", sample.published


def test_every_example_of_the_python_api_doc_runs(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "mirror"
    source, version = sample_dandiset(dandi_archive, root)
    namespace = run_the_page(root, tmp_path, monkeypatch)
    printed = capsys.readouterr().out
    # what the examples printed is what the mirror holds
    assert namespace["source"] == source and namespace["published"].label == version
    assert f"{version} published" in printed
    assert "sub-01/sub-01_ses-1_ecephys.nwb 300000 " in printed
    assert "[0.  0.1 0.2]" in printed  # the NWB file read through h5py
    assert (tmp_path / "lab-store").is_dir() and (tmp_path / "siblings").is_dir()
    assert f"@misc{{dandi_{source.split(':')[1]}_" in printed  # the citation example's BibTeX
    assert namespace["d"].to_json()["from"]["version"] == version  # the diff example's record
    assert namespace["drill"].result == "ok" and namespace["browsed"].url.startswith("http://127.0.0.1:")
    assert namespace["weekly"] is None and namespace["due"].result == "ok"  # drill_when_due: not due, then due
    assert "200 OK" in printed and source in namespace["m"].sources()  # forgotten, then read back by reindex


def test_the_examples_run_on_the_demos_mirror(
    dandi_archive,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The page on the mirror ``neuromirror demo --serve`` builds (its sample dandiset with a real NWB file, a
    Zarr dandiset in two states), with the BOSS experiment ``neuromirror demo`` mirrors beside them: three
    sources, a ``boss:`` one sorting first, so no example may take the first source (issue 58's IndexError).
    Built by the demo's own code on the session's stand-in archive, which stays up for the examples that
    fetch content (``demo --keep``'s mirror outlives its stand-ins: keep, get and verify would have no archive)."""
    from neuromirror.demo import fresh_root
    from neuromirror.demo.serve import build
    from neuromirror.standins.boss.tiny import SPEC, sync_args, tiny_sample

    work, root, exe, env = fresh_root(tmp_path / "demo-mirror")
    try:
        built = build(root, work, dandi_archive, exe, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with tiny_sample(token="demo-token") as boss:
        monkeypatch.setenv("INTERN_TOKEN", "demo-token")
        Runner(root).ok(*sync_args(boss))
    here = tmp_path / "work"
    here.mkdir()
    namespace = run_the_page(root, here, monkeypatch)
    printed = capsys.readouterr().out
    sources = namespace["m"].sources()
    assert sources[0] == SPEC and f"dandi:{built.sample}" in sources and f"dandi:{built.zarr_dandiset}" in sources
    assert namespace["source"] == f"dandi:{built.sample}" and namespace["published"].label == built.version
    assert "[0.  0.1 0.2]" in printed and namespace["drill"].result == "ok"
    assert namespace["done"].ok and namespace["done"].snapshots[0].chunks > 0  # the demo's Zarr as Icechunk


def python_calls(code: str) -> set[str]:
    """The names called as attributes in ``code`` (``m.keep(...)``, ``api.open(...)``, ``api.Mirror.target(...)``)."""
    return {
        node.func.attr
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def test_every_verb_of_the_api_has_an_example_on_the_page() -> None:
    """Every public method of ``api.Mirror`` (and ``api.open``) is called in a python block of the page: a
    verb added without an example fails here, naming it."""
    from neuromirror import api

    verbs = {
        name
        for name in dir(api.Mirror)
        if not name.startswith("_")
        and not isinstance(inspect.getattr_static(api.Mirror, name), property)
        and callable(getattr(api.Mirror, name))
    }
    assert {"sync", "keep", "verify", "restore", "view"} <= verbs  # the rule sees the mixins' verbs
    called = set().union(*(python_calls(code) for code in every_python_block()))
    assert sorted(verbs - called) == [], "verbs of api.Mirror with no example on docs/python-api.md"
    assert any("api.open(" in code for code in every_python_block())


def test_the_api_answers_what_the_commands_print(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from neuromirror import api

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 2_000})
    source = d.source
    with api.open(d.run.root) as m:
        versions = m.versions(source)
        pin = m.pin(d.spec)
        files = {f.path: f for f in m.version(d.spec).files()}
    listed = json.loads(d.run.ok("versions", source, "--json"))
    assert [(v.label, v.commit, v.kind) for v in versions] == [(r["version"], r["commit"], r["kind"]) for r in listed]
    assert [v.to_json() for v in versions] == listed  # the same record: read_as, meta and all
    assert pin == json.loads(d.run.ok("pin", d.spec, "--json"))
    assert files["sub-01/a.nwb"].size == 2_000 and files["sub-01/a.nwb"].urls
    # diff: the API's record is the command's --json; a state named by its commit, as versions lists it
    draft = versions[-1]
    by_commit = f"{source}@{draft.commit[:12]}"
    with api.open(d.run.root) as m:
        diff = m.diff(d.spec, by_commit)
    assert diff.to_json() == json.loads(d.run.ok("diff", d.spec, by_commit, "--json"))
    assert diff.to_json()["to"]["commit"] == draft.commit and diff.lines()[0].startswith(f"{source} {d.version} (")
    assert d.run.ok("diff", d.spec, by_commit).splitlines() == diff.lines()
    assert d.run.ok("diff", d.spec, "@draft").splitlines()[1:] == diff.lines()[1:]  # the same state, by label
    # cite: the record the command renders, in each format the same bytes
    with api.open(d.run.root) as m:
        cited = m.cite(d.spec)
    assert cited.to_json() == json.loads(d.run.ok("cite", d.spec, "--json"))
    assert cited.render("bibtex") == d.run.ok("cite", d.spec, "--format", "bibtex")
    # lock: the lock file the command writes, from the same record (but for the moment it was made)
    with api.open(d.run.root) as m:
        locked = m.lock([d.spec], files=True)
    made = [x for x in d.run.ok("lock", d.spec, "--files").splitlines() if not x.startswith("created = ")]
    assert [x for x in locked.dumps().splitlines() if not x.startswith("created = ")] == made
    assert locked.datasets[0].commit == pin["commit"] and ("sub-01/a.nwb", files["sub-01/a.nwb"].key) in (
        locked.datasets[0].file_list or []
    )
    with pytest.raises(api.BadInput, match="not patterns"):
        api.open(d.run.root).lock("dandi:*")
    # a user's mistake is the command's one line, raised
    with pytest.raises(api.UserError, match="has no version"):
        api.open(d.run.root).version(f"{source}@9.999999.9999")
    with pytest.raises(api.UserError, match="no mirror at"):
        api.open(tmp_path / "nowhere")


def test_the_api_takes_what_a_new_user_passes(dandi_archive, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    """One spec where a list is expected, a ``date`` or naive ``datetime``, a ``Path`` target, a path the
    version lacks, a hostile path: each does what it says or raises one clear UserError."""
    from datetime import date, datetime

    import neuromirror
    from neuromirror import api

    assert (Path(neuromirror.__file__).parent / "py.typed").is_file()  # a user's mypy sees the API's types
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 2_500})
    with api.open(d.run.root) as m:
        # one spec string, not its characters
        report = m.keep(d.spec, tmp_path / "store")
        assert report.ok and [v.version for v in report.runs[0].versions] == [d.version]
        assert m.changes(date(2000, 1, 1), d.source)[0]["source"] == d.source
        assert m.changes(datetime(2000, 1, 1), [d.source]) == m.changes("2000-01-01", d.source)
        with pytest.raises(api.UserError, match="not a date"):
            m.changes(12345, d.source)  # type: ignore[arg-type]
        with pytest.raises(api.UserError, match="name what to work on"):
            m.keep(None, tmp_path / "store")  # type: ignore[arg-type]
        # a Path as restore's target, as keep's
        restored = m.restore(d.spec, tmp_path / "restored")
        assert restored.ok, restored.to_json()
        assert any(p.is_file() for p in (tmp_path / "restored").rglob("*"))
        # a path the version lacks, or one outside it: NoSuchPath, never an empty answer or git's text
        assert [f.path for f in m.files(d.spec, "sub-01")] == ["sub-01/a.nwb"]
        with pytest.raises(api.NoSuchPath, match="has no sub-99/x.nwb") as caught:
            list(m.files(d.spec, ["sub-01/a.nwb", "sub-99/x.nwb"]))
        assert "fatal" not in str(caught.value) and "fatal" not in capfd.readouterr().err
        for hostile in ("../etc/passwd", "/etc/passwd", ".git/config", "sub-01/../../x", "sub-01/\x00", "C:\\x", ""):
            with pytest.raises(api.NoSuchPath, match="not a path inside the version"):
                m.files(d.spec, hostile)


def test_the_apis_errors_are_one_vocabulary(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """One base a script catches, a kind per mistake, the message naming the thing (not a CLI flag)."""
    from neuromirror import api

    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"a.nwb": 1_000})
    with api.open(d.run.root) as m:
        cases = [
            (lambda: m.version("dandi:999999"), api.NotMirrored, "dandi:999999 is not mirrored here"),
            (lambda: m.version(f"{d.source}@9.999999.9999"), api.NoSuchVersion, "has no version"),
            (lambda: m.version("dandi:12"), api.BadInput, "a dandiset id has 6 digits"),
            (lambda: m.changes("yesterday-ish"), api.BadInput, "since 'yesterday-ish': not a date"),
            (lambda: list(m.files(d.spec, "nope.nwb")), api.NoSuchPath, "has no nope.nwb"),
        ]
        for call, kind, said in cases:
            with pytest.raises(kind, match=re.escape(said)) as caught:
                call()
            assert isinstance(caught.value, api.UserError) and isinstance(caught.value, api.NeuromirrorError)
            assert caught.value.exit_code == 2 and "--" not in str(caught.value), caught.value
    assert issubclass(api.Unavailable, api.NeuromirrorError) and not issubclass(api.Unavailable, api.UserError)

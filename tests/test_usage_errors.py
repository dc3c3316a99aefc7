"""Usage mistakes a user makes at a shell: each one line on stderr naming what is wrong, exit 2.

Each mistake was met on landed main as raw errno (``lock -o`` into a missing folder, ``--root`` a
file), as a wrong diagnosis (``keep --to`` a file said the store was DOWN), as git's own ``fatal:``
line before ours (``urls ../..``), as exit 0 (``status`` on a root that is not there), or as
silence (``demo`` refusing an exported ``NEUROMIRROR_ROOT``, ``demo --http`` without ``--serve``).
The CLI runs in-process as the ``cli`` fixture runs it, or as a process where what is checked is the
process's own stderr (git's line is written by a child to the same stderr).  Two reports that misled
are here too: ``versions`` rows both labelled ``draft``, and ``urls --check`` printing a dead URL.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from helpers.keep import T0, _delete_all_versions
from helpers.retrieve import Runner

README = Path(__file__).resolve().parent.parent / "README.md"


@dataclass
class Mirror:
    archive: object
    id: str
    version: str
    run: Runner

    @property
    def source(self) -> str:
        return f"dandi:{self.id}"


@pytest.fixture(scope="module")
def mirror(dandi_archive, tmp_path_factory) -> Mirror:  # noqa: ANN001
    """A published version (a README kept in git, one NWB file), then a draft synced in two states."""
    a = dandi_archive
    when = T0 + timedelta(days=1200)
    ident = a.create_dandiset(name="usage errors", created=when)
    a.put_asset(ident, "README.md", f"# usage errors {ident}\n".encode(), when=when)  # its own blob: lost below
    a.put_asset(ident, "sub-01/a.nwb", f"nwb bytes of {ident}\n".encode() * 100, when=when + timedelta(minutes=1))
    version = a.publish(ident, when=when + timedelta(hours=1))
    run = Runner(tmp_path_factory.mktemp("usage") / "mirror")
    run.ok("sync", f"dandi:{ident}", "--dandi-api", a.api_url)
    a.put_asset(ident, "sub-02/b.nwb", f"later bytes of {ident}\n".encode() * 50, when=when + timedelta(days=1))
    run.ok("sync", f"dandi:{ident}", "--dandi-api", a.api_url)
    return Mirror(a, ident, version, run)


def one_line(err: str) -> str:
    """The one line a usage error prints (and that it is one, with no errno or traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Errno" not in err and "Traceback" not in err and "fatal:" not in err, err
    return lines[0]


def nm(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m neuromirror ARGS``: what a shell shows, children's stderr included."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "neuromirror", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_lock_into_a_missing_folder_or_onto_a_folder(mirror: Mirror, tmp_path: Path) -> None:
    spec = f"{mirror.source}@{mirror.version}"
    code, _, err = mirror.run("lock", spec, "-o", str(tmp_path / "missing" / "x.lock"))
    assert code == 2 and one_line(err).endswith(
        f"the folder {tmp_path / 'missing'} does not exist (lock makes no folders)"
    )
    code, _, err = mirror.run("lock", spec, "-o", str(tmp_path))
    assert code == 2 and "is a directory" in one_line(err)
    assert list(tmp_path.iterdir()) == []
    assert "wrote" in mirror.run.ok("lock", spec, "-o", str(tmp_path / "x.lock"))  # the folder there: written


def test_root_a_file_is_named_with_where_it_came_from(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.cli import main

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for argv in (["versions", "dandi:000001"], ["sync", "dandi:000001"], ["status"], ["keep", "dandi:000001"]):
        assert main(["--root", str(a_file), *argv]) == 2, argv
        line = one_line(capsys.readouterr().err)
        assert line == f"neuromirror: --root {a_file}: exists and is not a directory (a mirror root is a directory)"
    monkeypatch.setenv("NEUROMIRROR_ROOT", str(a_file / "below"))
    assert main(["sync", "dandi:000001"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line == f"neuromirror: NEUROMIRROR_ROOT={a_file / 'below'} (exported): {a_file} is a file, not a directory"
    assert a_file.read_text() == "x"


def test_a_root_that_cannot_be_made_and_specs_mistyped_are_one_line(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """``--root`` where no directory can be made (a read-only place: here a folder without write
    permission for a non-root user, /proc for root) said ``[Errno 2]``; ``@@draft`` blamed the id;
    full-width digits passed as a dandiset id."""
    import os

    from neuromirror.cli import main

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    place = Path("/proc/neuromirror-root") if os.geteuid() == 0 else locked / "root"
    assert main(["--root", str(place), "sync", "dandi:000001"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"neuromirror: --root {place}: the mirror root cannot be made or written there: "), line
    assert not place.exists()
    assert main(["--root", str(tmp_path / "r"), "sync", "-J", "0", "dandi:000001"]) == 2
    assert one_line(capsys.readouterr().err).startswith("neuromirror: -J must be at least 1")
    assert not (tmp_path / "r").exists()
    for spec, said in (
        ("dandi:000027@@draft", "one '@' between the name and the version"),
        ("dandi:\uff10\uff10\uff10\uff10\uff12\uff17", "a dandiset id has 6 digits"),
    ):
        assert main(["--root", str(tmp_path / "r"), "pin", spec]) == 2, spec
        assert said in one_line(capsys.readouterr().err), spec


def test_keep_to_a_file_is_not_a_store_down(mirror: Mirror, tmp_path: Path) -> None:
    a_file = tmp_path / "store"
    a_file.write_text("not a store")
    for to, says in ((a_file, "exists and is not a directory"), (a_file / "sub", f"{a_file} is a file")):
        code, out, err = mirror.run("keep", f"{mirror.source}@{mirror.version}", "--to", str(to))
        assert code == 2 and out == "", out
        line = one_line(err)
        assert line.startswith(f"neuromirror: --to {to}: ") and says in line and "down" not in line.lower(), line
    assert a_file.read_text() == "not a store"


def test_urls_of_a_path_outside_the_version_is_our_line_alone(mirror: Mirror) -> None:
    """A process: git's ``fatal: ... outside repository`` went to the same stderr, before our line."""
    for path in ("../..", "/etc", "sub-01/../../x"):
        p = nm("--root", str(mirror.run.root), "urls", f"{mirror.source}@{mirror.version}", path)
        assert p.returncode == 2 and p.stdout == "", p.stdout
        assert one_line(p.stderr) == (
            f"neuromirror: {path}: a PATH is inside the version, from its top (no leading / and no '..')"
        )
    code, out, _ = mirror.run("urls", f"{mirror.source}@{mirror.version}", "sub-01")
    assert code == 0 and out.startswith("sub-01/a.nwb\t")


def test_status_of_a_root_that_is_not_there(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from neuromirror.cli import main

    root = tmp_path / "no-such-root"
    assert main(["--root", str(root), "status"]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"neuromirror: no mirror at {root}: no such directory (pass --root or set NEUROMIRROR_ROOT)"
    )
    assert not root.exists()


def test_demo_says_why_it_refuses_a_root_and_an_http_without_serve(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    from neuromirror.cli import main

    used = tmp_path / "my-mirror"
    (used / ".neuromirror").mkdir(parents=True)
    monkeypatch.setenv("NEUROMIRROR_ROOT", str(used))
    assert main(["demo"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"neuromirror: NEUROMIRROR_ROOT={used} (exported) is not empty: the demo mirrors"), line
    assert main(["demo", "--root", str(used)]) == 2
    assert one_line(capsys.readouterr().err).startswith(f"neuromirror: --root {used} is not empty")
    monkeypatch.delenv("NEUROMIRROR_ROOT")
    assert main(["demo", "--http", "127.0.0.1:8642"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line == "neuromirror: --http 127.0.0.1:8642: the view's address is for demo --serve (add --serve)"
    assert sorted(p.name for p in used.iterdir()) == [".neuromirror"]


def test_versions_tells_two_draft_states_apart(mirror: Mirror) -> None:
    rows = json.loads(mirror.run.ok("versions", mirror.source, "--json"))
    drafts = [r for r in rows if r["version"] == "draft"]
    assert len(drafts) == 2, rows
    earlier, latest = drafts
    assert (earlier["read_as"], latest["read_as"]) == (earlier["commit"][:12], "draft")
    assert [r["read_as"] for r in rows if r["version"] != "draft"] == [mirror.version]
    text = mirror.run.ok("versions", mirror.source)
    assert text.splitlines()[0].split()[:3] == ["VERSION", "READ_AS", "KIND"]
    assert re.search(rf"^draft +{earlier['commit'][:12]} +draft ", text, re.M), text
    assert re.search(r"^draft +draft +draft ", text, re.M), text
    for r in drafts:  # each name reads its own state
        pin = json.loads(mirror.run.ok("pin", f"{mirror.source}@{r['read_as']}", "--json"))
        assert pin["commit"] == r["commit"]


def test_urls_check_never_prints_a_url_that_does_not_serve(mirror: Mirror) -> None:
    """README.md is kept in the dataset's git and has an archive URL; once the archive lost its blob,
    ``--check`` says it is in git and shows no URL (it printed the dead one)."""
    spec = f"{mirror.source}@{mirror.version}"
    before = dict(line.split("\t")[:2] for line in mirror.run.ok("urls", spec).splitlines())
    assert before["README.md"].startswith("http"), before  # the archive's URL, recorded at the sync
    blob = mirror.archive.asset_at(mirror.id, "README.md", mirror.version).blob  # type: ignore[attr-defined]
    _delete_all_versions(mirror.archive.s3.client(), blob.bucket, blob.key)  # type: ignore[attr-defined]
    code, out, err = mirror.run("urls", spec, "--check")
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    assert ["README.md", "-", "in the dataset's git (no URL; a clone or the view serves it)"] in rows, rows
    for row in rows:
        if row[1] != "-":
            assert requests.head(row[1], allow_redirects=True, timeout=30).status_code == 200, row
    code, out, _ = mirror.run("urls", spec, "--check", "--json")
    readme = {r["path"]: r for r in json.loads(out)}["README.md"]
    assert (readme["url"], readme["served_by"]) == (None, "git")


def test_the_readme_counts_its_scripts_right() -> None:
    """The README announced "Two commands" above three lines; its count now names scripts and lines."""
    text = README.read_text()
    intro, block = re.search(r"\n([^\n]+\n[^\n]+):\n\n```\n(.*?)```", text, re.S).groups()  # type: ignore[union-attr]
    lines = block.strip().splitlines()
    scripts = {line.split()[0] for line in lines}
    words = {2: "Two", 3: "three"}
    assert f"{words[len(scripts)]} scripts, {words[len(lines)]} ways" in intro, intro


def test_a_root_left_half_made_by_ctrl_c_is_mended_by_the_next_run(tmp_path: Path) -> None:
    """A run killed after the root dataset was made and before its state folder was ignored left
    ``.neuromirror/`` showing in ``git status`` for good: the next run mends it."""
    from neuromirror.dataset.mirror import Datasets as Root

    root = tmp_path / "root"
    m = Root(root)
    m.ensure_root()
    exclude = root / ".git" / "info" / "exclude"
    exclude.write_text(exclude.read_text().replace("/.neuromirror/", ""))  # where Ctrl-C stopped it
    (root / ".neuromirror" / "x").parent.mkdir(exist_ok=True)
    (root / ".neuromirror" / "x").write_text("state")
    shown = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    assert ".neuromirror" in shown
    Root(root).ensure_root()  # the next run
    shown = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    assert ".neuromirror" not in shown, shown
    assert exclude.read_text().split().count("/.neuromirror/") == 1
    Root(root).ensure_root()
    assert exclude.read_text().split().count("/.neuromirror/") == 1  # once, however many runs


def test_a_malformed_boss_option_is_a_mistake_named_as_the_caller_named_it(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """A BOSS source's option that cannot mean anything (``--bbox foo``) was a failed sync (exit 1, "error:")
    and, from the API, a BossError saying ``--bbox``: now a mistake, exit 2, before anything is made; the API
    says the option's own name (``bbox``), the command line its flag."""
    from neuromirror import api
    from neuromirror.cli import main

    boss = ["--boss-url", "http://127.0.0.1:9"]  # never asked: the option is refused first
    for args, said in (
        (["--bbox", "foo"], "neuromirror: --bbox: expected X0:X1,Y0:Y1,Z0:Z1, got 'foo'"),
        (["--time-range", "5:2"], "neuromirror: --time-range: expected START:STOP with START < STOP, got '5:2'"),
        (["--chunk", "16x512"], "neuromirror: --chunk: expected ZxYxX, e.g. 16x512x512, got '16x512'"),
    ):
        assert main(["--root", str(tmp_path / "r"), "sync", "boss:coll/exp", *args, *boss]) == 2, args
        assert one_line(capsys.readouterr().err) == said
    assert not (tmp_path / "r").exists()
    with pytest.raises(api.BadInput, match=r"^bbox: expected X0:X1") as caught:
        api.open(tmp_path / "r", create=True).sync("boss:coll/exp", options={"bbox": "foo", "boss_url": boss[1]})
    assert caught.value.argument == "bbox"

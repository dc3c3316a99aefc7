"""docs/cli.md is the parser's own word: every command, its usage and options, as ``--help`` prints them.

The page is generated (``scripts/cli-doc``, :mod:`neuromirror.clidoc`); this test fails when a command or
a help text changed and the page was not made again, and says which command to run.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

from neuromirror.cli import GROUPS, build_parser
from neuromirror.clidoc import PAGE, REGENERATE, render

REPO = Path(__file__).resolve().parent.parent


def test_docs_cli_md_is_what_the_parser_makes_now() -> None:
    page = REPO / PAGE
    have = page.read_text() if page.exists() else ""
    want = render()
    diff = list(difflib.unified_diff(have.splitlines(), want.splitlines(), str(PAGE), "generated", lineterm="", n=1))
    assert have == want, f"{PAGE} is not current: run {REGENERATE} and commit {PAGE}\n" + "\n".join(diff[:40])


def test_the_page_has_every_command_with_its_usage_and_options_in_its_group() -> None:
    text = render()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices)  # type: ignore[attr-defined]
    assert len(names) >= 20
    for name in names:
        section = text.split(f"### neuromirror {name}\n", 1)[1].split("\n### ", 1)[0]
        assert f"usage: neuromirror {name}" in section, name
        for action in sub.choices[name]._actions:  # type: ignore[attr-defined]
            for option in action.option_strings:
                assert option in section, (name, option)
    # grouped as --help groups them: each group's heading before the commands GROUPS gives it
    for job, members in GROUPS.items():
        start = text.index(f"\n## {job}\n")
        for name in members:
            assert text.index(f"### neuromirror {name}\n") > start, (job, name)


def test_the_page_is_the_same_on_any_terminal_width() -> None:
    """argparse wraps at $COLUMNS: the generator fixes the width, so a narrow terminal makes the same page."""
    run = [sys.executable, "-c", "import sys; from neuromirror.clidoc import render; sys.stdout.write(render())"]
    pages = {
        cols: subprocess.run(run, env={"COLUMNS": cols, "PATH": ""}, capture_output=True, text=True, check=True).stdout
        for cols in ("40", "200")
    }
    assert pages["40"] == pages["200"] == render()


def test_check_mode_names_the_command_to_run(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# an old page\n")
    run = [sys.executable, "-m", "neuromirror.clidoc", "--check", "--out", str(stale)]
    out = subprocess.run(run, capture_output=True, text=True)
    assert out.returncode == 1
    assert f"run {REGENERATE}" in out.stderr
    assert stale.read_text() == "# an old page\n"  # --check writes nothing
    subprocess.run(run[:3] + ["--out", str(stale)], check=True, capture_output=True)
    assert subprocess.run(run, capture_output=True).returncode == 0

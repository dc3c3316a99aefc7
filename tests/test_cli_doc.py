"""docs/cli.md is the parser's own word: every command, its usage and options, as ``--help`` prints them.

The page is generated (``scripts/cli-doc``, :mod:`neuromirror.clidoc`); this test fails when a command or
a help text changed and the page was not made again, and says which command to run.
"""

from __future__ import annotations

import argparse
import difflib
import re
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


#: where a shell line holds several commands
SEPARATOR = re.compile(r"&&|\|\||[|;()]")
#: what may come before the program on a shell line: a prompt, environment variables
PREFIX = re.compile(r"^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*")
#: an inline code span naming a command and its options: `keep --to`, `status --copies [SPEC]`
SPAN = re.compile(r"`([a-z][a-z-]*(?: [^`\n]*)?)`")
OPTION = re.compile(r"^\[?(--?[a-z][a-z0-9-]*)")


def code_lines(text: str) -> list[tuple[int, str, bool]]:
    """(line number, line, in a code block) of a page; a code block's continued lines (``\\``) joined."""
    out: list[tuple[int, str, bool]] = []
    in_code, held = False, None
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code and held is not None:
            held = (held[0], held[1] + " " + line.strip())
        elif in_code:
            held = (n, line)
        else:
            out.append((n, line, False))
            continue
        if not held[1].endswith("\\"):
            out.append((held[0], held[1], True))
            held = None
        else:
            held = (held[0], held[1][:-1])
    return out


def page_commands(text: str) -> list[tuple[int, list[str], bool]]:
    """(line, words after the program, in a code block) of every ``neuromirror ...`` of a page's code blocks
    (after a prompt or variables, or a shell separator) and of every inline code span that starts with
    ``neuromirror`` or a command's name."""
    found: list[tuple[int, list[str], bool]] = []
    for n, line, in_code in code_lines(text):
        if in_code:
            for part in SEPARATOR.split(line.split(" # ", 1)[0]):
                words = PREFIX.sub("", part.strip()).split()
                if words and (words[0] == "neuromirror" or words[0].endswith("/neuromirror")):
                    found.append((n, words[1:], True))
            continue
        for span in SPAN.findall(line):
            words = span.split()
            found.append((n, words[1:] if words[0] == "neuromirror" else words, False))
    return found


def wrong_commands(page: Path, parser: argparse.ArgumentParser) -> list[str]:
    """What a page names that the parser does not know: a command in a code block, an option of a command."""
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = sub.choices  # type: ignore[attr-defined]
    shared = {o for a in parser._actions for o in a.option_strings}
    wrong = []
    for n, given, in_code in page_commands(page.read_text()):
        words = [w.strip("[]") for w in given if w.strip("[]")]  # a synopsis: [--root ROOT] [-v] serve [--http ...]
        while words and words[0].startswith("-") and words[0] in shared:  # global options before the command
            words = words[2:] if words[0] in ("--root", "--index", "-l", "--log-level") else words[1:]
        if not words or words[0].startswith("-"):
            continue  # neuromirror --version, --help
        name = words[0]
        if name not in commands:
            if in_code and re.fullmatch(r"[a-z][a-z-]*", name):
                wrong.append(f"{page.name}:{n}: no command {name!r}")
            continue
        known = {o for a in commands[name]._actions for o in a.option_strings} | shared
        for word in words[1:]:
            option = OPTION.match(word)
            if option and option.group(1) not in known and (in_code or option.group(1).startswith("--")):
                wrong.append(f"{page.name}:{n}: {name} has no option {option.group(1)}")
    return wrong


def test_the_readme_and_docs_name_only_commands_and_options_that_exist() -> None:
    """Every ``neuromirror CMD --opt`` a page shows, in a code block or as `CMD --opt` in the text, is a command
    and an option of it (docs/cli.md is the parser's own word; the other pages are written by hand and went
    stale: `status --at-risk` named a flag that never existed)."""
    parser = build_parser()
    pages = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "cli.md")]
    wrong = [w for page in pages for w in wrong_commands(page, parser)]
    assert not wrong, "the pages name commands or options the CLI does not have:\n" + "\n".join(wrong)


def test_the_checker_sees_a_wrong_command_and_option(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Run `keep --to DIR`, `status --at-risk`, `get -r` (datalad's) and `urls --NAME`.\n\n"
        "```\n$ neuromirror --root R sync dandi:000027 --jobz 4   # --not-this\n"
        "neuromirror get X --to D --from U && datalad get -d D .\n"
        "neuromirror sink dandi:1\nneuromirror keep X \\\n    --too S\n```\n"
    )
    assert wrong_commands(page, build_parser()) == [
        "page.md:1: status has no option --at-risk",
        "page.md:4: sync has no option --jobz",
        "page.md:6: no command 'sink'",
        "page.md:7: keep has no option --too",
    ]

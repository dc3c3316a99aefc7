"""``docs/cli.md``, the command-line reference, made from the argparse parser itself.

Why generated: each option's help text lives beside the option (one module per command in
``commands/``), and a reference kept by hand drifts from it.  :func:`render` lays out every command,
grouped by job as ``neuromirror --help`` groups them (``cli.GROUPS``), with its usage and options as
``neuromirror COMMAND --help`` prints them.  argparse wraps help at the terminal's width; here the
width is fixed (:data:`WIDTH`), so the page is the same on every machine.  ``tests/test_cli_doc.py``
fails when docs/cli.md is not what :func:`render` makes now.

    scripts/cli-doc                          # rewrite docs/cli.md
    python -m neuromirror.clidoc --check     # exit 1 when docs/cli.md is stale
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Optional, Sequence, cast

from neuromirror.cli import build_parser, grouped

#: the columns argparse wraps help text at, whatever the terminal
WIDTH = 100
#: the page, relative to the repository's root
PAGE = Path("docs") / "cli.md"
#: what a reader (or the test) is told to run when the page is stale
REGENERATE = "scripts/cli-doc"

HEADER = f"""# Command-line reference

<!-- Generated from the argparse parser by {REGENERATE} (src/neuromirror/clidoc.py); do not edit by hand:
     change the help texts in src/neuromirror/commands/ and run {REGENERATE}. -->

Every `neuromirror` command, grouped by job as `neuromirror --help` groups them, with its usage and
options exactly as `neuromirror COMMAND --help` prints them. The options `--root`, `--index`, `-v`
and `-l` may be given before the command or after it. Words: [glossary](glossary.md).
"""


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    """Wrap this parser's help (and its subcommands') at WIDTH columns, whatever COLUMNS says."""
    make = cast("type[argparse.HelpFormatter]", parser.formatter_class)
    parser.formatter_class = functools.partial(make, width=WIDTH)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """Each command's parser and one-line help, by name (aliases left out)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: (action.choices[a.dest], a.help or "") for a in action._get_subactions()}
    return {}


def _anchor(name: str) -> str:
    """The anchor GitHub and most Markdown renderers give the heading ``neuromirror NAME``."""
    return "neuromirror-" + name.lower()


def _block(text: str) -> list[str]:
    return ["```text", text.rstrip("\n"), "```", ""]


def render(parser: Optional[argparse.ArgumentParser] = None) -> str:
    """The whole page: the top-level help, then per group each command's summary and ``--help``."""
    parser = parser or build_parser()
    commands = _subcommands(parser)
    for p in [parser, *(sub for sub, _ in commands.values())]:
        _fixed_width(p)
    groups = grouped(list(commands))
    lines = [HEADER]
    for job, names in groups:
        links = ", ".join(f"[{name}](#{_anchor(name)})" for name in names)
        lines.append(f"- **{job}**: {links}")
    lines += ["", "## neuromirror", "", *_block(parser.format_help())]
    for job, names in groups:
        lines += [f"## {job}", ""]
        for name in names:
            lines += [f"### neuromirror {name}", ""]
            sub, summary = commands[name]
            lines += [summary, ""] if summary else []
            lines += _block(sub.format_help())
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m neuromirror.clidoc", description=__doc__.split("\n\n")[0])
    cli.add_argument("--out", type=Path, default=PAGE, help=f"the page to write (default: {PAGE})")
    cli.add_argument("--check", action="store_true", help="write nothing; exit 1 when the page is not current")
    args = cli.parse_args(argv)
    text = render()
    current = args.out.read_text() if args.out.exists() else None
    if args.check:
        if current != text:
            print(f"{args.out} is not current: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

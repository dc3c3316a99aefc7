"""The docs hold together: every relative link in README.md, docs/ and bench/RUNS.md leads to a file and
heading that exist, every ``docs/NAME.md`` the code, tests and pages name exists, and docs/performance.md
stays a short reference (its run log lives in bench/RUNS.md).

Why: pages are split and renamed (issue 41 split docs/reproducibility.md by task); a link to a page or
an anchor that moved fails quietly for a reader, so it fails here instead.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "RUNS.md"]
#: a Markdown link's target, not an image's or an absolute URL's
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
#: a page of the docs named in code or prose: docs/reproducibility.md, docs/keep.md#an-anchor
NAMED = re.compile(r"\bdocs/([\w.-]+\.md)(?:#([\w-]+))?")
PERFORMANCE_MAX_LINES = 250


def anchors(page: Path) -> set[str]:
    """The anchors GitHub makes for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    found: set[str] = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        n, anchor = 0, slug
        while anchor in found:
            n += 1
            anchor = f"{slug}-{n}"
        found.add(anchor)
    return found


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:, ria+file: ...
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(root)}: ({target})"
        if not dest.exists():
            broken.append(f"{where}: no file {dest.relative_to(root) if dest.is_relative_to(root) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: no heading #{anchor} in {dest.relative_to(root)}")
    return broken


def test_every_relative_link_leads_to_a_page_and_heading_that_exist() -> None:
    broken = [b for page in PAGES for b in broken_links(page)]
    assert not broken, "links to pages or headings that do not exist:\n" + "\n".join(broken)


def test_every_docs_page_the_code_and_pages_name_exists() -> None:
    """``docs/keep.md`` in a docstring, a help text, an error message or a page: the page (and the
    heading, when one is named) exists. Tests are left out: their datasets hold files named docs/..."""
    files = [*PAGES, *(REPO / "src").rglob("*.py"), *(REPO / "scripts").iterdir()]
    missing = sorted(
        f"{f.relative_to(REPO)}: docs/{name}{'#' + anchor if anchor else ''}"
        for f in files
        if f.is_file()
        for name, anchor in NAMED.findall(f.read_text(errors="replace"))
        if not (REPO / "docs" / name).exists() or (anchor and anchor not in anchors(REPO / "docs" / name))
    )
    assert not missing, "pages or headings named that do not exist:\n" + "\n".join(missing)


def test_the_checker_sees_a_moved_page_and_a_moved_heading(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A page\n\n## Keeping the bytes: keep\n\n```\n# not a heading\n```\n")
    (tmp_path / "b.md").write_text(
        "[ok](a.md#keeping-the-bytes-keep) [gone](gone.md) [moved](a.md#not-a-heading) [web](https://x.org/#y)\n"
    )
    assert anchors(tmp_path / "a.md") == {"a-page", "keeping-the-bytes-keep"}
    assert broken_links(tmp_path / "b.md", tmp_path) == [
        "b.md: (gone.md): no file gone.md",
        "b.md: (a.md#not-a-heading): no heading #not-a-heading in a.md",
    ]


def test_performance_md_is_a_short_reference_and_the_run_log_lives_outside_docs() -> None:
    page = REPO / "docs" / "performance.md"
    lines = len(page.read_text().splitlines())
    assert lines <= PERFORMANCE_MAX_LINES, (
        f"docs/performance.md has {lines} lines (at most {PERFORMANCE_MAX_LINES}): "
        "move measurement narratives to bench/RUNS.md, keep targets, how to run, current numbers"
    )
    assert "bench/RUNS.md" in page.read_text()
    assert not (REPO / "docs" / "performance-history.md").exists()


def test_the_readme_names_every_extra_setup_cfg_offers() -> None:
    """README.md's Install section lists the extras (`pip install -e '.[browse,dask]'`): one added to setup.cfg
    and not said there is an option a new user never learns of (``icechunk``, for ``export --icechunk``, was)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    extras = list(cfg["options.extras_require"])
    install = (REPO / "README.md").read_text().split("## Install", 1)[1].split("\n## ", 1)[0]
    missing = [e for e in extras if f"`{e}`" not in install]
    assert extras and not missing, f"extras of setup.cfg README.md's Install section does not name: {missing}"

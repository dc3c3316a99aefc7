"""The status pages parsed, and a headless browser when there is one (tests/test_status_pages.py, tests/test_read_view.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional
from xml.etree.ElementTree import Element

from helpers.service import get

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def parse_html(text: str, strict: bool = True) -> Element:
    """The document, parsed by html5lib; in strict mode (our pages) a parse error (invalid HTML) raises."""
    import html5lib

    parser = html5lib.HTMLParser(strict=strict, namespaceHTMLElements=False)
    return parser.parse(text)


def page_at(url: str) -> Element:
    """The HTML page at ``url``, answered 200 as text/html and parsed strictly (the audit and backup pages)."""
    code, ctype, body = get(url)
    assert code == 200 and ctype.startswith("text/html"), (code, ctype, body[:500])
    return parse_html(body)


def text_of(el: Element) -> str:
    return " ".join("".join(el.itertext()).split())


def by_class(doc: Element, tag: str, cls: str) -> list[Element]:
    return [e for e in doc.iter(tag) if cls in (e.get("class") or "").split()]


def source_row(doc: Element, sid: str) -> Element:
    return next(tr for tr in doc.iter("tr") if tr.get("id") == sid)


def chromium(url: str, tmp: Path, *, screenshot: Optional[Path] = None, size: str = "1400,900") -> str:
    """Headless Debian chromium: the DOM it built from ``url`` (or a screenshot of it)."""
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        f"--window-size={size}",
        "--hide-scrollbars",
    ]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def keep_screenshot(path: Path) -> None:
    """NEUROMIRROR_SCREENSHOTS=DIR keeps the screenshots for a person to look at."""
    where = os.environ.get("NEUROMIRROR_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(where) / path.name)


def probed(url: str, tmp: Path, script: str, *, size: str = "1400,900") -> str:
    """The DOM chromium built from a copy of ``url``'s page (a ``<base>`` to its URL) with one line of ``script``
    run at the end of its body: what the script writes into the DOM (the pages themselves have no script)."""
    page = get(url)[2]
    page = page.replace("<head>", f'<head><base href="{url}">', 1).replace(
        "</body>", f"<script>{script}</script></body>", 1
    )
    copy = tmp / "page.html"
    copy.write_text(page)
    return chromium(copy.as_uri(), tmp, size=size)

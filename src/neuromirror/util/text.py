"""An exception as one line: what a report, a log line or a status page shows of a failure.

Errors of git, git-annex, botocore or HTTP clients can run over many lines (a traceback, a
server's HTML); a report row, a JSON field and ``neuromirror: error: ...`` want one short line.
"""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 400, *, joined: bool = False) -> str:
    """The first line of ``exc`` (its class name when it says nothing), at most ``limit`` characters.

    ``joined``: all its lines joined by single spaces instead (a store's or a transfer's error,
    whose cause may be on a later line).
    """
    text = str(exc).strip()
    if joined:
        text = " ".join(text.split())
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."

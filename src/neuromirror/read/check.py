"""``urls --check``: does each chosen URL still answer?  A dead archive URL falls back to the store.

The dataset records what the archive served when the mirror saw it; whether the archive still
serves it is a question for the archive.  One ``HEAD`` per file (redirects followed as ``HEAD``),
a pool of threads, in the listing's order: a file whose archive URL no longer answers is read from
the lab's store when a store holds it, else it is lost, and said so with its key.  A file kept in
the dataset's git is asked too: its archive URL, dead, is dropped (never printed), the file stays
served by git.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Optional

from neuromirror.read.urls import PinnedFile

_BATCH = 256
LOST = "the archive no longer serves it ({status}) and no store of the lab's holds it"


def url_status(session: Any, url: str, timeout: float = 30) -> Optional[str]:
    """None if ``url`` answers with content (``HEAD``, redirects followed as ``HEAD``), else what it answered."""
    try:
        r = session.head(url, allow_redirects=True, timeout=timeout)
    except Exception as exc:  # a refused connection, a timeout: the URL does not serve
        return type(exc).__name__
    return None if r.status_code == 200 else f"HTTP {r.status_code}"


def _status(session: Any, f: PinnedFile) -> Optional[str]:
    """None if what serves ``f`` answers: a store's copy read here asked of its store (one request), a URL
    by ``HEAD``."""
    own = f.streamed  # a file, an S3 object, a key of a packed store
    return own.status() if own is not None else url_status(session, f.url or "")


def _checked(session: Any, f: PinnedFile, on_gone: Optional[Callable[[PinnedFile, str], None]] = None) -> PinnedFile:
    if f.served_by == "none" or f.url is None:
        return f
    status = _status(session, f)
    if status is None:
        return f
    if f.served_by == "git":  # its bytes are in the dataset: not lost, but a dead URL is never shown
        return dataclasses.replace(f, link=None)
    if on_gone is not None and f.served_by == "archive" and status in ("HTTP 404", "HTTP 410"):
        on_gone(f, status)  # remembered for every reader (:mod:`.loss`)
    if f.served_by == "archive" and f.copy is not None:
        kept = dataclasses.replace(f, served_by="store")
        if _status(session, kept) is None:
            return kept
    return dataclasses.replace(f, link=None, served_by="none", why=LOST.format(status=status))


def checked(
    files: Iterable[PinnedFile], jobs: int = 16, on_gone: Optional[Callable[[PinnedFile, str], None]] = None
) -> Iterator[PinnedFile]:
    """``files`` with each URL asked once: dead archive URLs replaced by the store's, or by none
    (``on_gone(file, status)``: told of each archive URL that answered 404/410)."""
    from neuromirror.network import identity

    session = identity.session(maxsize=jobs, hosts=jobs)  # named: urls --check is a client of the archive
    batch: list[PinnedFile] = []
    with ThreadPoolExecutor(jobs) as pool:
        for f in files:
            batch.append(f)
            if len(batch) >= _BATCH:
                yield from pool.map(lambda x: _checked(session, x, on_gone), batch)
                batch = []
        yield from pool.map(lambda x: _checked(session, x, on_gone), batch)

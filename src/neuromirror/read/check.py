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

from neuromirror.read.store_reads import status as copy_status
from neuromirror.read.store_reads import streamed
from neuromirror.read.urls import PinnedFile

_BATCH = 256
LOST = "the archive no longer serves it ({status}) and no store of the lab's holds it"


def url_status(session: Any, url: str, timeout: float = 30) -> Optional[str]:
    """None if ``url`` answers with content (``HEAD``, redirects followed as ``HEAD``), else what it answered."""
    if streamed(url):  # a store's copy read here: a file, an S3 object, a key of a packed store
        return copy_status(url)
    try:
        r = session.head(url, allow_redirects=True, timeout=timeout)
    except Exception as exc:  # a refused connection, a timeout: the URL does not serve
        return type(exc).__name__
    return None if r.status_code == 200 else f"HTTP {r.status_code}"


def _checked(session: Any, f: PinnedFile, on_gone: Optional[Callable[[PinnedFile, str], None]] = None) -> PinnedFile:
    if f.url is None:
        return f
    status = url_status(session, f.url)
    if status is None:
        return f
    if f.served_by == "git":  # its bytes are in the dataset: not lost, but a dead URL is never shown
        return dataclasses.replace(f, url=None)
    if on_gone is not None and f.served_by == "archive" and status in ("HTTP 404", "HTTP 410"):
        on_gone(f, status)  # remembered for every reader (:mod:`.loss`)
    if f.served_by == "archive" and f.store_url and url_status(session, f.store_url) is None:
        return dataclasses.replace(f, url=f.store_url, served_by="store")
    return dataclasses.replace(f, url=None, served_by="none", why=LOST.format(status=status))


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

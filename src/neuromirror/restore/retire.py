"""The dead URLs a restore replaced, retired: the lost S3 versions of the objects it gave back.

A restore into the archive's own bucket writes each object again under its key, as a new S3
version, and registers that version's URL for the git-annex key (:func:`.run._register`).  The
key's other versioned URLs naming the same object (the same bucket and key, another ``versionId``)
were pinned to the version the archive lost: once the bucket says that version is gone (a ``HEAD``
of it answers 404, or 405 for a delete marker), the URL can never serve again, and it is
unregistered — ``git annex unregisterurl --batch`` as ``neuromirror repair`` takes URLs back,
then taken out of the index's file states — so that ``get`` never tries it and ``verify --content
--strict`` has no dead URL left to warn about.  A version the bucket still holds (an object that
was only behind a delete marker) keeps its URL: it still serves the key's bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

from neuromirror.annex.logs import log_state
from neuromirror.annex.unregister import unregister_urls
from neuromirror.index.version_rows import drop_entry_urls
from neuromirror.restore.objects import locator_for

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.restore.targets import S3Target

log = logging.getLogger("neuromirror.restore")


def _version(url: str) -> Optional[str]:
    got = parse_qs(urlsplit(url).query).get("versionId")
    return got[0] if got else None


def replaced(
    source: str, pairs: Sequence[tuple[str, str]], logs: dict[str, Optional[bytes]], target: S3Target
) -> list[tuple[str, str, bool]]:
    """(key, URL, claimed by a special remote) of each registered URL of the restored ``pairs`` ((key, URL of
    the restored version)) that names the same object in another version, which the bucket no longer holds."""
    locate = locator_for(source)
    out: list[tuple[str, str, bool]] = []
    for key, new in pairs:
        at, vid = locate(new), _version(new)
        if at is None or vid is None:
            continue
        for logged, live in log_state(logs.get(key)).items():
            url = logged[1:] if logged.startswith(":") else logged
            old = _version(url)
            if not live or old is None or old == vid or url == new:
                continue
            there = locate(url)
            if there is None or (there.bucket, there.key) != (at.bucket, at.key) or at.bucket != target.bucket:
                continue
            try:
                gone = target.version_gone(at.key, old)
            except Exception as exc:  # noqa: BLE001 - the bucket does not answer: the URL is left as it is
                log.warning("%s: cannot tell whether %s is gone, left registered: %s", source, url, exc)
                continue
            if gone:
                out.append((key, url, logged.startswith(":")))
    return out


def retire(mirror: Datasets, source: str, repo: Path, dead: Sequence[tuple[str, str, bool]]) -> int:
    """Unregister ``dead`` (from :func:`replaced`) on ``repo``'s git-annex branch and drop them from the
    index's file states of ``source``; the caller holds the source's lock.  How many were unregistered."""
    unregister_urls(repo, dead)  # as neuromirror repair takes URLs back
    if dead:
        drop_entry_urls(mirror.index.db.conn, source, [(k, u) for k, u, _ in dead])
    return len(dead)

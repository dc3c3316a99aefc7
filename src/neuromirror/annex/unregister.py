"""URLs taken back from keys on a repository's git-annex branch (``git annex unregisterurl``).

Two callers take URLs back: ``repair`` (a mutable URL beside a pinned one) and ``restore`` (a dead
version's URL once the bytes are written back under a new one). Both hold (key, URL, claimed) triples
read from the web logs, where "claimed" means the log holds the URL in a special remote's form (``:URL``).
The branch's one writer (:mod:`.branch_writer`) takes them back, in one commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from neuromirror.annex.branch_writer import unregister_urls as _unregister


def unregister_urls(repo: Path, registrations: Iterable[tuple[str, str, bool]]) -> None:
    """Unregister each (key, URL, claimed) on ``repo``'s branch (:func:`.branch_writer.unregister_urls`).

    A plainly logged URL is removed as the web remote's, even where a special remote would claim it
    now (git-annex would otherwise remove only the claimed form); a claimed one as its remote's.
    Raises :class:`~neuromirror.util.gitutil.GitError` with git-annex's own last line.
    """
    _unregister(repo, registrations)

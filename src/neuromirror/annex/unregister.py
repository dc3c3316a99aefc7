"""URLs taken back from keys on a repository's git-annex branch (``git annex unregisterurl``).

Two callers take URLs back: ``repair`` (a mutable URL beside a pinned one) and ``restore`` (a dead
version's URL once the bytes are written back under a new one). Both hold (key, URL, claimed) triples
read from the web logs, where "claimed" means the log holds the URL in a special remote's form (``:URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from neuromirror.util import gitutil


def unregister_urls(repo: Path, registrations: Iterable[tuple[str, str, bool]]) -> None:
    """Unregister each (key, URL, claimed) on ``repo``'s branch, one batch per form.

    A plainly logged URL is removed as the web remote's, even where a special remote would claim it
    now (git-annex would otherwise remove only the claimed form); a claimed one as its remote's.
    Raises :class:`~neuromirror.util.gitutil.GitError` with git-annex's own last line.
    """
    regs = list(registrations)
    for claimed in (False, True):
        batch = [(k, u) for k, u, c in regs if c is claimed]
        if not batch:
            continue
        remote = [] if claimed else ["--remote", "web"]
        lines = "".join(f"{k} {u}\n" for k, u in batch).encode()
        gitutil.run(repo, "annex", "unregisterurl", "--batch", *remote, "-c", "annex.alwayscompact=false", input=lines)

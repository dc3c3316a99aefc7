"""Whether the web has a key, on the ``git-annex`` branch: ``web: 0`` once its archive URLs are gone.

git-annex's web remote is tried for a key only while the key's location log says the web has it;
a key whose archive bytes are gone is marked ``web: 0`` (``git annex setpresentkey KEY <web uuid> 0``)
so that a clone goes straight to a store, and marked back when the archive serves it again.  Written by
``verify --content`` (:mod:`neuromirror.verify.lost_urls`) and by a reader that saw the loss
(:mod:`neuromirror.read.loss`).  The URLs stay in the key's ``.log.web``.  The caller holds the source's
lock (no sync writes the branch meanwhile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from neuromirror.annex.contract import WEB_UUID
from neuromirror.annex.logs import branch_logs, log_state
from neuromirror.store.record import flush_journal
from neuromirror.util import gitutil

#: HTTP answers that say the object is gone for good (S3: NoSuchKey / NoSuchVersion; 410 Gone)
GONE_STATUSES = (404, 410)


def web_states(repo: Path, keys: Iterable[str]) -> dict[str, bool]:
    """key -> does its location log say the web has it? (keys whose log never names the web: absent)"""
    out: dict[str, bool] = {}
    for k, data in branch_logs(repo, keys).items():
        state = log_state(data)
        if WEB_UUID in state:
            out[k] = state[WEB_UUID]
    return out


def set_web(repo: Path, gone: Iterable[str], serving: Iterable[str]) -> tuple[list[str], list[str]]:
    """Mark ``gone`` keys as not on the web and ``serving`` ones (marked before) as on it again.

    Returns (keys marked gone now, keys restored now): a key already in the wanted state is not
    written again, so a rerun is a no-op and the branch does not move.
    """
    gone, serving = list(dict.fromkeys(gone)), list(dict.fromkeys(serving))
    if not gone and not serving:
        return [], []
    flush_journal(repo)
    state = web_states(repo, gone + serving)
    to_mark = [k for k in gone if state.get(k) is True]
    to_restore = [k for k in serving if state.get(k) is False]
    if not to_mark and not to_restore:
        return [], []
    lines = [f"{k} {WEB_UUID} 0\n" for k in to_mark] + [f"{k} {WEB_UUID} 1\n" for k in to_restore]
    gitutil.run(repo, "annex", "setpresentkey", "--batch", input="".join(lines).encode())
    flush_journal(repo)  # committed on the branch, not left in the journal: clones read the branch
    after = web_states(repo, to_mark + to_restore)
    wrong = [k for k in to_mark if after.get(k) is not False] + [k for k in to_restore if after.get(k) is not True]
    if wrong:
        raise gitutil.GitError(f"git annex setpresentkey did not record the web's state of {wrong[0]} in {repo}")
    return to_mark, to_restore

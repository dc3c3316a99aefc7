"""A key whose archive URLs are all gone is marked on the ``git-annex`` branch, so clones go straight to a store.

Why: git-annex's web remote tries a key's URLs before a store of higher cost, and ``datalad get``
retries each dead URL (``annex.retry=3``): about 1.4 s a file before the lab's store is asked, hours
for a large version whose archive bytes are gone.  git-annex itself only tries the web remote for a
key whose location log says the web has it.  So when ``verify --content`` found every registered
http(s) URL of a key refused (a 4xx), at least one with 404 or 410 (every S3 version deleted: the
pinned ``?versionId=`` URL answers 404, the archive's download route 403), the key's location log gets ``web: 0`` — ``git annex setpresentkey KEY <web uuid> 0``, plain
git-annex plumbing that every clone reads — and nothing else changes:

* the URLs stay in the key's ``.log.web`` (the dataset is a record of where the bytes were):
  ``neuromirror urls`` and ``git show git-annex:…log.web`` still show them, ``git annex whereis``
  no longer lists the web for the key, and ``git annex get --from web`` still tries them;
* no other key's log is touched;
* it is undone the same way (``web: 1``) when a later ``verify --content`` finds one of the URLs
  serving the key's exact bytes again.

A timeout, a 5xx or only 403s (an embargo, a policy) say nothing about the bytes being gone.  Keys a special remote fetches (``neuromirror+…`` URLs) are left alone: the web
remote is not their way in.  The caller holds the source's lock (no sync writes the branch meanwhile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from neuromirror.store.webmark import GONE_STATUSES, set_web, web_states  # noqa: F401  (verify's names)
from neuromirror.verify.report import VerifyReport


def unmarked_read_only(report: VerifyReport, root: Path) -> bool:
    """Whether the mirror at ``root`` cannot be written here (a read-only mount): nothing is marked then, and
    the keys found gone are said in a note; a verify that reads changes nothing it cannot write."""
    from neuromirror.util.disk import unwritable

    why = unwritable(root)
    if why and report.web_gone:
        report.notes.append(f"{len(report.web_gone)} key(s) whose archive URLs are gone not marked ({root}: {why})")
    return why is not None


def mark_lost_urls(report: VerifyReport, repo_of: Mapping[str, Path]) -> None:
    """What ``verify --content`` found of each key's URLs, written on the branch of the repository that knows it."""
    by_repo: dict[Path, tuple[list[str], list[str]]] = {}
    for key in sorted(report.web_gone):
        if key in repo_of:
            by_repo.setdefault(repo_of[key], ([], []))[0].append(key)
    for key in sorted(report.web_serving):
        if key in repo_of:
            by_repo.setdefault(repo_of[key], ([], []))[1].append(key)
    for repo, (gone, serving) in by_repo.items():
        marked, restored = set_web(repo, gone, serving)
        report.web_marked += marked
        report.web_restored += restored
    if report.web_marked:
        report.notes.append(
            f"{len(report.web_marked)} key(s) whose archive URLs are gone (HTTP 404/410) marked on the git-annex "
            "branch as no longer on the web: a clone fetches them from a store without trying the URLs "
            "(the URLs stay recorded)"
        )
    if report.web_restored:
        report.notes.append(
            f"{len(report.web_restored)} key(s) marked gone before are served by the archive again: "
            "the web has them again on the git-annex branch"
        )

"""A mirror dataset's ``.git`` holds what a mirror uses and nothing more: datasets made before get there.

:mod:`.fast_init` makes new datasets that way (issue 52): no hooks, no ``description``, no
``info/exclude``; a Zarr dataset in git's cone mode with a sparse index (:mod:`.sparse`).  A
dataset made by an older neuromirror (``git init``'s samples, git-annex's hooks, a Zarr's
non-cone sparse checkout with one index entry per object) is brought there by
``neuromirror maintain`` (:func:`tidy`), under the source's lock.  Nothing a person wrote is
removed: a hook or an ``info/exclude`` that differs from what git and git-annex install stays.
"""

from __future__ import annotations

import re
from pathlib import Path

from neuromirror.dataset import light_dataset, sparse
from neuromirror.util import gitutil

#: the one line git-annex's hooks run, after the shebang (pre-commit, post-receive, post-checkout, post-merge)
_ANNEX_HOOK = re.compile(rb"^#!/bin/sh\n# automatically configured by git-annex\n[^\n]*git[ -]annex [^\n]*\n?$")
#: ``git init``'s ``description`` and ``info/exclude`` as its template writes them
_DESCRIPTION = "Unnamed repository; edit this file 'description' to name the repository.\n"


def _installed_exclude(text: str) -> bool:
    return all(not line.strip() or line.startswith("#") for line in text.splitlines())


def leftovers(git_dir: Path) -> list[Path]:
    """What git's template and git-annex's init left in ``git_dir`` that a mirror does not use."""
    found: list[Path] = []
    hooks = git_dir / "hooks"
    if hooks.is_dir():
        for p in sorted(hooks.iterdir()):
            if p.is_file() and (p.name.endswith(".sample") or _ANNEX_HOOK.match(p.read_bytes())):
                found.append(p)
    description = git_dir / "description"
    if description.is_file() and description.read_text(errors="replace") == _DESCRIPTION:
        found.append(description)
    exclude = git_dir / "info" / "exclude"
    if exclude.is_file() and _installed_exclude(exclude.read_text(errors="replace")):
        found.append(exclude)
    return found


def sparse_outdated(repo: Path) -> bool:
    """A Zarr dataset sparse the old way: non-cone patterns, an index entry per object."""
    git_dir = repo / ".git"
    config = git_dir / "config"
    if gitutil.config_file_value(config, "core", "sparsecheckout") != "true":
        return False  # whole: made so, or made so by a user (git sparse-checkout disable)
    try:
        patterns = (git_dir / "info" / "sparse-checkout").read_text()
    except OSError:
        return False
    cone = gitutil.config_file_value(config, "core", "sparsecheckoutcone") == "true"
    return patterns != sparse.PATTERNS or not cone or gitutil.config_file_value(config, "index", "sparse") != "true"


def tidy(repo: Path, *, dry_run: bool = False) -> list[str]:
    """Remove :func:`leftovers` and bring an old sparse Zarr dataset to cone mode with a sparse index.

    Returns what was (with ``dry_run``: would be) done, one short phrase each.  The DataLad id goes
    into ``.git/config`` before ``.datalad/`` leaves the work tree (DataLad reads it there too)."""
    git_dir = repo / ".git"
    if not git_dir.is_dir():
        return []
    found = leftovers(git_dir)
    done = [f"removed {p.relative_to(git_dir)}" for p in found]
    if not dry_run:
        for p in found:
            p.unlink()
    if sparse_outdated(repo):
        done.append("sparse index (cone mode, top-level files checked out)")
        if not dry_run:
            dsid = light_dataset.dataset_id(repo)
            if dsid and gitutil.config_file_value(git_dir / "config", 'datalad"dataset"', "id") != dsid:
                gitutil.run(repo, "config", "datalad.dataset.id", dsid)
            gitutil.run(repo, "sparse-checkout", "set", "--cone", "--sparse-index")
    return done

"""``keep --lock data.lock``: the versions a lock file names, as ``keep`` targets — exactly those.

Each ``[[dataset]]`` of the lock must be mirrored here at the lock's commit: the index row of
the locked version whose commit is the lock's (a draft relabelled since, a version synced again
at another commit: refused, naming both commits), and the version's file list at that commit
must have the lock's ``file-list-digest`` — so what is kept is what the paper cites, or nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from neuromirror.annex.tree import has_commit
from neuromirror.dataset.states import find_state, looks_like_commit
from neuromirror.errors import UserError
from neuromirror.index.lookup import not_mirrored
from neuromirror.index.rows import Version
from neuromirror.pin.filelist import file_list_digest, walk_files
from neuromirror.pin.lockfile import LockedDataset, LockError, read
from neuromirror.spec import Spec


def lock_targets(mirror: Any, lock_paths: Sequence[str]) -> list[Version]:
    """The versions the lock files name, in their order, each once; ``UserError`` for one the mirror lacks."""
    out: list[Version] = []
    for path in lock_paths:
        try:
            lock = read(path)
        except LockError as exc:
            raise UserError(str(exc)) from None
        for d in lock.datasets:
            target = _locked_version(mirror, d, f"{path}: {d.spec}")
            if all(t.id != target.id for t in out):
                out.append(target)
    return out


def _locked_version(mirror: Any, d: LockedDataset, where: str) -> Version:
    """The version a lock's ``[[dataset]]`` names, once the mirror is shown to hold exactly that state:
    the locked commit, in the dataset, with the lock's file list."""
    src = mirror.index.source(d.source)
    if src is None:
        raise not_mirrored(mirror.index, d.source)
    archive, name = d.source.split(":", 1)
    if looks_like_commit(d.version) and d.commit.startswith(d.version):  # a state locked by its commit
        rows = [find_state(mirror.index, Spec(archive, name, d.version))]
    else:
        rows = [r for r in mirror.index.versions(d.source) if r.label == d.version and r.commit == d.commit]
    if not rows or rows[-1].commit != d.commit:
        row = find_state(mirror.index, Spec(archive, name, d.version))
        raise UserError(
            f"{where} is commit {d.commit[:12]} in the lock, {str(row.commit)[:12]} in the mirror: "
            "the mirror does not hold the locked state"
        )
    ds = mirror.dataset_path(src.dataset)
    if not has_commit(Path(ds), d.commit):
        raise UserError(f"{where}: commit {d.commit[:12]} is not in the mirror's dataset {ds}")
    fl = file_list_digest(walk_files(ds, d.commit))
    if fl.digest != d.file_list_digest:
        raise UserError(
            f"{where}: the file list at commit {d.commit[:12]} has digest {fl.digest[:23]}…, the lock "
            f"{d.file_list_digest[:23]}…: the lock file was edited or names another state"
        )
    return rows[-1].under(mirror.root)

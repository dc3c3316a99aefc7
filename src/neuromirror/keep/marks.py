"""A keep rerun in O(versions): a per-version, per-store mark that lets an unchanged version be skipped whole.

A full keep reads every file of every version once per store, and once more for the counts: at
10^6 keys a no-op rerun was ~9 minutes of Python.  After a version's keep into a store found every
one of its keys recorded in the store (on its repositories' git-annex branches) and checked (a row
of :mod:`neuromirror.index.store_checks`), the index gets a *mark*: the version (its fileset, its
commit, the ``--include``/``--exclude``/``--max-file-size`` used), the store, the git-annex branch
commit of each repository holding its keys, and the counts its report line needs.  Likewise for the
version's copies counted over every store (:data:`~neuromirror.index.store_checks.COUNTS`).

A mark *holds* when, for every repository, the branch is still at the marked commit; or it moved
and nothing between the two commits can have lowered what the mark says (:func:`Changes.between`:
``git diff-tree`` of the two commits, and only the changed location logs read, old and new):

* a store's mark: no location log lost that store, no line of that store's changed in ``remote.log``
  or ``uuid.log`` (its remote dropped or changed; a store added beside it writes only its own lines),
  and no other top-level file changed (``trust.log``...: a store declared dead);
* a count mark: no location log gained or lost any store the branch's ``remote.log`` names (the
  web's and the mirror's own presence do not count), and no top-level file changed.

A mark that holds at a newer commit is re-stamped with it.  What git-annex left uncommitted in its
journal (a ``git annex`` command with ``annex.alwayscommit=false``) is committed first (under the
source's lock), so that it is part of the diff.  What removes a
copy's record goes through the branch (``verify --stores``'s repair, ``git annex drop --from``,
``setpresentkey ... 0``); the index's own check rows are dropped with every mark of their store
(:func:`neuromirror.index.store_checks.forget`).  The mark trusts what a full keep already trusts: a
key with a check recorded is held without a look at the store; finding lost files is ``verify
--stores``'s job (docs/keep.md#several-stores-a-number-of-copies-checked-copies).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from neuromirror.annex.logs import BRANCH, branch_head, journal_pending, log_state
from neuromirror.annex.pack import tree_entries
from neuromirror.index import store_checks
from neuromirror.store.record import store_uuids
from neuromirror.util import gitutil

ZERO = "0" * 40


@dataclass
class Changes:
    """What changed on a repository's git-annex branch between two commits, as far as marks care."""

    ok: bool = True  # False: the diff could not be read (an old commit gone): no mark holds
    top: bool = False  # a top-level file that may lower any store (trust.log, ...) changed
    retold: set[str] = field(default_factory=set)  # UUIDs whose remote.log / uuid.log lines changed
    lost: set[str] = field(default_factory=set)  # UUIDs some location log no longer lists
    moved: set[str] = field(default_factory=set)  # UUIDs some location log lists or drops

    @classmethod
    def between(cls, repo: Path, old: str, new: str) -> Changes:
        """Read a group of top-level directories at a time (``abc/``: 1/4,096 of the keys each), so that
        neither git's diff nor the logs read here grow with the keys changed (10^6 after a large keep)."""
        with gitutil.CatFile(repo) as cat:
            old_tree, new_tree = cat.get_few([f"{old}^{{tree}}", f"{new}^{{tree}}"])
            if old_tree is None or new_tree is None:
                return cls(ok=False)
            before = {n: (m, i) for n, m, i in tree_entries(old_tree)}
            after = {n: (m, i) for n, m, i in tree_entries(new_tree)}
            out = cls()
            changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
            dirs = [n for n in changed if _is_dir(before.get(n)) and _is_dir(after.get(n))]
            if not out._tops(cat, before, after, [n for n in changed if n not in dirs]):
                return out
            for i in range(0, len(dirs), _DIRS_A_DIFF):
                if not out._add(repo, old, new, dirs[i : i + _DIRS_A_DIFF], cat):
                    return cls(ok=False)
        return out

    def _tops(self, cat: gitutil.CatFile, before: dict, after: dict, files: list[str]) -> bool:
        """Read the changed top-level files: a per-store log names the UUIDs whose lines changed; any other
        (trust.log, group.log, ...) is a change for every store (False, ``top`` set)."""
        if any(n not in _PER_STORE for n in files):
            self.top = True
            return False
        for name in files:
            self.retold |= _lines_changed(cat, before.get(name), after.get(name))
        return True

    def _add(self, repo: Path, old: str, new: str, dirs: list[str], cat: gitutil.CatFile) -> bool:
        """The stores the location logs under ``dirs`` gained or lost; False: the diff could not be read."""
        args = ["diff-tree", "-r", "-z", "--no-renames", old, new, "--", *(f"{d}/" for d in dirs)]
        proc = gitutil.run(repo, *args, check=False)
        if proc.returncode != 0:
            return False
        parts = proc.stdout.split(b"\0")
        pairs: list[tuple[str, str]] = []
        for i in range(0, len(parts) - 1, 2):
            meta, path = parts[i].split(), parts[i + 1]
            if len(meta) >= 4 and path.endswith(b".log"):  # a location log (.log.web, .log.met...: not copies)
                pairs.append((meta[2].decode(), meta[3].decode()))
        blobs = list(cat.get_many(sha for pair in pairs for sha in pair))
        for i in range(0, len(blobs), 2):
            was_there, now_there = log_state(blobs[i]), log_state(blobs[i + 1])
            for uuid in set(was_there) | set(now_there):
                was, now = was_there.get(uuid, False), now_there.get(uuid, False)
                if was != now:
                    self.moved.add(uuid)
                    if was:
                        self.lost.add(uuid)
        return True


def _journal_empty(git: str) -> bool:
    """Whether git-annex's journal under the git directory ``git`` holds nothing (False: not known, as
    where ``.git`` is a file: the caller takes the long way)."""
    try:
        with os.scandir(os.path.join(git, "annex", "journal")) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True  # no journal (or no repository: the ref's read says so)
    except OSError:
        return False


#: top-level logs of one line per store: a store added beside the marked one changes only its own lines
_PER_STORE = frozenset({"remote.log", "uuid.log"})


def _is_dir(entry: Optional[tuple[str, str]]) -> bool:
    return entry is None or entry[0] == _DIR


def _lines_changed(cat: gitutil.CatFile, old: Optional[tuple[str, str]], new: Optional[tuple[str, str]]) -> set[str]:
    """The UUIDs (each line's first word) whose lines differ between two versions of a per-store log."""
    blobs = cat.get_few([entry[1] for entry in (old, new) if entry is not None])
    texts = iter(blobs)
    sides = [set((next(texts) or b"").splitlines()) if entry is not None else set() for entry in (old, new)]
    return {line.split(b" ", 1)[0].decode("ascii", "replace") for line in sides[0] ^ sides[1] if line.strip()}


#: top-level directories of the branch diffed by one ``git diff-tree`` (1/64 of a large branch's keys)
_DIRS_A_DIFF = 64
_DIR = "40000"  # a tree's mode in its parent


class Marks:
    """Reads, checks and writes the marks of one run; branch heads and diffs are read once per repository."""

    def __init__(self, mirror: Any) -> None:
        self.mirror = mirror
        self._root = str(mirror.root)
        self._diffs: dict[tuple[str, str, str], Changes] = {}
        self._stores: dict[str, frozenset[str]] = {}

    def head(self, rel: str, source: str) -> Optional[str]:
        """The branch head of the repository at ``rel`` (None: none), with what git-annex left in its journal
        (``annex.alwayscommit=false``: a ``setpresentkey`` or ``drop`` not committed yet) committed first.

        The common case (a ``.git`` directory, an empty journal, a loose ref) is two system calls on string
        paths: a no-op rerun asks this of every Zarr dataset for the store's mark and the count's."""
        git = os.path.join(self._root, rel, ".git")
        if _journal_empty(git):
            sha = gitutil.loose_ref(git, BRANCH)
            if sha is not None:
                return sha
        repo = self.mirror.root / rel
        if not repo.is_dir():
            return None  # a Zarr subdataset no longer there: read in full (and reported) by the keep
        if journal_pending(repo):
            with self.mirror.lock(source):  # what git-annex left in its journal committed under the source's lock
                return branch_head(repo)
        return gitutil.branch_sha(repo, BRANCH)

    def heads(self, repos: Iterable[Path]) -> dict[str, str]:
        """relpath -> the branch head of each repository (read now, by the caller under the source's lock)."""
        out = {}
        for repo in repos:
            rel = os.path.relpath(repo, self.mirror.root)
            sha = gitutil.branch_sha(repo, BRANCH)
            if sha is not None:
                out[rel] = sha
        return out

    def find(self, target: Any, store: str, terms: str) -> Optional[dict]:
        """The version's mark for ``store`` if it holds (re-stamped when its branches moved harmlessly)."""
        row = target
        mark = store_checks.marks_of(self.mirror.index, row.id).get(store)
        if mark is None or mark["terms"] != terms or mark["version_commit"] != row.commit:
            return None
        if mark["fileset"] != row.fileset:
            return None
        branches: dict[str, str] = json.loads(mark["branches"] or "{}")
        now: dict[str, str] = {}
        for rel, old in branches.items():
            new = self.head(rel, target.source)
            if new is None:
                return None
            if new != old and not self._still(rel, old, new, store):
                return None
            now[rel] = new
        if now != branches:
            store_checks.restamp_mark(self.mirror.index, row.id, store, json.dumps(now, sort_keys=True))
        mark["counts"] = json.loads(mark["counts"] or "{}")
        return mark

    def _still(self, rel: str, old: str, new: str, store: str) -> bool:
        key = (rel, old, new)
        if key not in self._diffs:
            self._diffs[key] = Changes.between(self.mirror.root / rel, old, new)
        ch = self._diffs[key]
        if not ch.ok or ch.top:
            return False
        if store != store_checks.COUNTS:
            return store not in ch.lost and store not in ch.retold
        if ch.retold:
            return False  # a store named or unnamed: what the count covers may have changed
        if rel not in self._stores:
            self._stores[rel] = frozenset(store_uuids(self.mirror.root / rel))
        return not (ch.moved & self._stores[rel])

    def put(self, target: Any, store: str, terms: str, branches: dict[str, str], counts: dict) -> None:
        store_checks.set_mark(
            self.mirror.index,
            target.id,
            store,
            source=target.source,
            fileset=target.fileset,
            version_commit=target.commit,
            terms=terms,
            branches=json.dumps(branches, sort_keys=True),
            counts=json.dumps(counts, sort_keys=True),
        )


def terms_of(include: Iterable[str], exclude: Iterable[str], max_file_size: Optional[int]) -> str:
    """The options that decide which files of a version are kept: a mark made with others does not hold."""
    return json.dumps({"include": list(include), "exclude": list(exclude), "max_file_size": max_file_size})

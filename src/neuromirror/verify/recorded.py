"""The copies ``verify --stores`` re-reads: each version's annexed files and the stores its datasets'
git-annex branches record them in, each repository's objects read in this process.

A version's own files come from the index; a Zarr's (a subdataset row) from its dataset's trees at the
pinned commit, then the branch's ``remote.log`` and the keys' location logs (the branch's head read
from the repository's ref files), all through one :class:`~neuromirror.annex.objects.Objects` per
dataset.  Where :func:`neuromirror.dataset.files.each_version_file` and
:class:`neuromirror.store.holders.Locations` start ~10 git processes, and one ``cat-file`` per dataset
still cost a process start and a round trip per tree level (~5.8 ms a Zarr dataset of 50 objects,
against ~2.5 ms read here): with 10^4 Zarrs of 50 objects the walk, not the reading of the bytes, was
the run.  A Zarr's URLs are not read here: only a repair needs them (:func:`urls_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol, Sequence

from neuromirror.annex import objects as gitobjects
from neuromirror.annex.blobmap import BlobMap
from neuromirror.annex.keys import log_path
from neuromirror.annex.logs import BRANCH, branch_logs, log_state, web_urls
from neuromirror.annex.pack import tree_entries
from neuromirror.annex.tree import Blob, annexed_file, blob_key, is_plumbing
from neuromirror.records import GIT, SUBDATASET, VersionFile
from neuromirror.store.annexlog import recorded_stores
from neuromirror.store.record import log_blobs
from neuromirror.util import gitutil

#: from this many keys on, the branch's logs are listed once (``ls-tree``) and read by blob id; below it
#: by path (``ref:abc/def/KEY.log``, ~0.3 ms a key)
LISTED_MIN = 1000
NONE: frozenset[str] = frozenset()
#: the stores a repository's ``remote.log`` records -> those re-read this time (see verify.stores)
Readable = Callable[[Path, dict[str, dict[str, str]]], list[str]]


@dataclass(frozen=True)
class Copy:
    uuid: str
    file: VersionFile
    source: str


class _Repo:
    """One repository read through one ``cat-file``: trees at a commit, its branch's remote.log and logs."""

    def __init__(self, repo: Path, commit: str = "") -> None:
        self.repo = repo
        self.cat = gitobjects.Objects(repo)
        git = gitutil.git_dir(repo)
        self.ref = (gitutil.ref_from_files(git, BRANCH) if git else None) or gitutil.ref_sha(repo, BRANCH)
        self._stores: Optional[dict[str, dict[str, str]]] = None
        self._top: dict[str, Optional[bytes]] = {}  # commit -> its tree, read with remote.log
        if commit and self.ref is not None:  # one round trip for both
            log, self._top[commit] = self.cat.get_few([f"{self.ref}:remote.log", f"{commit}^{{tree}}"])
            self._stores = recorded_stores(log)
        self._blobs: Optional[BlobMap] = None
        self._held: dict[str, frozenset[str]] = {}  # key -> the store UUIDs its location log says hold it

    def close(self) -> None:
        self.cat.close()

    def stores(self) -> dict[str, dict[str, str]]:
        if self._stores is None:
            self._stores = {} if self.ref is None else recorded_stores(self.cat.get(f"{self.ref}:remote.log"))
        return self._stores

    def holders(self, keys: Sequence[str]) -> dict[str, frozenset[str]]:
        """key -> the UUIDs its location log says have it (each log read once per repository)."""
        new = [k for k in keys if k not in self._held]
        if new and self.ref is not None:
            if self._blobs is None and len(new) >= LISTED_MIN:
                self._blobs = log_blobs(self.repo, self.ref)
            for k, data in zip(new, self.cat.get_few(self._specs(new))):
                self._held[k] = frozenset(u for u, live in log_state(data).items() if live) or NONE
        return {k: self._held.get(k, NONE) for k in keys}

    def _specs(self, keys: list[str]) -> list[str]:
        """How ``cat-file`` is asked for the keys' logs: by blob id once the branch is listed, else by path."""
        paths = [log_path(k) for k in keys]
        if self._blobs is not None:
            return self._blobs.specs(paths)
        return [f"{self.ref}:{p}" for p in paths]

    def annexed(self, blobs: list[Blob], prefix: str) -> list[VersionFile]:
        """The annexed files among ``blobs`` (their symlinks or pointers read), under ``prefix``."""
        out = []
        for (path, mode, sha), data in zip(blobs, self.cat.get_few([b[2] for b in blobs])):
            key = blob_key(mode, data or b"")
            if key:
                out.append(annexed_file(prefix + path, key, repo=self.repo, blob=sha))
        return out

    def tree(self, commit: str) -> Optional[tuple[list[Blob], list[tuple[str, str]]]]:
        """The blobs (path, mode, id) and gitlinks (path, commit) of the tree at ``commit``, its trees read
        a level at a time; None when the repository lacks the commit."""
        top = self._top.pop(commit) if commit in self._top else self.cat.get_few([f"{commit}^{{tree}}"])[0]
        if top is None:
            return None
        width = 32 if len(commit) == 64 else 20
        blobs: list[Blob] = []
        links: list[tuple[str, str]] = []
        level: list[tuple[str, Optional[bytes]]] = [("", top)]
        while level:
            subtrees: list[tuple[str, str]] = []
            for base, data in level:
                for name, mode, sha in tree_entries(data or b"", width):
                    path = base + name
                    if mode == "40000":
                        subtrees.append((path + "/", sha))
                    elif mode == "160000":
                        links.append((path, sha))
                    elif not is_plumbing(path):
                        blobs.append((path, mode, sha))
            level = list(zip([p for p, _ in subtrees], self.cat.get_few([s for _, s in subtrees])))
        return sorted(blobs), links


class VersionFiles(Protocol):
    """What is read of the index here: a version's files (``Index.version_files``)."""

    def version_files(self, version_id: int, page: int = ...) -> Iterator[VersionFile]: ...


def recorded_copies(
    index: VersionFiles, targets: Sequence[tuple[Path, int, str]], readable: Readable
) -> dict[tuple[str, str], Copy]:
    """(uuid, key) -> :class:`Copy` (one file holding the key) for every copy that ``targets`` (dataset,
    index version id, source) record in a store ``readable`` says is re-read this time, taken in the
    versions' order.  One dataset after another: each is read in this process (:mod:`~neuromirror.annex.objects`),
    where threads would only take turns."""
    copies: dict[tuple[str, str], Copy] = {}
    walked: set[tuple[Path, str]] = set()  # a Zarr's state many versions share: read once
    top: Optional[_Repo] = None
    seen: set[str] = set()  # keys of this dataset an earlier version had: their holders are known
    try:
        for ds, version_id, source in targets:
            if top is None or top.repo != ds:
                if top is not None:
                    top.close()
                top, seen = _Repo(ds), set()
            files, subs = _version_parts(index, ds, version_id, walked)
            found = _copies(top, [f for f in files if f.key not in seen], source, readable)
            seen.update(f.key for f in files if f.key)
            for sub, commit, prefix in subs:
                found += _walk(sub, commit, prefix, source, readable)
            for c in found:
                copies.setdefault((c.uuid, c.file.key or ""), c)
    finally:
        if top is not None:
            top.close()
    return copies


def _version_parts(
    index: VersionFiles, ds: Path, version_id: int, walked: set[tuple[Path, str]]
) -> tuple[list[VersionFile], list[tuple[Path, str, str]]]:
    """A version's annexed files in the dataset itself, and the subdatasets (repository, commit, path prefix)
    to walk that no version before named at that commit (``walked``)."""
    files: list[VersionFile] = []
    subs: list[tuple[Path, str, str]] = []
    for f in index.version_files(version_id):
        if f.checksum_kind == SUBDATASET:
            if (ds / f.path, f.checksum or "") not in walked:
                walked.add((ds / f.path, f.checksum or ""))
                subs.append((ds / f.path, f.checksum or "", f.path + "/"))
        elif f.checksum_kind != GIT and f.key:
            files.append(
                VersionFile(f.path, f.key, f.size, f.checksum_kind, f.checksum, tuple(f.urls), f.remote_id, ds)
            )
    return files, subs


def _walk(sub: Path, commit: str, prefix: str, source: str, readable: Readable) -> list[Copy]:
    """A subdataset's copies (its own subdatasets' too): none when it is not here at that commit, and its
    tree is not read when its branch records no store re-read this time."""
    if not (sub / ".git").exists():
        return []
    repo = _Repo(sub, commit)
    try:
        if not readable(sub, repo.stores()):
            return []
        got = repo.tree(commit)
        if got is None:
            return []
        blobs, links = got
        files = repo.annexed(blobs, prefix)
        out = _copies(repo, files, source, readable)
    finally:
        repo.close()
    for path, sha in links:
        out += _walk(sub / path, sha, prefix + path + "/", source, readable)
    return out


def _copies(repo: _Repo, files: list[VersionFile], source: str, readable: Readable) -> list[Copy]:
    if not files:
        return []
    uuids = readable(repo.repo, repo.stores())
    if not uuids:
        return []
    first: dict[str, VersionFile] = {}
    for f in files:
        first.setdefault(f.key or "", f)
    held = repo.holders(list(first))
    return [Copy(uuid, first[key], source) for uuid in uuids for key, there in held.items() if uuid in there]


def urls_of(f: VersionFile) -> tuple[str, ...]:
    """The URLs of a file :func:`recorded_copies` listed: the index's, else (a Zarr's file) its branch's."""
    if f.urls or f.repo is None or not f.key:
        return f.urls
    return web_urls(branch_logs(f.repo, [f.key], ".log.web").get(f.key))

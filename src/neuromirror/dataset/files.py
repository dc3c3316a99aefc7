"""What a version holds that keep, verify and restore walk: its annexed files with key, size, URLs and repository.

Read from the index (a version's file rows: key, size, the registered URLs) — no checkout. A
Zarr asset is a subdataset row there; its files are read from the Zarr's own dataset at the
pinned commit (keys from its tree, URLs from its git-annex branch) and listed under its path,
each with the repository whose git-annex branch must record where its bytes are kept.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from neuromirror.annex.keys import key_checksum
from neuromirror.annex.tree import UrlLogs, has_commit, iter_version
from neuromirror.records import GIT, SUBDATASET, VersionFile, http_urls

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: URLs only a git-annex special remote of the mirror can fetch (BOSS chunks, embargoed DANDI)
SPECIAL_PREFIX = "neuromirror+"


@dataclass
class VersionFiles:
    """A version's annexed files, each a :class:`~neuromirror.records.VersionFile` with its URLs and the
    repository whose git-annex branch knows its key (a Zarr's files under the Zarr's path)."""

    annexed: list[VersionFile] = field(default_factory=list)
    in_git: int = 0  # files whose bytes git itself holds: nothing to keep
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why): files that cannot be listed


def version_files(index: Index, ds: Path, version_id: int) -> VersionFiles:
    """The files of an index version whose dataset is ``ds``, Zarr subdatasets' files included."""
    out = VersionFiles()
    out.annexed.extend(each_version_file(index, ds, version_id, out))
    return out


def each_version_file(
    index: Any,
    ds: Path,
    version_id: int,
    out: VersionFiles,
    read_before: Optional[set[tuple[str, str]]] = None,
    *,
    urls: bool = True,
) -> Iterator[VersionFile]:
    """:func:`version_files`' annexed files one at a time (a Zarr's read as it is met), its other
    counts and problems into ``out``: a caller over 10^6 files (``restore``) never holds the version's list.

    ``read_before``: the (path, commit) of the subdatasets this caller has read already (in another
    version): they are skipped, and the others added to it.  ``urls``: a Zarr's files carry their registered
    URLs (read from its git-annex branch); a reader of keys and sizes only (the copies count) spares that
    reading, a cat-file of 10^6 logs at 10^6 chunks."""
    for f in index.version_files(version_id):
        if f.checksum_kind == SUBDATASET:
            if read_before is not None:
                if (f.path, f.checksum or "") in read_before:
                    continue
                read_before.add((f.path, f.checksum or ""))
            yield from subdataset_files(ds / f.path, f.checksum or "", f.path + "/", out, urls=urls)
        elif f.checksum_kind == GIT or not f.key:
            out.in_git += 1
        else:
            yield VersionFile(f.path, f.key, f.size, f.checksum_kind, f.checksum, tuple(f.urls), f.remote_id, ds)


def subdataset_files(
    sub: Path, commit: str, prefix: str, out: VersionFiles, *, urls: bool = True
) -> Iterator[VersionFile]:
    """A Zarr's files from its dataset's tree at ``commit`` (its own subdatasets' too), URLs from its git-annex
    branch (``urls``), whose logs are listed tree by tree: ``git ls-tree -r`` of a 10^6-key branch holds 316 MB."""
    if not (sub / ".git").exists() or not has_commit(sub, commit):
        out.problems.append((prefix.rstrip("/"), f"the subdataset at commit {commit[:12]} is not in the mirror"))
        return
    logs = UrlLogs(sub, by_blob=True, walk=True) if urls else False
    for f in iter_version(sub, commit, recurse=True, urls=logs, prefix=prefix):
        if f.is_subdataset:
            out.problems.append((f.path, f"the subdataset at commit {(f.checksum or '')[:12]} is not in the mirror"))
        elif f.key:
            yield f
        else:
            out.in_git += 1


def annex_key(f: VersionFile) -> str:
    """The key of a file :func:`version_files` lists (annexed, every one)."""
    assert f.key is not None, f.path
    return f.key


def annex_repo(f: VersionFile) -> Path:
    """The repository whose git-annex branch knows the key of a file :func:`version_files` lists."""
    assert f.repo is not None, f.path
    return f.repo


def selected(path: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """``--include``/``--exclude`` globs (fnmatch: ``*`` also matches ``/``); exclude wins."""
    if include and not any(fnmatch.fnmatchcase(path, g) for g in include):
        return False
    return not any(fnmatch.fnmatchcase(path, g) for g in exclude)


def skip_reason(f: VersionFile, max_file_size: Optional[int]) -> Optional[str]:
    """Why a file is not kept by this version of ``keep`` (None: it is)."""
    if not http_urls(f.urls):
        if any(u.startswith(SPECIAL_PREFIX) for u in f.urls):
            return "content behind a special remote (BOSS chunk or embargoed DANDI): not kept yet"
        return "no http(s) URL registered"
    key = f.key or ""
    if key_checksum(key) is None:
        return f"{key.split('-', 1)[0]} key: no checksum of its own to verify the bytes against, not kept yet"
    if max_file_size is not None and (f.size or 0) > max_file_size:
        return f"larger than the max file size ({max_file_size} bytes)"
    return None

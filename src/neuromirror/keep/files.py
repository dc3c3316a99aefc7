"""What a version holds that ``keep`` can copy: its annexed files with key, size, URLs and repository.

Read from the index (a version's file rows: key, size, the registered URLs) — no checkout. A
Zarr asset is a subdataset row there; its files are read from the Zarr's own dataset at the
pinned commit (keys from its tree, URLs from its git-annex branch) and listed under its path,
each with the repository whose git-annex branch must record where its bytes are kept.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from neuromirror.annex.keys import hashdir_lower, key_file
from neuromirror.annex.logs import web_urls
from neuromirror.index.reindex import web_log_blobs
from neuromirror.keep.transfer import http_urls, key_checksum
from neuromirror.pin.filelist import has_commit, tree_files
from neuromirror.records import GIT, SUBDATASET
from neuromirror.util import gitutil

#: URLs only a git-annex special remote of the mirror can fetch (BOSS chunks, embargoed DANDI)
SPECIAL_PREFIX = "neuromirror+"


@dataclass(frozen=True)
class KeepFile:
    path: str  # in the version; a Zarr's files under the Zarr's path
    key: str
    size: Optional[int]
    urls: tuple[str, ...]
    repo: Path  # the dataset (or Zarr subdataset) whose git-annex branch knows the key


@dataclass
class VersionFiles:
    annexed: list[KeepFile] = field(default_factory=list)
    in_git: int = 0  # files whose bytes git itself holds: nothing to keep
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why): files that cannot be listed


def version_files(index: Any, ds: Path, version_id: int) -> VersionFiles:
    """The files of an index version whose dataset is ``ds``, Zarr subdatasets' files included."""
    out = VersionFiles()
    out.annexed.extend(each_version_file(index, ds, version_id, out))
    return out


def each_version_file(index: Any, ds: Path, version_id: int, out: VersionFiles) -> Iterator[KeepFile]:
    """:func:`version_files`' annexed files one at a time (a Zarr's read whole, as it is met), its other
    counts and problems into ``out``: a caller over 10^6 files (``restore``) never holds the version's list."""
    for f in index.version_files(version_id):
        if f.checksum_kind == SUBDATASET:
            sub = VersionFiles()
            _subdataset(ds / f.path, f.checksum or "", f.path + "/", sub)
            out.in_git += sub.in_git
            out.problems += sub.problems
            yield from sub.annexed
        elif f.checksum_kind == GIT or not f.key:
            out.in_git += 1
        else:
            yield KeepFile(f.path, f.key, f.size, tuple(f.urls), ds)


def _subdataset(sub: Path, commit: str, prefix: str, out: VersionFiles) -> None:
    if not (sub / ".git").exists() or not has_commit(sub, commit):
        out.problems.append((prefix.rstrip("/"), f"the subdataset at commit {commit[:12]} is not in the mirror"))
        return
    files = list(tree_files(sub, commit))
    blobs = web_log_blobs(sub)
    wanted = [f for f in files if f.key]
    with gitutil.CatFile(sub) as cat:
        ids = [blobs.get(f"{hashdir_lower(f.key or '')}{key_file(f.key or '')}.log.web") for f in wanted]
        logs = dict(zip([f.key for f in wanted], cat.get_many([i or "0" * 40 for i in ids])))
    for f in files:
        if f.commit:
            _subdataset(sub / f.path, f.commit, prefix + f.path + "/", out)
        elif f.key:
            out.annexed.append(KeepFile(prefix + f.path, f.key, f.size, web_urls(logs.get(f.key)), sub))
        else:
            out.in_git += 1


def selected(path: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """``--include``/``--exclude`` globs (fnmatch: ``*`` also matches ``/``); exclude wins."""
    if include and not any(fnmatch.fnmatchcase(path, g) for g in include):
        return False
    return not any(fnmatch.fnmatchcase(path, g) for g in exclude)


def skip_reason(f: KeepFile, max_file_size: Optional[int]) -> Optional[str]:
    """Why a file is not kept by this version of ``keep`` (None: it is)."""
    if not http_urls(f.urls):
        if any(u.startswith(SPECIAL_PREFIX) for u in f.urls):
            return "content behind a special remote (BOSS chunk or embargoed DANDI): not kept yet"
        return "no http(s) URL registered"
    if key_checksum(f.key) is None:
        return f"{f.key.split('-', 1)[0]} key: no checksum of its own to verify the bytes against, not kept yet"
    if max_file_size is not None and (f.size or 0) > max_file_size:
        return f"larger than --max-file-size ({max_file_size} bytes)"
    return None

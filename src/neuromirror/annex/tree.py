"""A version's files, read from git: the one walker over a dataset's tree at a commit.

A version is a commit of a dataset; its *files* are its tree's data files (``.datalad/``,
``.gitattributes`` and ``.gitmodules`` are the dataset's plumbing, not the archive's) and its
subdatasets (gitlinks: a DANDI Zarr asset, an AIND store).  :func:`iter_version` yields each as a
:class:`~neuromirror.records.VersionFile`: an annexed file's key from its symlink (or an unlocked
file's pointer blob), a file in git with the sha256 of its bytes, a subdataset with its commit.
Sync's diff (when the index lags HEAD), the index rebuild, pin's file lists, keep, verify and the
read paths all read a version through it, so they agree on what a version holds.

It streams: ``git ls-tree -r -z`` is read as it comes and the blobs (symlink targets, small files)
of a batch are read in one ``cat-file`` round trip, the URL logs (``urls=True``) of a batch in
another; nothing holds a version's listing.  Beside it: :func:`gitlinks` and
:func:`pinned_repositories`, a version's subdatasets without reading its files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

from neuromirror.annex import gitmodules
from neuromirror.annex.blobmap import BlobMap
from neuromirror.annex.keys import key_from_symlink, log_path, parse_key
from neuromirror.annex.logs import BRANCH, web_urls
from neuromirror.records import GIT, MD5, MPETAG, SHA256, SUBDATASET, VERIFY_ON_GET, VersionFile
from neuromirror.util import gitutil

#: blobs read per ``cat-file`` round trip
BATCH = 2000
_KIND_BY_BACKEND = {"SHA256E": SHA256, "SHA256": SHA256, "MD5E": MD5, "MD5": MD5, "XMPETAG": MPETAG}
#: a tree entry: (path, mode, object id)
Blob = tuple[str, str, str]


def is_plumbing(path: str) -> bool:
    """Files every DataLad dataset has that are not the archive's data."""
    return path.startswith(".datalad/") or path in (".gitattributes", ".gitmodules")


def _pointer_key(data: bytes) -> Optional[str]:
    """The key of an unlocked annexed file's pointer blob, if ``data`` is one."""
    if len(data) < 512 and data.startswith(b"/annex/objects/"):
        return key_from_symlink(data.decode("utf-8", "surrogateescape").strip())
    return None


def blob_key(mode: str, data: bytes) -> Optional[str]:
    """The git-annex key a tree entry (its mode and blob) points at: a symlink's or a pointer's; None: a file in git."""
    return key_from_symlink(data.decode("utf-8", "surrogateescape")) if mode == "120000" else _pointer_key(data)


def annexed_file(
    path: str,
    key: str,
    urls: Sequence[str] = (),
    repo: Optional[Path] = None,
    remote_id: Optional[str] = None,
    blob: Optional[str] = None,
) -> VersionFile:
    """An annexed file: size, checksum kind and checksum from its key (a key git-annex would not parse:
    size unknown, verified on get)."""
    try:
        info = parse_key(key)
    except ValueError:
        return VersionFile(path, key, None, VERIFY_ON_GET, None, tuple(urls), remote_id, repo, blob)
    kind = _KIND_BY_BACKEND.get(info["backend"], VERIFY_ON_GET)
    return VersionFile(path, key, info["size"], kind, info["checksum"], tuple(urls), remote_id, repo, blob)


def files_of_blobs(cat: gitutil.CatFile, blobs: Sequence[Blob], repo: Optional[Path] = None) -> list[VersionFile]:
    """Each tree blob as a file of the version (``blob`` set), its bytes read in one ``cat-file`` round trip."""
    out = []
    for (path, mode, sha), data in zip(blobs, cat.get_many([b[2] for b in blobs])):
        data = data or b""
        key = blob_key(mode, data)
        if key:
            out.append(annexed_file(path, key, repo=repo, blob=sha))
        else:
            out.append(VersionFile(path, None, len(data), GIT, hashlib.sha256(data).hexdigest(), (), None, repo, sha))
    return out


class UrlLogs:
    """The URLs each key's ``.log.web`` on ``repo``'s git-annex branch registers, read a batch at a time.

    ``cache`` (key -> URLs) spares a key read again: the index rebuild reads every version of a
    dataset, whose keys mostly repeat.  ``by_blob``: the branch's logs are listed once
    (:class:`~neuromirror.annex.blobmap.BlobMap`) and read by blob id, which spares git a search
    of the branch's 4,096-entry trees per key (~0.25 ms a key) but holds 32 bytes per key of the
    branch: what a Zarr's dataset, read whole, wants.  ``walk``: that listing read tree by tree
    (:meth:`~neuromirror.annex.blobmap.BlobMap.walked`: ~50 MB of git at 10^6 keys where ``ls-tree -r``
    holds 316, at ~2x its time), for the readers that run beside a 10^6-key keep's other processes."""

    def __init__(
        self,
        repo: Path | str,
        cache: Optional[dict[str, tuple[str, ...]]] = None,
        by_blob: bool = False,
        *,
        walk: bool = False,
    ) -> None:
        self.cache = cache
        # by name: a repository without the branch answers "missing" per log, no process asks first
        listing = BlobMap.walked if walk else BlobMap.listed
        self.blobs = listing(Path(repo), BRANCH, ".log.web") if by_blob else None
        self.ref: Optional[str] = None if self.blobs is not None and not len(self.blobs) else BRANCH

    def _specs(self, keys: list[str]) -> list[str]:
        paths = [log_path(k, ".log.web") for k in keys]
        if self.blobs is not None:
            return self.blobs.specs(paths)
        return [f"{self.ref}:{path}" for path in paths]

    def of(self, cat: gitutil.CatFile, keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """key -> URLs (``()``: none, or no git-annex branch)."""
        keys = list(keys)
        cache = self.cache if self.cache is not None else {}
        todo = [k for k in dict.fromkeys(keys) if k not in cache]
        if todo and self.ref:
            for k, data in zip(todo, cat.get_many(self._specs(todo))):
                cache[k] = web_urls(data)
        return {k: cache.get(k, ()) for k in keys}


def with_urls(files: list[VersionFile], urls: dict[str, tuple[str, ...]]) -> list[VersionFile]:
    """``files`` with each annexed one's URLs."""
    return [
        VersionFile(f.path, f.key, f.size, f.checksum_kind, f.checksum, urls[f.key], f.remote_id, f.repo, f.blob)
        if f.key
        else f
        for f in files
    ]


def inside(path: str, wanted: Sequence[str]) -> bool:
    """Is ``path`` (a file or a subdataset) one of ``wanted``, under one, or (a subdataset) above one?"""
    if not wanted:
        return True
    return any(path == w or path.startswith(w + "/") or w.startswith(path + "/") for w in wanted)


def _pathspecs(repo: Path, commit: str, prefix: str, wanted: Sequence[str]) -> list[str]:
    """What git itself can filter of ``wanted`` inside the repository at ``prefix`` (none: list it all).

    A wanted path inside a subdataset is asked for as the subdataset's own path (its gitlink):
    git does not look inside it."""
    inner = []
    for w in wanted:
        if prefix and (prefix.startswith(w + "/") or w + "/" == prefix):
            return []  # the repository itself, or a directory above it, is wanted: all of it
        if w.startswith(prefix):
            inner.append(w[len(prefix) :])
    if not inner:
        return inner
    subs = {m["path"] for m in gitmodules.read(repo, commit).values() if "path" in m}
    out = []
    for w in inner:
        parts = w.split("/")
        above = next(("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in subs), None)
        out.append(above or w)
    return out


def iter_version(
    repo: Path | str,
    commit: str,
    *,
    recurse: bool = False,
    urls: bool | UrlLogs = False,
    paths: Sequence[str] = (),
    prefix: str = "",
) -> Iterator[VersionFile]:
    """The files of ``repo`` at ``commit`` in git's path order, each with ``repo`` (and, for a file
    read from a blob, its ``blob``) set; paths under ``prefix``.

    ``urls``: annexed files carry their registered URLs (a :class:`UrlLogs` to share its cache; a
    subdataset's are read by blob id).
    ``paths``: only these files, directories or subdatasets (paths in the version, ``prefix`` included).
    ``recurse``: the files of each subdataset installed below ``repo`` at its recorded commit follow
    the repository's own files, under the subdataset's path; a subdataset that is not here (no
    repository, or without that commit) is yielded itself (``checksum_kind`` ``SUBDATASET``), for the
    caller to say so its own way.  Without ``recurse`` every subdataset is yielded as such.
    """
    for _, _, files in version_batches(repo, commit, recurse=recurse, urls=urls, paths=paths, prefix=prefix):
        yield from files


def version_batches(
    repo: Path | str,
    commit: str,
    *,
    recurse: bool = False,
    urls: bool | UrlLogs = False,
    paths: Sequence[str] = (),
    prefix: str = "",
) -> Iterator[tuple[Path, Optional[gitutil.CatFile], list[VersionFile]]]:
    """:func:`iter_version` a batch at a time, each with its repository and that repository's open
    ``cat-file`` (None for a subdataset that is not here), for a reader that asks more of the same
    repository per batch (:mod:`neuromirror.read.urls`: where each key is kept) without a process of its own."""
    repo = Path(repo)
    wanted = [p.strip("/") for p in paths if p.strip("/")]
    logs = urls if isinstance(urls, UrlLogs) else (UrlLogs(repo) if urls else None)
    subs: list[tuple[str, str]] = []
    batch: list[Blob | VersionFile] = []  # blobs to read, and subdatasets in their place
    with gitutil.CatFile(repo) as cat:
        for item in _listed(repo, commit, prefix, wanted, subs if recurse else None):
            batch.append(item)
            if len(batch) >= BATCH:
                yield repo, cat, _resolved(repo, cat, batch, logs)
                batch = []
        if batch:
            yield repo, cat, _resolved(repo, cat, batch, logs)
    for path, sha in subs:
        yield from _subdataset_batches(repo / path, sha, prefix + path, wanted, logs is not None)


def _listed(
    repo: Path, commit: str, prefix: str, wanted: Sequence[str], subs: Optional[list[tuple[str, str]]]
) -> Iterator[Blob | VersionFile]:
    """The wanted entries of ``commit``'s tree: a blob to read, or a subdataset as itself; with
    ``subs`` (recursing) a subdataset goes there instead, to be listed after the repository's files."""
    for mode, typ, sha, path in gitutil.ls_tree(repo, commit, _pathspecs(repo, commit, prefix, wanted)):
        full = prefix + path
        if wanted and not inside(full, wanted):
            continue
        if typ == "commit" and subs is not None:
            subs.append((path, sha))
        elif typ == "commit":
            yield VersionFile(full, None, None, SUBDATASET, sha, (), None, repo)
        elif typ == "blob" and not is_plumbing(path):
            yield (full, mode, sha)


def _resolved(
    repo: Path, cat: gitutil.CatFile, batch: list[Blob | VersionFile], logs: Optional[UrlLogs]
) -> list[VersionFile]:
    """The batch's blobs read into files in one round, subdatasets kept in their places; with ``logs``,
    each annexed file with its URLs."""
    blobs = [b for b in batch if isinstance(b, tuple)]
    read = iter(files_of_blobs(cat, blobs, repo))
    files = [next(read) if isinstance(b, tuple) else b for b in batch]
    if logs is None:
        return files
    return with_urls(files, logs.of(cat, [f.key for f in files if f.key]))


def _subdataset_batches(
    sub: Path, sha: str, path: str, wanted: Sequence[str], urls: bool
) -> Iterator[tuple[Path, Optional[gitutil.CatFile], list[VersionFile]]]:
    """A subdataset's batches under its ``path``, or, when it is not here at that commit, itself alone."""
    if not (sub / ".git").exists() or not has_commit(sub, sha):
        yield sub, None, [VersionFile(path, None, None, SUBDATASET, sha, (), None, sub)]
        return
    sub_logs = UrlLogs(sub, by_blob=True) if urls else False  # a Zarr's dataset: read whole
    yield from version_batches(sub, sha, recurse=True, urls=sub_logs, paths=wanted, prefix=path + "/")


def gitlinks(repo: Path | str, commit: str) -> list[tuple[str, str]]:
    """(path, commit) of the subdatasets recorded in ``commit`` (its tree listed, no file read)."""
    return [(path, sha) for _, typ, sha, path in gitutil.ls_tree(repo, commit) if typ == "commit"]


def has_commit(repo: Path, commit: str) -> bool:
    """Is ``commit`` in ``repo``?  The checked-out one is, as its files say (a Zarr dataset kept at its newest
    state: keep and the copies count ask once each per Zarr, 20,000 in a dandiset); others are asked of git."""
    if commit and gitutil.checked_out(repo) == commit:
        return True
    return gitutil.run(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0


def pinned_repositories(
    ds: Path, commit: str, missing: Optional[Callable[[Path, str, str], None]] = None
) -> Iterator[tuple[Path, str, str]]:
    """(repository, commit, path prefix) of ``ds`` at ``commit``, then of every subdataset it
    pins (recursively) that is installed here with the pinned commit: the repositories whose
    git-annex branches speak for the version's content (an AIND store's objects are in its own).

    ``missing(repository, commit, prefix)`` hears of a pinned subdataset that is not here."""
    yield ds, commit, ""
    todo = [(ds, "", gitlinks(ds, commit))]
    while todo:
        repo, prefix, links = todo.pop()
        for path, sha in links:
            sub = repo / path
            if not (sub / ".git").exists() or not has_commit(sub, sha):
                if missing is not None:
                    missing(sub, sha, prefix + path)
                continue
            yield sub, sha, prefix + path + "/"
            todo.append((sub, prefix + path + "/", gitlinks(sub, sha)))

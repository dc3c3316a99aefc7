"""A pin's files, each with the one URL that serves exactly its bytes (or why none does).

Read from the dataset at the pinned commit, and from each subdataset it pins (a DANDI Zarr
asset, an AIND store) at its recorded commit: the tree gives path, key and size, the
``git-annex`` branch gives the key's URLs (``.log.web``) and where its content is (``.log``:
a store of the lab's).  Per file, in this order:

1. a registered ``http(s)`` URL the URL rule calls *pinned* (an S3 ``versionId``), then one it
   calls *immutable* (a name the archive never reuses): it serves the key's bytes or nothing;
2. else, when a store of the lab's holds the key: its copy (:class:`.store_reads.StoreCopy`: the store
   and the key, read through the store), printed where it lies (a directory store's ``file://`` path of
   the object; an S3 store's public URL, else its ``s3://`` object; a packed store's pack and byte range);
3. else no URL, and why: a mutable URL only (a BOSS chunk, an unversioned bucket), an
   embargoed file (its URL needs the DANDI key, never written anywhere), or none at all.

Files kept in git (small text: sidecars, ``dandiset.yaml``, OME-Zarr metadata of BOSS
mirrors) are read from the dataset itself (:attr:`PinnedFile.blob`, ``served_by`` ``git``); their
``url`` is the archive's pinned URL of the same bytes when the sync registered one (a DANDI text
asset: on the ``git-annex`` branch, for the key ``SHA256-s<size>--<sha256>`` of its bytes), else None
(a file the mirror wrote itself, such as ``dandiset.yaml``).
Listing streams: the tree is read in batches, the logs of a batch in one ``cat-file`` round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence
from urllib.parse import urlsplit

from neuromirror import archives
from neuromirror.annex.blobmap import MISSING, blob_ids
from neuromirror.annex.contract import WEB_UUID
from neuromirror.annex.keys import git_file_key, log_path
from neuromirror.annex.logs import log_state, web_urls
from neuromirror.annex.logs import web_urls_newest_first as web_urls_newest
from neuromirror.annex.tree import version_batches
from neuromirror.read.pinned import Pin
from neuromirror.read.store_reads import StoreCopy, StoreReader, StoreReaders
from neuromirror.records import VersionFile
from neuromirror.sources.urlrule import Stability, stability
from neuromirror.store.record import BRANCH
from neuromirror.util import gitutil

#: why a file has no URL, by what its URLs are
NO_URL = "no URL is registered for it"
#: from this many logs on, a batch finds their blobs through the branch's trees, each read once (:func:`blob_ids`)
BY_TREES_MIN = 256
MUTABLE_ONLY = "only a URL that can serve other bytes tomorrow (BOSS chunk or unversioned bucket); keep it to pin it"
MARKED_GONE = "the archive no longer serves it (its URLs are marked gone on the git-annex branch) and no store holds it"
OTHER_SCHEME = "only a special remote's URL ({scheme}), not readable over plain HTTP"


@dataclass(frozen=True)
class PinnedFile:
    """One file of a pin and where to read it.

    Not a :class:`~neuromirror.records.VersionFile`: what a reader needs is the one URL chosen (or
    why none), and a reader also makes these from what no tree holds (a Zarr manifest's rows, a
    subdataset not installed); ``key`` names a file in git the way a lock file does.  A store's copy is
    held as a record (:attr:`copy`), never as a URL string to parse back: :attr:`url` prints it (asked
    of its store when printed: a packed store's index), :attr:`streamed` is what a reader reads."""

    path: str
    key: str  # the git-annex key; for a file in git, GIT-SHA256-s<size>--<sha256> as lock files name it
    size: Optional[int]
    link: Optional[str]  # the archive's URL of exactly these bytes, or None (a file in git: the archive's, if any)
    served_by: str  # "archive", "store" (its :attr:`copy`), "git" (the bytes are in the dataset), or "none"
    why: Optional[str] = None  # served_by "none": why no URL serves it
    repo: Optional[Path] = None  # the (sub)dataset holding it
    blob: Optional[str] = None  # served_by "git": the blob's object id in ``repo``
    copy: Optional[StoreCopy] = None  # a store of the lab's holds it too: its copy (the fallback)

    @property
    def url(self) -> Optional[str]:
        """The one URL that serves exactly these bytes, as ``urls`` prints it: a store's copy where it lies now."""
        if self.served_by == "store" and self.copy is not None:
            return self.copy.url
        return self.link

    @property
    def streamed(self) -> Optional[StoreCopy]:
        """The store's copy serving the file that the mirror reads itself (no client could follow a redirect
        to it: a file here, an S3 object, a pack's range); None: it is read by its URL, if any."""
        copy = self.copy
        return copy if self.served_by == "store" and copy is not None and copy.streamed else None

    def to_json(self) -> dict:
        out: dict = {"path": self.path, "url": self.url, "size": self.size, "key": self.key or None}
        out["served_by"] = self.served_by
        span = self.copy.span if self.served_by == "store" and self.copy is not None else None
        if span is not None:  # a key inside a pack: [offset, length] of the URL's object
            out["range"] = list(span)
        if self.why:
            out["why"] = self.why
        return out


def pin_files(pin: Pin, paths: Sequence[str] = ()) -> Iterator[PinnedFile]:
    """The files of ``pin`` (under ``paths``, if given: a file, a directory, or a Zarr asset's path),
    each with its URL as ``urls`` prints it (a packed copy where it lies now: :attr:`.StoreCopy.url`),
    in git's path order per repository (:func:`~neuromirror.annex.tree.version_batches`).  The stores are
    opened once for the listing, whichever (sub)datasets record them."""
    at: Optional[Path] = None
    opened = StoreReaders()
    stores: dict[str, StoreReader] = {}
    branch: Optional[str] = None
    for repo, cat, files in version_batches(pin.dataset, pin.commit, recurse=True, paths=paths):
        if cat is None:  # a subdataset that is not here
            for f in files:
                why = f"subdataset not installed at {(f.checksum or '')[:12]}"
                yield PinnedFile(f.path + "/", "", None, None, "none", why)
            continue
        if repo != at:
            at, stores, branch = repo, opened.of_repo(repo), gitutil.ref_sha(repo, BRANCH)
        yield from resolve_batch(repo, cat, branch, stores, files)


def resolve_batch(
    repo: Path, cat: gitutil.CatFile, branch: Optional[str], stores: dict[str, StoreReader], batch: list[VersionFile]
) -> Iterator[PinnedFile]:
    """Each file of ``batch`` (read from ``repo``'s tree: :func:`~neuromirror.annex.tree.files_of_blobs`)
    as a :class:`PinnedFile`: its URLs and where it is kept from the ``branch`` logs (a ref or commit of the
    ``git-annex`` branch; None: no logs)."""
    if not batch:
        return
    annexed = [f.key for f in batch if f.key]
    # a file in git: the key whose ``.log.web`` holds the archive's URLs of its bytes
    in_git = {i: git_file_key(f.checksum or "", f.size or 0) for i, f in enumerate(batch) if f.in_git}
    url_logs, loc_logs = _read_logs(cat, branch, annexed, list(in_git.values()))
    for i, f in enumerate(batch):
        if f.key is None:
            url = _stable(web_urls(url_logs.get(in_git[i])))
            yield PinnedFile(f.path, f.ident, f.size, url, "git", repo=repo, blob=f.blob)
            continue
        yield _choose(
            f.path, f.key, f.size, web_urls_newest(url_logs.get(f.key)), log_state(loc_logs.get(f.key)), stores, repo
        )


def _read_logs(
    cat: gitutil.CatFile, branch: Optional[str], annexed: list[str], in_git: list[str]
) -> tuple[dict[str, Optional[bytes]], dict[str, Optional[bytes]]]:
    """(key -> its URL log, key -> its location log) from the ``branch`` logs in one ``cat-file`` round:
    both logs of each annexed key, the URL log of each git file's key (none without a branch)."""
    url_logs: dict[str, Optional[bytes]] = {}
    loc_logs: dict[str, Optional[bytes]] = {}
    if not branch or not (annexed or in_git):
        return url_logs, loc_logs
    paths = [log_path(k, suffix) for k in annexed for suffix in (".log.web", ".log")]
    paths += [log_path(k, ".log.web") for k in in_git]
    if len(paths) < BY_TREES_MIN:
        specs = [f"{branch}:{p}" for p in paths]
    else:  # by blob id, the branch's trees read once (a Zarr directory of 10^5 chunks: 127 s by path)
        specs = [sha or MISSING for sha in blob_ids(cat, branch, paths)]
    got = list(cat.get_many(specs))
    for i, k in enumerate(annexed):
        url_logs[k], loc_logs[k] = got[2 * i], got[2 * i + 1]
    for k, data in zip(in_git, got[2 * len(annexed) :]):
        url_logs[k] = data
    return url_logs, loc_logs


def _stable(urls: Sequence[str]) -> Optional[str]:
    """The first http(s) URL the URL rule calls pinned, else immutable: it serves these bytes or nothing."""
    http = [u for u in urls if urlsplit(u).scheme in ("http", "https")]
    for wanted in (Stability.PINNED, Stability.IMMUTABLE):
        for u in http:
            if stability(u) is wanted:
                return u
    return None


def _choose(
    path: str,
    key: str,
    size: Optional[int],
    urls: Sequence[str],
    present: dict[str, bool],
    stores: dict[str, StoreReader],
    repo: Path,
) -> PinnedFile:
    http = [u for u in urls if urlsplit(u).scheme in ("http", "https")]
    kept = next((c for uid, r in stores.items() if present.get(uid) and (c := r.copy(key))), None)
    web_gone = present.get(WEB_UUID) is False  # marked: a reader or verify found its archive URLs gone
    pinned = None if web_gone else _stable(http)
    if pinned:
        return PinnedFile(path, key, size, pinned, "archive", repo=repo, copy=kept)
    if kept:
        return PinnedFile(path, key, size, None, "store", repo=repo, copy=kept)
    why = _why_none(urls, http, web_gone)
    kept_elsewhere = [r.name for u, r in stores.items() if present.get(u) and not r.readable]
    if kept_elsewhere:
        why += f"; kept in {', '.join(kept_elsewhere)}, which is not readable here"
    return PinnedFile(path, key, size, None, "none", why, repo=repo)


def _why_none(urls: Sequence[str], http: list[str], web_gone: bool) -> str:
    """Why none of a key's ``urls`` serves exactly its bytes (no stable one, and no store holds it)."""
    if http:
        return MARKED_GONE if web_gone else MUTABLE_ONLY
    for archive in archives.known().values():  # the sync's special remotes, each its archive's
        prefix, why = archive.special_remote or ("", "")
        if prefix and any(u.startswith(prefix) for u in urls):
            return why
    if urls:
        return OTHER_SCHEME.format(scheme=urlsplit(urls[0]).scheme or urls[0].split(":", 1)[0])
    return NO_URL

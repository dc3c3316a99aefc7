"""A Zarr's own DataLad dataset, nested in its parent's: made, found, committed, tagged.

A Zarr of 10^5 objects changed in place is its own dataset (a subdataset of the dataset
that holds it), so that a version of the parent pins the Zarr at one commit and a clone
fetches only the Zarrs it needs.  This module knows git, git-annex and the trailers a
Zarr dataset's commits carry (``Neuromirror-Zarr``, ``-Zarr-Checksum``, ``-Zarr-Access``),
nothing of any archive: the archive's listing and checksum are the source's
(:mod:`neuromirror.sources.dandi.zarr_listing`), the plan of a snapshot's Zarrs is
:mod:`.run`'s, one Zarr's work :mod:`.job`'s.

The Zarr's dataset is written directly, without a git or git-annex child
(:mod:`neuromirror.dataset.fast_init`: a few milliseconds, where ``git annex init`` alone took
~0.1 s), inside the parent's dataset and excluded there (``.git/info/exclude``, :func:`exclude`,
written before the jobs run) until the parent's commit registers it, so crash recovery
of the parent does not delete it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sized

from neuromirror.annex.contract import Change
from neuromirror.annex.fastimport import Turns
from neuromirror.annex.pack import BLOB, object_id
from neuromirror.annex.tree import UrlLogs, iter_version
from neuromirror.annex.writer import Delete, Put, make_writer
from neuromirror.dataset.fast_init import FirstCommit, NewDataset, fast_init
from neuromirror.dataset.light_dataset import dataset_id
from neuromirror.dataset.sparse import zarr_sparse
from neuromirror.index.trailers import format_trailers, parse_trailers
from neuromirror.records import AnnexEntry, Entry, GitEntry
from neuromirror.util import gitutil

log = logging.getLogger("neuromirror.dandi")


def head_of(zds: Path) -> Optional[str]:
    """The dataset's HEAD commit, read from its files where they say it plainly (no git child)."""
    return gitutil.head_from_files(zds)


def index_gitlinks(parent: Path, commits: dict[str, str]) -> None:
    """Where the parent's git index still has a file (a blob asset before, say), put the gitlink.

    The writer's checkout then finds the index already as the new commit has it
    instead of a file that became a directory (which git refuses to merge).  One
    ``git ls-files`` for all the paths.
    """
    if not commits:
        return
    staged = gitutil.out(parent, "ls-files", "-s", "-z", "--", *commits, check=False)
    for rec in staged.split("\0"):
        if not rec or rec.startswith("160000 ") or "\t" not in rec:
            continue
        path = rec.split("\t", 1)[1]
        if path in commits:
            gitutil.run(parent, "update-index", "--add", "--cacheinfo", f"160000,{commits[path]},{path}")


def datalad_id(zds: Path) -> Optional[str]:
    return dataset_id(zds)


def find_commit(zds: Path, zarr_id: str, checksum: str, access: str, *, head_only: bool) -> Optional[str]:
    """A commit of the Zarr's dataset recording exactly this state (HEAD only for the draft)."""
    if not (zds / ".git").exists() or not gitutil.rev_parse(zds, "HEAD"):
        return None
    if head_only:
        args = ["log", "-1", "--format=%H%x1f%B%x1e", "HEAD"]
    else:
        args = ["log", "--format=%H%x1f%B%x1e", "--fixed-strings", f"--grep={checksum}", "HEAD"]
    raw = gitutil.run(zds, *args, check=False).stdout.decode("utf-8", "replace")
    for rec in raw.split("\x1e"):
        rec = rec.strip("\n")
        if "\x1f" not in rec:
            continue
        commit, body = rec.split("\x1f", 1)
        tr = parse_trailers(body)
        if tr.get("zarr") == zarr_id and tr.get("zarr-checksum") == checksum and tr.get("zarr-access") == access:
            return commit
    return None


def _exclude_line(path: str) -> str:
    return "/" + re.sub(r"([\\*?\[\]!# ])", r"\\\1", path)


def exclude(parent: Path, paths: list[str]) -> None:
    """Keep not-yet-registered Zarr datasets out of the parent's status (and its crash recovery)."""
    exclude = parent / ".git" / "info" / "exclude"
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    have = set(lines)
    new = []
    for path in paths:
        line = _exclude_line(path)
        if line not in have:
            have.add(line)
            new.append(line)
    if new:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as fh:
            fh.write(("\n" if lines and lines[-1] else "") + "\n".join(new) + "\n")


def excluded(parent: Path) -> set[str]:
    """The paths :func:`exclude` listed and :func:`unexclude` has not taken out yet."""
    try:
        text = (parent / ".git" / "info" / "exclude").read_text()
    except OSError:
        return set()
    return {re.sub(r"\\(.)", r"\1", line[1:]) for line in text.splitlines() if line.startswith("/")}


def unexclude(parent: Path, paths: set[str]) -> None:
    """Take the lines of ``paths`` (registered in the parent's commit now) out of its exclude file.

    git matches every directory of the work tree against every line of that file: left
    there, 20,000 lines made each ``git status`` of a dandiset of 20,000 Zarrs take ~15 s.
    Written beside and renamed in, so that a crash leaves the old file or the new one.
    """
    path = parent / ".git" / "info" / "exclude"
    if not paths or not path.exists():
        return
    gone = {_exclude_line(p) for p in paths}
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line not in gone]
    if len(kept) == len(lines):
        return
    if not kept:  # made by exclude() for these lines alone: an empty file left behind was removed by every
        path.unlink()  # maintain as git's leftover and written again by the next sync (issue 59)
        return
    tmp = path.with_name(path.name + ".neuromirror-tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def removed_gitlinks(parent: Path) -> list[str]:
    """The gitlinks the parent's last commit deleted (one ``diff-tree``)."""
    out = gitutil.run(parent, "diff-tree", "-r", "-z", "--no-commit-id", "--diff-filter=D", "HEAD", check=False)
    fields = out.stdout.decode("utf-8", "surrogateescape").split("\0")
    return [path for meta, path in zip(fields[::2], fields[1::2]) if meta.startswith(":160000 ")]


def assume_unchanged(parent: Path, paths: set[str]) -> None:
    """Mark the gitlinks at ``paths`` in the parent's index as assumed unchanged (one process).

    Refreshing the index — every ``git status``, ``--ignore-submodules=all`` or not —
    opens each gitlink's repository to read its HEAD (~40 system calls each): 1.3 s for
    5,000 Zarr subdatasets, ~5 s for 20,000, at every sync's crash check.  A marked entry
    is taken as it is; the mirror moves a gitlink only by committing the parent, which
    writes the entry anew (the mark stays on the entries a checkout keeps).  A Zarr
    dataset moved behind the mirror's back was already ignored by that check.
    """
    if not paths:
        return
    data = "".join(p + "\0" for p in sorted(paths)).encode("utf-8", "surrogateescape")
    gitutil.run(parent, "update-index", "--assume-unchanged", "-z", "--stdin", input=data, check=False)


#: a new Zarr of at most this many objects gets its first commit written with its dataset
#: (:class:`FirstCommit`, no child process); a larger one through the annex writer, whose
#: fast-import and parallel checkout beat Python for thousands of files checked out
DIRECT_MAX = 1000
#: the same where the dataset is sparse on the host (the default, :mod:`neuromirror.dataset.sparse`):
#: no checkout to win, and fast-import's stream cost more CPU than the pack written here (a cold
#: 40 x 5,000-object dandiset in worker processes: 66 -> 62 us of CPU an object); bounded, as the
#: pack is held in memory (``NEUROMIRROR_ZARR_DIRECT_MAX``)
SPARSE_DIRECT_MAX = int(os.environ.get("NEUROMIRROR_ZARR_DIRECT_MAX") or 20_000)


def direct_max() -> int:
    """The most objects a new Zarr's first commit is written with its dataset for (see above)."""
    return SPARSE_DIRECT_MAX if zarr_sparse() else DIRECT_MAX


def ensure_zarr_dataset(zds: Path, description: str, first: Optional[FirstCommit] = None) -> Optional[NewDataset]:
    """The Zarr's dataset at ``zds``, created (MD5E keys) if needed: what was made, None if it existed.

    Written directly (:func:`neuromirror.dataset.fast_init.fast_init`: no child process,
    a few ms, where ``git annex init`` took ~0.1 s and a ``datalad create`` child ~3 s),
    with ``first`` as its first commit if given (unless a path of it is not one
    ``fast_init`` writes: then without, and the caller commits), beside its place and
    moved in, so that an interrupted creation never looks like a dataset.  Only its top level
    is checked out on the mirror host (:mod:`neuromirror.dataset.sparse`) unless
    ``NEUROMIRROR_ZARR_CHECKOUT=full``.
    """
    if _complete(zds):
        return None
    if zds.exists() or zds.is_symlink():
        _clear_debris(zds)
    zds.parent.mkdir(parents=True, exist_ok=True)
    sparse = zarr_sparse()
    for attempt in (first, None) if first is not None else (None,):
        tmp = Path(tempfile.mkdtemp(prefix=".neuromirror-new-", dir=zds.parent))
        try:
            made = fast_init(
                tmp,
                description=description,
                attributes=["* annex.backend=MD5E"],
                message="[neuromirror] new Zarr dataset (MD5E keys: S3 ETags)",
                first=attempt,
                sparse=sparse,
            )
            os.rename(tmp, zds)
            return made
        except ValueError as exc:
            if attempt is None:
                raise
            log.info("Zarr dataset %s: first commit through the annex writer (%s)", zds, exc)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    raise AssertionError("unreachable")


def _complete(zds: Path) -> bool:
    """Whether ``zds`` is a whole Zarr dataset: a repository with its id (.datalad/config, or .git/config
    where the work tree leaves .datalad/ out), a commit, and MD5E keys."""
    return bool(
        (zds / ".git").is_dir()
        and dataset_id(zds)
        and head_of(zds)
        and "* annex.backend=MD5E" in _read(zds / ".gitattributes")
    )


def _clear_debris(zds: Path) -> None:
    """Remove what stands at ``zds``: the debris of an interrupted creation (no mirror commit yet), or
    a file the archive replaced; a repository with mirror commits is never removed (an error instead)."""
    if (zds / ".git").exists() and gitutil.out(
        zds, "log", "-1", "--format=%H", "--grep=^Neuromirror-Zarr: ", check=False
    ):
        raise RuntimeError(f"{zds} holds mirror commits but is not a complete dataset: inspect it by hand")
    if zds.is_dir() and not zds.is_symlink():
        shutil.rmtree(zds)
    else:
        zds.unlink()


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except OSError:
        return ""


def tag(zds: Path, name: str, commit: str, message: str, date: datetime) -> None:
    """The parent version's tag, on the Zarr's dataset too (left alone if it names another commit)."""
    existing = gitutil.ref_sha(zds, f"refs/tags/{name}^{{commit}}")
    if existing is None:
        make_writer("fast-import", zds).tag(name, commit, message, date)
    elif existing != commit:
        log.warning("Zarr dataset %s: tag %s already names %s, not %s", zds, name, existing[:10], commit[:10])


def had_embargoed_state(zds: Path) -> bool:
    if not gitutil.rev_parse(zds, "HEAD"):
        return False
    return bool(gitutil.out(zds, "log", "-1", "--format=%H", "--grep=^Neuromirror-Zarr-Access: embargoed", check=False))


def head_state(zds: Path) -> tuple[dict[str, tuple[Optional[str], frozenset[str]]], dict[str, str]]:
    """path -> (key, URLs registered for the key) of the annexed files at HEAD, and path -> blob id
    of the files in git.

    One ``ls-tree`` and pipelined ``cat-file`` passes (:func:`~neuromirror.annex.tree.iter_version`:
    blobs, then the keys' URL logs by blob id): a Zarr of 5,000 objects changed in 3 costs ~0.3 s
    here, where a round trip per object cost 4 s on a busy machine.
    """
    annexed: dict[str, tuple[Optional[str], frozenset[str]]] = {}
    blobs: dict[str, str] = {}
    for f in iter_version(zds, "HEAD", urls=UrlLogs(zds, by_blob=True)):
        if f.key:
            annexed[f.path] = (f.key, frozenset(f.urls))
        elif f.blob:
            blobs[f.path] = f.blob
    return annexed, blobs


def commit_message(subject: str, trailers: Mapping[str, str], added: int, removed: int = 0, changed: int = 0) -> str:
    """``[neuromirror] <subject>: N added, N removed, N changed`` and the trailers."""
    head = f"[neuromirror] {subject}: {added} added, {removed} removed, {changed} changed"
    return head + "\n\n" + format_trailers(trailers)


def commit(
    zds: Path,
    entries: Iterable[Entry],
    *,
    subject: str,
    trailers: Mapping[str, str],
    date: datetime,
    url_remotes: Mapping[str, str],
    fresh: bool = False,
    count: Optional[int] = None,
    turns: Optional[Turns] = None,
) -> str:
    """Commit ``entries`` as the Zarr dataset's whole tree: only what changed since HEAD reaches git.

    The message is ``[neuromirror] <subject>: N added, N removed, N changed`` and the
    ``trailers`` (:func:`find_commit` looks for ``Neuromirror-Zarr``, ``-Zarr-Checksum``
    and ``-Zarr-Access``); ``url_remotes`` as the writer takes them (special remotes).
    ``fresh``: the dataset was created just now and holds no file of its own (its HEAD is not
    read): the entries are streamed to the writer, never held — ``count`` of them (default
    ``len(entries)``), for the message.  ``turns``: a large commit takes turns with the
    process's other large commits (:class:`~neuromirror.annex.fastimport.Turns`).
    """
    engine = os.environ.get("NEUROMIRROR_ENGINE", "fast-import")
    writer = make_writer(engine, zds, url_remotes=url_remotes, turns=turns)
    if fresh:
        if count is None:
            if not isinstance(entries, Sized):
                raise TypeError("a fresh commit of a stream of entries needs their count")
            count = len(entries)
        message = commit_message(subject, trailers, count)
        return writer.commit((Put(e) for e in entries), message=message, date=date).commit
    changes, added, removed, changed = _changes(zds, entries)
    message = commit_message(subject, trailers, added, removed, changed)
    return writer.commit(iter(changes), message=message, date=date).commit


def _changes(zds: Path, entries: Iterable[Entry]) -> tuple[list[Change], int, int, int]:
    """What differs from HEAD: annexed files by key and URLs, files in git by their blob."""
    annexed, blobs = head_state(zds)
    changes: list[Change] = []
    added = changed = 0
    seen: set[str] = set()
    for e in entries:
        seen.add(e.path)
        if isinstance(e, AnnexEntry):
            old = annexed.get(e.path)
            if old is not None and old[0] == e.key and set(e.urls) <= old[1]:
                continue
            is_new = old is None and e.path not in blobs
        elif isinstance(e, GitEntry):
            sha = blobs.get(e.path)
            if sha is not None and sha == object_id(BLOB, e.read()).hex():
                continue
            is_new = sha is None and e.path not in annexed
        else:
            raise TypeError(f"a Zarr dataset holds files, not {type(e).__name__} ({e.path})")
        added += is_new
        changed += not is_new
        changes.append(Put(e))
    # the dataset's own plumbing (.gitattributes, .datalad/) is no file of the Zarr
    gone = sorted(
        p
        for p in (set(annexed) | set(blobs)) - seen
        if p not in (".gitattributes", ".gitmodules") and not p.startswith(".datalad/")
    )
    changes += [Delete(p) for p in gone]
    return changes, added, len(gone), changed

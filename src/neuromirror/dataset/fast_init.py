"""A DataLad dataset written directly, in a few milliseconds and no child process.

A dandiset with tens of thousands of Zarr assets makes one dataset per Zarr (issue 25).
:mod:`.light_dataset` makes one with ``git init``, ``git config``, ``git annex init``,
``git add`` and ``git commit``: ~0.13 s of wall and ~0.2 s of CPU per Zarr, three
quarters of it ``git annex init``, and most of a cold mirror of such a dandiset.

What those commands leave behind is small and documented, so this module writes it:

* the git repository: ``HEAD``, ``config``, the objects (one pack, :mod:`.gitobjects`:
  the blobs, trees and commit of ``.gitattributes``, ``.datalad/config`` and
  ``.datalad/.gitattributes``), ``packed-refs`` (the branch and ``git-annex``), and
  ``index`` matching the checked-out files (stat data included, so git sees a clean work tree);
* git-annex: ``annex.uuid`` (a new uuid per dataset) and ``annex.version`` and whatever
  else ``git annex init`` configured in ``.git/config``, and the ``git-annex`` branch holding
  ``uuid.log`` (the uuid and its description); git-annex makes ``.git/annex/`` and builds its
  branch index there the first time it runs, as it does after any commit made behind its back;

and nothing else (issue 52: the disk's metadata rate, not the bytes, set a cold mirror's pace).
The mirror's datasets are written only by neuromirror, so they carry no hooks (neither git's
samples nor git-annex's: those serve a person committing, merging or pushing in them), no
``description``, ``info/exclude`` or ``logs/``; and no ``info/attributes``: ``git annex init``
puts ``* filter=annex`` there for files a person ``git add``s, which a mirror has none of (see
:meth:`~neuromirror.annex.contract.AnnexWriter.quiet_annex_filter`).  A clone is a normal
dataset: git and git-annex give it all of these as they make it.
* DataLad: ``.datalad/config`` with a new ``datalad.dataset.id``, and the
  ``.gitattributes`` lines ``datalad create`` writes (:mod:`.light_dataset`'s).

What ``git init`` and ``git annex init`` would write *on this file system with these
versions* is not guessed: a real ``git init`` + ``git annex init`` runs once per process
and device into a template next to the new datasets (:func:`template`), and each dataset
copies its ``.git/config`` (uuid replaced) and ``HEAD``.  A crippled file system's
``annex.crippledfilesystem``, a newer ``annex.version``, another ``init.defaultBranch``:
all carried over.  ``git annex whereis/info/fsck/get`` and ``datalad clone``/``get -r``
work in such a dataset unchanged (tests/test_zarr_many.py runs them).

A new dataset's first mirror commit can be written with it (:class:`FirstCommit`: annexed
files only, their location and URL logs on the git-annex branch, in the layout the
fast-import writer uses), so that a new Zarr of a few objects costs no child process at
all; larger ones and later commits go through the annex writer.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

from neuromirror.annex.branch_logs import uuid_log_with
from neuromirror.annex.contract import WEB_UUID, epoch, log_stamp
from neuromirror.annex.keys import hashdir_lower, key_file, symlink_target, url_for_log
from neuromirror.annex.logs import add_present
from neuromirror.dataset import sparse as sparse_checkout
from neuromirror.dataset.gitobjects import BLOB, COMMIT, FILE, LINK, ObjectPack, index_file
from neuromirror.dataset.light_dataset import DATALAD_ATTRIBUTES, LOCKED_ONLY, TOP_ATTRIBUTES
from neuromirror.records import AnnexEntry
from neuromirror.util import gitutil
from neuromirror.util.paths import check_path

_UUID_PLACEHOLDER = "@NEUROMIRROR-ANNEX-UUID@"
_TEMPLATE_PREFIX = ".neuromirror-template-"
#: the directories a new dataset's ``.git`` has: git needs ``objects/`` and ``refs/`` to see a repository;
#: no hooks (nothing but neuromirror writes here), no ``annex/`` (git-annex makes it when it first runs)
SKELETON_DIRS = ("objects/pack", "refs")
#: no reflogs (``.git/logs/``: 3 directories and a file per branch): they serve a person undoing a ref move;
#: the mirror's history is its commits and tags, and a rerun after a crash converges without them
_REFLOGS = re.compile(r"(?im)^(\s*logallrefupdates\s*=\s*).*$")


def _without_reflogs(config: str) -> str:
    """``git init``'s config with ``core.logAllRefUpdates = false`` (in place: one value, as ``git config`` sets it)."""
    if _REFLOGS.search(config):
        return _REFLOGS.sub(lambda m: m.group(1) + "false", config)
    return config + "[core]\n\tlogallrefupdates = false\n"


#: ``git pack-refs``' first line: the refs below are sorted and hold no annotated tag
PACKED_REFS_HEADER = "# pack-refs with: peeled fully-peeled sorted \n"


@dataclass(frozen=True)
class Template:
    """What ``git init`` + ``git annex init`` wrote in a repository on this device."""

    config: str  # .git/config, its annex.uuid value replaced by a placeholder
    head: str  # .git/HEAD ("ref: refs/heads/<branch>\n")

    @property
    def branch_ref(self) -> str:
        return self.head.split(":", 1)[1].strip() if self.head.startswith("ref:") else "refs/heads/master"


_templates: dict[int, Template] = {}
_lock = threading.Lock()


def template(near: Path) -> Template:
    """The template for datasets made in ``near`` (a directory), made once per process and device."""
    dev = os.stat(near).st_dev
    with _lock:
        if dev not in _templates:
            _templates[dev] = _make_template(near)
        return _templates[dev]


def _template_home(near: Path) -> Path:
    """Where the template is made: the enclosing dataset's ``.git`` (same device, and never in a work
    tree, where a crash would leave it as an untracked directory), else ``near`` itself.  Templates
    a killed process left there over an hour ago are removed."""
    home = near
    for d in (near, *near.parents):
        if (d / ".git").is_dir():
            home = d / ".git"
            break
    for old in home.glob(f"{_TEMPLATE_PREFIX}*"):
        try:
            if time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return home


def _make_template(near: Path) -> Template:
    tmp = Path(tempfile.mkdtemp(prefix=_TEMPLATE_PREFIX, dir=_template_home(near)))
    try:
        gitutil.run(tmp, "init", "-q")
        gitutil.run(tmp, "config", LOCKED_ONLY[0], LOCKED_ONLY[1])  # before init: see LOCKED_ONLY
        gitutil.run(tmp, "annex", "init", "-q", "--", "neuromirror template")
        git = tmp / ".git"
        annex_uuid = gitutil.config_file_value(git / "config", "annex", "uuid")
        config = (git / "config").read_text()
        if not annex_uuid or config.count(annex_uuid) != 1:
            raise RuntimeError(f"git annex init wrote an unexpected .git/config in {tmp}")
        return Template(
            config=_without_reflogs(config).replace(annex_uuid, _UUID_PLACEHOLDER),
            head=(git / "HEAD").read_text(),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class FirstCommit:
    """The mirror's first commit, on top of the creation commit: annexed files, all new.

    Each key is recorded present in the web remote with its URLs (``.log``, ``.log.web``),
    as the annex writer records a key whose URLs no special remote claims.
    """

    entries: Sequence[AnnexEntry]
    message: str  # exactly as the commit carries it
    date: datetime  # author and committer date


@dataclass(frozen=True)
class NewDataset:
    """What :func:`fast_init` made: the ids a caller records, and the commit the branch holds."""

    dataset_id: str
    annex_uuid: str
    commit: str  # HEAD: the first commit's when one was asked for, else the creation commit
    created: str  # the creation commit


def _commit(pack: ObjectPack, tree: bytes, parent: Optional[str], message: bytes, stamp: str) -> str:
    who = f"{gitutil.COMMITTER} {stamp}"
    lines = f"tree {tree.hex()}\n" + (f"parent {parent}\n" if parent else "")
    return pack.add(COMMIT, f"{lines}author {who}\ncommitter {who}\n\n".encode() + message).hex()


def _add_links(
    pack: ObjectPack, tree: dict[str, tuple[bytes, bytes]], links: dict[str, str], entries: Sequence[AnnexEntry]
) -> dict[str, list[str]]:
    """The first commit's annexed files as symbolic links: each added to ``tree`` (its blob to
    ``pack``) and its target to ``links``; the URLs of each key, as its web log records them.
    Raises ValueError for a path fast_init does not write."""
    urls: dict[str, list[str]] = {}
    for e in entries:
        reason = check_path(e.path, (".gitattributes", ".gitmodules"))
        if reason or e.path.startswith(".datalad/") or e.path in links:
            raise ValueError(f"{e.path!r}: {reason or 'not written by fast_init'}")
        links[e.path] = symlink_target(e.path, e.key)
        acc = urls.setdefault(e.key, [])
        for u in e.urls:
            if u not in acc:
                acc.append(url_for_log(u))
        tree[e.path] = (LINK, pack.add(BLOB, links[e.path].encode("utf-8", "surrogateescape")))
    return urls


def _add_web_logs(
    pack: ObjectPack, logs: dict[str, tuple[bytes, bytes]], urls: dict[str, list[str]], now: float
) -> None:
    """Each key present in the web remote with its URLs: its ``.log`` and ``.log.web`` on the
    git-annex branch (``logs``), as the annex writer records a key no special remote claims."""
    ts = log_stamp(now)
    for key, key_urls in urls.items():
        base = hashdir_lower(key) + key_file(key)
        for name, values in ((".log", [WEB_UUID] if key_urls else []), (".log.web", key_urls)):
            data = add_present(None, ts, values)
            if data is not None:
                logs[base + name] = (FILE, pack.add(BLOB, data))


def _write_git_dir(git: Path, tpl: Template, pack: ObjectPack, *, sparse: bool, annex_uuid: str, ds_id: str) -> None:
    """The repository's own files: its skeleton, the objects, config with the annex uuid (and the sparse
    checkout's settings when asked), HEAD."""
    for sub in SKELETON_DIRS:
        (git / sub).mkdir(parents=True, exist_ok=True)
    pack.write(git)
    config = tpl.config.replace(_UUID_PLACEHOLDER, annex_uuid)
    if sparse:  # .datalad/ stays in git: DataLad reads the id from .git/config too (its local scope)
        config += sparse_checkout.CONFIG + f'[datalad "dataset"]\n\tid = {ds_id}\n'
        (git / "info").mkdir()
        (git / "info" / "sparse-checkout").write_text(sparse_checkout.PATTERNS)
    (git / "config").write_text(config)
    (git / "HEAD").write_text(tpl.head)


def _check_out(path: Path, files: dict[str, bytes], links: dict[str, str], sparse: bool) -> None:
    """The work tree: the dataset's files and annexed links, only those a sparse checkout keeps."""
    checked_out = sparse_checkout.checked_out if sparse else (lambda rel: True)
    if not sparse:
        (path / ".datalad").mkdir(exist_ok=True)
    for rel, data in files.items():
        if checked_out(rel):
            (path / rel).write_bytes(data)
    made: set[Path] = set()
    for rel, target in links.items():
        if not checked_out(rel):
            continue
        dest = path / rel
        if dest.parent not in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made.add(dest.parent)
        os.symlink(target, dest)


def fast_init(
    path: Path,
    *,
    description: str,
    attributes: Sequence[str] = (),
    message: str,
    first: Optional[FirstCommit] = None,
    sparse: bool = False,
) -> NewDataset:
    """Make ``path`` (absent or an empty directory) a committed DataLad dataset with git-annex.

    The dataset ``git init``, ``git annex init`` and ``datalad create``'s files would make, written directly (see the
    module).  ``attributes`` are further ``.gitattributes`` lines; ``description`` is the
    git-annex description of the new repository (``git annex info`` shows it); ``first``,
    a first commit on top; ``sparse``, git's sparse checkout of a Zarr's top-level files with a
    sparse index (:mod:`.sparse`: one index entry per top-level directory, none per chunk).  Not
    atomic: callers make it beside its place and rename it in.
    Raises ValueError for a path of ``first`` that it does not write (nothing is valid then).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tpl = template(path.parent)
    annex_uuid, ds_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = time.time()
    pack = ObjectPack()
    lines = [*TOP_ATTRIBUTES, *(a for a in attributes if a not in TOP_ATTRIBUTES)]
    files: dict[str, bytes] = {
        ".gitattributes": ("\n".join(lines) + "\n").encode(),
        ".datalad/config": f'[datalad "dataset"]\n\tid = {ds_id}\n'.encode(),
        ".datalad/.gitattributes": DATALAD_ATTRIBUTES.encode(),
    }
    tree = {rel: (FILE, pack.add(BLOB, data)) for rel, data in files.items()}
    created_tree, tops = pack.root_of(tree)
    created = _commit(pack, created_tree, None, message.rstrip().encode() + b"\n", f"{int(now)} +0000")
    head = created
    # git-annex's branch: the new repository's uuid and description (git-annex's uuid.log line)
    desc = " ".join(description.split()) or "neuromirror"
    logs: dict[str, tuple[bytes, bytes]] = {
        "uuid.log": (FILE, pack.add(BLOB, uuid_log_with(None, annex_uuid, desc, now) or b""))
    }
    links: dict[str, str] = {}
    if first is not None:
        urls = _add_links(pack, tree, links, first.entries)
        _add_web_logs(pack, logs, urls, now)
        stamp = f"{epoch(first.date)} +0000"
        head_tree, tops = pack.root_of(tree)
        head = _commit(pack, head_tree, created, first.message.encode(), stamp)
    annex_commit = _commit(pack, pack.tree_of(logs), None, b"update\n", f"{int(now)} +0000")

    git = path / ".git"
    _write_git_dir(git, tpl, pack, sparse=sparse, annex_uuid=annex_uuid, ds_id=ds_id)
    refs = sorted({tpl.branch_ref: head, "refs/heads/git-annex": annex_commit}.items())
    (git / "packed-refs").write_text(PACKED_REFS_HEADER + "".join(f"{sha} {ref}\n" for ref, sha in refs))
    _check_out(path, files, links, sparse)
    rows = [(rel, mode, sha) for rel, (mode, sha) in tree.items()]
    (git / "index").write_bytes(index_file(path, rows, sparse_dirs=tops if sparse else None))
    return NewDataset(ds_id, annex_uuid, head, created)

"""One dataset into a RIA store, by id: created whole or updated in place, never visible half-made.

Order, so that a publish killed at any point (SIGKILL) leaves nothing a clone could trip on and a
rerun converges:

* a **new** dataset is built in a hidden temp directory beside its final place
  (``<id[:3]>/.<id[3:]>.tmp-PID``): bare repository, ``ria-layout-version``, kept objects, the
  push, ``git update-server-info`` — and only then renamed to ``<id[:3]>/<id[3:]>``; a leftover
  temp directory is removed by the next publish of that id;
* an **existing** dataset gets its objects first, then the refs (a git push updates each ref only
  once its objects are in), then ``info/refs`` for dumb HTTP clients;
* the caller moves the alias only after this returned.

"Unchanged" is decided from the store's files alone (:func:`neuromirror.publish.ria.layout.read_refs`,
``info/refs``, the objects' paths): a second publish with nothing new runs no git command in the
store and writes nothing.  The mirror's side is read from files too (:func:`refs_from_files`), so
an unchanged dataset without kept content costs no git child at all (:func:`unchanged`): a
dandiset of 1,000 Zarr datasets is checked in well under a second.

A new dataset without tags is made without git children (:func:`_copy_create`; the cold publish
of a dandiset with many Zarrs is dominated by them otherwise, ~130 ms per dataset): the bare
repository's few files written by hand, the mirror dataset's pack files and loose objects hard-linked
(copied across file systems; git never changes an object file in place), ``packed-refs``,
``info/refs`` and ``objects/info/packs`` written as ``git pack-refs`` and ``git update-server-info``
write them.  This publishes the dataset's whole object store, unreachable objects included: a Zarr
dataset's objects are its own history, nothing else.  Datasets with tags (annotated tags need
their peeled lines) or alternates are pushed with git.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from neuromirror.errors import NeuromirrorError
from neuromirror.publish.ria.kept import missing_objects, ora_config_ok, put_objects
from neuromirror.publish.ria.layout import DATASET_VERSION, RiaStore, head_ref, read_refs, served_refs
from neuromirror.util import gitutil
from neuromirror.util.crashpoints import crashpoint


class RiaPushError(NeuromirrorError, RuntimeError):
    """The push into the store failed or was refused; one line says why."""


@dataclass
class Wanted:
    """What the store must hold for one dataset: refs (name -> sha) and its HEAD branch."""

    repo: Path
    dsid: str
    head: str  # refs/heads/<branch>
    refs: dict[str, str]
    objects: dict[str, Path] = field(default_factory=dict)  # kept content: key -> file in the lab's store
    ora_uuid: Optional[str] = None


def wanted_refs(repo: Path) -> tuple[str, dict[str, str]]:
    """The current branch, every tag and the git-annex branch of a mirror dataset."""
    branch = gitutil.out(repo, "symbolic-ref", "-q", "HEAD", check=False)
    if not branch.startswith("refs/heads/"):
        raise RiaPushError(f"{repo}: HEAD is not on a branch")
    out = gitutil.out(repo, "for-each-ref", "--format=%(objectname) %(refname)", branch, "refs/tags")
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition(" ")
        refs[name] = sha
    annex = gitutil.ref_sha(repo, "refs/heads/git-annex")
    if annex:
        refs["refs/heads/git-annex"] = annex
    return branch, refs


def refs_from_files(repo: Path) -> Optional[tuple[str, dict[str, str]]]:
    """:func:`wanted_refs` read from the git directory's files (no git child); None when git must say."""
    gd = gitutil.git_dir(repo)
    branch = head_ref(gd) if gd is not None else None
    if gd is None or not branch or not branch.startswith("refs/heads/"):
        return None
    refs = {
        r: sha
        for r, sha in read_refs(gd).items()
        if r == branch or r == "refs/heads/git-annex" or r.startswith("refs/tags/")
    }
    return (branch, refs) if branch in refs else None


def unchanged(store: RiaStore, dsid: str, head: str, refs: dict[str, str]) -> bool:
    """The store's copy has exactly ``refs`` and serves them, and holds no kept content (whose objects and
    ORA remote are checked the long way, :func:`is_current`): nothing to do, decided from files only."""
    d = store.dataset_dir(dsid)
    if not (d / "HEAD").is_file() or not (d / "ria-layout-version").is_file() or head_ref(d) != head:
        return False
    if gitutil.config_file_value(d / "config", 'datalad"ora-remote"', "uuid"):
        return False
    have = read_refs(d)
    if any(have.get(r) != sha for r, sha in refs.items()):
        return False
    served = served_refs(d)
    return all(served.get(r) == sha for r, sha in have.items())


def is_current(d: Path, want: Wanted) -> bool:
    """The store's copy holds exactly what ``want`` says, and serves it: read from files only."""
    if not (d / "ria-layout-version").is_file() or head_ref(d) != want.head:
        return False
    have = read_refs(d)
    if any(have.get(r) != s for r, s in want.refs.items()):
        return False
    served = served_refs(d)
    if any(served.get(r) != s for r, s in have.items()):
        return False
    return not missing_objects(d, want.objects) and ora_config_ok(d, want.ora_uuid)


def put(store: RiaStore, want: Wanted, *, force: bool = False) -> tuple[bool, list[str]]:
    """Make the store's copy of ``want.dsid`` current; (created, refs updated)."""
    final = store.dataset_dir(want.dsid)
    if (final / "HEAD").is_file():
        if is_current(final, want):
            return False, []
        before = read_refs(final)
        put_objects(final, want.objects)
        _prepare(final, want)
        _push(want, final, force)
        crashpoint("publish-ria:pushed")
        gitutil.run(final, "update-server-info")
        return False, changed(before, want.refs)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # a killed publish's; we hold the source's lock
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    source = gitutil.git_dir(want.repo)
    copied = source is not None and _copyable(source, want)
    if source is not None and copied:
        _copy_create(source, tmp, want)
    else:
        proc = gitutil.run(final.parent, "init", "-q", "--bare", str(tmp), check=False)
        if proc.returncode != 0:
            raise RiaPushError(
                f"cannot create a bare repository at {tmp}: {proc.stderr.decode(errors='replace').strip()}"
            )
        (tmp / "hooks" / "post-update.sample").unlink(missing_ok=True)
    (tmp / "ria-layout-version").write_text(DATASET_VERSION)
    (tmp / "annex" / "objects").mkdir(parents=True, exist_ok=True)
    (tmp / "archives").mkdir(exist_ok=True)
    put_objects(tmp, want.objects)
    _prepare(tmp, want)
    if not copied:
        _push(want, tmp, force)
        gitutil.run(tmp, "update-server-info")
    crashpoint("publish-ria:before-rename")
    tmp.rename(final)
    return True, sorted(label(r) for r in want.refs)


def _copyable(source: Path, want: Wanted) -> bool:
    """Whether the mirror dataset's object store can be linked whole: complete (no alternates, not
    shallow), no tags (whose peeled lines ``info/refs`` needs: git writes those), and what is published
    is the dataset's own refs — not a filtered commit (the root, :mod:`.root`), whose point is
    that the rest of the repository's objects stay out of the store."""
    if any(r.startswith("refs/tags/") for r in want.refs):
        return False
    own = refs_from_files(want.repo)
    if own is None or own != (want.head, want.refs):
        return False
    return not (source / "objects" / "info" / "alternates").exists() and not (source / "shallow").exists()


def _copy_create(source: Path, d: Path, want: Wanted) -> None:
    """A bare repository at ``d`` holding ``want.refs``, with no git child (see the module)."""
    for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags", "info"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "HEAD").write_text(f"ref: {want.head}\n")
    (d / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n")
    packs = []
    for entry in os.scandir(source / "objects"):
        if len(entry.name) == 2 and entry.is_dir():
            _link_loose(Path(entry.path), d / "objects" / entry.name)
        elif entry.name == "pack" and entry.is_dir():
            packs += _link_packs(Path(entry.path), d / "objects" / "pack")
    lines = sorted((ref, sha) for ref, sha in want.refs.items())
    (d / "packed-refs").write_text(
        "# pack-refs with: peeled fully-peeled sorted \n" + "".join(f"{sha} {ref}\n" for ref, sha in lines)
    )
    (d / "info" / "refs").write_text("".join(f"{sha}\t{ref}\n" for ref, sha in lines))
    (d / "objects" / "info" / "packs").write_text("".join(f"P {name}\n" for name in sorted(packs)) + "\n")


def _link_loose(src: Path, dest: Path) -> None:
    """One fan-out directory's loose objects linked into ``dest`` (a temporary file git left is not one)."""
    dest.mkdir(exist_ok=True)
    for obj in os.scandir(src):
        if len(obj.name) == 38 and not obj.name.startswith("."):
            _link(Path(obj.path), dest / obj.name)


def _link_packs(src: Path, dest: Path) -> list[str]:
    """The packs and their indexes linked into ``dest``; the names of the packs, for ``objects/info/packs``."""
    packs = []
    for f in os.scandir(src):
        if f.name.startswith("pack-") and f.name.endswith((".pack", ".idx", ".rev", ".bitmap")):
            _link(Path(f.path), dest / f.name)
            if f.name.endswith(".pack"):
                packs.append(f.name)
    return packs


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copyfile(src, dst)


def _prepare(d: Path, want: Wanted) -> None:
    if head_ref(d) != want.head:
        gitutil.run(d, "symbolic-ref", "HEAD", want.head)
    if not (d / "ria-layout-version").is_file():
        (d / "ria-layout-version").write_text(DATASET_VERSION)
    if not ora_config_ok(d, want.ora_uuid) and want.ora_uuid:
        gitutil.run(d, "config", "--file", str(d / "config"), "datalad.ora-remote.uuid", want.ora_uuid)


def _push(want: Wanted, target: Path, force: bool) -> None:
    push_refs(want.repo, str(target), want.refs, force)
    have = read_refs(target)
    wrong = [r for r, s in want.refs.items() if have.get(r) != s]
    if wrong:
        raise RiaPushError(f"{target} does not hold {', '.join(wrong)} after the push")


def push_refs(repo: Path, target: str, refs: dict[str, str], force: bool) -> None:
    """``git push`` of ``refs`` (by sha) from ``repo`` to ``target`` (a path, or an ``ssh://`` URL); a refused
    ref (the store has commits the mirror lacks) or a failed push is one line."""
    plus = "+" if force else ""
    specs = [f"{plus}{sha}:{ref}" for ref, sha in sorted(refs.items())]
    pushed = gitutil.push(repo, target, specs)
    if pushed.rejected:
        raise RiaPushError(
            f"{target} refused {', '.join(pushed.rejected)}: the store has commits the mirror lacks; "
            "check it, or overwrite with --force"
        )
    if pushed.error is not None:
        raise RiaPushError(f"git push to {target} failed: {pushed.error}")


def changed(before: dict[str, str], refs: dict[str, str]) -> list[str]:
    return sorted(label(r) for r, s in refs.items() if before.get(r) != s)


label = gitutil.ref_label

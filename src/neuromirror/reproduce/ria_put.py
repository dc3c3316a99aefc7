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

"Unchanged" is decided from the store's files alone (:func:`neuromirror.reproduce.ria.read_refs`,
``info/refs``, the objects' paths): a second publish with nothing new runs no git command in the
store and writes nothing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from neuromirror.reproduce.ria import DATASET_VERSION, RiaStore, head_ref, read_refs, served_refs
from neuromirror.reproduce.ria_kept import missing_objects, ora_config_ok, put_objects
from neuromirror.util import gitutil
from neuromirror.util.crashpoints import crashpoint


class RiaPushError(RuntimeError):
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
        return False, _changed(before, want.refs)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # a killed publish's; we hold the source's lock
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    proc = gitutil.run(final.parent, "init", "-q", "--bare", str(tmp), check=False)
    if proc.returncode != 0:
        raise RiaPushError(f"cannot create a bare repository at {tmp}: {proc.stderr.decode(errors='replace').strip()}")
    (tmp / "ria-layout-version").write_text(DATASET_VERSION)
    (tmp / "annex" / "objects").mkdir(parents=True, exist_ok=True)
    (tmp / "archives").mkdir(exist_ok=True)
    (tmp / "hooks" / "post-update.sample").unlink(missing_ok=True)
    put_objects(tmp, want.objects)
    _prepare(tmp, want)
    _push(want, tmp, force)
    gitutil.run(tmp, "update-server-info")
    crashpoint("publish-ria:before-rename")
    tmp.rename(final)
    return True, sorted(_label(r) for r in want.refs)


def _prepare(d: Path, want: Wanted) -> None:
    if head_ref(d) != want.head:
        gitutil.run(d, "symbolic-ref", "HEAD", want.head)
    if not (d / "ria-layout-version").is_file():
        (d / "ria-layout-version").write_text(DATASET_VERSION)
    if not ora_config_ok(d, want.ora_uuid) and want.ora_uuid:
        gitutil.run(d, "config", "--file", str(d / "config"), "datalad.ora-remote.uuid", want.ora_uuid)


def _push(want: Wanted, target: Path, force: bool) -> None:
    plus = "+" if force else ""
    specs = [f"{plus}{sha}:{ref}" for ref, sha in sorted(want.refs.items())]
    proc = gitutil.run(want.repo, "push", "--porcelain", str(target), *specs, check=False)
    rejected = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] == "!":
            rejected.append(f"{_label(parts[1].split(':', 1)[-1])} ({parts[2]})")
    if rejected:
        raise RiaPushError(
            f"{target} refused {', '.join(rejected)}: the store has commits the mirror lacks; "
            "check it, or overwrite with --force"
        )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RiaPushError(f"git push to {target} failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    have = read_refs(target)
    wrong = [r for r, s in want.refs.items() if have.get(r) != s]
    if wrong:
        raise RiaPushError(f"{target} does not hold {', '.join(wrong)} after the push")


def _changed(before: dict[str, str], refs: dict[str, str]) -> list[str]:
    return sorted(_label(r) for r, s in refs.items() if before.get(r) != s)


def _label(ref: str) -> str:
    return ref.replace("refs/heads/", "").replace("refs/tags/", "tag ")

"""The root superdataset as published to a RIA store: a filtered commit naming only what the store serves.

The mirror's root names every mirrored dataset, embargoed dandisets included, in its tree, its
``.gitmodules`` and its whole history.  So the store never gets the root's own commits: it gets a
commit made for it, whose tree is the root's with only the datasets published in the store (and
not held back) left in — their gitlinks set to the branch head the store holds, their
``.gitmodules`` sections kept (with ``datalad-id``, so that ``datalad get -n dandi/000027`` in a
clone from ``ria+http://...`` finds the dataset in the same store by id).  Its parent is the
commit published before (a clone's history grows by fast-forward and never holds an earlier
tree of the mirror's root); author, committer and dates are the root HEAD commit's, so the same
root and the same published set make the same commit id — and a rerun pushes nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from neuromirror.annex import gitmodules
from neuromirror.annex.tree import gitlinks
from neuromirror.publish.ria.layout import RiaStore, head_ref, read_refs
from neuromirror.util import gitutil

ROOT_ALIAS = "root"


def store_head(store: RiaStore, dsid: str) -> Optional[str]:
    """The commit a dataset's HEAD branch points at in the store, read from its files."""
    d = store.dataset_dir(dsid)
    ref = head_ref(d)
    return read_refs(d).get(ref) if ref else None


def root_entries(root: Path, store: RiaStore, allowed: set[str]) -> tuple[gitmodules.Modules, list[str]]:
    """The root's ``.gitmodules`` sections to publish (datasets in ``allowed`` that the store holds), and
    the paths the root names but leaves out."""
    head = gitutil.rev_parse(root, "HEAD")
    mods = gitmodules.read(root, head)
    keep: gitmodules.Modules = {}
    left_out: list[str] = []
    for name, section in mods.items():
        path = section.get("path", name)
        dsid = section.get("datalad-id")
        if path in allowed and dsid and store_head(store, dsid):
            keep[name] = dict(section)
        else:
            left_out.append(path)
    return keep, sorted(left_out)


def filtered_commit(root: Path, store: RiaStore, keep: gitmodules.Modules, parent: Optional[str]) -> str:
    """The commit to publish: the root HEAD's tree without the datasets left out (see the module)."""
    head = gitutil.rev_parse(root, "HEAD")
    if head is None:
        raise gitutil.GitError(f"{root}: the root has no commit")
    paths = {section.get("path", name): section["datalad-id"] for name, section in keep.items()}
    with tempfile.TemporaryDirectory(prefix="neuromirror-ria-root-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        gitutil.run(root, "read-tree", head, env=env)
        for path, _ in gitlinks(root, head):
            if path not in paths:
                gitutil.run(root, "update-index", "--force-remove", "--", path, env=env)
        for path, dsid in sorted(paths.items()):
            sha = store_head(store, dsid)
            gitutil.run(root, "update-index", "--add", "--cacheinfo", f"160000,{sha},{path}", env=env)
        if keep:
            blob = gitutil.run(root, "hash-object", "-w", "--stdin", input=gitmodules.render(keep)).stdout.decode()
            gitutil.run(root, "update-index", "--add", "--cacheinfo", f"100644,{blob.strip()},.gitmodules", env=env)
        else:
            gitutil.run(root, "update-index", "--force-remove", "--", ".gitmodules", env=env)
        tree = gitutil.run(root, "write-tree", env=env).stdout.decode().strip()
    if parent and gitutil.out(root, "rev-parse", f"{parent}^{{tree}}", check=False) == tree:
        return parent
    meta = gitutil.out(root, "log", "-1", "--format=%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct", head).split("\0")
    stamp = {
        "GIT_AUTHOR_NAME": meta[0],
        "GIT_AUTHOR_EMAIL": meta[1],
        "GIT_AUTHOR_DATE": f"@{meta[2]} +0000",
        "GIT_COMMITTER_NAME": meta[3],
        "GIT_COMMITTER_EMAIL": meta[4],
        "GIT_COMMITTER_DATE": f"@{meta[5]} +0000",
    }
    message = f"[neuromirror] published root: {len(keep)} dataset(s)\n"
    args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-m", message]
    proc = gitutil.run(root, *args, env=stamp)
    return proc.stdout.decode().strip()


def local_parent(root: Path, store: RiaStore, dsid: str) -> tuple[Optional[str], bool]:
    """The root commit the store has (the new commit's parent) if the root's objects hold it; and
    whether the push must force (the store has a commit made elsewhere)."""
    have = store_head(store, dsid)
    if not have:
        return None, False
    if gitutil.run(root, "cat-file", "-e", f"{have}^{{commit}}", check=False).returncode == 0:
        return have, False
    return None, True

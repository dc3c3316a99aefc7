"""Which files of a mirror's Zarr dataset are checked out on the mirror host: its top-level files only.

A Zarr dataset of 10^6 objects checked out is 10^6 symbolic links to content the mirror
never holds.  git-annex's links are longer than ext4's 60-byte inline limit, so each takes
an inode and a 4 KiB block: ~4 GB of disk and, on the project's VM, 30-700 µs of kernel
time per link — most of a cold Zarr mirror's CPU (issue 40).  Nobody reads them there:
clones are made from git (``datalad clone`` checks everything out in the clone), and
neuromirror's readers (the view, ``neuromirror://``, keep, verify) read git trees.

So a Zarr dataset is made with git's sparse checkout in *cone* mode with a *sparse index*
(issue 52): its top-level files are in the work tree and in the index; each top-level
directory (an array, a group) is one index entry, the directory's tree, marked skip-worktree —
no entry per chunk, so the index no longer grows with the Zarr and a 2-object change rewrites
nothing that does.  ``git status`` is clean; ``git read-tree -m -u`` (the annex writer's
checkout) keeps the index sparse.  The DataLad id, committed in ``.datalad/config`` (not in the
work tree here), is in ``.git/config`` too, where DataLad reads it as well.  A sparse checkout is
local: a clone is whole.

On the mirror host git-annex skips files outside the checkout unless told which branch to
read: ``git annex whereis --branch HEAD``, ``fsck --branch HEAD``, ``get``/``copy --branch HEAD``.
``git sparse-checkout disable`` in a Zarr dataset brings its links back (and the next sync
keeps them); ``NEUROMIRROR_ZARR_CHECKOUT=full`` makes new Zarr datasets whole, as before.
Zarr datasets made before (non-cone patterns, one index entry per object, the metadata files
checked out) are converted by ``neuromirror maintain`` (:func:`neuromirror.dataset.skeleton.tidy`).
"""

from __future__ import annotations

import os

#: git's cone-mode pattern file with no directory in the cone: the top level's files only
PATTERNS = "/*\n!/*/\n"
#: the lines a dataset's ``.git/config`` gains: cone mode, and an index with one entry per directory left out
CONFIG = "[core]\n\tsparseCheckout = true\n\tsparseCheckoutCone = true\n[index]\n\tsparse = true\n"


def zarr_sparse() -> bool:
    """Whether new Zarr datasets are made sparse (``NEUROMIRROR_ZARR_CHECKOUT``: sparse, the default, or full)."""
    value = os.environ.get("NEUROMIRROR_ZARR_CHECKOUT", "sparse").strip().lower()
    if value not in ("sparse", "full"):
        raise ValueError(f"NEUROMIRROR_ZARR_CHECKOUT={value!r}: expected 'sparse' or 'full'")
    return value == "sparse"


def checked_out(path: str) -> bool:
    """Whether git's :data:`PATTERNS` check ``path`` (a file's path in the dataset) out: a top-level file."""
    return "/" not in path

"""Which files of a mirror's Zarr dataset are checked out on the mirror host: its top level only.

A Zarr dataset of 10^6 objects checked out is 10^6 symbolic links to content the mirror
never holds.  git-annex's links are longer than ext4's 60-byte inline limit, so each takes
an inode and a 4 KiB block: ~4 GB of disk and, on the project's VM, 30-700 µs of kernel
time per link — most of a cold Zarr mirror's CPU (issue 40).  Nobody reads them there:
clones are made from git (``datalad clone`` checks everything out in the clone), and
neuromirror's readers (the view, ``neuromirror://``, keep, verify) read git trees.

So a Zarr dataset is made with git's sparse checkout in cone mode: its top-level files
(``.gitattributes``, a Zarr's ``.zattrs`` / ``.zgroup`` / ``zarr.json``) and ``.datalad/``
are in the work tree; everything in a subdirectory is in the index only, marked
*skip-worktree*, so ``git status`` is clean and every later ``git read-tree -m -u`` of the
annex writer leaves it out too.  A sparse checkout is local: a clone is whole.

On the mirror host git-annex skips files outside the checkout unless told which branch to
read: ``git annex whereis --branch HEAD``, ``fsck --branch HEAD``, ``get``/``copy --branch HEAD``.
``git sparse-checkout disable`` in a Zarr dataset brings its links back (and the next sync
keeps them); ``NEUROMIRROR_ZARR_CHECKOUT=full`` makes new Zarr datasets whole, as before.
"""

from __future__ import annotations

import os

#: git's cone-mode pattern file for "the top level and .datalad/"
CONE_PATTERNS = "/*\n!/*/\n/.datalad/\n"
#: the lines a dataset's ``.git/config`` gains
CONFIG = "[core]\n\tsparseCheckout = true\n\tsparseCheckoutCone = true\n"


def zarr_sparse() -> bool:
    """Whether new Zarr datasets are made sparse (``NEUROMIRROR_ZARR_CHECKOUT``: sparse, the default, or full)."""
    value = os.environ.get("NEUROMIRROR_ZARR_CHECKOUT", "sparse").strip().lower()
    if value not in ("sparse", "full"):
        raise ValueError(f"NEUROMIRROR_ZARR_CHECKOUT={value!r}: expected 'sparse' or 'full'")
    return value == "sparse"


def checked_out(path: str) -> bool:
    """Whether the cone of :data:`CONE_PATTERNS` holds ``path`` (a file's path in the dataset)."""
    return "/" not in path or path.startswith(".datalad/")

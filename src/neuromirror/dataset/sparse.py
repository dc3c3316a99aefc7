"""Which files of a mirror's Zarr dataset are checked out on the mirror host: its top level only.

A Zarr dataset of 10^6 objects checked out is 10^6 symbolic links to content the mirror
never holds.  git-annex's links are longer than ext4's 60-byte inline limit, so each takes
an inode and a 4 KiB block: ~4 GB of disk and, on the project's VM, 30-700 µs of kernel
time per link — most of a cold Zarr mirror's CPU (issue 40).  Nobody reads them there:
clones are made from git (``datalad clone`` checks everything out in the clone), and
neuromirror's readers (the view, ``neuromirror://``, keep, verify) read git trees.

So a Zarr dataset is made with git's sparse checkout: its top-level files, ``.datalad/`` and
the Zarr's metadata at every level (``.zarray``, ``.zattrs``, ``.zgroup``, ``.zmetadata``,
``zarr.json``: the store's structure, a few files per array) are in the work tree; the chunks
are in the index only, marked *skip-worktree*, so ``git status`` is clean and every later
``git read-tree -m -u`` of the annex writer leaves them out too.  A sparse checkout is local:
a clone is whole.

On the mirror host git-annex skips files outside the checkout unless told which branch to
read: ``git annex whereis --branch HEAD``, ``fsck --branch HEAD``, ``get``/``copy --branch HEAD``.
``git sparse-checkout disable`` in a Zarr dataset brings its links back (and the next sync
keeps them); ``NEUROMIRROR_ZARR_CHECKOUT=full`` makes new Zarr datasets whole, as before.
"""

from __future__ import annotations

import os

#: a Zarr's metadata files (v2 and v3): checked out wherever they are
METADATA = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")
#: git's (non-cone) pattern file: the top level's files, .datalad/, the metadata files anywhere
PATTERNS = "/*\n!/*/\n/.datalad/\n" + "".join(name + "\n" for name in METADATA)
#: the lines a dataset's ``.git/config`` gains
CONFIG = "[core]\n\tsparseCheckout = true\n"


def zarr_sparse() -> bool:
    """Whether new Zarr datasets are made sparse (``NEUROMIRROR_ZARR_CHECKOUT``: sparse, the default, or full)."""
    value = os.environ.get("NEUROMIRROR_ZARR_CHECKOUT", "sparse").strip().lower()
    if value not in ("sparse", "full"):
        raise ValueError(f"NEUROMIRROR_ZARR_CHECKOUT={value!r}: expected 'sparse' or 'full'")
    return value == "sparse"


def checked_out(path: str) -> bool:
    """Whether git's :data:`PATTERNS` check ``path`` (a file's path in the dataset) out: a top-level
    file, one under ``.datalad/``, or one named (or inside a directory named) as a metadata file."""
    parts = path.split("/")
    return len(parts) == 1 or parts[0] == ".datalad" or any(p in METADATA for p in parts)

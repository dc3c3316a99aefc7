"""A DataLad dataset made with git and git-annex alone, without a ``datalad create`` child.

``datalad create`` in a child process (:mod:`.datalad_create`) costs about 3 s of
start-up and imports per dataset: fine for the handful of datasets a source has,
but a dandiset with thousands of Zarr assets makes one dataset per Zarr, and 3 s
each was most of a cold mirror's time (issue 13).  What makes a directory a DataLad
dataset is small and documented: a git repository, git-annex initialised in it
(with a description), and a committed ``.datalad/config`` carrying
``datalad.dataset.id`` — plus the ``.gitattributes`` lines ``datalad create`` writes
(``**/.git* annex.largefiles=nothing``, ``.datalad/config`` kept in git).  That is
what this module writes, in four quick subprocesses (~0.15 s); ``datalad clone`` /
``datalad get -r`` install such a dataset like any other.
"""

from __future__ import annotations

from pathlib import Path

from neuromirror.util import gitutil

#: git-annex's documented switch for repositories without unlocked files (a mirror's annexed files
#: are all symlinks): with it, git-annex skips the work that supporting unlocked files needs — the
#: first git-annex command in a large dataset otherwise scans the whole tree into its keys database.
#: It is read by ``git annex init``, hence set before it.  Not storable with ``git annex config``
#: (git-annex refuses it), so clones do not inherit it: see docs/performance.md.
LOCKED_ONLY = ("annex.supportunlocked", "false")

#: as ``datalad create`` writes them (DataLad 1.x)
DATALAD_ATTRIBUTES = "config annex.largefiles=nothing\n"
TOP_ATTRIBUTES = ("**/.git* annex.largefiles=nothing",)


def dataset_id(path: Path) -> str | None:
    """``datalad.dataset.id``, read without a ``git config`` child where a file says it plainly.

    From ``.datalad/config`` in the work tree; a sparse Zarr dataset has none there
    (:mod:`.sparse`) and carries the id in ``.git/config``, where DataLad reads it too (its
    local scope); a dataset with neither is asked of git (``HEAD:.datalad/config``)."""
    path = Path(path)
    for where in (path / ".datalad" / "config", path / ".git" / "config"):
        found = gitutil.config_file_value(where, 'datalad"dataset"', "id")
        if found:
            return found
    if not (path / ".git").exists():
        return None
    proc = gitutil.run(path, "config", "--blob", "HEAD:.datalad/config", "datalad.dataset.id", check=False)
    return proc.stdout.decode().strip() or None

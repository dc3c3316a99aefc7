"""Where a key's LINDI reference lives: one file per git-annex key under the mirror root, beside the Zarr manifests.

``{root}/.neuromirror/lindi/{md5(key)[:3]}/{md5(key)[3:6]}/{KEY}.lindi.json`` (git-annex's own hash
directories, so no directory holds millions).  Keyed by the key, not by a path or a version: every version
naming the key (a file unchanged across 40 releases, the same blob under two paths) shares the one file,
and its chunk references name the key's pinned URL, which serves exactly those bytes forever.  Written
whole to a temporary name and renamed: a reader sees the reference complete or not at all.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from neuromirror.store.lindi import DIRNAME, SUFFIX, note_made, reference_path

#: the view's route of references by key (``/lindi/KEY.lindi.json``)
ROUTE = "/lindi"

__all__ = [
    "DIRNAME",
    "SUFFIX",
    "has_reference",
    "read_reference",
    "reference_path",
    "references_dir",
    "write_reference",
]


def references_dir(root: Path) -> Path:
    return Path(root) / DIRNAME


def has_reference(root: Path, key: str) -> bool:
    return bool(key) and reference_path(root, key).is_file()


def write_reference(root: Path, key: str, rfs: dict[str, Any]) -> Path:
    """Store ``rfs`` as ``key``'s reference (atomically); its path."""
    path = reference_path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(rfs, fh, separators=(",", ":"), sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    note_made(root)  # a version's keep mark older than this reference no longer holds for it
    return path


def read_reference(root: Path, key: str) -> Optional[dict[str, Any]]:
    """``key``'s reference, or None when none was made."""
    try:
        with open(reference_path(root, key)) as fh:
            got = json.load(fh)
    except (FileNotFoundError, ValueError):
        return None
    return got if isinstance(got, dict) else None

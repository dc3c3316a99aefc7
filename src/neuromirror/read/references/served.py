"""The view's LINDI routes: a pinned file's reference at the file's path + ``.lindi.json``, and by key.

``/dav/dandi/000027/0.230629.1955/sub-01/x.nwb.lindi.json`` (any share's path of a file, plus the
suffix) and ``/lindi/KEY.lindi.json`` answer the reference of the file's git-annex key as it was made:
its chunks name the pinned archive URL, so lindi, pynwb and Neurosift read the chunks straight from the
archive, one request each.  When the archive no longer serves the key (a loss a reader saw, or the view's
own check) and a store of the lab's keeps it, the file's reference is answered with its chunks naming the
view's own URL of the file instead, which streams the store's copy with ``Range``: a reader outside the lab
reads a lost file through the view.  :func:`neurosift_url` is the link to paste into a browser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from neuromirror.read.references.chunks import expand_templates
from neuromirror.read.references.location import read_reference

NEUROSIFT = "https://neurosift.app/nwb?url={url}&st=lindi"


def neurosift_url(reference_url: str) -> str:
    """Neurosift's page of an NWB file read through the reference at ``reference_url`` (a URL a browser reaches)."""
    return NEUROSIFT.format(url=quote(reference_url, safe=":/"))


def reference_bytes(
    root: Path, key: str, file_url: Optional[str] = None, *, repo: Optional[Path] = None,
    stores: Optional[dict[str, dict]] = None,
) -> Optional[bytes]:  # fmt: skip
    """The reference of ``key`` as the view answers it (None: none made); ``file_url``: every chunk named by
    that URL instead of the archive's (the view's own URL of the file, when only a store serves it).  None
    under the root: the one a store keeps beside the key (the stores ``repo`` records, else ``stores``)."""
    if not key:
        return None
    try:
        rfs = read_reference(root, key)
    except ValueError:
        return None
    if rfs is None:
        from neuromirror.read.references.kept import kept_reference

        rfs = kept_reference(root, key, repo=repo, stores=stores)
    if rfs is None:
        return None
    if file_url:
        rfs = retarget(rfs, file_url)
    return json.dumps(rfs, separators=(",", ":")).encode()


def retarget(rfs: dict[str, Any], url: str) -> dict[str, Any]:
    """``rfs`` with every chunk of it read from ``url`` (the same bytes: a reference names one key's file)."""
    out = expand_templates(rfs)
    refs = {k: ([url, v[1], v[2]] if isinstance(v, list) else v) for k, v in out["refs"].items()}
    return {**out, "refs": refs}

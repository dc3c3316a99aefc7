"""Credentials stay with their data: which sources' bytes only a credential reads, so a public target never gets them.

Why: ``keep`` copies a version's bytes into the lab's store whatever the source (an embargoed
dandiset read with ``DANDI_API_KEY``, a BOSS experiment read with a token like every BOSS read),
because a backup must not depend on who may read the archive.  Publishing into a RIA store puts
kept bytes where anyone who reaches the store reads them without that credential.  So a source
whose reading needs one is published without its kept bytes unless asked (``--include-embargoed``,
``include_embargoed: true`` in a mirror definition's ``publish:``): an embargoed dandiset is held back
whole (its file names are not public either); a BOSS dataset (keys, chunk URLs, OME-Zarr metadata)
is published, its kept chunks are not, and the report says how many and why.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from neuromirror import archives

if TYPE_CHECKING:
    from neuromirror.index.db import Index

_EMBARGO = re.compile(r"\bembargo=(\S+)")


def embargo_of(index: Index, source: str) -> Optional[str]:
    """The embargo status the last sync recorded for ``source`` (``EMBARGOED``...), None when open."""
    row = index.head_version(source)
    m = _EMBARGO.search((row.remote_modified if row else None) or "")
    return m.group(1) if m and m.group(1).upper() != "OPEN" else None


def credential_needed(index: Index, source: str) -> Optional[str]:
    """Why reading ``source``'s bytes needs a credential (None: anyone may read them)."""
    status = embargo_of(index, source)
    if status:
        return f"embargoed ({status}) at the last sync"
    archive = archives.of_source(source)
    return archive.account if archive else None

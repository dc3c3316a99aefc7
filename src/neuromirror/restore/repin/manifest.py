"""An archive's content-addressed layout, read from its manifest: which key now holds each old path's bytes.

DANDI's versioned-Zarr design has an alternate (dandi-archive PR #2702, doc/design/versioned-zarr.md)
in which objects move to content-addressed keys and a manifest per state names, for each path, the
key and digest of its bytes.  ``repin --manifest FILE_OR_URL`` reads one such JSON document::

    {"bucket": "archive-content",            # optional: the bucket of the content keys (default: the pin's)
     "prefix": "zarr/<zarr-id>/",            # optional: the old keys' common prefix the paths are under
     "entries": {"0/0/0": {"key": "content/md5/<md5>", "size": 3000,
                           "digest": {"md5": "<hex>", "sha256": "<hex>"}}}}

An entry is evidence only where its digest is the key's checksum (the key's MD5 or SHA-256) and its
size the key's; the content key is then asked (a HEAD: its size and ETag, its versionId for the pin).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from neuromirror.errors import UserError


@dataclass(frozen=True)
class Entry:
    """Where one old path's bytes are now, as the manifest says."""

    bucket: Optional[str]
    key: str
    size: Optional[int]
    digest: dict[str, str]


class Manifest:
    """A content-addressed layout's manifest, by the old S3 key (``prefix`` + path)."""

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("entries"), dict):
            raise UserError(f'{where}: not a repin manifest (a JSON object with "entries": {{path: {{key, ...}}}})')
        self.where = where
        self.bucket = doc.get("bucket") or None
        self.prefix = str(doc.get("prefix") or "")
        self.entries: dict[str, dict] = doc["entries"]

    def at(self, old_key: str) -> Optional[Entry]:
        """The entry for an old S3 key (None: the manifest does not name it)."""
        if not old_key.startswith(self.prefix):
            return None
        e = self.entries.get(old_key[len(self.prefix) :])
        if not isinstance(e, dict) or not e.get("key"):
            return None
        digest = {str(k).lower(): str(v).lower() for k, v in (e.get("digest") or {}).items()}
        size = e.get("size")
        return Entry(e.get("bucket") or self.bucket, str(e["key"]), int(size) if size is not None else None, digest)


def read_manifest(where: str) -> Manifest:
    """The manifest at a path or an http(s) URL; a bad one is one line (exit 2)."""
    try:
        if where.startswith(("http://", "https://")):
            from neuromirror.network import identity

            got = identity.get(where, timeout=60)
            got.raise_for_status()
            text = got.text
        else:
            text = Path(where).read_text()
        return Manifest(json.loads(text), where)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the manifest {where}: {exc}") from None
    except Exception as exc:  # the URL's server: a one-line error, not a traceback
        if type(exc).__module__.startswith("requests"):
            raise UserError(f"cannot read the manifest {where}: {exc}") from None
        raise

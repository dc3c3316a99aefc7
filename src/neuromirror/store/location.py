"""What a store's name means: ``--store``/``--to`` or ``NEUROMIRROR_STORE``, a path or a URL.

A plain path (relative or absolute) or a ``file:///path`` URL is a directory store, the only
kind so far; any other URL (``s3://``, ``https://``, ``ria+...``) is refused in one line.
"""

from __future__ import annotations

import os
import re
from typing import Optional
from urllib.parse import unquote, urlsplit

from neuromirror.errors import UserError
from neuromirror.store.directory import DirectoryStore

STORE_ENV = "NEUROMIRROR_STORE"
#: what looks like a URL scheme (``s3:``, ``file:``, ``ria+ssh:``); one letter is a drive, not a scheme
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def store_name(given: Optional[str]) -> str:
    """The store the user named: the option, else the environment; a one-line error for neither."""
    name = given or os.environ.get(STORE_ENV) or ""
    if not name.strip():
        raise UserError(f"no store named: pass --to STORE (a directory) or set {STORE_ENV}")
    return name.strip()


def open_store(name: str) -> DirectoryStore:
    """The store ``name`` names (nothing is created until it is first written)."""
    m = _SCHEME.match(name)
    if m is None:
        return DirectoryStore(name)
    scheme = m.group(1).lower()
    if scheme == "file":
        parts = urlsplit(name)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UserError(f"{name}: a file URL names a local path, as file:///path")
        return DirectoryStore(unquote(parts.path))
    raise UserError(
        f"store kind not supported yet: {name} (this version keeps content in a directory: give a path or file:///path)"
    )

"""What a store's name means: ``--store``/``--to`` or ``NEUROMIRROR_STORE``, a path or a URL.

A plain path (relative or absolute) or a ``file:///path`` URL is a directory store;
``s3://BUCKET[/PREFIX]`` an S3 store (its endpoint and region from ``NEUROMIRROR_STORE_ENDPOINT``
and ``NEUROMIRROR_STORE_REGION``, credentials from the environment: :mod:`.s3`); any other URL
(``https://``, ``ria+...``) is refused in one line.
"""

from __future__ import annotations

import os
import re
from typing import Optional
from urllib.parse import unquote, urlsplit

from neuromirror.errors import UserError
from neuromirror.store.base import Store
from neuromirror.store.directory import DirectoryStore
from neuromirror.store.s3 import S3Store

STORE_ENV = "NEUROMIRROR_STORE"
#: what looks like a URL scheme (``s3:``, ``file:``, ``ria+ssh:``); one letter is a drive, not a scheme
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def store_name(given: Optional[str]) -> str:
    """The store the user named: the option, else the environment; a one-line error for neither."""
    name = given or os.environ.get(STORE_ENV) or ""
    if not name.strip():
        raise UserError(f"no store named: pass --to STORE (a directory or s3://BUCKET) or set {STORE_ENV}")
    return name.strip()


def open_store(name: str) -> Store:
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
    if scheme == "s3":
        parts = urlsplit(name)
        if not parts.netloc or parts.query or parts.fragment:
            raise UserError(f"{name}: an S3 store is s3://BUCKET[/PREFIX] (the endpoint: NEUROMIRROR_STORE_ENDPOINT)")
        return S3Store(parts.netloc, unquote(parts.path))
    raise UserError(f"store kind not supported yet: {name} (give a directory, file:///path, or s3://BUCKET[/PREFIX])")

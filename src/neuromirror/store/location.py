"""What a store's name means: ``--store``/``--to`` or ``NEUROMIRROR_STORE``, a path or a URL.

A plain path (relative or absolute) or a ``file:///path`` URL is a directory store;
``s3://BUCKET[/PREFIX]`` an S3 store (its endpoint and region from ``NEUROMIRROR_STORE_ENDPOINT``
and ``NEUROMIRROR_STORE_REGION``, credentials from the environment: :mod:`.s3`);
``pack+file:///PATH`` and ``pack+s3://BUCKET[/PREFIX]`` the packed stores of :mod:`.packs`; any other
URL (``https://``, ``ria+...``) is refused in one line.  ``pack_size`` and ``storage_class`` are what a
new store is made with (an existing store keeps its own: naming another is an error).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

from neuromirror.errors import BadInput, UserError
from neuromirror.store.base import Store
from neuromirror.store.directory import DirectoryStore
from neuromirror.store.s3 import S3Store

STORE_ENV = "NEUROMIRROR_STORE"
#: what looks like a URL scheme (``s3:``, ``file:``, ``ria+ssh:``); one letter is a drive, not a scheme
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def store_name(given: Optional[str]) -> str:
    """The store the user named: the call's, else the environment's; a one-line error for neither (each
    command says which of its options names a store)."""
    name = given or os.environ.get(STORE_ENV) or ""
    if not name.strip():
        raise UserError(f"no store named: name one (a directory or s3://BUCKET) or set {STORE_ENV}")
    return name.strip()


def open_store(
    name: str,
    *,
    pack_size: Optional[int] = None,
    storage_class: Optional[str] = None,
    recorded: Optional[dict[str, str]] = None,
    create: bool = False,
) -> Store:
    """The store ``name`` names, opened as one that exists: a reader or a check never makes a store (its
    identity missing is :class:`~neuromirror.store.base.StoreUnreachable`).  ``create``: ``keep --to``'s, a new
    store may be made there (when first written, in an empty place only).  ``recorded``: what a dataset's
    branch records of a packed S3 store (``endpoint``, ``publicurl``), for a reader whose process names none."""
    m = _SCHEME.match(name)
    scheme = m.group(1).lower() if m else ""
    if pack_size is not None and not scheme.startswith("pack+"):
        raise BadInput(f"pack_size is for packed stores (pack+file:///PATH, pack+s3://BUCKET/PREFIX), not {name}").at(
            "pack_size"
        )
    if storage_class is not None and scheme not in ("s3", "pack+s3"):
        raise _not_s3(name)
    if m is None:
        return DirectoryStore(_local_dir(name, name), create=create)
    if scheme in ("pack+file", "pack+s3"):
        return _packed(name, scheme, pack_size, storage_class, recorded, create)
    if scheme == "file":
        parts = urlsplit(name)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UserError(f"{name}: a file URL names a local path, as file:///path")
        return DirectoryStore(_local_dir(unquote(parts.path), name), create=create)
    if scheme == "s3":
        parts = urlsplit(name)
        if not parts.netloc or parts.query or parts.fragment:
            raise UserError(f"{name}: an S3 store is s3://BUCKET[/PREFIX] (the endpoint: NEUROMIRROR_STORE_ENDPOINT)")
        return S3Store(parts.netloc, unquote(parts.path), storage_class=storage_class, create=create)
    raise UserError(
        f"store kind not supported yet: {name} (give a directory, file:///path, s3://BUCKET[/PREFIX], "
        "pack+file:///PATH or pack+s3://BUCKET[/PREFIX])"
    )


def _not_s3(name: str) -> BadInput:
    """A storage class asked of a store that is not in S3 (the command line says it as ``--storage-class``)."""
    return BadInput(f"storage_class is for S3 stores (s3://, pack+s3://), not {name}").at("storage_class")


def _local_dir(path: str, name: str) -> str:
    """A store's directory, refused when the path (or a parent of it) is something else: ``store: /etc/passwd``
    would otherwise pass every check and fail at the first key kept."""
    p = Path(path)
    for part in (p, *p.parents):
        if part.exists() or part.is_symlink():
            if part == p and not part.is_dir():
                raise UserError(f"{name}: exists and is not a directory (a store is a directory or a URL)")
            if not part.is_dir():
                raise UserError(f"{name}: {part} is a file, not a directory (a store is a directory or a URL)")
            break
    return path


def _packed(
    name: str,
    scheme: str,
    pack_size: Optional[int],
    storage_class: Optional[str],
    recorded: Optional[dict[str, str]],
    create: bool,
) -> Store:
    from neuromirror.store.packs.store import PackStore

    parts = urlsplit(name)
    if parts.query or parts.fragment:
        raise UserError(f"{name}: a packed store's URL has no query or fragment")
    if scheme == "pack+file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UserError(f"{name}: a packed directory store is pack+file:///PATH (an absolute path)")
        if storage_class is not None:
            raise _not_s3(name)
        return PackStore.directory(_local_dir(unquote(parts.path), name), pack_size=pack_size, create=create)
    if not parts.netloc:
        raise UserError(f"{name}: a packed S3 store is pack+s3://BUCKET[/PREFIX]")
    return PackStore.bucket(
        parts.netloc,
        unquote(parts.path),
        recorded=recorded,
        pack_size=pack_size,
        storage_class=storage_class,
        create=create,
    )

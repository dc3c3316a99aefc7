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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
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


@dataclass(frozen=True)
class Settings:
    """What the process asks of a store it opens: ``pack_size`` and ``storage_class`` for a new one, ``recorded``
    (a branch's fields: an endpoint, a public URL) for a reader whose process names none, ``create`` for keep's."""

    pack_size: Optional[int] = None
    storage_class: Optional[str] = None
    recorded: Optional[dict[str, str]] = None
    create: bool = False


@dataclass(frozen=True)
class StoreKind:
    """One kind of store, registered (restic's ``location.Registry``, a factory per scheme): the URL schemes it
    opens (``""``: a plain path), how it opens one with the process's :class:`Settings`, how it reads itself back
    from a ``remote.log`` line (its URL, None: not this kind), its rank for readers (0 local, 1 a public URL,
    2 remote) and the settings it takes.  A new kind is one :func:`register` call: nothing else dispatches on it."""

    name: str
    schemes: tuple[str, ...]
    open: Callable[[str, Settings], Store]
    from_fields: Callable[[dict[str, str]], Optional[str]]
    rank: int = 2
    takes: frozenset[str] = frozenset()  # of "pack_size", "storage_class"


_KINDS: dict[str, StoreKind] = {}


def register(kind: StoreKind) -> StoreKind:
    """Make ``kind`` open its schemes (a later registration of a scheme replaces the earlier one)."""
    for scheme in kind.schemes:
        _KINDS[scheme] = kind
    return kind


def kinds() -> list[StoreKind]:
    """Every registered kind, once each."""
    return list({id(k): k for k in _KINDS.values()}.values())


def kind_of_fields(fields: dict[str, str]) -> Optional[tuple[StoreKind, str]]:
    """The registered kind a ``remote.log`` line names, and its URL: None when no kind reads it back."""
    for kind in kinds():
        url = kind.from_fields(fields)
        if url:
            return kind, url
    return None


def kind_of(name: str) -> Optional[StoreKind]:
    """The registered kind that opens ``name`` (a path or a URL); None: no kind does."""
    m = _SCHEME.match(name)
    return _KINDS.get(m.group(1).lower() if m else "")


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
    branch records of an S3 store, packed or not (``endpoint``, ``publicurl``), for a reader whose process names none."""
    kind = kind_of(name)
    if pack_size is not None and (kind is None or "pack_size" not in kind.takes):
        raise BadInput(f"pack_size is for packed stores (pack+file:///PATH, pack+s3://BUCKET/PREFIX), not {name}").at(
            "pack_size"
        )
    if storage_class is not None and (kind is None or "storage_class" not in kind.takes):
        raise _not_s3(name)
    if kind is None:
        raise UserError(
            f"store kind not supported yet: {name} (give a directory, file:///path, s3://BUCKET[/PREFIX], "
            "pack+file:///PATH or pack+s3://BUCKET[/PREFIX])"
        )
    return kind.open(name, Settings(pack_size, storage_class, recorded, create))


def _directory(name: str, settings: Settings) -> Store:
    if not _SCHEME.match(name):
        return DirectoryStore(_local_dir(name, name), create=settings.create)
    parts = urlsplit(name)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise UserError(f"{name}: a file URL names a local path, as file:///path")
    return DirectoryStore(_local_dir(unquote(parts.path), name), create=settings.create)


def _s3(name: str, settings: Settings) -> Store:
    parts = urlsplit(name)
    if not parts.netloc or parts.query or parts.fragment:
        raise UserError(f"{name}: an S3 store is s3://BUCKET[/PREFIX] (the endpoint: NEUROMIRROR_STORE_ENDPOINT)")
    return S3Store(
        parts.netloc,
        unquote(parts.path),
        storage_class=settings.storage_class,
        recorded=settings.recorded,
        create=settings.create,
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


def _packed(name: str, settings: Settings) -> Store:
    from neuromirror.store.packs.store import PackStore

    parts = urlsplit(name)
    if parts.query or parts.fragment:
        raise UserError(f"{name}: a packed store's URL has no query or fragment")
    if name.lower().startswith("pack+file:"):
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UserError(f"{name}: a packed directory store is pack+file:///PATH (an absolute path)")
        if settings.storage_class is not None:
            raise _not_s3(name)
        path = _local_dir(unquote(parts.path), name)
        return PackStore.directory(path, pack_size=settings.pack_size, create=settings.create)
    if not parts.netloc:
        raise UserError(f"{name}: a packed S3 store is pack+s3://BUCKET[/PREFIX]")
    return PackStore.bucket(
        parts.netloc,
        unquote(parts.path),
        recorded=settings.recorded,
        pack_size=settings.pack_size,
        storage_class=settings.storage_class,
        create=settings.create,
    )


def _field(name: str, scheme: str = "", **must: str) -> Callable[[dict[str, str]], Optional[str]]:
    """A kind's reading of a ``remote.log`` line: the field ``name`` (prefixed by ``scheme``) when the line's
    fields are ``must``."""

    def read(fields: dict[str, str]) -> Optional[str]:
        if any(fields.get(k) != v for k, v in must.items()) or not fields.get(name):
            return None
        return f"{scheme}{fields[name]}"

    return read


def _packed_fields(prefix: str) -> Callable[[dict[str, str]], Optional[str]]:
    def read(fields: dict[str, str]) -> Optional[str]:
        url = fields.get("url", "")
        return url if fields.get("type") == "external" and url.startswith(prefix) else None

    return read


def _s3_fields(fields: dict[str, str]) -> Optional[str]:
    if fields.get("type") != "S3" or not fields.get("bucket"):
        return None
    return f"s3://{fields['bucket']}/{fields.get('fileprefix', '')}"


DIRECTORY = register(StoreKind("directory", ("", "file"), _directory, _field("directory", type="directory"), rank=0))
S3 = register(StoreKind("S3", ("s3",), _s3, _s3_fields, rank=2, takes=frozenset({"storage_class"})))
PACK_FILE = register(
    StoreKind("pack+file", ("pack+file",), _packed, _packed_fields("pack+file:"), 0, frozenset({"pack_size"}))
)
PACK_S3 = register(
    StoreKind(
        "pack+s3", ("pack+s3",), _packed, _packed_fields("pack+s3:"), 2, frozenset({"pack_size", "storage_class"})
    )
)

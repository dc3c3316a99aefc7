"""A Zarr state's metadata as an Icechunk repository holds it, and each chunk object's array and index.

Icechunk holds Zarr v3 only.  A v2 state's ``.zgroup`` / ``.zarray`` / ``.zattrs`` become ``zarr.json``
documents through zarr-python's own migration (:func:`zarr.metadata.migrate_v3.migrate_v2_to_v3`, the codecs
mapped as ``zarr migrate v3`` maps them), with xarray's ``_ARRAY_DIMENSIONS`` attribute moved to the v3
``dimension_names`` xarray reads there.  Every array gets the default chunk key encoding: Icechunk addresses
chunks by index, and zarr-python asks it for ``c/0/0``-style keys whatever the archive's objects were named.
A chunk object's name is read with the encoding the state's own metadata gives (``0.0``, ``0/0``, ``c/0/0``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from neuromirror.errors import UserError

V2_FILES = (".zarray", ".zgroup", ".zattrs")
V3_FILE = "zarr.json"
#: metadata a state may hold that the repository does not need (Icechunk keeps its own listing)
SKIPPED = (".zmetadata",)
DEFAULT_ENCODING = {"name": "default", "configuration": {"separator": "/"}}


@dataclass(frozen=True)
class Encoding:
    """How one array's chunk objects are named: ``prefix`` ``c`` (v3's default) or none, the separator."""

    ndim: int
    separator: str
    prefix: bool

    def index(self, name: str) -> Optional[tuple[int, ...]]:
        """The chunk index a name below the array names, or None (not a chunk of it)."""
        if self.prefix:
            if name == "c" and self.ndim == 0:
                return ()
            if not name.startswith("c" + self.separator):
                return None
            name = name[2:]
        elif self.ndim == 0:
            return () if name == "0" else None
        parts = name.split(self.separator)
        if len(parts) != self.ndim or not all(p.isdigit() for p in parts):
            return None
        return tuple(int(p) for p in parts)


@dataclass
class Hierarchy:
    """The repository's ``zarr.json`` documents by node path (``""``: the root) and each array's encoding."""

    documents: dict[str, dict] = field(default_factory=dict)
    arrays: dict[str, Encoding] = field(default_factory=dict)
    zarr_format: int = 3

    def chunk(self, inner: str) -> Optional[tuple[str, tuple[int, ...]]]:
        """(array path, chunk index) of an object of the state, or None (metadata, or not a chunk)."""
        node, _, name = inner.rpartition("/")
        rest = name
        while True:
            encoding = self.arrays.get(node)
            if encoding is not None:
                index = encoding.index(rest)
                return None if index is None else (node, index)
            if not node:
                return None
            node, _, last = node.rpartition("/")
            rest = f"{last}/{rest}"


class MetadataReader:
    """A state's metadata files read as ``neuromirror://`` reads them (the archive's pinned URL, the store's copy
    once lost), through a filesystem of its own whose index connections and git processes end with the export:
    a connection left open in a process that later writes the index would lose its locks (SQLite's POSIX locks
    go with any descriptor of the file closed)."""

    def __init__(self, root: Any, index: Any) -> None:
        from neuromirror.read.fsspec_fs import NeuromirrorFileSystem

        self.fs = NeuromirrorFileSystem(
            root=str(root), index=None if index is None else str(index), skip_instance_cache=True
        )
        self.fs._listings.alone = True  # two files of a chunk directory of 10^5: resolve those alone

    def cat_file(self, path: str) -> bytes:
        return bytes(self.fs.cat_file(path))

    def __enter__(self) -> MetadataReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fs._listings.close()
        conn = getattr(self.fs.losses._local, "conn", None)
        if conn is not None:
            conn.close()
            self.fs.losses._local.conn = None


def is_metadata(inner: str) -> bool:
    name = inner.rsplit("/", 1)[-1]
    return name in V2_FILES or name == V3_FILE or name in SKIPPED


def hierarchy(files: dict[str, bytes], where: str) -> Hierarchy:
    """The hierarchy of a state from its metadata files (inner path -> bytes); ``where`` names it in errors."""
    if V3_FILE in files:
        return _v3(files, where)
    if ".zarray" in files or ".zgroup" in files:
        return _v2(files, where)
    raise UserError(f"{where}: no Zarr metadata (.zgroup, .zarray or zarr.json) at its top in this state")


def _node(path: str) -> str:
    return path.rpartition("/")[0]


def _v3(files: dict[str, bytes], where: str) -> Hierarchy:
    out = Hierarchy()
    for path, data in files.items():
        if path.rsplit("/", 1)[-1] != V3_FILE:
            continue
        doc = _json(data, f"{where}/{path}")
        if doc.get("node_type") == "array":
            ndim = len(doc.get("shape") or [])
            cke = doc.get("chunk_key_encoding") or {}
            sep = str((cke.get("configuration") or {}).get("separator") or ("/" if cke.get("name") != "v2" else "."))
            out.arrays[_node(path)] = Encoding(ndim, sep, cke.get("name", "default") != "v2")
            doc = {**doc, "chunk_key_encoding": DEFAULT_ENCODING}
        out.documents[_node(path)] = doc
    return out


def _v2(files: dict[str, bytes], where: str) -> Hierarchy:
    """zarr-python's migration over the v2 metadata alone, then each array's encoding and dimension names."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.metadata.migrate_v3 import migrate_v2_to_v3
    from zarr.storage import MemoryStore

    proto = default_buffer_prototype()
    given = {
        p: proto.buffer.from_bytes(_filled(p, b, where)) for p, b in files.items() if p.rsplit("/", 1)[-1] in V2_FILES
    }
    out_store = MemoryStore()
    try:
        migrate_v2_to_v3(input_store=MemoryStore(given), output_store=out_store)
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise UserError(f"{where}: its Zarr v2 metadata cannot be read as Zarr v3 ({exc})") from None
    out = Hierarchy(zarr_format=2)
    for path, buf in out_store._store_dict.items():
        if path.rsplit("/", 1)[-1] != V3_FILE:
            continue
        doc = json.loads(buf.to_bytes())
        node = _node(path)
        if doc.get("node_type") == "array":
            v2 = _json(files[f"{node}/.zarray" if node else ".zarray"], where)
            sep = str(v2.get("dimension_separator") or ".")
            out.arrays[node] = Encoding(len(doc.get("shape") or []), sep, False)
            doc = _dimension_names({**doc, "chunk_key_encoding": DEFAULT_ENCODING})
        out.documents[node] = doc
    return out


def _filled(path: str, data: bytes, where: str) -> bytes:
    """A ``.zarray`` without a fill value (``null``: xarray's coordinates) given its data type's default, which
    zarr-python reads a v2 array's missing chunks as; v3 has no array without one."""
    if not path.endswith(".zarray"):
        return data
    doc = _json(data, f"{where}/{path}")
    if doc.get("fill_value") is not None:
        return data
    import numpy as np
    from zarr.dtype import parse_dtype

    try:
        dtype = parse_dtype(np.dtype(doc.get("dtype")), zarr_format=2)
        fill = dtype.to_json_scalar(dtype.default_scalar(), zarr_format=2)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}/{path}: its data type cannot be read ({exc})") from None
    return json.dumps({**doc, "fill_value": fill}).encode()


def _dimension_names(doc: dict) -> dict:
    """xarray's ``_ARRAY_DIMENSIONS`` (a v2 attribute) as v3's ``dimension_names``."""
    attrs = dict(doc.get("attributes") or {})
    dims = attrs.get("_ARRAY_DIMENSIONS")
    if isinstance(dims, list) and len(dims) == len(doc.get("shape") or []) and all(isinstance(d, str) for d in dims):
        del attrs["_ARRAY_DIMENSIONS"]
        return {**doc, "attributes": attrs, "dimension_names": dims}
    return doc


def _json(data: bytes, where: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise UserError(f"{where}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{where}: not a JSON object")
    return doc

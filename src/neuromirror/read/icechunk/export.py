"""``export SPEC@V/PATH.zarr --icechunk DIR_OR_S3``: a pinned Zarr state as an Icechunk snapshot of virtual chunks.

Each recorded state of the Zarr becomes one snapshot on the repository's ``main`` branch, tagged with the
mirror's commit of the state (the commit ``pin`` names), its metadata copied in (:mod:`.metadata`) and every
chunk a virtual reference to bytes that never change.  Icechunk 1.1 keeps no query and no port in a virtual
chunk's URL (it stores ``http://127.0.0.1:PORT/b/k?versionId=V`` as ``http://127.0.0.1/b/k``), so an S3
versionId cannot pin a chunk there; a reference is instead

* the view's URL of the chunk at the state's commit (``VIEW/dav/ARCHIVE/NAME/COMMIT/PATH.zarr/CHUNK``): the
  view answers it with a redirect to the pinned ``?versionId=`` object, or the lab store's copy once the
  archive lost it; guarded by the object's ETag (its MD5, which Icechunk sends as ``If-Match``), or
* with ``--from STORE``, the chunk's bytes in the store that keeps them: a pack by offset and length
  (``pack+file://``, ``pack+s3://``), a key's file or object (a directory store, ``s3://``), guarded by the
  object's ETag (S3) or its modification time (a file).

A state already tagged in the repository is left as it is (an export run again adds only new states).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence
from urllib.parse import quote, urlsplit

from neuromirror.errors import BadInput, UserError
from neuromirror.index.rows import Version
from neuromirror.read.icechunk.metadata import Hierarchy, hierarchy, is_metadata
from neuromirror.read.icechunk.repository import Chunk, Container, open_repository, repository_exists, write_snapshot
from neuromirror.records import VersionFile
from neuromirror.results import Item, Result, Status
from neuromirror.util import gitutil

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class State:
    """A recorded state of the Zarr: the version that first holds it and the Zarr's object there (its
    subdataset's commit, or its tree)."""

    version: Version
    object: str

    @property
    def commit(self) -> str:
        return str(self.version.commit)


@dataclass(frozen=True)
class Snapshot:
    state: State
    status: Status
    snapshot: Optional[str] = None
    chunks: int = 0
    message: str = ""

    def to_json(self) -> dict:
        v = self.state.version
        return {
            "status": self.status.value,
            "commit": v.commit,
            "version": v.label,
            "zarr": self.state.object,
            "snapshot": self.snapshot,
            "tag": v.commit,
            "chunks": self.chunks,
            "message": self.message,
        }


@dataclass
class Exported(Result):
    """What ``export --icechunk`` wrote: the repository, how its chunks are referenced, a snapshot per state."""

    target: str
    source: str
    path: str
    references: str  # "view" or the store's URL
    containers: list[Container]
    snapshots: list[Snapshot]

    def items(self) -> Iterable[Item]:
        return [Item(s.status, f"{self.source}@{s.state.commit}/{self.path}", s.message) for s in self.snapshots]

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "target": self.target,
            "source": self.source,
            "path": self.path,
            "references": self.references,
            "containers": [c.prefix for c in self.containers],
            "snapshots": [s.to_json() for s in self.snapshots],
        }

    def lines(self) -> list[str]:
        out = [
            f"{s.status.value}: {self.source}@{s.state.commit[:12]}/{self.path} -> tag {s.state.commit}"
            + (f" ({s.chunks} chunks)" if s.status == Status.OK else "")
            + (f": {s.message}" if s.message else "")
            for s in self.snapshots
        ]
        authorize = ", ".join(f"{c.prefix!r}: ..." for c in self.containers)
        out.append(
            f"{self.target}: chunks by {self.references}; open with authorize_virtual_chunk_access={{{authorize}}}"
        )
        return out


def split_target(text: str) -> tuple[str, str]:
    """``SPEC@VERSION/PATH.zarr`` as (``SPEC@VERSION``, ``PATH.zarr``)."""
    at = text.find("@")
    slash = text.find("/", at + 1) if at >= 0 else -1
    if at < 0 or slash < 0 or not text[slash + 1 :].strip("/"):
        raise BadInput(f"{text!r}: name a Zarr of a pinned state, as SPEC@VERSION/PATH.zarr (a label or a commit)")
    return text[:slash], text[slash + 1 :].strip("/")


def view_base(url: Optional[str]) -> str:
    """The view's base URL as references may hold it (Icechunk drops a port: only the scheme's own)."""
    if not url:
        raise BadInput(
            "view_url: none given, and no store: a reference names the view's URL (a served mirror, env "
            "NEUROMIRROR_URL) or the bytes in a store that keeps them"
        ).at("view_url")
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.query or parts.fragment:
        raise BadInput(f"view_url {url}: the view's base URL is http(s)://HOST[/PATH]").at("view_url")
    if parts.username or parts.password:
        raise BadInput(f"view_url {url}: no credentials in the URL (it is written into every reference)").at("view_url")
    if parts.port not in (None, DEFAULT_PORTS[parts.scheme]):
        raise BadInput(
            f"view_url {url}: Icechunk keeps no port in a chunk's URL (it would read {parts.scheme}://{parts.hostname}"
            f"/...): serve the view on port {DEFAULT_PORTS[parts.scheme]} (behind a reverse proxy), or reference a store"
        ).at("view_url")
    return f"{parts.scheme}://{parts.hostname}{parts.path.rstrip('/')}"


def states(versions: Sequence[Version], path: str) -> list[State]:
    """The distinct states of the Zarr at ``path`` across ``versions`` (oldest first), each with the first
    version that holds it."""
    out: list[State] = []
    seen: set[str] = set()
    for v in versions:
        line = gitutil.out(Path(str(v.dataset)), "ls-tree", str(v.commit), "--", path, check=False).strip()
        if not line or line.split()[1] not in ("commit", "tree"):
            continue
        sha = line.split()[2]
        if sha not in seen:
            seen.add(sha)
            out.append(State(v, sha))
    return out


def export_icechunk(
    fs: Any,
    versions: Sequence[Version],
    path: str,
    target: str,
    *,
    view_url: Optional[str] = None,
    store: Any = None,
) -> Exported:
    """Write the states of the Zarr at ``path`` the ``versions`` hold into the Icechunk repository ``target``.
    ``fs``: the ``neuromirror://`` filesystem its metadata is read through; ``store``: read chunks from it
    (else the view at ``view_url``)."""
    found = states(versions, path)
    if not found:
        v = versions[-1]
        raise UserError(f"{v.source}@{v.label}: no Zarr at {path!r} in this state ({str(v.commit)[:12]})")
    source = found[0].version.source
    if store is not None:
        from neuromirror.store.extents import place_of

        place = place_of(store)
        scheme = place.prefix.split(":", 1)[0]
        container = Container(place.prefix, scheme, place.directory, place.endpoint, place.region)
        refs: References = StoreReferences(store)
    else:
        base = view_base(view_url)
        archive, name = source.split(":", 1)
        container = Container(f"{base}/dav/{archive}/{quote(name, safe='/~')}/", "http")
        refs = ViewReferences(container.prefix, path)
    repo = open_repository(target, [container]) if repository_exists(target) else None
    tags = repo.list_tags() if repo is not None else set()
    done = []
    for state in found:
        if state.commit in tags:
            done.append(Snapshot(state, Status.NOTNEEDED, message="tagged in the repository already"))
            continue
        tree, chunks = _prepared(fs, state, path, refs)
        if repo is None:  # made once the first state is read: bad input leaves nothing behind
            repo = open_repository(target, [container])
        v = state.version
        about = {"source": v.source, "version": v.label, "commit": v.commit, "path": path, "zarr": state.object}
        snapshot = write_snapshot(repo, tree, chunks, f"{v.source}@{v.label} {path} at {v.commit}", about)
        repo.create_tag(state.commit, snapshot)
        done.append(Snapshot(state, Status.OK, snapshot, len(chunks)))
    return Exported(target, source, path, refs.name, [container], done)


def _prepared(fs: Any, state: State, path: str, refs: References) -> tuple[Hierarchy, list[Chunk]]:
    """A state's hierarchy (its metadata read through ``fs``) and its chunks' references."""
    v = state.version
    files = [f for f in v.files(paths=[path], urls=False) if f.checksum_kind != "subdataset"]  # keys suffice
    inner = {f.path[len(path) + 1 :]: f for f in files}
    head = f"{v.source.replace(':', '/', 1)}@{v.commit}/{path}/"
    meta = {p: fs.cat_file(head + p) for p in inner if is_metadata(p)}
    tree = hierarchy(meta, f"{v.source}@{v.label}/{path}")
    return tree, refs.chunks(tree, v, inner)


def _chunk_files(tree: Hierarchy, inner: dict[str, VersionFile]) -> list[tuple[str, tuple[int, ...], VersionFile]]:
    out = []
    for p, f in inner.items():
        if is_metadata(p):
            continue
        got = tree.chunk(p)
        if got is not None:
            out.append((got[0], got[1], f))
    return out


class References:
    """How a chunk file of a state becomes a reference (:class:`ViewReferences`, :class:`StoreReferences`)."""

    name = ""

    def chunks(self, tree: Hierarchy, v: Version, inner: dict[str, VersionFile]) -> list[Chunk]:
        raise NotImplementedError


class ViewReferences(References):
    """The view's URL of each chunk at the state's commit, guarded by the object's MD5 as its ETag."""

    name = "view"

    def __init__(self, prefix: str, path: str) -> None:
        self.prefix = prefix
        self.path = path

    def chunks(self, tree: Hierarchy, v: Version, inner: dict[str, VersionFile]) -> list[Chunk]:
        head = f"{self.prefix}{v.commit}/{quote(self.path, safe='/~')}/"
        out = []
        for array, index, f in _chunk_files(tree, inner):
            url = head + quote(f.path[len(self.path) + 1 :], safe="/~")
            out.append(Chunk(array, index, url, 0, int(f.size or 0), _etag(f)))
        return out


def _etag(f: VersionFile) -> Optional[str]:
    """A single-part S3 object's ETag is its MD5: what Icechunk sends as ``If-Match``."""
    return f'"{f.checksum}"' if f.checksum_kind == "md5" and f.checksum else None


class StoreReferences(References):
    """Each chunk's bytes where ``store`` keeps them (a pack's offset and length, a key's own file or object)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.name = str(store.url)

    def chunks(self, tree: Hierarchy, v: Version, inner: dict[str, VersionFile]) -> list[Chunk]:
        from neuromirror.store.extents import extents

        found = _chunk_files(tree, inner)
        where = extents(self.store, [f.key for _, _, f in found if f.key])
        missing = [f for _, _, f in found if not f.key or f.key not in where]
        if missing:
            # the state as a user names it: an older draft state by its short commit, as `versions` reads it
            # (its label, "draft", names the newest draft state, which may hold every chunk already)
            named = f"{v.source}@{v.read_as or v.label}"
            run = shlex.join(["neuromirror", "keep", named, "--to", self.name])
            raise UserError(
                f"{named}: {len(missing)} chunk(s) of the state are not in {self.name} "
                f"(e.g. {missing[0].path}): keep them there first: `{run}`"
            )
        out = []
        for array, index, f in found:
            e = where[str(f.key)]
            out.append(Chunk(array, index, e.url, e.offset, e.length, e.etag, e.modified))
        return out

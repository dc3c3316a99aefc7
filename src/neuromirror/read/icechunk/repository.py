"""The Icechunk repository an export writes: its storage (a directory or ``s3://BUCKET/PREFIX``), the virtual
chunk containers its references need, and one snapshot per Zarr state, tagged.

Icechunk reads a virtual chunk only from a container the repository's configuration names and the reader
authorizes (``authorize_virtual_chunk_access`` when opening): each export registers the narrowest prefix its
references lie under and says it, so that the reader knows what to authorize.  An S3 repository is reached as
the lab's S3 stores are (``NEUROMIRROR_STORE_ENDPOINT``, ``NEUROMIRROR_STORE_REGION``, credentials from the
environment: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``), never written into the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional, Sequence
from urllib.parse import urlsplit

from neuromirror.errors import BadInput, UserError
from neuromirror.read.icechunk.metadata import Hierarchy

#: Icechunk's own log lines below this level are not the user's business (its local-storage warning)
LOG_FILTER = "error"


@dataclass(frozen=True)
class Container:
    """A virtual chunk container: the URL prefix, and the scheme of its objects' URLs (``http``, ``file``, ``s3``)."""

    prefix: str
    scheme: str
    directory: Optional[str] = None
    endpoint: Optional[str] = None
    region: Optional[str] = None

    def config(self) -> Any:
        import icechunk

        if self.scheme == "file":
            return icechunk.VirtualChunkContainer(self.prefix, icechunk.local_filesystem_store(self.directory or "/"))
        if self.scheme == "s3":
            named = self.endpoint is not None
            store = icechunk.s3_store(
                region=self.region,
                endpoint_url=self.endpoint,
                allow_http=bool(self.endpoint and self.endpoint.startswith("http:")),
                s3_compatible=named,
                force_path_style=named,
            )
            return icechunk.VirtualChunkContainer(self.prefix, store)
        opts = {"allow_http": "true"} if self.prefix.startswith("http:") else {}
        return icechunk.VirtualChunkContainer(self.prefix, icechunk.http_store(opts))


@dataclass(frozen=True)
class Chunk:
    """One chunk's virtual reference: the array, its index, where its bytes are, and the guard."""

    array: str
    index: tuple[int, ...]
    url: str
    offset: int
    length: int
    etag: Optional[str] = None
    modified: Optional[int] = None


def storage(target: str) -> Any:
    """Icechunk's storage for ``target``: ``s3://BUCKET[/PREFIX]`` or a directory."""
    import icechunk

    icechunk.set_logs_filter(LOG_FILTER)
    if target.startswith("s3://"):
        from neuromirror.store.s3 import ENDPOINT_ENV
        from neuromirror.store.s3_client import default_region

        parts = urlsplit(target)
        if not parts.netloc:
            raise BadInput(f"{target}: an S3 target is s3://BUCKET[/PREFIX]")
        endpoint = os.environ.get(ENDPOINT_ENV) or None
        return icechunk.s3_storage(
            bucket=parts.netloc,
            prefix=parts.path.strip("/") or None,
            region=default_region(),
            endpoint_url=endpoint,
            allow_http=bool(endpoint and endpoint.startswith("http:")),
            force_path_style=endpoint is not None,
            from_env=True,
        )
    if "://" in target:
        raise BadInput(f"{target}: an Icechunk repository is a directory or s3://BUCKET[/PREFIX]")
    return icechunk.local_filesystem_storage(os.path.abspath(os.path.expanduser(target)))


def repository_exists(target: str) -> bool:
    """Is there a repository at ``target``?  Asking never makes its directory."""
    import icechunk

    if "://" not in target and not os.path.isdir(os.path.expanduser(target)):
        return False

    try:
        return bool(icechunk.Repository.exists(storage(target)))
    except icechunk.IcechunkError as exc:
        raise UserError(f"{target}: the Icechunk repository cannot be reached ({_first_line(exc)})") from None


def open_repository(target: str, containers: Sequence[Container]) -> Any:
    """The repository at ``target`` (made when there is none), its configuration naming ``containers`` beside
    those it named already (an earlier export's references, read from elsewhere, stay readable)."""
    import icechunk

    where = storage(target)
    try:
        exists = repository_exists(target)
        config = (icechunk.Repository.fetch_config(where) if exists else None) or icechunk.RepositoryConfig.default()
        for c in containers:
            config.set_virtual_chunk_container(c.config())
        if not exists:
            return icechunk.Repository.create(where, config=config)
        repo = icechunk.Repository.open(where, config=config)
        repo.save_config()
        return repo
    except icechunk.IcechunkError as exc:
        raise UserError(f"{target}: the Icechunk repository cannot be opened ({_first_line(exc)})") from None


def write_snapshot(repo: Any, hierarchy: Hierarchy, chunks: Sequence[Chunk], message: str, about: dict) -> str:
    """One snapshot on ``main`` holding exactly ``hierarchy`` and ``chunks`` (what an earlier snapshot held is
    cleared first); its id."""
    import icechunk
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    session = repo.writable_session("main")
    store = session.store
    sync(store.clear())
    proto = default_buffer_prototype()
    import json

    for node, doc in sorted(hierarchy.documents.items()):
        key = f"{node}/zarr.json" if node else "zarr.json"
        sync(store.set(key, proto.buffer.from_bytes(json.dumps(doc).encode())))
    by_array: dict[str, list[Any]] = {}
    for c in chunks:
        when = None if c.modified is None else datetime.fromtimestamp(c.modified, timezone.utc)
        spec = icechunk.VirtualChunkSpec(list(c.index), c.url, c.offset, c.length, c.etag, when)
        by_array.setdefault(c.array, []).append(spec)
    for array, specs in by_array.items():
        failed = store.set_virtual_refs("/" + array, specs, validate_containers=True)
        if failed:
            raise UserError(f"{array or '/'}: {len(failed)} chunk reference(s) refused by Icechunk (e.g. {failed[0]})")
    return str(session.commit(message, metadata=about))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip(" |x`-") for line in str(exc).splitlines()]
    return next((line for line in lines if line), type(exc).__name__)

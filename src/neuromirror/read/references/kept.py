"""A key's reference read from a store of the lab's, when the mirror root has none (lost, or never had it).

``keep`` puts each kept key's reference beside the key (:mod:`neuromirror.store.lindi`); a mirror whose
``.neuromirror/lindi/`` file is gone, or a clone or another machine that has the datasets and the store
but not the root's references, finds it there: the stores a file's dataset records (its git-annex
branch's ``remote.log``, as every clone has it) and the stores the index knows (the view's key route has
no dataset), each asked once, one request.  A reference found is written back under the root (when the
root is writable), so the next open reads it from disk.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from neuromirror.read.references.location import write_reference
from neuromirror.store.lindi import reference_name, reference_path

if TYPE_CHECKING:
    from neuromirror.read.store_reads import StoreCopy

log = logging.getLogger("neuromirror.read.references")


def _copies(name: str, repo: Optional[Path], stores: Optional[dict[str, dict]]) -> Iterator[StoreCopy]:
    """The copies of ``name`` a store would have: the stores ``repo`` records, then the index's (each asked)."""
    from neuromirror.read.store_reads import StoreReaders

    readers = StoreReaders()  # opened for this one look-up: a reference found is written back under the root
    seen: set[str] = set()
    for reader in readers.of_repo(repo).values() if repo is not None else ():
        copy = reader.copy(name)
        if copy is not None and copy.store.url not in seen:
            seen.add(copy.store.url)
            yield copy
    found = readers.kept_by_key(name, stores.values()) if stores else None
    if found is not None and found.store.url not in seen:
        yield found


def _read(copy: StoreCopy) -> bytes:
    if copy.streamed:
        return copy.read()
    from neuromirror.network import identity  # an S3 store's public URL, asked by name

    got = identity.get(copy.url, timeout=60)
    if got.status_code in (403, 404):
        raise FileNotFoundError(copy.url)
    got.raise_for_status()
    return got.content


def kept_reference(
    root: Path, key: str, *, repo: Optional[Path] = None, stores: Optional[dict[str, dict]] = None
) -> Optional[dict[str, Any]]:
    """``key``'s reference as a store keeps it (None: no store asked has it), written back under ``root``."""
    try:
        reference_path(root, key)  # a key, not a path of the store's
    except ValueError:
        return None
    for copy in _copies(reference_name(key), repo, stores):
        try:
            rfs = json.loads(_read(copy))
        except Exception as exc:  # noqa: BLE001 - not in this store (or unreadable here): the next one
            log.debug("%s: no reference there: %s", copy.url, exc)
            continue
        if isinstance(rfs, dict):
            _write_back(root, key, rfs)
            return rfs
    return None


def _write_back(root: Path, key: str, rfs: dict[str, Any]) -> None:
    try:
        write_reference(root, key, rfs)
    except OSError as exc:  # a read-only root: read from the store each time
        log.debug("reference of %s not written back under %s: %s", key, root, exc)

"""Kept content in a RIA store: the lab's directory store's keys, linked into a dataset's ``annex/objects``.

A dataset published to a RIA store is cloned over plain HTTP, where the lab's directory store
(``keep --to DIR``) is not reachable.  So the keys its ``git-annex`` branch says the store holds
(and that really are there) are put into the RIA dataset's own object tree, as DataLad's ORA
special remote reads it (``annex/objects/<hashdirmixed>/<KEY>/<KEY>``): a hard link when store
and RIA store share a file system (no bytes copied), a copy otherwise, renamed into place so that
a killed publish never leaves a partial object under a key's name.

The ORA remote is then recorded on the dataset's ``git-annex`` branch (``remote.log``:
``type=external externaltype=ora url=ria+file:///STORE archive-id=<dataset id> autoenable=true
cost=300``) with the keys present in it, with the same plumbing ``keep`` uses for its store.  A
clone from ``ria+http://...`` gets DataLad's RIA post-clone configuration, which finds the remote
by the UUID in the store dataset's ``config`` (``datalad.ora-remote.uuid``) and points it at the
URL the clone came from.  The archive stays first (its web remote costs 200).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Optional

from neuromirror.annex.keys import hashdir_mixed, key_file, key_from_file
from neuromirror.store.annexlog import escape_value
from neuromirror.store.base import Incoming, StoreIdentity
from neuromirror.store.directory import DirectoryStore
from neuromirror.store.record import BRANCH, present_in, store_uuids
from neuromirror.store.registry import directory_stores as recorded_directory_stores
from neuromirror.util import gitutil

_LOCATION_LOG = re.compile(r"^[0-9a-f]{3}/[0-9a-f]{3}/([^/]+)\.log$")


def object_path(dataset_dir: Path, key: str) -> Path:
    name = key_file(key)
    return dataset_dir / "annex" / "objects" / hashdir_mixed(key) / name / name


def directory_stores(repo: Path) -> list[tuple[str, DirectoryStore]]:
    """(uuid, store) for each neuromirror directory store the branch records that is readable here."""
    return recorded_directory_stores(dict(sorted(store_uuids(repo).items())))


def branch_keys(repo: Path) -> list[str]:
    """Every key the ``git-annex`` branch has a location log for."""
    ref = gitutil.ref_sha(repo, BRANCH)
    if ref is None:
        return []
    keys = []
    for _, typ, _, path in gitutil.ls_tree(repo, ref):
        m = _LOCATION_LOG.match(path)
        if typ == "blob" and m:
            keys.append(key_from_file(m.group(1)))
    return keys


def kept_content(repo: Path) -> dict[str, Path]:
    """key -> its file in a local directory store, for the keys the branch says a store holds."""
    stores = directory_stores(repo)
    if not stores:
        return {}
    keys = branch_keys(repo)
    found: dict[str, Path] = {}
    for uuid, store in stores:
        for key in sorted(present_in(repo, uuid, keys)):
            if key not in found and store.has(key):
                found[key] = store.key_path(key)
    return found


def missing_objects(dataset_dir: Path, objects: dict[str, Path]) -> list[str]:
    return [k for k in objects if not object_path(dataset_dir, k).is_file()]


def put_objects(dataset_dir: Path, objects: dict[str, Path]) -> int:
    """Link (or copy) each key's file into the dataset's object tree; how many were new."""
    n = 0
    for key in missing_objects(dataset_dir, objects):
        final = object_path(dataset_dir, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            os.link(objects[key], tmp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copyfile(objects[key], tmp)
            os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        n += 1
    return n


class OraRemote:
    """The RIA store as DataLad's ORA special remote, seen from one dataset (its ``archive-id``).

    Shaped as a :class:`neuromirror.store.base.Store` so that ``store.record`` writes its
    ``remote.log``/``uuid.log`` lines and location logs exactly as it does for ``keep``'s store;
    it is never written to through that protocol (publish links the objects itself).
    """

    kind = "external"

    def __init__(self, store_url: str, ora_uuid: str, dsid: str, name: str):
        self._url = store_url
        self._identity = StoreIdentity(ora_uuid, name)
        self.dsid = dsid

    @property
    def url(self) -> str:
        return self._url

    @property
    def identity(self) -> StoreIdentity:
        return self._identity

    def description(self) -> str:
        return f"neuromirror RIA store at {self._url}"

    def remote_config(self) -> dict[str, str]:
        return {
            "archive-id": self.dsid,
            "autoenable": "true",
            "cost": "300",
            "encryption": "none",
            "externaltype": "ora",
            "name": self._identity.name,
            "type": self.kind,
            "url": escape_value(self._url),
        }

    def has(self, key: str) -> bool:  # pragma: no cover - not used: publish checks object_path
        return False

    def used_bytes(self) -> int:  # pragma: no cover
        return 0

    def receive(self, key: str) -> Incoming:  # pragma: no cover
        raise NotImplementedError("publish links objects into the RIA store itself")

    def clean_stale(self) -> int:  # pragma: no cover
        return 0

    def begin_task(self, task: str) -> int:  # pragma: no cover - publish runs no keep task
        return 0

    def end_task(self, task: str) -> None:  # pragma: no cover
        pass

    def sync(self) -> None:
        """Objects may be fresh copies: on disk before the branch says the store has them."""
        os.sync()


def ora_config_ok(dataset_dir: Path, ora_uuid: Optional[str]) -> bool:
    if ora_uuid is None:
        return True
    return gitutil.config_file_value(dataset_dir / "config", 'datalad"ora-remote"', "uuid") == ora_uuid

"""The stores a mirror knows, each opened once: what keep, verify and restore share (``store.registry.Stores``).

A user's view: a store kept into is known by the index; a branch's ``remote.log`` adds one keep never
used here; a directory that was never a store is not made one by looking; a store moved away is None.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from neuromirror.dataset.mirror import Datasets
from neuromirror.index.store_checks import record_store
from neuromirror.store.directory import DirectoryStore
from neuromirror.store.registry import Stores


def test_stores_open_once_find_recorded_ones_and_never_make_a_store_by_looking(tmp_path: Path) -> None:
    mirror = Datasets(tmp_path / "root")
    kept = DirectoryStore(tmp_path / "kept")
    uuid = kept.identity.uuid  # made by the first keep into it
    record_store(mirror.index, uuid, kept.url, kept.kind, "kept")
    elsewhere = DirectoryStore(tmp_path / "elsewhere")
    other = elsewhere.identity.uuid

    stores = Stores(mirror.index)
    first = stores.open(uuid)
    assert first is not None and first.url == kept.url
    assert stores.open(uuid) is first  # opened once
    assert stores.open(other) is None  # no index record, no branch line: nowhere to look
    stores.add({other: {"type": "directory", "directory": str(tmp_path / "elsewhere")}})
    found = stores.open(other)
    assert found is not None and found.identity.uuid == other
    assert {s.url for s in stores.every()} == {kept.url, elsewhere.url}
    assert [s.url for s in stores.every(besides=[first])] == [elsewhere.url]

    # a plain directory recorded as a store is not made one; a store moved away opens as None
    plain = tmp_path / "plain"
    plain.mkdir()
    fresh = Stores(mirror.index)
    fresh.add({"00000000-1111-2222-3333-444444444444": {"type": "directory", "directory": str(plain)}})
    assert fresh.open("00000000-1111-2222-3333-444444444444") is None
    assert list(plain.iterdir()) == []
    shutil.rmtree(tmp_path / "kept")
    assert Stores(mirror.index).open(uuid) is None
    mirror.close()

"""Large commits in one process take turns (AIND stores of an asset, committed by executor jobs).

Three Zarr datasets are committed at once from three threads sharing one
:class:`~neuromirror.annex.fastimport.Turns`: at no moment do two of them run fast-import
(or their git-annex branch's) at once, nor two checkouts; every dataset ends as git-annex
reads it.  The semaphores are real ones that also count who holds them.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from neuromirror.annex.fastimport import Turns
from neuromirror.annex.keys import md5e_key
from neuromirror.engine.zarr.dataset import commit, ensure_zarr_dataset
from neuromirror.records import MD5, AnnexEntry

FILES = 3000  # above fast_init's direct first commit: the writer's fast-import + checkout path


class CountingSemaphore(threading.Semaphore):
    """A semaphore that remembers the most holders it had at once."""

    def __init__(self) -> None:
        super().__init__(1)
        self._lock = threading.Lock()
        self.holders = 0
        self.most = 0
        self.taken = 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        got = super().acquire(blocking, timeout)
        if got:
            with self._lock:
                self.holders += 1
                self.taken += 1
                self.most = max(self.most, self.holders)
        return got

    def release(self, n: int = 1) -> None:
        with self._lock:
            self.holders -= n
        super().release(n)


def store_entries(name: str) -> list[AnnexEntry]:
    out = []
    for i in range(FILES):
        data = f"{name} chunk {i}".encode()
        md5 = hashlib.md5(data).hexdigest()
        path = f"0/{i // 100}/{i % 100}"
        url = f"https://aind.example/{name}/{path}?versionId=v{i}"
        out.append(AnnexEntry(path, md5e_key(md5, len(data), path), len(data), (url,), MD5, md5))
    return out


def test_three_large_commits_take_turns_and_each_dataset_is_whole(tmp_path: Path) -> None:
    turns = Turns(writing=CountingSemaphore(), checkout=CountingSemaphore())
    names = ["ch405.ome.zarr", "ch488.ome.zarr", "ch561.ome.zarr"]
    places = {n: tmp_path / "asset" / n for n in names}
    for name, place in places.items():
        ensure_zarr_dataset(place, f"store {name}")

    def one(name: str) -> str:
        return commit(
            places[name],
            iter(store_entries(name)),
            subject=f"asset {name}",
            trailers={"Neuromirror-Store": name},
            date=datetime(2024, 1, 1, tzinfo=timezone.utc),
            url_remotes={},
            fresh=True,
            count=FILES,
            turns=turns,
        )

    with ThreadPoolExecutor(3) as pool:
        heads = dict(zip(names, pool.map(one, names)))

    assert isinstance(turns.writing, CountingSemaphore) and isinstance(turns.checkout, CountingSemaphore)
    assert (turns.writing.most, turns.checkout.most) == (1, 1)
    assert (turns.writing.taken, turns.checkout.taken) == (3, 3)
    assert (turns.writing.holders, turns.checkout.holders) == (0, 0)  # all given back
    for name, place in places.items():
        git = ["git", "-C", str(place)]
        assert subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() == heads[name]
        assert subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
        files = subprocess.run([*git, "ls-files"], capture_output=True, text=True).stdout.split()
        assert len([f for f in files if f.startswith("0/")]) == FILES
        key = subprocess.run([*git, "cat-file", "-p", "HEAD:0/29/99"], capture_output=True, text=True).stdout
        key = key.rsplit("/", 1)[-1]
        where = subprocess.run(
            [*git, "annex", "whereis", "--json", "--key", key], capture_output=True, text=True, check=True
        ).stdout
        assert f"https://aind.example/{name}/0/29/99?versionId=v2999" in where

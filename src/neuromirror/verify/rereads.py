"""``verify --stores``'s reads: each chosen copy read back and hashed, on this host or (``--dask``) on the workers.

Why a module: the reads are the part of a store check that grows with the store (every byte read back); the
rest (which copies, the verdicts recorded, the repairs) is the submitting process's, as ``keep --dask``'s
recording is (:mod:`neuromirror.keep.cluster`).  On a cluster a store's copies are read in batches, a packed
store's by whole packs (a pack is one sequential read); each task is read-only and returns its verdicts, so a
task rerun after its worker died just reads again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from neuromirror.store.base import Store
from neuromirror.store.transfer import read_back

#: a copy and its verdict: ((store uuid, key), (verdict, why))
Read = tuple[tuple[str, str], tuple[str, str]]


def read_copies(
    stores: dict[str, Optional[Store]],
    sizes: dict[tuple[str, str], Optional[int]],
    chosen: list[tuple[str, str]],
    pool: ThreadPoolExecutor,
    jobs: int,
    scan: Any = None,
    cluster: Any = None,
) -> Iterator[Read]:
    """Each chosen copy read back and hashed: a packed store's pack by pack (one sequential read of each
    pack for all its keys chosen, or the ``scan`` of all its packs: :mod:`neuromirror.store.packs.check`),
    any other store's key by key; with ``cluster`` (:class:`~neuromirror.keep.cluster.KeepCluster`) by its
    workers."""
    from neuromirror.store.packs.check import check_keys

    packed: dict[str, list[str]] = {}
    single: list[tuple[str, str]] = []
    for uuid, key in chosen:
        store = stores[uuid]
        if store is not None and store.capabilities.packed:
            packed.setdefault(uuid, []).append(key)
        else:
            single.append((uuid, key))
    if cluster is not None:
        yield from _on_cluster(cluster, stores, sizes, packed, single, jobs)
        return

    def check(item: tuple[str, str]) -> Read:
        store = stores[item[0]]
        assert store is not None
        return item, read_back(store, item[1], sizes[item])

    for uuid, keys in packed.items():
        store = stores[uuid]
        found = scan.check(keys) if scan is not None and scan.store is store else check_keys(store, keys, jobs)
        yield from (((uuid, key), v) for key, v in found)
    yield from pool.map(check, single)


@dataclass(frozen=True)
class CheckBatch:
    """One task's reads: ``keys`` (with their sizes) of the store ``store`` (its URL, ``uuid``)."""

    store: str
    uuid: str
    keys: tuple[tuple[str, Optional[int]], ...]
    packed: bool
    jobs: int = 4


def check_batch(batch: CheckBatch, contact: Optional[str] = None) -> tuple[list[Read], dict[str, Any]]:
    """The worker's entry point: each key of ``batch`` read back from the store and hashed (read-only);
    with the task's row for the report (``{task, worker, seconds}``)."""
    from neuromirror.engine.dask_executor import guard_profiler
    from neuromirror.engine.executor import worker_name
    from neuromirror.keep.cluster import opened
    from neuromirror.network import identity
    from neuromirror.store.packs.check import check_keys
    from neuromirror.util import timing

    guard_profiler()
    identity.set_contact(contact)
    clock = timing.Stopwatch()
    store = opened(batch.store)
    if batch.packed:
        reads = [((batch.uuid, k), v) for k, v in check_keys(store, [k for k, _ in batch.keys], batch.jobs)]
    else:
        with ThreadPoolExecutor(max_workers=max(1, batch.jobs), thread_name_prefix="verify-task") as pool:
            reads = list(pool.map(lambda ks: ((batch.uuid, ks[0]), read_back(store, ks[0], ks[1])), batch.keys))
    row = {"task": f"verify {len(reads)} copies in {batch.store}", "worker": worker_name()}
    return reads, {**row, "seconds": round(clock.seconds(), 3)}


def _on_cluster(
    cluster: Any,
    stores: dict[str, Optional[Store]],
    sizes: dict[tuple[str, str], Optional[int]],
    packed: dict[str, list[str]],
    single: list[tuple[str, str]],
    jobs: int,
) -> Iterator[Read]:
    """The reads as tasks: a packed store's keys by whole packs, others' in batches; the verdicts as they end."""
    from neuromirror.keep.cluster import each_ended, keys_per_task

    step = keys_per_task()
    batches: list[CheckBatch] = []
    for uuid, keys in packed.items():
        store = stores[uuid]
        assert store is not None
        by_pack: dict[str, list[str]] = {}
        where = getattr(store, "where", lambda _key: None)  # a packed store's (pack, offset, length)
        for key in keys:
            got = where(key)
            by_pack.setdefault(got[0] if got else "", []).append(key)
        group: list[str] = []
        for pack_keys in by_pack.values():  # whole packs in a task, as many as make a batch
            group += pack_keys
            if len(group) >= step:
                batches.append(_batch(store, uuid, group, sizes, True, jobs))
                group = []
        if group:
            batches.append(_batch(store, uuid, group, sizes, True, jobs))
    by_store: dict[str, list[str]] = {}
    for uuid, key in single:
        by_store.setdefault(uuid, []).append(key)
    for uuid, keys in by_store.items():
        store = stores[uuid]
        assert store is not None
        for at in range(0, len(keys), step):
            batches.append(_batch(store, uuid, keys[at : at + step], sizes, False, jobs))
    futures = [cluster.submit_fn("verify", check_batch, b) for b in batches]
    for reads, row in each_ended(futures):
        cluster.tasks.append(row)
        yield from reads


def _batch(
    store: Store, uuid: str, keys: list[str], sizes: dict[tuple[str, str], Optional[int]], packed: bool, jobs: int
) -> CheckBatch:
    return CheckBatch(store.url, uuid, tuple((k, sizes[(uuid, k)]) for k in keys), packed, jobs)

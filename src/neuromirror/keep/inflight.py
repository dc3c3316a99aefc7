"""The copies of one version under way: its files read in batches, at most a window of copies in flight.

Why: ``keep`` of a 10^6-object Zarr held the version's whole listing and a Future (with its condition
and lock) per key until the version ended: 3.4 GB of RSS.  Here a version's files pass in batches and
the copies in flight follow ``-J``, not the version's size.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Iterable, Iterator, Optional, Sequence, TypeVar

from neuromirror.records import ProgressCallback, VersionFile
from neuromirror.store.transfer import Outcome, Transfer
from neuromirror.util.progress import ByteCalls, ByteCount

T = TypeVar("T")


class Budget:
    """``--budget``: bytes reserved before each copy; the first file that does not fit stops the run cleanly."""

    def __init__(self, limit: int, used: int):
        self.limit = limit
        self.used = used
        self.stopped = False

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; after the first refusal every later file is refused (a clean stop)."""
        if self.stopped or self.used + size > self.limit:
            self.stopped = True
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used -= size


#: a version's files read, sorted, looked up (keep) or counted (copies) this many at a time: its listing
#: is never held whole
BATCH = 5000


def batches(items: Iterable[T], size: int) -> Iterator[tuple[list[T], bool]]:
    """``items`` in lists of ``size``, each with whether it is the last (read one ahead): a version of one
    batch tells its totals at once, as before it was read in batches (restore reads its objects so too)."""
    batch: list[T] = []
    for item in items:
        if len(batch) >= size:
            yield batch, False
            batch = []
        batch.append(item)
    if batch:
        yield batch, True


class Told(ByteCount):
    """The copies' bytes and files, counted, and told to ``progress`` as ``keep LABEL`` and ``files LABEL``
    as the version's batches add them, the totals once the last is read (nothing to copy: nothing told)."""

    def __init__(self, progress: Optional[ProgressCallback], label: str) -> None:
        super().__init__(0)
        self.progress, self.label = progress, label
        self.calls: Optional[ByteCalls] = None

    def add(self, sizes: Sequence[Optional[int]], *, last: bool) -> None:
        self.total_files += len(sizes)
        if self.calls is not None:
            self.calls.add(sizes, last=last)
        elif sizes and self.progress is not None:  # the first copies: told from here on
            self.calls = ByteCalls(self.progress, self.label, sizes, word="keep", more=not last)

    def update(self, key: str, nbytes: int) -> None:
        if self.calls is not None:
            self.calls.update(key, nbytes)

    def finish(self, key: str, size: Optional[int], *, whole: bool = True) -> None:
        super().finish(key, size, whole=whole)
        if self.calls is not None:
            self.calls.finish(key, size, whole=whole)

    def close(self) -> None:
        if self.calls is not None:
            self.calls.close()


class Window:
    """The copies under way, at most ``limit``: a version of 10^6 keys held a Future (and its
    condition and lock) for each until the version ended, ~1.5 KB a key; now memory follows ``-J``.

    A key met again while its copy is under way (two paths with the same bytes, batches apart)
    joins that copy's files instead of being copied twice."""

    def __init__(self, pool: ThreadPoolExecutor, transfer: Transfer, from_stores: Sequence[Any], limit: int) -> None:
        self.pool, self.transfer, self.from_stores, self.limit = pool, transfer, from_stores, limit
        self.jobs: dict[Future[Outcome], list[VersionFile]] = {}
        self.by_key: dict[str, list[VersionFile]] = {}

    def join(self, unseen: dict[str, list[VersionFile]]) -> dict[str, list[VersionFile]]:
        """``unseen`` without the keys under way (their files added to those copies)."""
        for key in [k for k in unseen if k in self.by_key]:
            self.by_key[key].extend(unseen.pop(key))
        return unseen

    def submit(self, key: str, files: list[VersionFile]) -> Iterator[tuple[Outcome, list[VersionFile]]]:
        """Hand ``key`` to the pool (with every URL of its files; none with --from: only those stores are
        read), first yielding the copies that finished while the window was full."""
        while len(self.jobs) >= self.limit:
            yield from self._finished()
        urls = () if self.from_stores else tuple(dict.fromkeys(u for f in files for u in f.urls))
        self.jobs[self.pool.submit(self.transfer, key, files[0].size, urls)] = files
        self.by_key[key] = files

    def drain(self) -> Iterator[tuple[Outcome, list[VersionFile]]]:
        while self.jobs:
            yield from self._finished()

    def stop(self) -> None:
        """After an interruption (the transfer told to stop): the copies under way ended."""
        wait(self.jobs)

    def salvage(self, present: Any) -> None:
        """After an interruption: the keys whose copies finished well go to ``present``, to be recorded
        (the store holds them; a rerun need not copy them again)."""
        for fut, files in self.jobs.items():
            if fut.done() and not fut.cancelled() and fut.exception() is None and fut.result().ok:
                for f in files:
                    present.add(f)

    def _finished(self) -> Iterator[tuple[Outcome, list[VersionFile]]]:
        """The copies done once at least one is."""
        done, _ = wait(self.jobs, return_when=FIRST_COMPLETED)
        for fut in done:
            files = self.jobs.pop(fut)
            outcome = fut.result()
            self.by_key.pop(outcome.key, None)
            yield outcome, files


def window_for(
    cluster: Any,
    pool: ThreadPoolExecutor,
    transfer: Transfer,
    from_stores: Sequence[Any],
    limit: int,
    label: str,
) -> Any:
    """The copies' window: this host's threads, or (``keep --dask``) the cluster's tasks (:mod:`.cluster`)."""
    if cluster is None:
        return Window(pool, transfer, from_stores, limit)
    from neuromirror.keep.cluster import ClusterWindow

    return ClusterWindow(cluster, transfer, from_stores, label)

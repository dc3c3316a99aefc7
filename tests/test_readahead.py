"""Reading a pin in place over a link: few requests, few bytes, as remfile does, through ``neuromirror://``.

A lab opens an NWB file of a published dandiset with pynwb (h5py alone if pynwb is missing) and reads
100 rows of its ``ElectricalSeries``, through ``neuromirror://`` on its own mirror, through a served
mirror's view, and, for comparison, on the pinned URL with remfile (when installed), with h5py over
fsspec's HTTP file asking for exactly what h5py reads, and with fsspec's one-window ``readahead`` of
32 KiB (what ``neuromirror://`` did before :mod:`neuromirror.read.readahead`).  The S3 stand-in counts
the requests and bytes each served.  Each read gives the same rows; ``neuromirror://`` makes far fewer
requests than a 32 KiB window did, no more than twice remfile's, and moves at most twice the bytes of
the reader it is compared with.  A sequential read of the whole file grows its blocks (a few requests,
no byte twice).  Below, the cache itself with a fetch function that counts: its LRU holds its cap,
random reads stay small, a read's parts are fetched concurrently, and a read-ahead that failed in the
background fails (or falls back) again in the reader's thread.
"""

from __future__ import annotations

import gc
import io
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pytest

from helpers.keep import T0, Dandiset
from helpers.read import view_server
from helpers.retrieve import Runner

NWB = "sub-01/sub-01_ecephys.nwb"
ROWS, CHANNELS = 120_000, 32  # 7.7 MB of int16 samples
SLICE = slice(60_000, 60_100)


def samples() -> np.ndarray:
    return (np.arange(ROWS * CHANNELS, dtype="int64") % 30_011).astype("int16").reshape(ROWS, CHANNELS)


def nwb_bytes() -> bytes:
    """An NWB file as a rig writes one: electrodes, an ``ElectricalSeries`` and a few other series (pynwb),
    else an HDF5 file of the same samples (h5py)."""
    import h5py

    buf = io.BytesIO()
    try:
        from pynwb import NWBHDF5IO, NWBFile, TimeSeries
        from pynwb.ecephys import ElectricalSeries
    except ImportError:
        with h5py.File(buf, "w") as h5:
            h5.create_dataset("acquisition/ElectricalSeries/data", data=samples())
        return buf.getvalue()
    nwb = NWBFile(session_description="read ahead", identifier="read-ahead", session_start_time=T0)
    probe = nwb.create_device(name="probe")
    shank = nwb.create_electrode_group(name="shank", description="one shank", location="CA1", device=probe)
    for _ in range(CHANNELS):
        nwb.add_electrode(group=shank, location="CA1")
    region = nwb.create_electrode_table_region(list(range(CHANNELS)), "all electrodes")
    nwb.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=samples(), electrodes=region, rate=30_000.0))
    for k in range(5):
        nwb.add_acquisition(TimeSeries(name=f"speed{k}", data=np.arange(1000, dtype="float32"), unit="m/s", rate=10.0))
    with h5py.File(buf, "w") as h5, NWBHDF5IO(file=h5, mode="w") as out:
        out.write(nwb)
    return buf.getvalue()


def rows_of(f: Any) -> np.ndarray:
    """The slice, read from the open file ``f`` as a user does: pynwb when installed, else h5py."""
    import h5py

    with h5py.File(f, "r") as h5:
        try:
            from pynwb import NWBHDF5IO
        except ImportError:
            return h5["acquisition/ElectricalSeries/data"][SLICE]
        with NWBHDF5IO(file=h5, load_namespaces=True) as nwb_io:
            return nwb_io.read().acquisition["ElectricalSeries"].data[SLICE]


@pytest.fixture(scope="module")
def published(dandi_archive, tmp_path_factory) -> Dandiset:  # noqa: ANN001
    """A published dandiset holding the NWB file, synced into a mirror."""
    when = T0 + timedelta(days=1600 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="read ahead", created=when)
    files = {NWB: nwb_bytes()}
    dandi_archive.put_asset(ident, NWB, files[NWB], when=when)
    version = dandi_archive.publish(ident, when=when + timedelta(hours=1))
    run = Runner(tmp_path_factory.mktemp("readahead") / "mirror")
    run.ok("sync", f"dandi:{ident}", "--dandi-api", dandi_archive.api_url)
    return Dandiset(dandi_archive, ident, version, files, run)


@dataclass
class Served:
    requests: int = 0
    bytes: int = 0
    rows: Optional[np.ndarray] = field(default=None, repr=False)


def measured(s3: Any, read: Callable[[], Any]) -> Served:
    """What the S3 stand-in served (GETs, body bytes) while ``read()`` ran, and what it returned."""
    log = s3.log_requests()
    try:
        got = read()
    finally:
        s3.log_requests(False)
    return Served(sum(1 for method, _ in log if method == "GET"), s3.bytes_sent, got)


def test_an_nwb_slice_costs_few_requests_and_few_bytes_like_remfile(published: Dandiset) -> None:
    import fsspec

    s3 = published.archive.s3
    path = f"neuromirror://dandi/{published.id}@{published.version}/{NWB}"
    url = fsspec.filesystem("neuromirror", root=str(published.run.root)).info(path)["url"]
    want = samples()[SLICE]

    def via(opener: Callable[[], Any]) -> Served:
        def read() -> np.ndarray:
            with opener() as f:
                return rows_of(f)

        got = measured(s3, read)
        np.testing.assert_array_equal(got.rows, want)
        # pynwb leaves cyclic garbage holding h5py objects: freed here, not by a collection in the S3 stand-in's
        # thread (in this process) while h5py holds its lock waiting for that thread's answer (a deadlock)
        gc.collect()
        return got

    http = fsspec.filesystem("http", skip_instance_cache=True)
    ours = via(lambda: fsspec.open(path, "rb", root=str(published.run.root)))
    exact = via(lambda: http.open(url, "rb", cache_type="none"))  # one request per h5py read
    window = via(lambda: http.open(url, "rb", block_size=32 * 1024, cache_type="readahead"))  # neuromirror:// before
    plain = via(lambda: http.open(url, "rb", block_size=32 * 1024, cache_type="readahead-growing"))  # the cache alone
    with view_server(published.run.root) as base:
        served = via(lambda: fsspec.open(path, "rb", base_url=base))
    size = len(published.files[NWB])
    print(f"\nfile {size} B; neuromirror:// {ours}; served {served}; exact {exact}; 32 KiB window {window}")
    assert (plain.requests, plain.bytes) == (ours.requests, ours.bytes)  # any fsspec file: cache_type= its name

    assert ours.requests <= window.requests // 3, (ours, window)
    assert ours.requests <= exact.requests // 10, (ours, exact)
    assert ours.bytes <= 2 * exact.bytes + 256 * 1024 and ours.bytes < size // 10, (ours, exact)
    # the served mirror's reads go where the view redirected: the same requests (its view's HEAD besides)
    assert served.requests <= ours.requests + 1 and served.bytes <= ours.bytes + 1024, (served, ours)
    try:
        import remfile
    except ImportError:
        return
    rem = via(lambda: _closing(remfile.File(url)))
    print(f"remfile {rem}")
    assert ours.requests <= 2 * rem.requests and ours.bytes <= 2 * rem.bytes + 64 * 1024, (ours, rem)


def _closing(f: Any) -> Any:
    from contextlib import closing

    return closing(f)


def test_a_sequential_read_grows_its_blocks(published: Dandiset) -> None:
    import fsspec

    s3 = published.archive.s3
    path = f"neuromirror://dandi/{published.id}@{published.version}/{NWB}"
    data = published.files[NWB]

    def read() -> bytes:
        with fsspec.open(path, "rb", root=str(published.run.root)) as f:
            return b"".join(iter(lambda: f.read(64 * 1024), b""))

    got = measured(s3, read)
    assert got.rows == data
    blocks = -(-len(data) // (32 * 1024))
    assert got.requests <= 16 < blocks // 10, (got, blocks)  # 1, 1, 2, 4, ... 256 blocks at a time
    assert got.bytes == len(data), got  # no byte twice, none past the end


# -- the cache alone, with a fetch function that counts -------------------------------------------------------


class Counted:
    """A file's bytes behind a fetch function that counts its calls (and can be told to fail, or to wait)."""

    def __init__(self, size: int) -> None:
        self.data = bytes(i * 7 % 251 for i in range(size))
        self.calls: list[tuple[int, int]] = []
        self.by: list[tuple[str, int]] = []  # (thread, start) of each call
        self.fail: Optional[Callable[[int, int], bool]] = None
        self.gate: Optional[threading.Barrier] = None
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, start: int, end: int) -> bytes:
        with self.lock:
            self.calls.append((start, end))
            self.threads.add(threading.current_thread().name)
            self.by.append((threading.current_thread().name, start))
        if self.gate is not None:
            self.gate.wait()  # every part in flight at once, else BrokenBarrierError after its timeout
        if self.fail is not None and self.fail(start, end):
            raise OSError(f"bytes {start}-{end} not served")
        return self.data[start:end]

    def moved(self) -> int:
        return sum(e - s for s, e in self.calls)


def cache(fetch: Counted, **options: Any) -> Any:
    from neuromirror.read.readahead import ReadAheadCache

    return ReadAheadCache(32 * 1024, fetch, len(fetch.data), **options)


@pytest.fixture
def drained() -> Iterator[None]:
    """Every background fetch of the test finished before it checks (the pool's queue drained, no sleep)."""
    from neuromirror.read.readahead import THREADS, pool

    yield
    gate = threading.Barrier(THREADS + 1, timeout=30)
    for _ in range(THREADS):
        pool().submit(gate.wait)
    gate.wait()


def test_random_small_reads_stay_small_and_jumps_back_are_held(drained: None) -> None:
    fetch = Counted(4 << 20)
    c = cache(fetch)
    spots = [0, 3_900_000, 0, 2_000_000, 3_900_100, 48, 2_000_500, 3_900_000]
    for at in spots:
        assert c._fetch(at, at + 500) == fetch.data[at : at + 500]
    assert len(fetch.calls) == 3 and fetch.moved() == 3 * 32 * 1024, fetch.calls  # one block each, then held


def test_sequential_reads_run_ahead_in_growing_blocks(drained: None) -> None:
    fetch = Counted(6 << 20)
    c = cache(fetch, max_block=1 << 20)
    for at in range(0, len(fetch.data), 4096):
        assert c._fetch(at, at + 4096) == fetch.data[at : at + 4096]
    sizes = [e - s for s, e in sorted(fetch.calls)]
    # the first block; the second with the first read-ahead (one request); then ahead, twice as far each time
    assert sizes[:4] == [32768, 3 * 32768, 4 * 32768, 8 * 32768] and max(sizes) == 1 << 20, sizes
    assert fetch.moved() == len(fetch.data) and len(fetch.calls) <= 12, sizes
    assert any(name.startswith("neuromirror-readahead") for name in fetch.threads)  # ahead, in the background


def test_a_large_read_is_fetched_in_concurrent_parts_and_the_lru_holds_its_cap(drained: None) -> None:
    fetch = Counted(12 << 20)
    c = cache(fetch, part=2 << 20, cache_bytes=4 << 20, prefetch=False)
    fetch.gate = threading.Barrier(4, timeout=30)  # 8 MiB in parts of 2 MiB: all four in flight together
    assert c._fetch(1 << 20, 9 << 20) == fetch.data[1 << 20 : 9 << 20]
    fetch.gate = None
    assert sorted(e - s for s, e in fetch.calls) == [2 << 20] * 4
    assert c._held <= 4 << 20 and len(c._blocks) == 128  # the two parts fetched last, the two others dropped
    fetch.calls.clear()
    assert c._fetch(1 << 20, 9 << 20) == fetch.data[1 << 20 : 9 << 20]
    assert sum(e - s for s, e in fetch.calls) == 4 << 20, fetch.calls  # what was dropped, fetched again


def test_a_read_ahead_that_failed_fails_again_in_the_readers_thread(drained: None) -> None:
    """A URL that dies after the reader started: its read-ahead fails quietly in the background; the
    reader's own fetch of those bytes goes through the fetch function again (the store's copy, or an error)."""
    fetch = Counted(2 << 20)
    c = cache(fetch)
    for at in range(0, 4 * 32 * 1024, 4096):  # a stream: blocks 4.. are read ahead
        c._fetch(at, at + 4096)
    fetch.fail = lambda start, end: True
    with pytest.raises(OSError, match="not served"):
        for at in range(4 * 32 * 1024, len(fetch.data), 4096):
            assert c._fetch(at, at + 4096) == fetch.data[at : at + 4096]
    me = threading.current_thread().name
    assert any(name != me for name, _ in fetch.by)  # read ahead in the background (and failed there)
    assert fetch.by[-1][0] == me  # the error the reader got is its own fetch's
    fetch.fail = None  # the store's copy: the same bytes again
    tail = len(fetch.data) - 100
    assert c._fetch(tail, len(fetch.data)) == fetch.data[tail:]

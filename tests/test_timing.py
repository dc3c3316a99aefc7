"""util/timing: phases named once beside their work (issue 41), no clock arithmetic at the call sites.

What a phase measures is never asserted (speed is scripts/bench's); which phases a collector
holds, how nested and dropped stretches count, and how a worker's phases fold in, are.
"""

from __future__ import annotations

from neuromirror.util import timing


def test_phases_nest_and_a_dropped_stretch_is_left_out() -> None:
    with timing.collecting() as spent:
        with timing.phase("outer"):
            with timing.phase("inner"):
                pass
        with timing.phase("empty") as span:
            span.drop()
        with timing.phase("outer"):  # a second stretch adds to the first
            pass
    assert set(spent) == {"outer", "inner"}
    assert spent["outer"] >= spent["inner"] >= 0.0
    assert timing.current() is None  # the collector is this block's only


def test_a_decorated_function_is_a_stretch_of_its_phase_each_call() -> None:
    calls: list[int] = []

    @timing.timed("work")
    def work(n: int) -> int:
        calls.append(n)
        return n * 2

    assert work(1) == 2  # no collector: the function still runs
    with timing.collecting() as spent:
        assert work(2) == 4
        assert work(3) == 6
    assert calls == [1, 2, 3]
    assert set(spent) == {"work"}


def test_a_workers_phases_fold_in_under_a_prefix() -> None:
    mine = timing.Timings(listing=1.0)
    worker = timing.Timings()
    worker.add("listing", 0.5)
    worker.add("listing", 0.25)
    mine.merge(worker, prefix="zarr-")
    mine.merge({"listing": 2.0})
    assert mine == {"listing": 3.0, "zarr-listing": 0.75}


def test_a_phase_into_an_explicit_collector_leaves_the_threads_alone() -> None:
    own = timing.Timings()
    with timing.collecting() as spent:
        with timing.phase("create", own):
            pass
    assert set(own) == {"create"} and not spent
    assert timing.Stopwatch().seconds() >= 0.0

"""``pack-service-cycles`` (issue 57): the year of small keeps by the real service, not a simulation of it.

``pack-cycles`` drives :class:`neuromirror.store.packs.store.PackStore` in-process; this one runs
``neuromirror serve`` itself (its own process, its schedule, its sync, its keep step and the repacking that
keep's ``sync()`` does) against the DANDI stand-in.  A dandiset starts with 10 assets, is synced and kept
into ``pack+file://STORE --pack-size --pack-cycles-pack-size`` by the CLI (the store is made then: the
service makes none), then the service runs with ``keep: published`` and a schedule of ``--pack-service-every``
seconds.  Each of ``--pack-service-cycles`` cycles gives the draft's 10 files new content of 1-8 kB and
publishes it (10 new keys; every version stays 10 files, as a dandiset whose files are revised); the cycle ends when a service run that started after the publish has ended and the store names every
key published so far.  A process of its own reads every key named so far, over and over, while the service
runs (a second long-lived ``PackStore``: its failed reads are ``unreadable_beside``).  After each cycle, as in ``pack-cycles``: the files of the store against
``2 * ceil(bytes / pack size) + 16`` (bytes: the keys' bytes kept), and every key the store has ever named
read back and hashed against the key by a long-lived reader (a ``PackStore`` of this process held across
the service's repacks, as a serving view holds one).  At the end ``neuromirror verify --stores`` must be
clean.  The targets are ``pack-cycles``'s.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from neuromirror.bench.archives import Archives, direct_puts
from neuromirror.bench.measure import child_env, index_rows, neuromirror_cmd, say, stop_process
from neuromirror.bench.scenarios.packs.cycles import KEY_SIZES, KEYS_PER_CYCLE, SLACK, _files, _pack_bytes
from neuromirror.bench.targets import judge, reported
from neuromirror.store.transfer import read_back

TARGETS = (
    ("pack-service-cycles", "worst_files_over_rule", 1.0, "max", "pack-service-cycles: files / (2 ceil(bytes / pack size) + 16), worst cycle"),
    ("pack-service-cycles", "unreadable", 0, "max", "pack-service-cycles: reads of a key the store named that failed or gave other bytes"),
    ("pack-service-cycles", "lost_at_end", 0, "max", "pack-service-cycles: published keys no index file names after the last cycle"),
    ("pack-service-cycles", "unreadable_beside", 0, "max", "pack-service-cycles: reads beside the running service that failed or gave other bytes"),
    ("pack-service-cycles", "verify_rc", 0, "max", "pack-service-cycles: verify --stores exit code after the last cycle"),
)  # fmt: skip
WHEN = datetime(2025, 1, 1, tzinfo=timezone.utc)


def add_options(p: Any) -> None:
    g = p.add_argument_group("pack-service-cycles (issue 57): the real service's small keeps into one packed store")
    g.add_argument("--pack-service-cycles", type=int, default=200, help="pack-service-cycles: cycles (default 200)")
    g.add_argument(
        "--pack-service-every", type=float, default=1.0, help="pack-service-cycles: the schedule's interval, s (1)"
    )


class _Service:
    """``neuromirror serve`` on one source, and what its index says of its runs."""

    def __init__(self, root: Path, spec: str, api: str, url: str, every: float) -> None:
        self.root, self.spec = root, spec
        cfg = root.parent / "pack-service-cycles.yaml"
        cfg.write_text(
            "contact: bench@example.org\n"
            f"store: {json.dumps(url)}\n"
            f"defaults:\n  schedule: {{interval: {every:g}s}}\n  options: {{dandi_api: {json.dumps(api)}}}\n"
            f"sources:\n  - spec: {json.dumps(spec)}\n    keep: published\n"
        )
        self.log = (root.parent / "pack-service-cycles.log").open("w")
        self.proc = subprocess.Popen(
            [*neuromirror_cmd(), "--root", str(root), "serve", "--config", str(cfg)],
            env=child_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def _query(self, sql: str, *args: Any) -> list[tuple]:
        if self.proc.poll() is not None:
            raise RuntimeError(f"pack-service-cycles: the service exited {self.proc.returncode}; see {self.log.name}")
        return index_rows(self.root, sql, *args)

    def last_run(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM runs")[0][0])

    def ended_after(self, run: int) -> list[str]:
        """Outcomes of the source's runs after run id ``run`` that have ended."""
        rows = self._query("SELECT outcome FROM runs WHERE source = ? AND id > ? AND ended IS NOT NULL", self.spec, run)
        return [str(o) for (o,) in rows]

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


class _Reader:
    """A process of its own that reads every key the store has named, over and over, while the service keeps
    and repacks: a serving view holding one ``PackStore`` across the service's cycles (a read that fails or
    gives other bytes is counted).  The keys to read are in ``keys_file``, rewritten (renamed into place)
    after each cycle."""

    def __init__(self, store: Path, keys_file: Path) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.keys_file = keys_file
        self.counts = ctx.Array("q", 3)  # reads, failed, passes
        self._stop = ctx.Event()
        args = (str(store), str(keys_file), self._stop, self.counts, os.getpid())
        self._proc = ctx.Process(target=_read_over_and_over, args=args, daemon=True)
        self._proc.start()

    def reading(self, timeout: float = 300) -> None:
        """Return once the reader has read the keys named so far once (it is reading before the first cycle)."""
        deadline = time.monotonic() + timeout
        while self.counts[2] < 1:
            if not self._proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("pack-service-cycles: the reader beside the service did not start")
            time.sleep(0.05)

    def name(self, keys: set[str]) -> None:
        tmp = self.keys_file.with_suffix(".tmp")
        tmp.write_text("\n".join(sorted(keys)))
        tmp.replace(self.keys_file)

    def stop(self) -> tuple[int, int, int]:
        self._stop.set()
        self._proc.join(120)
        reads, failed, passes = self.counts[:]
        return int(reads), int(failed), int(passes)


def _read_over_and_over(store: str, keys_file: str, stop: Any, counts: Any, parent: int) -> None:
    """The reader's loop; it ends when told, or when the bench that started it is gone (killed: no one tells it)."""
    from neuromirror.store.packs.store import PackStore

    reader = PackStore.directory(store)
    while not stop.is_set() and os.getppid() == parent:
        try:
            keys = Path(keys_file).read_text().split()
        except FileNotFoundError:
            keys = []
        for key in keys:
            if stop.is_set():
                return
            good = _good(reader, key)
            with counts.get_lock():
                counts[0] += 1
                counts[1] += not good
        with counts.get_lock():
            counts[2] += 1
        stop.wait(0.2)


def _add_assets(archives: Archives, ident: str, cycle: int, rng: random.Random) -> int:
    """The draft's 10 files given new content (10 new keys), then published; their bytes.  The same paths
    each cycle: a dandiset whose files are revised, so that a version stays 10 files and the cycles measure
    the store, not a version of 10,000 files."""
    nbytes = 0
    with direct_puts(archives):
        for i in range(KEYS_PER_CYCLE):
            data = f"{cycle}:{i}:".encode() + rng.randbytes(rng.randint(*KEY_SIZES))
            archives.dandi.put_asset(ident, f"sub-{i:02d}/f.dat", data, when=WHEN)
            nbytes += len(data)
    archives.dandi.publish(ident, when=WHEN + timedelta(minutes=cycle))
    return nbytes


def _good(reader: Any, key: str) -> bool:
    """The key reads whole from the store and hashes to its own name (``verify --stores``'s reading)."""
    return read_back(reader, key, None)[0] == "good"


def bench_pack_service_cycles(args: Any, archives: Archives, work: Path) -> list[dict]:
    """The scenario's one result (see the module), judged."""
    from neuromirror.store.packs.store import PackStore

    cycles, every, pack_size = args.pack_service_cycles, args.pack_service_every, int(args.pack_cycles_pack_size)
    root, store = work / "pack-service-cycles", work / "pack-service-cycles-store"
    for p in (root, store):
        shutil.rmtree(p, ignore_errors=True)
    url = f"pack+file://{store}"
    rng = random.Random(5758)
    ident = archives.dandi.create_dandiset(name="bench pack service cycles", created=WHEN)
    spec = f"dandi:{ident}"
    nbytes = _add_assets(archives, ident, 0, rng)
    env = {**child_env(), "NEUROMIRROR_DANDI_API": archives.dandi.api_url}
    for cmd in (["sync", spec], ["keep", spec, "--to", url, "--pack-size", str(pack_size)]):
        subprocess.run([*neuromirror_cmd(), "--root", str(root), *cmd], env=env, check=True, capture_output=True)
    reader = PackStore.directory(str(store))
    named: set[str] = set(PackStore.directory(str(store)).keys.all_keys())
    worst, worst_at, unreadable, first_unreadable = 0.0, 0, 0, 0
    walls: list[float] = []
    outcomes: dict[str, int] = {}
    beside = _Reader(store, work / "pack-service-cycles.keys")
    beside.name(named)
    service = _Service(root, spec, archives.dandi.api_url, url, every)
    say(f"pack-service-cycles: {cycles} cycles x {KEYS_PER_CYCLE} keys, neuromirror serve every {every:g} s ...")
    try:
        beside.reading()
        for cycle in range(1, cycles + 1):
            t, since = time.perf_counter(), service.last_run()
            nbytes += _add_assets(archives, ident, cycle, rng)
            want = KEYS_PER_CYCLE * (cycle + 1)
            deadline = time.monotonic() + 600
            while True:
                ended = service.ended_after(since)
                if ended:
                    named |= PackStore.directory(str(store)).keys.all_keys()
                    if len(named) >= want:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"pack-service-cycles: cycle {cycle} not kept after 600 s; see {service.log.name}"
                    )
                time.sleep(0.2)
            walls.append(time.perf_counter() - t)
            beside.name(named)
            for o in ended:
                outcomes[o] = outcomes.get(o, 0) + 1
            ratio = _files(store) / (2 * -(-nbytes // pack_size) + SLACK)
            if ratio > worst:
                worst, worst_at = ratio, cycle
            bad = sum(not _good(reader, key) for key in named)
            unreadable += bad
            first_unreadable = first_unreadable or (cycle if bad else 0)
            if cycle % max(1, cycles // 10) == 0:
                say(f"pack-service-cycles: cycle {cycle}: {_files(store)} files, {len(named)} keys, worst {worst:.3f}")
    finally:
        service.stop()
        reads, failed, passes = beside.stop()
    verify = subprocess.run(
        [*neuromirror_cmd(), "--root", str(root), "verify", "--stores", "--store", url, "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    fresh = PackStore.directory(str(store))
    result = _result(cycles, every, pack_size, store, nbytes, named, fresh, walls, outcomes)
    result.update(
        worst_files_over_rule=round(worst, 3),
        worst_cycle=worst_at,
        unreadable=unreadable,
        first_unreadable_cycle=first_unreadable,
        reads_beside=reads,
        unreadable_beside=failed,
        passes_beside=passes,
        verify_rc=verify.returncode,
        verify_checked=_checked(verify.stdout),
    )
    judge([result], TARGETS)
    say(
        f"pack-service-cycles: {cycles} service cycles, {result['files_last']} files (rule {result['rule_last']}), "
        f"worst {worst:.3f} at cycle {worst_at}; {unreadable} unreadable reads after cycles, {failed} of "
        f"{reads} beside the service; {result['lost_at_end']} keys lost; "
        f"verify --stores rc {verify.returncode}; cycle {result['cycle_median_s']} s (median)"
    )
    return [result]


def _checked(out: str) -> Optional[int]:
    try:
        return int(json.loads(out)["checked"])
    except (ValueError, KeyError, TypeError):
        return None


def _result(
    cycles: int,
    every: float,
    pack_size: int,
    store: Path,
    nbytes: int,
    named: set[str],
    fresh: Any,
    walls: list[float],
    outcomes: dict[str, int],
) -> dict[str, Any]:
    tenth = max(1, cycles // 10)
    return {
        "scenario": "pack-service-cycles",
        "n": cycles,
        "every_s": every,
        "keys": len(named),
        "bytes": nbytes,
        "pack_size": pack_size,
        "files_last": _files(store),
        "packs_last": len(_pack_bytes(store)),
        "rule_last": 2 * -(-nbytes // pack_size) + SLACK,
        "lost_at_end": KEYS_PER_CYCLE * (cycles + 1) - sum(1 for k in named if fresh.has(k)),
        "run_outcomes": outcomes,
        "cycle_median_s": round(statistics.median(walls), 2) if walls else None,
        "cycle_first_tenth_s": round(statistics.median(walls[:tenth]), 2) if walls else None,
        "cycle_last_tenth_s": round(statistics.median(walls[-tenth:]), 2) if walls else None,
    }


def pack_service_cycles_targets(results: list[dict]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for result in results:
        if result.get("scenario") == "pack-service-cycles":
            out += reported(result, f"{result['n']:,} service cycles, pack size {result['pack_size']}")
    return out

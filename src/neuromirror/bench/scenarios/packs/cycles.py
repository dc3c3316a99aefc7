"""``pack-cycles`` (issue 57): a service's year of small keeps into one packed store.

K cycles, each as one ``keep`` run of a scheduled service that found 10 new small keys: a fresh
:class:`neuromirror.store.packs.store.PackStore` on the same directory (a new process's view), each key
``receive``d, written, ``commit``ted, then ``sync()`` (which seals the open pack and merges the small packs,
:func:`neuromirror.store.packs.repack.merge_small`), as keep does before a version's keys are recorded.
The pack size is small (``--pack-cycles-pack-size``, default 256 KiB) so that packs fill and merges
happen many times over.

After each cycle: every file of the store counted against ``2 * ceil(bytes / pack size) + 16`` (bytes: the
keys' bytes kept so far), and every key kept so far read back (``open_key``, its bytes hashed against the
key) by a long-lived reader — a second ``PackStore`` on the same directory, as a serving view would hold
one across the writer's repacks.  The result: the worst files / rule over the cycles and where, keys ever
unreadable or wrong (both must stay 0), the bytes written into packs over the keys' bytes (the merges'
rewriting), and the cycle's time (median, last tenth against first tenth).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from neuromirror.bench.measure import say
from neuromirror.bench.targets import judge, reported

KEYS_PER_CYCLE = 10
#: the keys' sizes: uniform in this range (bytes)
KEY_SIZES = (1_000, 8_000)
SLACK = 16
TARGETS = (
    ("pack-cycles", "worst_files_over_rule", 1.0, "max", "pack-cycles: files in the store / (2 ceil(bytes / pack size) + 16), worst cycle"),
    ("pack-cycles", "unreadable", 0, "max", "pack-cycles: reads of a kept key that failed or gave other bytes, over every cycle"),
    ("pack-cycles", "lost_at_end", 0, "max", "pack-cycles: kept keys no index file names after the last cycle"),
)  # fmt: skip


def _files(path: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(path))


def _pack_bytes(path: Path) -> dict[str, int]:
    try:
        return {e.name: e.stat().st_size for e in os.scandir(path / "packs")}
    except FileNotFoundError:
        return {}


def _cycle_keys(rng: random.Random, cycle: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(KEYS_PER_CYCLE):
        data = f"{cycle}:{i}:".encode() + rng.randbytes(rng.randint(*KEY_SIZES))
        out.append((f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.dat", data))
    return out


def bench_pack_cycles(work: Path, cycles: int, pack_size: int) -> list[dict]:
    """The scenario's one result (see the module), judged."""
    from neuromirror.store.packs.store import PackStore

    where = work / "pack-cycles-store"
    shutil.rmtree(where, ignore_errors=True)
    rng = random.Random(5757)
    reader = PackStore.directory(str(where), pack_size=pack_size)
    kept: list[tuple[str, str]] = []  # key, sha256 of its bytes
    nbytes = written = unreadable = 0
    worst, worst_at, merged = 0.0, 0, 0
    walls: list[float] = []
    reads_s = 0.0
    first_unreadable = 0
    seen: dict[str, int] = {}
    say(f"pack-cycles: {cycles} cycles x {KEYS_PER_CYCLE} keys into a packed store of {pack_size}-byte packs ...")
    for cycle in range(1, cycles + 1):
        t = time.perf_counter()
        store = PackStore.directory(str(where), pack_size=pack_size)
        for key, data in _cycle_keys(rng, cycle):
            incoming = store.receive(key)
            incoming.write(data)
            incoming.commit()
            kept.append((key, key.split("--", 1)[1].split(".", 1)[0]))
            nbytes += len(data)
        store.sync()
        walls.append(time.perf_counter() - t)
        merged += store.merged
        packs = _pack_bytes(where)
        written += sum(size for name, size in packs.items() if name not in seen)
        seen = packs
        ratio = _files(where) / (2 * -(-nbytes // pack_size) + SLACK)
        if ratio > worst:
            worst, worst_at = ratio, cycle
        r0 = time.perf_counter()
        for key, digest in kept:
            try:
                with reader.open_key(key) as fh:
                    good = hashlib.sha256(fh.read()).hexdigest() == digest
            except OSError:
                good = False
            unreadable += not good
            if not good and not first_unreadable:
                first_unreadable = cycle
        reads_s += time.perf_counter() - r0
        if cycle % max(1, cycles // 10) == 0:
            say(
                f"pack-cycles: cycle {cycle}: {_files(where)} files, {len(packs)} packs, {merged} merged, worst {worst:.3f}"
            )
    tenth = max(1, cycles // 10)
    fresh = PackStore.directory(str(where))  # a new process's view: which keys the store still names
    lost = sum(1 for key, _ in kept if not fresh.has(key))
    result: dict[str, Any] = {
        "scenario": "pack-cycles",
        "n": cycles,
        "keys": len(kept),
        "bytes": nbytes,
        "pack_size": pack_size,
        "files_last": _files(where),
        "packs_last": len(_pack_bytes(where)),
        "rule_last": 2 * -(-nbytes // pack_size) + SLACK,
        "worst_files_over_rule": round(worst, 3),
        "worst_cycle": worst_at,
        "unreadable": unreadable,
        "first_unreadable_cycle": first_unreadable,
        "lost_at_end": lost,
        "reads": len(kept) * (len(kept) // KEYS_PER_CYCLE + 1) // 2,
        "reads_s": round(reads_s, 2),
        "packs_merged": merged,
        "pack_bytes_written": written,
        "write_amplification": round(written / nbytes, 2) if nbytes else None,
        "cycle_median_s": round(statistics.median(walls), 4),
        "cycle_first_tenth_s": round(statistics.median(walls[:tenth]), 4),
        "cycle_last_tenth_s": round(statistics.median(walls[-tenth:]), 4),
        "cycles_s": round(sum(walls), 2),
    }
    judge([result], TARGETS)
    say(
        f"pack-cycles: {cycles} cycles, {result['files_last']} files (rule {result['rule_last']}), worst {worst:.3f} at cycle "
        f"{worst_at}; {unreadable} unreadable reads (first at cycle {first_unreadable}), {lost} keys lost; {merged} packs merged, write amplification {result['write_amplification']}; "
        f"cycle {result['cycle_first_tenth_s']} -> {result['cycle_last_tenth_s']} s"
    )
    shutil.rmtree(where, ignore_errors=True)
    return [result]


def pack_cycles_targets(results: list[dict]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for result in results:
        if result.get("scenario") == "pack-cycles":
            out += reported(result, f"K = {result['n']:,} cycles, pack size {result['pack_size']}")
    return out

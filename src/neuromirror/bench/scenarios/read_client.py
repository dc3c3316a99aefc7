"""The reader side of the ``read`` scenario (:mod:`.read_view`): a process of its own, as a lab's client is.

``python -m neuromirror.bench.scenarios.read_client JOB.json`` runs one phase and prints its JSON.
It imports only what a client would (requests, fsspec), so that its timings are not the bench's:
the stand-in archives run in the bench's process, the view in ``neuromirror serve``'s.

Phases (``job["phase"]``):

* ``ttfb``: time to first byte of the same files (a) from the archive's pinned URL (plain GET),
  (b) through the view (GET, the 307 followed, as a client does), (c) through ``neuromirror://``
  (``fsspec.open`` + ``read(1)``), (d) from the pinned URL through fsspec's HTTP filesystem (what
  (c) reads through).  The first request of each kind is reported apart (cold), then one warm-up
  round, then ``rounds`` rounds, the kinds interleaved so that the machine's load drifts alike for
  all.  Git processes started by this process (``neuromirror://``) are counted from the log the
  ``git`` wrapper on ``PATH`` writes, before and after the timed rounds.
* ``listing``: PROPFIND ``Depth: 1`` and the JSON listing of directories, the first time (cold)
  and ``rounds`` times more.
* ``readers``: ``readers`` threads, each ``per_reader`` ranged GETs of one file, through the view
  and from the archive directly; errors, requests/s, MB/s; every range's bytes are checked.
* ``get``: GET (redirects followed) of many paths with a few threads: how many answered 200.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

_PERIOD = bytes((i * 7 + 3) % 251 for i in range(251))


def pattern(offset: int, length: int) -> bytes:
    """The bytes of the scenario's large file at ``offset`` (what a range must answer): period 251."""
    start = offset % len(_PERIOD)
    return (_PERIOD * ((start + length) // len(_PERIOD) + 1))[start : start + length]


def summary(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0}
    s = sorted(ms)
    return {
        "n": len(s),
        "p50_ms": round(statistics.median(s), 2),
        "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 2),
        "mean_ms": round(statistics.fmean(s), 2),
        "min_ms": round(s[0], 2),
        "max_ms": round(s[-1], 2),
    }


def _git_lines(log: str) -> int:
    try:
        return sum(1 for _ in open(log, encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return 0


def ttfb(job: dict) -> dict:
    import fsspec
    import requests

    files = job["files"]  # [{"view": URL, "direct": URL, "nm": neuromirror://..., "size": N}]
    session = requests.Session()

    def get_first_byte(url: str) -> float:
        t = time.perf_counter()
        r = session.get(url, stream=True, allow_redirects=True, timeout=60)
        first = r.raw.read(1)
        dt = (time.perf_counter() - t) * 1000
        r.close()
        if r.status_code != 200 or len(first) != 1:
            raise RuntimeError(f"GET {url}: {r.status_code}")
        return dt

    def nm_first_byte(path: str) -> float:
        t = time.perf_counter()
        with fsspec.open(path, "rb", root=job["root"]) as f:
            first = f.read(1)
        dt = (time.perf_counter() - t) * 1000
        if len(first) != 1:
            raise RuntimeError(f"{path}: no byte")
        return dt

    http = fsspec.filesystem("http")

    def http_first_byte(url: str, size: int) -> float:
        t = time.perf_counter()
        with http.open(url, "rb", size=size) as f:
            first = f.read(1)
        dt = (time.perf_counter() - t) * 1000
        if len(first) != 1:
            raise RuntimeError(f"{url}: no byte")
        return dt

    kinds: dict[str, Callable[[dict], float]] = {
        "direct": lambda f: get_first_byte(f["direct"]),
        "view": lambda f: get_first_byte(f["view"]),
        "neuromirror": lambda f: nm_first_byte(f["nm"]),
        "fsspec_http_direct": lambda f: http_first_byte(f["direct"], f["size"]),
    }
    out: dict[str, Any] = {"cold_ms": {}, "first_per_file": {}, "warm": {}}
    # the very first request of each kind (the view's pin, listing and HEAD; neuromirror://'s the same)
    for kind, fn in kinds.items():
        out["cold_ms"][kind] = round(fn(files[0]), 2)
    # the first request of every other file (its directory is listed: what is left is per file)
    for kind, fn in kinds.items():
        out["first_per_file"][kind] = summary([fn(f) for f in files[1:]])
    for f in files:  # warm-up
        for fn in kinds.values():
            fn(f)
    git_before = _git_lines(job["git_log"])
    view_git_before = _git_lines(job["view_git_log"])
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(job["rounds"]):
        for f in files:
            for kind, fn in kinds.items():
                times[kind].append(fn(f))
    out["warm"] = {k: summary(v) for k, v in times.items()}
    out["git_processes_during_timed"] = {
        "neuromirror_fsspec": _git_lines(job["git_log"]) - git_before,
        "view": _git_lines(job["view_git_log"]) - view_git_before,
    }
    return out


def listing(job: dict) -> dict:
    """Per directory: the first request (cold: the view lists it then; ``job["first"]`` says which
    kind), then ``rounds`` of each kind (warm: answered from the kept listing)."""
    import requests

    s = requests.Session()

    def ask(kind: str, url: str) -> tuple[float, int, int]:
        t = time.perf_counter()
        if kind == "propfind":
            r = s.request("PROPFIND", url, headers={"Depth": "1"}, timeout=600)
            ok = r.status_code == 207
            entries = len(re.findall(rb"<(?:\w+:)?response[ >]", r.content))
        else:
            r = s.get(url, params={"format": "json"}, timeout=600)
            ok = r.status_code == 200
            entries = len(r.json()["entries"]) if ok else 0
        dt = (time.perf_counter() - t) * 1000
        if not ok:
            raise RuntimeError(f"{kind} {url}: {r.status_code} {r.text[:200]}")
        return dt, entries, len(r.content)

    out: dict[str, Any] = {}
    for name, url in job["dirs"].items():
        first = job.get("first", {}).get(name, "propfind")
        dt, entries, size = ask(first, url)
        row: dict[str, Any] = {"cold_kind": first, "cold_ms": round(dt, 1)}
        for kind in ("propfind", "json"):
            times = []
            for _ in range(job["rounds"]):
                dt, entries, size = ask(kind, url)
                times.append(dt)
            row[f"{kind}_warm"] = summary(times)
            row[f"{kind}_entries"], row[f"{kind}_bytes"] = entries, size
        out[name] = row
    return out


def _readers_of(url: str, size: int, chunk: int, n: int, per: int) -> dict:
    """``n`` threads, each ``per`` ranged GETs of ``url`` (redirects followed), every range's bytes checked."""
    import requests

    errors: list[str] = []
    done = [0]
    lock = threading.Lock()
    start = threading.Barrier(n + 1)

    def reader(seed: int) -> None:
        rnd = random.Random(seed)
        s = requests.Session()
        start.wait()
        for _ in range(per):
            off = rnd.randrange(0, size - chunk)
            try:
                r = s.get(url, headers={"Range": f"bytes={off}-{off + chunk - 1}"}, timeout=120)
                if r.status_code != 206 or r.content != pattern(off, chunk):
                    raise RuntimeError(f"HTTP {r.status_code}, {len(r.content)} bytes")
                with lock:
                    done[0] += 1
            except Exception as exc:
                with lock:
                    errors.append(str(exc)[:200])

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "requests": done[0],
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_s": round(wall, 3),
        "requests_per_s": round(done[0] / wall, 1),
        "mb_per_s": round(done[0] * chunk / wall / 2**20, 2),
    }


def readers(job: dict) -> dict:
    """The same readers through the view and from the archive, one after the other."""
    args = (job["size"], job["chunk"], job["readers"], job["per_reader"])
    return {kind: _readers_of(job[kind], *args) for kind in ("view", "direct")}


def get_many(job: dict) -> dict:
    import requests

    local = threading.local()

    def get(url: str) -> int:
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        return s.get(url, timeout=600).status_code

    t = time.perf_counter()
    with ThreadPoolExecutor(job.get("threads", 4)) as ex:
        codes = list(ex.map(get, job["urls"]))
    return {"requests": len(codes), "ok": codes.count(200), "wall_s": round(time.perf_counter() - t, 3)}


PHASES = {"ttfb": ttfb, "listing": listing, "readers": readers, "get": get_many}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    print(json.dumps(PHASES[job["phase"]](job)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

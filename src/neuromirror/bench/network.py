"""The bench's archives a network away (issue 50): the DANDI API and S3 behind shaping proxies.

:class:`NetworkArchives` puts a DANDI stand-in of its own (bucket ``dandiarchive-net``) over the
bench's moto S3 and two :class:`~neuromirror.standins.network.ShapingProxy` instances: one in front of
the API, one in front of S3 (through :class:`~neuromirror.bench.fast_s3.FastS3Front`, so that moto's
~4 ms of CPU per HEAD does not hide the round trip).  The archive publishes its ``contentUrl`` and
Zarr URLs through the S3 proxy (:meth:`S3StandIn.through`).  Both proxies run at RTT 0 or at the RTT
asked (:meth:`NetworkArchives.set_rtt`), so the two sides of a comparison differ by the round trip
alone: same archive, same proxies, same keep-alive.

What a throttled run needs is here too: a fault plan armed once the sync has made its first requests
(:class:`Burst`, so the requests in flight before the SlowDowns can be told from those after), and
what the result is checked with (:func:`tree`, :func:`index_rows`, :func:`unpinned_urls`).
"""

from __future__ import annotations

import sqlite3
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

from neuromirror.bench.archives import Archives
from neuromirror.bench.fast_s3 import FastS3Front
from neuromirror.standins.network import ShapingProxy
from neuromirror.standins.network_faults import Fault, NetFaults


class NetworkArchives:
    """A DANDI stand-in and its S3 behind two proxies; duck-types :class:`Archives` for the fill helpers
    (``dandi``, ``s3``, ``counters``)."""

    BUCKET = "dandiarchive-net"

    def __init__(self, archives: Archives, bandwidth: Optional[float] = None) -> None:
        from neuromirror.standins.dandi.server import DandiStandIn

        self.archives, self.counters = archives, archives.counters
        self.front = FastS3Front(archives.s3.endpoint_url, archives.counters).start()
        self.s3_proxy = ShapingProxy(self.front.url, bandwidth=bandwidth).start()
        self.s3 = archives.s3.through(self.s3_proxy.url)
        self.dandi = DandiStandIn(self.s3, bucket=self.BUCKET).start()
        self.api_proxy = ShapingProxy(f"http://{self.dandi.host}:{self.dandi.port}", bandwidth=bandwidth).start()

    @property
    def proxies(self) -> tuple[ShapingProxy, ShapingProxy]:
        return self.api_proxy, self.s3_proxy

    @property
    def api_url(self) -> str:
        return self.api_proxy.url + "/api"

    def set_rtt(self, rtt: float) -> None:
        for p in self.proxies:
            p.set_rtt(rtt)

    def clean(self) -> None:
        """No faults, counters at zero."""
        for p in self.proxies:
            p.faults = None
            p.reset_stats()

    def requests(self) -> dict[str, int]:
        return {"api": self.api_proxy.requests, "s3": self.s3_proxy.requests}

    def injected(self) -> dict[str, int]:
        return {k: len(p.faults.injected) if p.faults else 0 for k, p in zip(("api", "s3"), self.proxies)}

    def close(self) -> None:
        self.api_proxy.stop()
        self.dandi.stop()
        self.s3_proxy.stop()
        self.front.stop()


def throttle_rules(rate: float, seconds: float) -> tuple[list[Fault], list[Fault]]:
    """Issue 50's "20 % SlowDown for 30 s": (API rules, S3 rules).  S3 answers a fifth of the HEADs
    ``503 SlowDown`` (no Retry-After, as S3 sends none); the API a fifth of its GETs ``429`` with
    ``Retry-After: 1``."""
    api = [Fault("429", match="^GET /api/", rate=rate, until=seconds, retry_after=1)]
    s3 = [Fault("slowdown", match="^HEAD ", rate=rate, until=seconds)]
    return api, s3


class Burst:
    """The throttling plan, armed on the API proxy at once and on the S3 proxy once it has seen
    ``after`` requests: the sync's pace before the SlowDowns is measured on the same run."""

    def __init__(self, net: NetworkArchives, rate: float, seconds: float, after: int) -> None:
        self.net, self.after = net, after
        self.api_rules, self.s3_rules = throttle_rules(rate, seconds)
        self.seconds = seconds
        self.armed_at: Optional[float] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._arm, name="bench-burst", daemon=True)

    def __enter__(self) -> Burst:
        self.net.api_proxy.faults = NetFaults(list(self.api_rules))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _arm(self) -> None:
        if self.net.s3_proxy.wait_for(lambda p: p.requests >= self.after or self._stop.is_set(), timeout=3600):
            if not self._stop.is_set():
                self.net.s3_proxy.faults = NetFaults(list(self.s3_rules))
                self.armed_at = time.monotonic()

    def in_flight(self, window: float = 1.0, burst: int = 20) -> dict[str, Any]:
        """Requests in flight at the S3 proxy (each request's count as it arrived, median): in the
        ``window`` before the plan was armed, and in the ``window`` after the ``burst``-th SlowDown."""
        if self.armed_at is None:
            return {}
        log = list(self.net.s3_proxy.log)
        before = [r.in_flight for r in log if self.armed_at - window <= r.t < self.armed_at]
        slow = [r.t for r in log if r.kind == "slowdown"]
        if not slow:
            return {"in_flight_before": _median(before)}
        t = slow[min(burst, len(slow)) - 1]
        after = [r.in_flight for r in log if t <= r.t < t + window]
        ended = self.armed_at + self.seconds
        past = [r.in_flight for r in log if ended <= r.t < ended + window]
        return {
            "in_flight_before": _median(before),
            "in_flight_after_burst": _median(after),
            "in_flight_after_end": _median(past),
            "slowdowns_in_burst": min(burst, len(slow)),
        }


def _median(values: list[int]) -> Optional[float]:
    return float(statistics.median(values)) if values else None


def tree(ds: Path) -> list[str]:
    """``git ls-tree -r HEAD`` less ``.datalad/config`` (it holds the dataset's own id)."""
    out = subprocess.run(["git", "-C", str(ds), "ls-tree", "-r", "HEAD"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if not ln.endswith("\t.datalad/config")]


def index_rows(root: Path, source: str) -> list[tuple]:
    """Each version's files of ``source`` in the index: label, kind, path, key, size, checksum, URLs."""
    db = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    try:
        return db.execute(
            "SELECT v.label, v.kind, e.path, e.key, e.size, e.checksum_kind, e.checksum, e.urls FROM version_files vf"
            " JOIN versions v ON v.id = vf.version_id JOIN entries e ON e.id = vf.entry_id"
            " WHERE v.source = ? ORDER BY v.id, e.path",
            [source],
        ).fetchall()
    finally:
        db.close()


def unpinned_urls(ds: Path, s3_url: str) -> dict[str, int]:
    """URLs on ``s3_url`` registered without ``?versionId=``: in the git-annex branch's web logs, and
    in the index's ``urls`` column (``index_urls``: counted by :func:`index_rows`' caller)."""
    names = subprocess.run(
        ["git", "-C", str(ds), "ls-tree", "-r", "--name-only", "git-annex"], capture_output=True, text=True
    ).stdout.split()
    logs = [n for n in names if n.endswith(".log.web")]
    blob = subprocess.run(
        ["git", "-C", str(ds), "cat-file", "--batch"],
        input="".join(f"git-annex:{n}\n" for n in logs),
        capture_output=True,
        text=True,
    ).stdout
    urls = [w for w in blob.split() if w.startswith(s3_url)]
    return {"annex_urls": len(urls), "annex_unpinned": sum("versionId=" not in u for u in urls)}


def unpinned_in_index(rows: list[tuple], s3_url: str) -> int:
    """Rows of :func:`index_rows` with a URL on ``s3_url`` lacking ``versionId=``."""
    import json

    return sum(
        1 for r in rows for u in json.loads(r[7] or "[]") if str(u).startswith(s3_url) and "versionId=" not in str(u)
    )

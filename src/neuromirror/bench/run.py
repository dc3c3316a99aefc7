"""The benchmark behind ``scripts/bench``: is mirroring limited by the archive or by neuromirror?

Not part of the test suite.  It starts the stand-in archives in this process
(moto S3 + the DANDI API stand-in, on loopback), fills them with synthetic
archives of N files (metadata only, plus an empty-ish S3 object per blob so that
URL pinning has something real to HEAD), and runs every scenario the way a user
would: ``neuromirror --root R sync ... --json -q`` in a subprocess whose JSON
report carries the phase timings.  Per scenario it records the wall time, files
per second, the peak RSS of the whole process tree (the sync and its git /
git-annex children, polled every 50 ms) and the time split into listing, URL
pinning, annex registration + commit, and index writing.

Scenarios per size N:

1. ``dandi-cold``     cold mirror of a dandiset with N assets
2. ``dandi-resync``   resync with no change
3. ``dandi-3changes`` resync after 1 asset added, 1 removed, 1 changed
4. ``aind-cold``      cold mirror of an AIND asset with N objects (``aind-resync`` too)
5. anchors on the same rows: ``git annex fromkey --batch`` + ``registerurl --batch``
   + ``git commit`` (``anchor-batch``), and ``datalad addurls --key ... -x '*'`` on a
   subsample (``anchor-addurls``, ~16 files/s, hence at most ``--addurls-rows`` rows)
6. ``head-reference`` a plain concurrent HEAD loop (32 workers, like the DANDI source)
   against the same S3 objects, in its own process: the rate the stand-in sustains.

Plus ``startup`` (``neuromirror --help``) and ``index`` (``versions`` / ``pin`` on an
index file synthesised with ``--index-rows`` file rows).

Three things are done to the stand-in (in this process only) so that it measures
neuromirror and not moto: moto's ListObjectVersions deep-copies and sorts every
version in the bucket for every page (O(N^2): 45 s for 10^4 objects), so it is
replaced by an equivalent that bisects a sorted key list; its answer is written
as XML directly instead of through moto's model-driven serializer (~0.3 ms per
version: 300 s of CPU for 10^6 Zarr objects); and S3 HEADs are counted per key,
to check that no blob is ever asked twice.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

HEAD_WORKERS = 32  # as neuromirror.sources.dandi.HEAD_WORKERS
T0 = time.monotonic()

#: the targets of the performance issue, checked at the end of the run
TARGET_REG_FILES_PER_S = 5000
TARGET_PIN_FRACTION = 0.8
TARGET_RESYNC_S = 1.0
TARGET_3CHANGES_S = 10.0
TARGET_RSS_MB = {100_000: 300, 1_000_000: 1024}
TARGET_INDEX_MS = 100
#: my reading of "keeps a later git-annex process happy": a later whereis / fsck --fast / git status
#: is quick once git-annex has filled its caches (the first process that needs its keys database
#: fills it once, O(N), as after any large checkout; reported, not part of the target)
TARGET_LATER_ANNEX_S = 3.0


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


class TreeRSS:
    """Peak RSS (sum over the process and all its descendants), polled every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self.psutil = psutil
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.at_peak: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> tuple[int, list]:
        ps = self.psutil
        total = 0
        parts = []
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except ps.Error:
            return 0, parts
        cmdlines: dict[int, list[str]] = {}
        for p in procs:
            try:
                cmdlines[p.pid] = p.cmdline()
            except ps.Error:
                pass
        for p in procs:
            try:
                if p is not self.proc and cmdlines.get(p.ppid()) == cmdlines.get(p.pid):
                    # its parent's image, forked and not yet exec'd (subprocess's vfork): the parent's
                    # pages, counted once (seen at 10^6: a 425 MB sync counted twice for one sample)
                    continue
                rss = p.memory_info().rss
                total += rss
                parts.append((rss, p.name()))
            except ps.Error:
                pass
        return total, parts

    def _run(self) -> None:
        while not self._stop.is_set():
            total, parts = self._sample()
            if total > self.peak:
                self.peak = total
                #: the processes making up the peak, largest first (MB, name)
                self.at_peak = [(round(r / 2**20), n) for r, n in sorted(parts, reverse=True)[:4]]
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_measured(
    cmd: Sequence[str],
    *,
    env: Optional[dict] = None,
    cwd: Optional[Path] = None,
    input: Optional[bytes] = None,
    check: bool = True,
) -> dict:
    """Run ``cmd``; wall seconds, peak tree RSS (MB), stdout, stderr."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    rss = TreeRSS(proc.pid)
    out, err = proc.communicate(input)
    wall = time.perf_counter() - t
    peak = rss.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the whole tree (children waited for by their parents count): less sensitive to load than wall
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd[:6]))}... failed ({proc.returncode}): "
            f"{err.decode(errors='replace').strip()[-2000:]}"
        )
    return {
        "wall": wall,
        "rss_mb": peak / 2**20,
        "rss_at_peak": rss.at_peak,
        "cpu": cpu,
        "stdout": out,
        "stderr": err,
        "rc": proc.returncode,
    }


def neuromirror_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "neuromirror"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "neuromirror"]


def child_env() -> dict:
    from neuromirror.util.gitutil import IDENTITY

    env = dict(os.environ)
    for k in ("NEUROMIRROR_ROOT", "NEUROMIRROR_INDEX", "NEUROMIRROR_ENGINE", "NEUROMIRROR_DANDI_API"):
        env.pop(k, None)
    env.update(IDENTITY)
    env.setdefault("DANDI_NO_ET", "1")
    env.setdefault("DANDI_CACHE", "ignore")
    env.setdefault("NEUROMIRROR_HTTP_RETRIES", "3")
    return env


def machine() -> dict:
    info: dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    for name, cmd in (("git", ["git", "--version"]), ("git-annex", ["git", "annex", "version", "--raw"])):
        try:
            info[name] = subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            info[name] = None
    try:
        import datalad
        import moto

        info["datalad"] = datalad.__version__
        info["moto"] = moto.__version__
    except Exception:
        pass
    info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


# --------------------------------------------------------------------------- the stand-ins


class Counters:
    """HEAD requests answered by moto, per S3 key (installed on the backend class)."""

    def __init__(self) -> None:
        self.heads: Counter = Counter()
        self.lock = threading.Lock()

    def reset(self) -> Counter:
        with self.lock:
            old, self.heads = self.heads, Counter()
        return old


_sorted_names: dict[int, tuple[int, list[str]]] = {}


#: rendered ListObjectVersions answers, while :func:`listing_served_from_memory` is on
_rendered: Optional[dict] = None


def invalidate_listing_cache() -> None:
    _sorted_names.clear()
    if _rendered is not None:
        _rendered.clear()


@contextmanager
def listing_served_from_memory() -> Iterator[None]:
    """moto answers each ListObjectVersions request it has answered before from memory.

    For scenarios whose bucket does not change while it is on (``aind-zarr``):
    the pages are rendered once, before the measured runs, so that moto's own CPU
    (~4 s per 10^5 versions) is not taken from the sync's 2 cores.  A real S3
    costs the mirror host nothing to answer.  The sync still makes every request
    and parses every page.
    """
    global _rendered
    _rendered = {}
    try:
        yield
    finally:
        _rendered = None


def patch_moto(counters: Counters) -> None:
    """Make moto's versioned listing O(page) instead of O(bucket), and count HEADs per key."""
    from moto.core.utils import unix_time_millis
    from moto.s3.models import FakeKey, S3Backend

    if getattr(S3Backend, "_neuromirror_bench", False):
        return
    original_list = S3Backend.list_object_versions
    original_head = S3Backend.head_object

    class _Listed:
        """A version as the listing renders it; ``is_latest`` set without copying the key."""

        __slots__ = ("_v", "is_latest")

        def __init__(self, v: Any, latest: bool):
            self._v = v
            self.is_latest = latest

        def __getattr__(self, name: str) -> Any:
            return getattr(self._v, name)

    def list_object_versions(
        self: Any,
        bucket_name: str,
        delimiter: Optional[str] = None,
        key_marker: Optional[str] = None,
        max_keys: Optional[int] = 1000,
        prefix: str = "",
        version_id_marker: Optional[str] = None,
    ) -> tuple:
        if delimiter or max_keys is None:
            return original_list(
                self,
                bucket_name,
                delimiter=delimiter,
                key_marker=key_marker,
                max_keys=max_keys,
                prefix=prefix,
                version_id_marker=version_id_marker,
            )
        bucket = self.get_bucket(bucket_name)
        prefix = prefix or ""
        cached = _sorted_names.get(id(bucket))
        if cached is None or cached[0] != len(bucket.keys):
            cached = (len(bucket.keys), sorted(bucket.keys.keys()))
            _sorted_names[id(bucket)] = cached
        names = cached[1]
        i = bisect.bisect_left(names, max(prefix, key_marker or ""))
        versions: list = []
        markers: list = []
        last = None
        skipping = bool(key_marker)
        while i < len(names):
            name = names[i]
            i += 1
            if not name.startswith(prefix):
                if name > prefix:
                    break
                continue
            ordered = sorted(bucket.keys.getlist(name, []), key=lambda v: -unix_time_millis(v.last_modified))
            for j, v in enumerate(ordered):
                if skipping:
                    if name == key_marker:
                        if version_id_marker and v.version_id == version_id_marker:
                            skipping = False
                        continue
                    skipping = False
                if len(versions) + len(markers) >= max_keys:
                    return versions, [], markers, last.name, last.version_id  # type: ignore[union-attr]
                (versions if isinstance(v, FakeKey) else markers).append(_Listed(v, j == 0))
                last = v
        return versions, [], markers, None, None

    def head_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        with counters.lock:
            counters.heads[key_name] += 1
        return original_head(self, bucket_name, key_name, *args, **kwargs)

    from moto.s3.responses import S3Response

    original_render = S3Response.list_object_versions

    def render_versions(self: Any) -> Any:
        """moto's ListObjectVersions answer, written as XML directly (no delimiter: the sync's case).

        moto renders it through its model-driven serializer, ~0.3 ms per version:
        at 10^6 Zarr objects 300 s of the bench process's CPU, on the cores the sync
        is measured on.  Same elements, same values; keys are sent unencoded (no
        ``EncodingType`` in the answer, as moto's own answer has none).
        """
        from xml.sax.saxutils import escape

        q = self.querystring
        if q.get("delimiter", [None])[0]:
            return original_render(self)
        key_marker = q.get("key-marker", [None])[0]
        vid_marker = q.get("version-id-marker", [None])[0]
        max_keys = int(q.get("max-keys", [1000])[0])
        prefix = self._get_querystring(self.request, self.uri).get("prefix", [""])[0]
        memo = (self.bucket_name, prefix, key_marker, vid_marker, max_keys, q.get("encoding-type", [None])[0])
        if _rendered is not None and memo in _rendered:
            return 200, {"Content-Type": "application/xml"}, _rendered[memo]
        versions, _, markers, next_key, next_vid = self.backend.list_object_versions(
            self.bucket_name,
            delimiter=None,
            key_marker=key_marker,
            max_keys=max_keys,
            prefix=prefix,
            version_id_marker=vid_marker,
        )
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
            f"<Name>{escape(self.bucket_name)}</Name><Prefix>{escape(prefix or '')}</Prefix>"
            f"<KeyMarker>{escape(key_marker or '')}</KeyMarker><VersionIdMarker>{escape(vid_marker or '')}</VersionIdMarker>"
            f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if next_key is not None else 'false'}</IsTruncated>",
        ]
        if next_key is not None:
            out.append(
                f"<NextKeyMarker>{escape(next_key)}</NextKeyMarker>"
                f"<NextVersionIdMarker>{escape(next_vid or '')}</NextVersionIdMarker>"
            )
        for k in versions:
            out.append(
                f"<Version><Key>{escape(k.name)}</Key><VersionId>{k.version_id or 'null'}</VersionId>"
                f"<IsLatest>{'true' if getattr(k, 'is_latest', False) else 'false'}</IsLatest>"
                f"<LastModified>{k.last_modified_ISO8601}</LastModified><ETag>{escape(k.etag)}</ETag>"
                f"<Size>{k.size}</Size><StorageClass>{k.storage_class}</StorageClass></Version>"
            )
        for m in markers:
            out.append(
                f"<DeleteMarker><Key>{escape(m.name)}</Key><VersionId>{m.version_id}</VersionId>"
                f"<IsLatest>{'true' if getattr(m, 'is_latest', False) else 'false'}</IsLatest>"
                f"<LastModified>{m.last_modified_ISO8601}</LastModified></DeleteMarker>"
            )
        out.append("</ListVersionsResult>")
        body = "".join(out)
        if _rendered is not None:
            _rendered[memo] = body
        return 200, {"Content-Type": "application/xml"}, body

    S3Response.list_object_versions = render_versions  # type: ignore[method-assign]
    S3Backend.list_object_versions = list_object_versions  # type: ignore[method-assign]
    S3Backend.head_object = head_object  # type: ignore[method-assign]
    S3Backend._neuromirror_bench = True  # type: ignore[attr-defined]


def moto_bucket_backend(bucket: str) -> Any:
    from moto.s3.models import s3_backends

    for account in list(s3_backends.keys()):
        for region in list(s3_backends[account].keys()):
            be = s3_backends[account][region]
            if bucket in be.buckets:
                return be
    raise KeyError(bucket)


class Archives:
    """S3 + DANDI stand-ins in this process, filled fast through their Python APIs."""

    AIND_BUCKET = "aind-open-data-bench"

    def __init__(self) -> None:
        from neuromirror.standins.dandi import DandiStandIn
        from neuromirror.standins.s3 import S3StandIn

        self.counters = Counters()
        patch_moto(self.counters)
        self.s3 = S3StandIn().start()
        self.dandi = DandiStandIn(self.s3, bucket="dandiarchive-bench").start()
        self.s3.create_bucket(self.AIND_BUCKET, versioned=True, public=True)

    def close(self) -> None:
        self.dandi.stop()
        self.s3.stop(cleanup=False)

    def dandiset(self, n: int, when: datetime) -> tuple[str, list[str]]:
        """A dandiset of ``n`` assets whose blobs exist in S3 (tiny objects); its S3 URLs."""
        ident = self.dandi.create_dandiset(name=f"bench {n}", created=when)
        ids = self.dandi.add_synthetic_assets(ident, n, when=when)
        be = moto_bucket_backend(self.dandi.bucket)
        urls = []
        for aid in ids:
            blob = self.dandi.asset(aid).blob
            key = be.put_object(blob.bucket, blob.key, b"", disable_notification=True)
            blob.version_id = key.version_id
            blob.uploaded = True
            urls.append(self.dandi.s3_url(aid))
        return ident, urls

    def change_three(self, ident: str, when: datetime) -> None:
        """1 asset added, 1 removed, 1 changed (new content at an existing path)."""
        paths = sorted(self.dandi.dandiset(ident).draft.assets)
        self.dandi.put_asset(ident, "sub-new/sub-new_obj.nwb", b"added by the bench\n", when=when)
        self.dandi.delete_asset(ident, paths[0], when=when + timedelta(seconds=1))
        self.dandi.put_asset(ident, paths[len(paths) // 2], b"changed by the bench\n", when=when + timedelta(seconds=2))

    def aind_asset(self, n: int) -> str:
        """An AIND asset of ``n`` objects (2 sidecars + tiny distinct binaries, 1000 per folder)."""
        name = f"ecephys_{n}_2024-01-01_00-00-00"
        be = moto_bucket_backend(self.AIND_BUCKET)
        sidecar = {
            "data_description.json": json.dumps(
                {
                    "name": name,
                    "subject_id": str(n),
                    "modality": ["ecephys"],
                    "creation_time": "2024-01-01T00:00:00",
                    "data_level": "raw",
                }
            ),
            "subject.json": json.dumps({"subject_id": str(n), "sex": "Female"}),
        }
        for rel, text in sidecar.items():
            be.put_object(self.AIND_BUCKET, f"{name}/{rel}", text.encode(), disable_notification=True)
        for i in range(max(0, n - len(sidecar))):
            be.put_object(
                self.AIND_BUCKET,
                f"{name}/ecephys/block{i // 1000:04d}/chunk-{i:07d}.dat",
                i.to_bytes(8, "big"),
                disable_notification=True,
            )
        invalidate_listing_cache()
        return name

    def drop_objects(self, bucket: str) -> None:
        """Forget every object of ``bucket`` (moto holds each in memory: ~4 KB apiece)."""
        moto_bucket_backend(bucket).buckets[bucket].keys.clear()
        invalidate_listing_cache()

    def head_urls_sample(self, urls: list[str], k: int) -> list[str]:
        if len(urls) <= k:
            return list(urls)
        step = len(urls) / k
        return [urls[int(i * step)] for i in range(k)]


# --------------------------------------------------------------------------- scenarios


def sync_cmd(root: Path, spec: str, extra: Sequence[str]) -> list[str]:
    return [*neuromirror_cmd(), "--root", str(root), "sync", spec, *extra, "--json", "-q"]


def run_sync(
    name: str,
    n: int,
    root: Path,
    spec: str,
    extra: Sequence[str],
    archives: Archives,
    startup: float,
    files: Optional[int] = None,
) -> dict:
    archives.counters.reset()
    say(f"N={n}: {name}: neuromirror sync {spec} ...")
    r = run_measured(sync_cmd(root, spec, extra), env=child_env())
    report = json.loads(r["stdout"])
    if isinstance(report, list):  # several sources ('dandi:*'): one report each
        report = merge_reports(report)
    heads = archives.counters.reset()
    if report.get("outcome") == "failed":
        raise RuntimeError(f"{name}: sync failed: {report.get('error')}")
    t = report.get("timings", {})
    pinning = t.get("pinning", 0.0)
    listing = max(0.0, t.get("listing+diff", 0.0) - pinning)
    reg = t.get("registration+commit", 0.0)
    annex_branch = t.get("annex-branch", 0.0)  # the git-annex branch's stream, inside registration+commit
    checkout_wait = t.get("checkout-wait", 0.0)  # the checkout's time beyond that stream
    idx = t.get("index", 0.0)
    prev = t.get("previous-state", 0.0)
    total = t.get("total", 0.0)
    changed = report.get("added", 0) + report.get("removed", 0) + report.get("changed", 0)
    res = {
        "scenario": name,
        "n": n,
        "wall_s": round(r["wall"], 3),
        "files_per_s": round((files if files is not None else n) / r["wall"], 1),
        "beyond_startup_s": round(r["wall"] - startup, 3),
        "sync_total_s": total,
        "listing_s": round(listing, 3),
        "pinning_s": round(pinning, 3),
        "registration_commit_s": round(reg, 3),
        "annex_branch_s": round(annex_branch, 3),
        "checkout_wait_s": round(checkout_wait, 3),
        "index_s": round(idx, 3),
        "previous_state_s": round(prev, 3),
        "other_s": round(r["wall"] - listing - pinning - reg - idx - prev, 3),
        "peak_rss_mb": round(r["rss_mb"], 1),
        "cpu_s": round(r["cpu"], 2),
        "rss_at_peak": r["rss_at_peak"],
        "outcome": report.get("outcome"),
        "changes": changed,
        "heads": sum(heads.values()),
        "heads_repeated": sum(1 for c in heads.values() if c > 1),
        "timings": t,
    }
    if "sources" in report:
        res["sources"], res["sources_updated"] = report["sources"], report["sources_updated"]
    if reg > 0 and changed:
        res["registration_files_per_s"] = round(changed / reg, 1)
    if pinning > 0 and res["heads"]:
        res["pinning_heads_per_s"] = round(res["heads"] / pinning, 1)
    say(
        f"N={n}: {name}: {r['wall']:.2f} s wall, outcome {res['outcome']}, {changed} changes, "
        f"{res['heads']} HEADs, peak RSS {res['peak_rss_mb']:.0f} MB"
    )
    return res


def merge_reports(reports: list[dict]) -> dict:
    """The reports of a multi-source sync as one: counts and phase times summed (over sources run
    in parallel, so the phases can add up to more than the wall time)."""
    outcomes = [r.get("outcome") for r in reports]
    timings: Counter = Counter()
    for r in reports:
        timings.update(r.get("timings") or {})
    errors = [f"{r.get('source')}: {r.get('error')}" for r in reports if r.get("outcome") == "failed"]
    return {
        "outcome": "failed" if errors else "ok" if "ok" in outcomes else "unchanged",
        "error": "; ".join(errors[:3]) or None,
        "added": sum(r.get("added", 0) for r in reports),
        "removed": sum(r.get("removed", 0) for r in reports),
        "changed": sum(r.get("changed", 0) for r in reports),
        "timings": dict(timings),
        "sources": len(reports),
        "sources_updated": outcomes.count("ok"),
    }


def git_counts(ds: Path) -> dict:
    """Entries the last commit changed, in the tree and on the git-annex branch."""

    def n(*args: str) -> int:
        out = subprocess.run(["git", "-C", str(ds), *args], capture_output=True, text=True).stdout
        return len([ln for ln in out.splitlines() if ln.strip()])

    return {
        "tree_entries_changed": n("diff-tree", "-r", "--name-only", "HEAD~1", "HEAD"),
        "annex_branch_entries_changed": n("diff-tree", "-r", "--name-only", "git-annex~1", "git-annex"),
    }


def later_git_annex(ds: Path, n: int) -> dict:
    """What a later git-annex process pays after the mirror wrote with fast-import.

    ``whereis`` of one file (git-annex catches its branch index up with the commit
    made behind its back), ``fsck --fast`` of that file (the first one fills
    git-annex's keys database from the tree, once), each twice, and ``git status``
    after touching dandiset.yaml (with git-annex's filter on, git would run it and
    the keys-database fill with it, every time).  Seconds each: the second runs and
    ``git status`` should not grow with N.
    """
    env = child_env()
    files = subprocess.run(["git", "-C", str(ds), "ls-files", "-z"], capture_output=True, env=env).stdout.split(b"\0")
    one = next(f.decode() for f in files if f.endswith(b".nwb"))
    res: dict = {}
    for name, cmd in (
        ("whereis_s", ["git", "-C", str(ds), "annex", "whereis", "--", one]),
        ("fsck_fast_s", ["git", "-C", str(ds), "annex", "fsck", "--fast", "--", one]),
        ("whereis_again_s", ["git", "-C", str(ds), "annex", "whereis", "--", one]),
        ("fsck_fast_again_s", ["git", "-C", str(ds), "annex", "fsck", "--fast", "--", one]),
    ):
        r = run_measured(cmd, env=env)
        res[name] = round(r["wall"], 3)
        res[name.replace("_s", "_rss_mb")] = round(r["rss_mb"], 1)
    (ds / "dandiset.yaml").touch()
    r = run_measured(["git", "-C", str(ds), "status", "--porcelain"], env=env)
    res["status_after_touch_s"] = round(r["wall"], 3)
    if r["stdout"].strip():
        raise RuntimeError(f"dataset {ds} is not clean after the sync: {r['stdout'][:200]!r}")
    say(
        f"N={n}: later git-annex processes: whereis {res['whereis_s']:.2f} then {res['whereis_again_s']:.2f} s, "
        f"fsck --fast {res['fsck_fast_s']:.2f} then {res['fsck_fast_again_s']:.2f} s, "
        f"git status (clean filter) {res['status_after_touch_s']:.2f} s"
    )
    return res


def startup_time(repeat: int = 5) -> dict:
    say("start-up: neuromirror --help ...")
    env = child_env()
    walls = [run_measured([*neuromirror_cmd(), "--help"], env=env)["wall"] for _ in range(repeat)]
    bare = [run_measured([sys.executable, "-c", "pass"], env=env)["wall"] for _ in range(repeat)]
    probe = (
        "import sys; sys.argv=['neuromirror','--help']\nfrom neuromirror.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(','.join(sorted(m for m in ('datalad','dandi','boto3','botocore','pandas','requests',"
        "'sqlite_utils','moto') if m in sys.modules)))"
    )
    heavy = (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
        .stdout.strip()
        .splitlines()
    )
    res = {
        "help_s": round(statistics.median(walls), 3),
        "python_s": round(statistics.median(bare), 3),
        "heavy_modules_on_help": heavy[-1].split(",") if heavy and heavy[-1] else [],
    }
    say(
        f"start-up: --help {res['help_s']:.3f} s (bare python {res['python_s']:.3f} s); "
        f"heavy modules imported: {res['heavy_modules_on_help'] or 'none'}"
    )
    return res


HEAD_LOOP = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import requests
urls = [u for u in open(sys.argv[1]).read().split("\n") if u]
workers = int(sys.argv[2])
s = requests.Session()
a = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=workers)
s.mount("http://", a)
def head(u):
    r = s.head(u, timeout=30, allow_redirects=True)
    return r.status_code == 200 and bool(r.headers.get("x-amz-version-id"))
list(ThreadPoolExecutor(workers).map(head, urls[:workers]))  # connections up
t = time.perf_counter()
ok = sum(ThreadPoolExecutor(workers).map(head, urls))
dt = time.perf_counter() - t
print(json.dumps({"n": len(urls), "ok": ok, "seconds": dt, "per_s": len(urls) / dt}))
"""


def head_reference(urls: list[str], work: Path, archives: Archives, n: int) -> dict:
    """A plain concurrent HEAD loop, in its own process like the sync: what the stand-in sustains."""
    f = work / "head-urls.txt"
    f.write_text("\n".join(urls) + "\n")
    say(f"N={n}: head-reference: {len(urls)} HEADs with {HEAD_WORKERS} workers ...")
    r = run_measured([sys.executable, "-c", HEAD_LOOP, str(f), str(HEAD_WORKERS)], env=child_env())
    archives.counters.reset()
    res = json.loads(r["stdout"])
    if res["ok"] != res["n"]:
        raise RuntimeError(f"head-reference: only {res['ok']} of {res['n']} HEADs found a versioned object")
    say(f"N={n}: head-reference: {res['per_s']:.0f} HEAD/s")
    return {
        "scenario": "head-reference",
        "n": n,
        "rows": res["n"],
        "wall_s": round(res["seconds"], 3),
        "heads_per_s": round(res["per_s"], 1),
        "peak_rss_mb": round(r["rss_mb"], 1),
    }


def rows_of(index_path: Path, source: str) -> list[tuple[str, str, list[str], Optional[str]]]:
    """(path, key, urls, sha256) of the annexed files of the source's first version."""
    import sqlite3

    conn = sqlite3.connect(str(index_path))
    vid = conn.execute("SELECT MIN(id) FROM versions WHERE source=?", [source]).fetchone()[0]
    rows = [
        (p, k, json.loads(u), c)
        for p, k, u, c in conn.execute(
            "SELECT e.path, e.key, e.urls, e.checksum FROM version_files vf JOIN entries e ON e.id = vf.entry_id"
            " WHERE vf.version_id=? AND e.key IS NOT NULL ORDER BY e.path",
            [vid],
        )
    ]
    conn.close()
    return rows


def anchor_batch(rows: list, work: Path, n: int) -> dict:
    """Plain git-annex: fromkey --batch + registerurl --batch + git commit, on the same rows."""
    ds = work / "anchor-batch"
    env = child_env()
    for cmd in (
        ["git", "init", "-q", str(ds)],
        ["git", "-C", str(ds), "annex", "init", "-q", "bench"],
        ["git", "-C", str(ds), "commit", "-q", "--allow-empty", "-m", "init"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, env=env)
    say(f"N={n}: anchor-batch: git annex fromkey + registerurl --batch + commit of {len(rows)} files ...")
    reg = "".join(f"{k} {u}\n" for _, k, urls, _ in rows for u in urls).encode()
    fk = "".join(f"{k} {p}\n" for p, k, _, _ in rows).encode()
    steps = [
        (["git", "-C", str(ds), "-c", "annex.alwayscompact=false", "annex", "registerurl", "--batch"], reg),
        (["git", "-C", str(ds), "-c", "annex.alwayscompact=false", "annex", "fromkey", "--force", "--batch"], fk),
        (["git", "-C", str(ds), "commit", "-q", "-m", "anchor"], None),
    ]
    wall = rss = 0.0
    for cmd, data in steps:
        r = run_measured(cmd, env=env, input=data)
        wall += r["wall"]
        rss = max(rss, r["rss_mb"])
    res = {
        "scenario": "anchor-batch",
        "n": n,
        "rows": len(rows),
        "wall_s": round(wall, 3),
        "files_per_s": round(len(rows) / wall, 1),
        "peak_rss_mb": round(rss, 1),
    }
    say(f"N={n}: anchor-batch: {res['files_per_s']:.0f} files/s")
    shutil.rmtree(ds, ignore_errors=True)
    return res


def anchor_addurls(rows: list, work: Path, n: int) -> dict:
    """``datalad addurls --key et:SHA256-s{size}--{sha256} -x '*'`` (no download) on a subsample."""
    ds = work / "anchor-addurls"
    env = child_env()
    subprocess.run(["datalad", "create", str(ds)], check=True, capture_output=True, env=env)
    table = work / "addurls.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "url", "size", "sha256"])
        for p, k, urls, sha in rows:
            size = k.split("-s", 1)[1].split("--", 1)[0]
            w.writerow([p, urls[0], size, sha])
    say(f"N={n}: anchor-addurls: datalad addurls --key of {len(rows)} rows (a subsample) ...")
    r = run_measured(
        [
            "datalad",
            "addurls",
            "-d",
            str(ds),
            "--key",
            "et:SHA256-s{size}--{sha256}",
            "-x",
            "*",
            str(table),
            "{url}",
            "{path}",
        ],
        env=env,
        cwd=ds,
    )
    files = int(subprocess.run(["git", "-C", str(ds), "ls-files"], capture_output=True, text=True).stdout.count("\n"))
    res = {
        "scenario": "anchor-addurls",
        "n": n,
        "rows": len(rows),
        "files_in_commit": files,
        "wall_s": round(r["wall"], 3),
        "files_per_s": round(len(rows) / r["wall"], 1),
        "peak_rss_mb": round(r["rss_mb"], 1),
    }
    say(f"N={n}: anchor-addurls: {res['files_per_s']:.1f} files/s")
    shutil.rmtree(ds, ignore_errors=True)
    return res


def bench_size(
    n: int, args: argparse.Namespace, archives: Archives, work: Path, startup: float, results: list[dict]
) -> None:
    """Every scenario at size ``n``; results are appended as they come (a failure keeps the earlier ones)."""
    want = set(args.scenarios)
    when = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(days=len(str(n)))
    root = work / f"root-{n}"
    if want & {"dandi", "anchors", "head", "clone-get"}:
        t = time.perf_counter()
        ident, urls = archives.dandiset(n, when)
        if "clone-get" in want:  # one asset with real content for the clone's first get (N+1 assets)
            archives.dandi.put_asset(ident, "sub-get/sub-get_file.nwb", b"x" * 4096, when=when)
        say(f"N={n}: stand-in dandiset {ident} with {n} assets and S3 objects in {time.perf_counter() - t:.1f} s")
        api = ["--dandi-api", archives.dandi.api_url]
        sample = archives.head_urls_sample(urls, min(n, args.head_rows))
        ref = head_reference(sample, work, archives, n) if "head" in want else None
        cold = run_sync("dandi-cold", n, root, f"dandi:{ident}", api, archives, startup)
        if ref is not None:  # measured again after the cold mirror: the machine's load drifts
            after = head_reference(sample, work, archives, n)
            ref["heads_per_s_before"], ref["heads_per_s_after"] = ref["heads_per_s"], after["heads_per_s"]
            ref["heads_per_s"] = round((ref["heads_per_s"] + after["heads_per_s"]) / 2, 1)
            ref["wall_s"] = round(ref["wall_s"] + after["wall_s"], 3)
            results.append(ref)
        results.append(cold)
        try:
            cold["later_git_annex"] = later_git_annex(root / "dandi" / ident, n)
        except Exception as exc:  # reported, the run goes on
            say(f"N={n}: later git-annex probe failed: {exc}")
            cold["later_git_annex_error"] = str(exc)[-500:]
        if "clone-get" in want:
            from neuromirror.bench.scale import bench_clone_get

            try:
                results.append(bench_clone_get(root / "dandi" / ident, root, work, n, "sub-get/sub-get_file.nwb"))
            except Exception as exc:  # reported, the run goes on
                say(f"N={n}: clone-get failed: {exc}")
                results.append({"scenario": "clone-get", "n": n, "error": str(exc)[-500:]})
        if "dandi" in want:
            results.append(run_sync("dandi-resync", n, root, f"dandi:{ident}", api, archives, startup))
            archives.change_three(ident, when + timedelta(hours=1))
            three = run_sync("dandi-3changes", n, root, f"dandi:{ident}", api, archives, startup)
            three.update(git_counts(root / "dandi" / ident))
            results.append(three)
        if "anchors" in want:
            rows = rows_of(root / ".neuromirror" / "index.sqlite", f"dandi:{ident}")
            for fn, k in ((anchor_batch, args.batch_rows), (anchor_addurls, args.addurls_rows)):
                try:
                    results.append(fn(rows[:k], work, n))
                except Exception as exc:  # an anchor failing must not lose the rest of the run
                    say(f"N={n}: {fn.__name__} failed: {exc}")
                    results.append({"scenario": fn.__name__.replace("_", "-"), "n": n, "error": str(exc)[-500:]})
        archives.drop_objects(archives.dandi.bucket)
    if "aind" in want:
        t = time.perf_counter()
        name = archives.aind_asset(n)
        say(f"N={n}: stand-in AIND asset {name} with {n} objects in {time.perf_counter() - t:.1f} s")
        s3 = ["--bucket", archives.AIND_BUCKET, "--s3-endpoint", archives.s3.endpoint_url]
        for scenario in ("aind-cold", "aind-resync"):
            try:
                results.append(run_sync(scenario, n, root, f"aind:{name}", s3, archives, startup))
            except Exception as exc:  # the AIND source is young: report and go on
                say(f"N={n}: {scenario} failed: {exc}")
                results.append({"scenario": scenario, "n": n, "error": str(exc)[-500:]})
                break
        archives.drop_objects(archives.AIND_BUCKET)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- the index


def build_index(path: Path, rows: int, *, sources: int = 10, versions: int = 10) -> dict:
    """An index with ``rows`` file rows (entries and version_files), written directly with sqlite."""
    import sqlite3

    from neuromirror.index.db import Index

    if path.exists():
        path.unlink()
    Index(path).close()  # the real schema
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    # secondary indexes are rebuilt after the bulk insert (sorting beats 10^7 random b-tree inserts)
    idx_sql = [
        sql
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name IN ('entries','version_files')"
            " AND sql IS NOT NULL"
        )
    ]
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name IN "
        "('entries','version_files') AND sql IS NOT NULL"
    ).fetchall():
        conn.execute(f'DROP INDEX "{name}"')
    per_version = max(1, rows // (sources * versions))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.execute("BEGIN")
    eid = vid = 0
    for s in range(sources):
        sid = f"dandi:{s:06d}"
        conn.execute(
            "INSERT INTO sources (id, archive, remote_id, dataset, created, meta) VALUES (?,?,?,?,?,?)",
            [sid, "dandi", f"{s:06d}", f"dandi/{s:06d}", now, "{}"],
        )
        for v in range(versions):
            vid += 1
            label = f"0.{250101 + v:06d}.1200" if v < versions - 1 else "draft"
            conn.execute(
                'INSERT INTO versions (id, source, label, kind, "commit", tag, synced_at, remote_modified, date, files,'
                " bytes, doi, citation, meta) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    vid,
                    sid,
                    label,
                    "draft" if label == "draft" else "published",
                    f"{vid:040x}",
                    None if label == "draft" else label,
                    now,
                    now,
                    now,
                    per_version,
                    per_version * 1024,
                    None if label == "draft" else f"10.80507/dandi.{s:06d}/{label}",
                    None,
                    "{}",
                ],
            )
            first = eid + 1

            def entries(first: int = first, v: int = v, sid: str = sid) -> Iterator[tuple]:
                for i in range(per_version):
                    sha = f"{(first + i):064x}"
                    path = f"sub-{i // 100:05d}/sub-{i // 100:05d}_obj-{i:07d}_v{v}.nwb"
                    yield (
                        first + i,
                        sid,
                        path,
                        f"SHA256E-s1024--{sha}.nwb",
                        1024,
                        "sha256",
                        sha,
                        f'["http://s3/blobs/{sha[:3]}/{sha}","http://api/assets/{first + i}/download/"]',
                        None,
                    )

            conn.executemany(
                "INSERT INTO entries (id, source, path, key, size, checksum_kind, checksum, urls, remote_id)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                entries(),
            )
            conn.executemany(
                "INSERT INTO version_files (version_id, entry_id) VALUES (?,?)",
                ((vid, first + i) for i in range(per_version)),
            )
            eid += per_version
    conn.execute("COMMIT")
    for sql in idx_sql:
        conn.execute(sql)
    conn.execute("ANALYZE")
    conn.close()
    return {"file_rows": eid, "sources": sources, "versions": vid, "query_source": f"dandi:{sources - 1:06d}"}


def bench_index(rows: int, work: Path, startup: float) -> dict:
    from neuromirror.index.db import Index
    from neuromirror.spec import parse_spec

    path = work / f"index-{rows}.sqlite"
    say(f"index: writing {rows} file rows into {path} ...")
    t = time.perf_counter()
    meta = build_index(path, rows)
    build_s = time.perf_counter() - t
    say(f"index: built in {build_s:.1f} s; timing versions / pin ...")
    src = meta["query_source"]

    def in_process() -> tuple[float, float, float]:
        """(open, versions, pin) seconds: what the commands do after the interpreter started."""
        from neuromirror.index.lookup import find_version

        t0 = time.perf_counter()
        index = Index(path)
        t1 = time.perf_counter()
        rows_ = index.versions(src)
        t2 = time.perf_counter()
        row = find_version(index, parse_spec(src))
        index.source(src)
        t3 = time.perf_counter()
        index.close()
        assert rows_ and row
        return t1 - t0, t2 - t1, t3 - t2

    samples = [in_process() for _ in range(7)]
    open_ms = statistics.median(s[0] for s in samples) * 1000
    versions_ms = open_ms + statistics.median(s[1] for s in samples) * 1000
    pin_ms = open_ms + statistics.median(s[2] for s in samples) * 1000
    env = child_env()
    root = work / "index-root"
    cmd_v = [*neuromirror_cmd(), "--root", str(root), "--index", str(path), "versions", src, "--json"]
    cmd_p = [*neuromirror_cmd(), "--root", str(root), "--index", str(path), "pin", src, "--json"]
    walls_v = [run_measured(cmd_v, env=env)["wall"] for _ in range(3)]
    walls_p = [run_measured(cmd_p, env=env)["wall"] for _ in range(3)]
    res = {
        "scenario": "index",
        "n": meta["file_rows"],
        "build_s": round(build_s, 1),
        "versions_in_process_ms": round(versions_ms, 2),
        "pin_in_process_ms": round(pin_ms, 2),
        "index_open_ms": round(open_ms, 2),
        "versions_command_s": round(statistics.median(walls_v), 3),
        "pin_command_s": round(statistics.median(walls_p), 3),
        "versions_command_beyond_startup_s": round(statistics.median(walls_v) - startup, 3),
        "pin_command_beyond_startup_s": round(statistics.median(walls_p) - startup, 3),
        "size_mb": round(path.stat().st_size / 2**20, 1),
        **meta,
    }
    say(
        f"index: versions {versions_ms:.1f} ms, pin {pin_ms:.1f} ms in-process; as commands "
        f"{res['versions_command_s']:.2f} s / {res['pin_command_s']:.2f} s (start-up {startup:.2f} s)"
    )
    path.unlink()
    return res


# --------------------------------------------------------------------------- output


def find(results: list[dict], scenario: str, n: int) -> Optional[dict]:
    for r in results:
        if r["scenario"] == scenario and r["n"] == n:
            return r
    return None


def add_ratios(results: list[dict]) -> None:
    for r in results:
        n = r["n"]
        batch, addurls = find(results, "anchor-batch", n), find(results, "anchor-addurls", n)
        rate = r.get("registration_files_per_s") if r["scenario"] in ("dandi-cold", "aind-cold") else None
        for anchor, key in ((batch, "batch"), (addurls, "addurls")):
            if anchor and anchor.get("files_per_s") and r.get("files_per_s"):
                r[f"x_{key}"] = round(r["files_per_s"] / anchor["files_per_s"], 2)
                if rate:
                    r[f"registration_x_{key}"] = round(rate / anchor["files_per_s"], 1)


def check_targets(results: list[dict], startup: dict, index: Optional[dict]) -> list[dict]:
    out: list[dict] = []

    def target(what: str, value: Any, limit: str, ok: bool, note: str = "") -> None:
        out.append({"target": what, "value": value, "limit": limit, "ok": bool(ok), "note": note})

    target(
        "neuromirror --help imports no datalad/dandi/boto3/pandas",
        ",".join(startup["heavy_modules_on_help"]) or "none",
        "none of them",
        not set(startup["heavy_modules_on_help"]) & {"datalad", "dandi", "boto3", "pandas"},
    )
    ns = sorted({r["n"] for r in results if r["scenario"] == "dandi-cold"})
    for n in ns:
        for scen in ("dandi-cold", "aind-cold"):
            r = find(results, scen, n)
            if r and r.get("registration_files_per_s"):
                target(
                    f"{scen} N={n}: annex registration+commit",
                    f"{r['registration_files_per_s']:.0f} files/s",
                    f">= {TARGET_REG_FILES_PER_S}",
                    r["registration_files_per_s"] >= TARGET_REG_FILES_PER_S,
                    f"git-annex branch stream {r['annex_branch_s']:.1f} s, checkout waited for {r['checkout_wait_s']:.1f} s more",
                )
        cold, ref = find(results, "dandi-cold", n), find(results, "head-reference", n)
        if cold and ref and cold.get("pinning_heads_per_s"):
            frac = cold["pinning_heads_per_s"] / ref["heads_per_s"]
            target(
                f"dandi-cold N={n}: URL pinning vs plain HEAD loop",
                f"{cold['pinning_heads_per_s']:.0f}/s = {frac:.0%} of {ref['heads_per_s']:.0f}/s",
                f">= {TARGET_PIN_FRACTION:.0%}",
                frac >= TARGET_PIN_FRACTION,
            )
        if cold and cold.get("later_git_annex"):
            g = cold["later_git_annex"]
            worst = max(g["whereis_again_s"], g["fsck_fast_again_s"], g["status_after_touch_s"])
            target(
                f"dandi-cold N={n}: later git-annex processes (whereis, fsck --fast, git status)",
                f"{g['whereis_again_s']:.2f} / {g['fsck_fast_again_s']:.2f} / {g['status_after_touch_s']:.2f} s",
                f"< {TARGET_LATER_ANNEX_S} s each",
                worst < TARGET_LATER_ANNEX_S,
                f"the first whereis / fsck --fast took {g['whereis_s']:.2f} / {g['fsck_fast_s']:.2f} s (git-annex filling its caches once)",
            )
        if cold and "heads_repeated" in cold:
            target(
                f"dandi-cold N={n}: no blob HEADed twice",
                f"{cold['heads_repeated']} repeated, {cold['heads']} HEADs",
                "0 repeated",
                cold["heads_repeated"] == 0 and cold["heads"] >= n,
            )
        rs = find(results, "dandi-resync", n)
        if rs:
            target(
                f"dandi-resync N={n}: beyond start-up",
                f"{rs['beyond_startup_s']:.2f} s",
                f"< {TARGET_RESYNC_S} s",
                rs["beyond_startup_s"] < TARGET_RESYNC_S and rs["heads"] == 0,
                f"wall {rs['wall_s']:.2f} s, start-up {startup['help_s']:.2f} s, {rs['heads']} HEADs",
            )
        three = find(results, "dandi-3changes", n)
        if three:
            target(
                f"dandi-3changes N={n}: wall",
                f"{three['wall_s']:.2f} s",
                f"< {TARGET_3CHANGES_S} s",
                three["wall_s"] < TARGET_3CHANGES_S and three["heads"] <= 2,
                f"{three['tree_entries_changed']} tree / {three['annex_branch_entries_changed']} git-annex branch "
                f"entries written, {three['heads']} HEADs",
            )
        limit = next((v for k, v in sorted(TARGET_RSS_MB.items()) if n <= k), None)
        if limit:
            peak = max(
                r.get("peak_rss_mb", 0)
                for r in results
                if r["n"] == n and not r["scenario"].startswith(("anchor", "head"))
            )
            target(
                f"N={n}: peak RSS of the sync process tree (all scenarios)",
                f"{peak:.0f} MB",
                f"< {limit} MB",
                peak < limit,
            )
    if index:
        target(
            f"index {index['n']} file rows: versions / pin in-process",
            f"{index['versions_in_process_ms']:.1f} / {index['pin_in_process_ms']:.1f} ms",
            f"< {TARGET_INDEX_MS} ms",
            max(index["versions_in_process_ms"], index["pin_in_process_ms"]) < TARGET_INDEX_MS,
            f"as commands {index['versions_command_s']:.2f} / {index['pin_command_s']:.2f} s incl. start-up",
        )
    from neuromirror.bench.scale import check_scale_targets

    check_scale_targets(results, target)
    return out


COLUMNS = [
    ("scenario", "scenario", "{}"),
    ("n", "N", "{}"),
    ("wall_s", "wall s", "{:.2f}"),
    ("files_per_s", "files/s", "{:,.0f}"),
    ("listing_s", "listing", "{:.2f}"),
    ("pinning_s", "pinning", "{:.2f}"),
    ("registration_commit_s", "reg+commit", "{:.2f}"),
    ("annex_branch_s", "(annex)", "{:.2f}"),
    ("index_s", "index", "{:.2f}"),
    ("other_s", "other", "{:.2f}"),
    ("zarr_listing_s", "(Zarr list)", "{:.2f}"),
    ("zarr_commit_s", "(Zarr commit)", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("cpu_s", "CPU s", "{:.1f}"),
    ("x_batch", "x batch", "{:.2f}"),
    ("x_addurls", "x addurls", "{:.1f}"),
]


def table(results: list[dict]) -> str:
    rows = [[c[1] for c in COLUMNS]]
    for r in results:
        if r["scenario"] in ("index",):
            continue
        rows.append([c[2].format(r[c[0]]) if r.get(c[0]) is not None else "-" for c in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def report(doc: dict) -> str:
    m = doc["machine"]
    out = [
        f"neuromirror bench {doc['started']} on {m.get('cpu', '?')} x{m.get('cpus')} cores, "
        f"{m.get('ram_gb', '?')} GB RAM, {m.get('git')}, git-annex {m.get('git-annex')}, "
        f"load average at start {m.get('loadavg_at_start')}",
        f"start-up (neuromirror --help): {doc['startup']['help_s']:.3f} s (bare python {doc['startup']['python_s']:.3f} s)",
        "",
        table(doc["results"]),
        "",
    ]
    for r in doc["results"]:
        if r.get("error"):
            continue
        if r["scenario"] == "head-reference":
            out.append(
                f"head-reference N={r['n']}: plain concurrent HEAD loop ({HEAD_WORKERS} workers, own process) on "
                f"{r['rows']} of the same S3 objects, before and after the cold mirror: "
                f"{r.get('heads_per_s_before', r['heads_per_s']):.0f} and {r.get('heads_per_s_after', r['heads_per_s']):.0f} "
                f"HEAD/s. Cold DANDI mirrors are bound by this: N / rate = {r['n'] / r['heads_per_s']:.0f} s of "
                f"pinning at N={r['n']}."
            )
        if r["scenario"] == "anchor-addurls":
            out.append(
                f"anchor-addurls N={r['n']}: measured on a subsample of {r['rows']} rows (datalad addurls is too "
                f"slow for all N): {r['files_per_s']:.1f} files/s."
            )
        if r["scenario"] == "anchor-batch" and r["rows"] < r["n"]:
            out.append(f"anchor-batch N={r['n']}: measured on the first {r['rows']} rows.")
    if doc.get("index"):
        i = doc["index"]
        out.append(
            f"index: {i['n']:,} file rows ({i['size_mb']:.0f} MB, {i['versions']} versions): versions "
            f"{i['versions_in_process_ms']:.1f} ms, pin {i['pin_in_process_ms']:.1f} ms in-process (open "
            f"{i['index_open_ms']:.1f} ms); as commands {i['versions_command_s']:.2f} s / {i['pin_command_s']:.2f} s "
            f"(start-up {doc['startup']['help_s']:.2f} s)"
        )
    for r in doc["results"]:
        if r.get("error"):
            out.append(
                f"ERROR {r['scenario']} N={r['n']}: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}"
            )
    out.append("")
    out.append("targets:")
    for t in doc["targets"]:
        out.append(
            f"  [{'PASS' if t['ok'] else 'FAIL'}] {t['target']}: {t['value']} (want {t['limit']})"
            + (f" - {t['note']}" if t["note"] else "")
        )
    return "\n".join(out)


# --------------------------------------------------------------------------- main

ALL = ("head", "dandi", "anchors", "aind", "index", "zarr-dandiset", "aind-zarr", "archive", "clone-get")
#: run by ``--scenarios all`` / the default: the per-size ones (the scale ones are asked for by name)
DEFAULT = ("head", "dandi", "anchors", "aind", "index")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="10000,100000", help="comma-separated N (default 10000,100000)")
    p.add_argument("--million", action="store_true", help="also run N=1000000 (hours: cold pinning is bound by moto)")
    p.add_argument(
        "--scenarios",
        default=",".join(DEFAULT),
        help=f"comma-separated subset of {','.join(ALL)} (default {','.join(DEFAULT)}; dandi-cold "
        "always runs for head/dandi/anchors/clone-get; zarr-dandiset, aind-zarr and archive run "
        "once, at the sizes below, not per --sizes)",
    )
    g = p.add_argument_group("scale scenarios (issue 13)")
    g.add_argument("--zarrs", type=int, default=200, help="zarr-dandiset: Zarr assets Z (default 200)")
    g.add_argument(
        "--zarr-objects", type=int, default=5000, help="zarr-dandiset / archive: objects per Zarr M (default 5000)"
    )
    g.add_argument("--zarr-blobs", type=int, default=1000, help="zarr-dandiset: blob assets (default 1000)")
    g.add_argument(
        "--aind-zarr-objects", type=int, default=1_000_000, help="aind-zarr: objects in the store (default 10^6)"
    )
    g.add_argument("--archive-dandisets", type=int, default=50, help="archive: stand-in dandisets (default 50)")
    g.add_argument(
        "--archive-large", type=int, default=10_000, help="archive: assets of the 3 large ones (default 10^4)"
    )
    p.add_argument(
        "--index-rows",
        type=int,
        default=1_000_000,
        help="file rows in the synthesised index (default 10^6; the target is about 10^7)",
    )
    p.add_argument("--batch-rows", type=int, default=100_000, help="rows for the git-annex batch anchor (default 10^5)")
    p.add_argument("--addurls-rows", type=int, default=2000, help="rows for the datalad addurls anchor (default 2000)")
    p.add_argument("--head-rows", type=int, default=10_000, help="HEADs in the reference loop (default 10^4)")
    p.add_argument("--out", help="JSON file to write (default bench-results/bench-<time>.json)")
    p.add_argument("--workdir", help="where mirrors are made (default: a temporary directory, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the mirrors and the work directory")
    args = p.parse_args(argv)
    args.sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    if args.million and 1_000_000 not in args.sizes:
        args.sizes.append(1_000_000)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = set(args.scenarios) - set(ALL)
    if bad:
        p.error(f"unknown scenarios {sorted(bad)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for k, v in (("DANDI_NO_ET", "1"), ("DANDI_CACHE", "ignore")):
        os.environ.setdefault(k, v)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="neuromirror-bench-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else Path("bench-results") / f"bench-{started.replace(':', '')}.json"
    doc: dict[str, Any] = {
        "started": started,
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items()},
        "results": [],
        "index": None,
        "targets": [],
    }
    say(f"work directory {work}; sizes {args.sizes}; scenarios {args.scenarios}; results -> {out}")
    if doc["machine"]["loadavg_at_start"][0] > (os.cpu_count() or 1) * 0.5:
        say(f"warning: load average {doc['machine']['loadavg_at_start']}: timings will be noisy")
    doc["startup"] = startup_time()
    archives = None
    try:
        if set(args.scenarios) - {"index"}:
            archives = Archives()
            if set(args.scenarios) & {"zarr-dandiset", "aind-zarr", "archive"}:
                from neuromirror.bench.scale import run_scale

                run_scale(args, archives, work, doc["startup"]["help_s"], doc["results"])
                _write(out, doc)
            for n in args.sizes if set(args.scenarios) & set(DEFAULT + ("clone-get",)) - {"index"} else []:
                try:
                    bench_size(n, args, archives, work, doc["startup"]["help_s"], doc["results"])
                except Exception as exc:  # keep what was measured, go on with the next size
                    say(f"N={n}: failed: {exc}")
                    doc["results"].append({"scenario": "size", "n": n, "error": str(exc)[-1000:]})
                add_ratios(doc["results"])
                _write(out, doc)
        if "index" in args.scenarios and args.index_rows > 0:
            doc["index"] = bench_index(args.index_rows, work, doc["startup"]["help_s"])
    finally:
        if archives is not None:
            archives.close()
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    add_ratios(doc["results"])
    doc["targets"] = check_targets(doc["results"], doc["startup"], doc["index"])
    doc["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = report(doc)
    doc["report"] = text
    _write(out, doc)
    print(text)
    print(f"\nJSON: {out}")
    return 0


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())

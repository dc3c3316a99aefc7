"""The scenarios run at each ``--sizes`` N: DANDI cold / resync / 3 changes, the HEAD reference, anchors, AIND.

A dandiset of N assets is mirrored cold, resynced with no change and after 3 changes;
``head-reference`` is a plain concurrent HEAD loop against the same S3 objects, in its own
process, before and after the cold mirror: the rate the stand-in sustains, which bounds a
cold DANDI mirror's URL pinning.  An AIND asset of N objects is mirrored cold and resynced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from neuromirror.bench.archives import Archives
from neuromirror.bench.clone_get import bench_clone_get
from neuromirror.bench.measure import child_env, run_measured, say
from neuromirror.bench.scenarios.anchors import anchor_addurls, anchor_batch, rows_of
from neuromirror.bench.syncs import git_counts, later_git_annex, run_sync

HEAD_WORKERS = 32  # as neuromirror.sources.dandi.source.HEAD_WORKERS


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


def bench_size(
    n: int, args: argparse.Namespace, archives: Archives, work: Path, startup: float, results: list[dict]
) -> None:
    """Every scenario at size ``n``; results are appended as they come (a failure keeps the earlier ones)."""
    want = set(args.scenarios)
    when = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(days=len(str(n)))
    root = work / f"root-{n}"
    if want & {"dandi", "anchors", "head", "clone-get"}:
        _dandi_at(n, args, archives, work, startup, results, root, when)
    if "aind" in want:
        _aind_at(n, archives, root, startup, results)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


def _dandi_at(
    n: int,
    args: argparse.Namespace,
    archives: Archives,
    work: Path,
    startup: float,
    results: list[dict],
    root: Path,
    when: datetime,
) -> None:
    """The DANDI scenarios at size ``n`` on one stand-in dandiset: the HEAD loop around the cold mirror,
    later git-annex processes, clone-get, the resyncs and the anchors, as chosen."""
    want = set(args.scenarios)
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
        try:
            results.append(bench_clone_get(root / "dandi" / ident, root, work, n, "sub-get/sub-get_file.nwb"))
        except Exception as exc:  # reported, the run goes on
            say(f"N={n}: clone-get failed: {exc}")
            results.append({"scenario": "clone-get", "n": n, "error": str(exc)[-500:]})
    if "dandi" in want:
        results.append(run_sync("dandi-resync", n, root, f"dandi:{ident}", api, archives, startup))
        results += two_changes(archives, root, ident, n, startup, when + timedelta(minutes=30))
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


def _aind_at(n: int, archives: Archives, root: Path, startup: float, results: list[dict]) -> None:
    """The AIND scenarios at size ``n``: a cold mirror of a stand-in asset, then a resync (a failure stops both)."""
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


def two_changes(archives: Archives, root: Path, ident: str, n: int, startup: float, when: datetime) -> list[dict]:
    """``dandi-2changes``: a resync after 1 asset added and 1 replaced, read by the draft's changes
    (:mod:`neuromirror.sources.dandi.changes`); ``dandi-2changes-whole``: the same change again, the
    version paged whole (``NEUROMIRROR_DANDI_CHANGES=0``, the path before).  Each with its asset-listing pages."""
    from neuromirror.sources.dandi.changes.listing import ENV

    d = archives.dandi
    out = []
    for i, name in enumerate(("dandi-2changes", "dandi-2changes-whole")):
        paths = sorted(d.dandiset(ident).draft.assets)
        d.put_asset(ident, f"sub-new/sub-new_{i}.nwb", b"added by the bench\n", when=when + timedelta(minutes=i))
        d.put_asset(
            ident, paths[len(paths) // 3], b"replaced by the bench\n", when=when + timedelta(minutes=i, seconds=1)
        )
        d.reset_request_log()
        old = os.environ.get(ENV)
        os.environ[ENV] = "0" if name.endswith("whole") else "1"
        try:
            res = run_sync(name, n, root, f"dandi:{ident}", ["--dandi-api", d.api_url], archives, startup)
        finally:
            if old is None:
                del os.environ[ENV]
            else:
                os.environ[ENV] = old
        res["listing_pages"] = sum(1 for m, raw in d.request_log if m == "GET" and "/versions/draft/assets/?" in raw)
        out.append(res)
    return out

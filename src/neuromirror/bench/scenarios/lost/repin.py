"""The ``repin`` scenario (issue 78): 10^4 pinned keys the archive moved to another bucket, found again.

An AIND asset of ``--repin-keys`` objects (1,000 a folder) is synced; then its objects are put again in
a second bucket (the bytes an S3 copy gives: a new versionId each, the same ETag) and the first bucket's
objects are dropped, every version: each recorded ``?versionId=`` URL answers 404.  ``repin --bucket
NEW --json`` runs once as a dry run and once for real; the stand-in's request log counts the GETs of
object bytes (listings aside).

Targets: >= 500 keys/s on loopback (start-up included), 0 object bytes read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.moto_patch import invalidate_listing_cache, moto_bucket_backend
from neuromirror.bench.syncs import run_sync

MOVED = "aind-moved-bench"


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("repin (issue 78): pinned keys moved to another bucket, found again by size and ETag")
    g.add_argument(
        "--repin-keys", type=lambda s: int(float(s)), default=10_000, help="repin: objects moved (default 10^4)"
    )


def bench_repin(args: argparse.Namespace, archives: Any, work: Path, startup: float) -> list[dict]:
    n = args.repin_keys
    name = archives.aind_asset(n)
    root = work / "repin"
    s3 = ["--bucket", archives.AIND_BUCKET, "--s3-endpoint", archives.s3.endpoint_url]
    run_sync("repin-sync", n, root, f"aind:{name}", s3, archives, startup)
    say(f"repin: {n} objects moved to {MOVED} (new versionIds), every version in {archives.AIND_BUCKET} dropped ...")
    _move(archives, name)
    rows = []
    for scenario, extra in (("repin-dry", ["--dry-run"]), ("repin", [])):
        log = archives.s3.log_requests()
        cmd = [*neuromirror_cmd(), "--root", str(root), "repin", f"aind:{name}", "--bucket", MOVED, "--json", *extra]
        r = run_measured(cmd, env=child_env(), check=False)
        archives.s3.log_requests(False)
        got = json.loads(r["stdout"] or "{}")
        keys = len(got.get("repinned") or [])
        gets = [p for m, p in log if m == "GET" and "versions" not in p.partition("?")[2]]
        rows.append(
            {
                "scenario": scenario,
                "n": n,
                "pinned": got.get("keys"),  # the annexed objects (the asset's 2 sidecars are in git, unpinned)
                "repinned": keys,
                "wall_s": round(r["wall"], 3),
                "keys_per_s": round(keys / r["wall"], 1) if r["wall"] else None,
                "s3_requests": len(log),
                "object_gets": len(gets),
                "bytes_read": got.get("bytes_read"),
                "rss_mb": round(r["rss_mb"], 1),
                "cpu_s": round(r["cpu"], 2),
            }
        )
        say(
            f"{scenario}: {keys} of {got.get('keys')} pinned keys in {r['wall']:.1f} s, {len(log)} requests, {len(gets)} object GETs"
        )
    return rows


def _move(archives: Any, name: str) -> None:
    """The asset's objects put again in another bucket (as S3's copy makes them), the old bucket emptied."""
    archives.s3.create_bucket(MOVED, versioned=True, public=True)
    old, new = moto_bucket_backend(archives.AIND_BUCKET), moto_bucket_backend(MOVED)
    for key in list(old.buckets[archives.AIND_BUCKET].keys.keys()):
        if key.startswith(name + "/"):
            value = old.get_object(archives.AIND_BUCKET, key).value
            new.put_object(MOVED, key, value, disable_notification=True)
    archives.drop_objects(archives.AIND_BUCKET)
    invalidate_listing_cache()


def repin_targets(results: list[dict]) -> list[dict[str, Any]]:
    """>= 500 keys/s, every moved key found, 0 object bytes read."""
    out: list[dict[str, Any]] = []
    r = next((r for r in results if r.get("scenario") == "repin"), None)
    if r is None:
        return out
    for target, ok, value, limit in (
        ("repin: keys/s (start-up included)", (r["keys_per_s"] or 0) >= 500, f"{r['keys_per_s']} keys/s", ">= 500"),
        ("repin: every moved key found", r["repinned"] == r["pinned"], f"{r['repinned']} of {r['pinned']}", "all"),
        ("repin: object bytes read", not r["bytes_read"] and not r["object_gets"], f"{r['object_gets']} GETs", "0"),
    ):
        out.append({"target": target, "value": value, "limit": limit, "ok": bool(ok), "note": ""})
    return out

"""The ``restore`` scenario (issue 42): ``neuromirror restore`` against the peers' ways, in the same run.

A dandiset of each shape (``--restore-small`` files of ~10 kB, ``--restore-large`` of ``--restore-large-mb``)
is synced and kept into a directory store; then, into fresh prefixes of a bucket on the S3 stand-in:

* ``restore-<shape>-dry``: ``restore --dry-run`` over every key (the target empty: listings, no ``HEAD``);
* ``restore-<shape>``: the restore itself (every object read from the store, hashed, written);
* ``restore-<shape>-rerun``: again, everything right: nothing written;
* the peer — small files: ``git annex copy --from STORE --to S3PEER -J N`` (an S3 special remote on the
  same stand-in, reading the same store); large files: a plain boto3 ``upload_file`` of the same bytes
  (``max_concurrency`` N), from the store's files.

Targets: small files >= 3x git annex copy's files/s; large files >= 90 % of boto3's MB/s; the dry run's
keys/s (a dry run over 10^6 keys must take < 60 s: >= 16,667 keys/s) and peak RSS < 500 MB.

``restore-dry-<n>`` (``--restore-dry-keys K``, 0 skips it): the dry run at scale, its keys *kept* cheaply —
two draft dandisets of K/10 and K tiny assets are synced (the sync's one HEAD per blob is what costs:
~7 min per 10^5 here), then every key is recorded as checked good in a store of the index
(``store_checks``, one INSERT each) instead of being copied: a dry run reads no store, it asks the index
which store holds a key.  The dry run over each, into an empty prefix of a bucket; at K < 10^6 the wall
time and peak RSS are grown to 10^6 along the line through both points (start-up stays fixed).
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

from neuromirror.bench.archives import Archives
from neuromirror.bench.clone_get import _git_env
from neuromirror.bench.measure import child_env, neuromirror_cmd, run_measured, say
from neuromirror.bench.scenarios.keep import JOBS, _dandiset, _row
from neuromirror.bench.syncs import run_sync

_BOTO_UPLOAD = """
import sys, boto3
from boto3.s3.transfer import TransferConfig
from concurrent.futures import ThreadPoolExecutor
endpoint, bucket, prefix, jobs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
cfg = TransferConfig(max_concurrency=jobs)
with ThreadPoolExecutor(jobs) as pool:
    list(pool.map(lambda p: c.upload_file(p, bucket, prefix + p.rsplit("/", 1)[1], Config=cfg), sys.argv[5:]))
"""


def _env(archives: Archives) -> dict:
    env = _git_env(child_env(), ("annex.security.allowed-ip-addresses", "all"))
    env.update(
        NEUROMIRROR_STORE_ENDPOINT=archives.s3.endpoint_url,
        AWS_ACCESS_KEY_ID="AKIABENCHRESTORE0001",
        AWS_SECRET_ACCESS_KEY="bench-restore-secret",
    )
    return env


def bench_restore_shape(
    archives: Archives, work: Path, startup: float, label: str, files: int, size: int
) -> list[dict]:
    ident = _dandiset(archives, files, size, f"restore-{label}")
    root = work / f"restore-{label}"
    spec = f"dandi:{ident}"
    run_sync(f"restore-{label}-sync", files, root, spec, ["--dandi-api", archives.dandi.api_url], archives, startup)
    env = _env(archives)
    store = work / f"restore-store-{label}"
    say(f"restore {label}: keeping {files} x {size} bytes into a directory store first ...")
    run_measured([*neuromirror_cmd(), "--root", str(root), "keep", spec, "--to", str(store), "-q"], env=env)
    bucket = f"bench-restore-{uuid.uuid4().hex[:8]}"
    archives.s3.create_bucket(bucket, versioned=True, public=False)
    nbytes = files * size

    def restore(prefix: str, *extra: str) -> dict:
        cmd = [*neuromirror_cmd(), "--root", str(root), "restore", spec, "--to", f"s3://{bucket}/{prefix}"]
        return run_measured([*cmd, "-J", str(JOBS), "--json", *extra], env=env)

    rows = []
    say(f"restore {label}: dry run over {files} keys ...")
    dry = _row(f"restore-{label}-dry", files, 0, restore("ours", "--dry-run"))
    dry["keys_per_s"] = dry.pop("files_per_s")
    rows.append(dry)
    say(f"restore {label}: restore ...")
    r = restore("ours")
    rows.append(_row(f"restore-{label}", files, nbytes, r))
    rows[-1]["written"] = json.loads(r["stdout"] or "{}").get("written")
    say(f"restore {label}: again, everything right ...")
    rows.append(_row(f"restore-{label}-rerun", files, 0, restore("ours")))
    ds = root / "dandi" / ident
    if label == "small":
        rows.append(_annex_copy(ds, env, archives, bucket, files, nbytes))
    else:
        paths = [str(p) for p in store.rglob("*") if p.is_file() and p.parent.name == p.name]
        cmd = [sys.executable, "-c", _BOTO_UPLOAD, archives.s3.endpoint_url, bucket, "boto3/", str(JOBS), *paths]
        say(f"restore {label}: boto3 upload_file of the same {len(paths)} files ...")
        rows.append(_row(f"restore-{label}-boto3", files, nbytes, run_measured(cmd, env=env)))
    shutil.rmtree(store, ignore_errors=True)
    ours, peer = rows[1], rows[3]
    say(
        f"restore {label}: {ours['files_per_s']} files/s, {ours['mb_per_s']} MB/s, {ours['rss_mb']} MB; dry run "
        f"{dry['keys_per_s']} keys/s; rerun {rows[2]['wall_s']} s; {peer['scenario']} {peer['files_per_s']} files/s, "
        f"{peer['mb_per_s']} MB/s"
    )
    return rows


def _annex_copy(ds: Path, env: dict, archives: Archives, bucket: str, files: int, nbytes: int) -> dict:
    """``git annex copy --from STORE --to S3PEER``: the store enabled as git-annex enables it, an S3 remote."""
    log = run_measured(["git", "show", "git-annex:remote.log"], env=env, cwd=ds)["stdout"]
    log = log.decode() if isinstance(log, bytes) else log
    name = next(w.split("=", 1)[1] for w in log.split() if w.startswith("name=neuromirror-store"))
    run_measured(["git", "annex", "enableremote", name], env=env, cwd=ds)
    from neuromirror.pin.stores import _verify

    _verify(ds, name)  # git-annex reads an enabled remote only once verified (as get/reproduce do for a store)
    s3 = archives.s3
    run_measured(
        ["git", "annex", "initremote", "s3peer", "type=S3", "encryption=none", f"bucket={bucket}",
         "fileprefix=peer/", f"host={s3.host}", f"port={s3.port}", "protocol=http", "requeststyle=path",
         "signature=v4", "datacenter=US"],
        env=env,
        cwd=ds,
    )  # fmt: skip
    say(f"restore small: git annex copy --from {name} --to s3peer -J {JOBS} ...")
    r = run_measured(
        ["git", "annex", "copy", "--from", name, "--to", "s3peer", "-J", str(JOBS), "--quiet", "."], env=env, cwd=ds
    )
    return _row("restore-small-peer", files, nbytes, r)


def bench_restore(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    rows = []
    if args.restore_small:
        rows += bench_restore_shape(archives, work, startup, "small", args.restore_small, 10_000)
    if args.restore_large:
        rows += bench_restore_shape(archives, work, startup, "large", args.restore_large, args.restore_large_mb << 20)
    if args.restore_dry_keys:
        rows += bench_restore_dry(archives, work, startup, args.restore_dry_keys)
    return rows


def bench_restore_dry(archives: Archives, work: Path, startup: float, keys: int) -> list[dict]:
    """The dry run over ``keys`` kept keys and over a tenth of them (see the module); one row each, the larger
    one with its values at 10^6 keys."""
    root = work / "restore-dry"
    sizes = [max(1, keys // 10), keys]
    idents = []
    for n in sizes:
        ident = _dandiset(archives, n, 64, f"restore-dry-{n}")
        run_sync(
            f"restore-dry-sync-{n}",
            n,
            root,
            f"dandi:{ident}",
            ["--dandi-api", archives.dandi.api_url],
            archives,
            startup,
        )
        idents.append(ident)
    kept = _synthesise_kept(root)
    say(f"restore dry: {kept} keys recorded as kept in a synthetic store")
    env = _env(archives)
    bucket = f"bench-restore-dry-{uuid.uuid4().hex[:8]}"
    archives.s3.create_bucket(bucket, versioned=True, public=False)
    rows = []
    for n, ident in zip(sizes, idents):
        say(f"restore dry: dry run over {n} keys ...")
        cmd = [*neuromirror_cmd(), "--root", str(root), "restore", f"dandi:{ident}", "--to", f"s3://{bucket}/dry"]
        r = run_measured([*cmd, "--dry-run", "-J", str(JOBS), "--json"], env=env)
        measured = _row(f"restore-dry-{n}", n, 0, r)
        keys_per_s = measured.pop("files_per_s")
        would_write = json.loads(r["stdout"] or "{}").get("would_write", {}).get("objects")
        rows.append({**measured, "keys_per_s": keys_per_s, "would_write": would_write})
    small, big = rows
    slope = max(0.0, big["wall_s"] - small["wall_s"]) / max(1, big["n"] - small["n"])
    big["wall_at_1e6_s"] = round(big["wall_s"] + slope * max(0, 1_000_000 - big["n"]), 1)
    # CPU seconds grow the same way: on a shared machine the wall time is the load's, the CPU time ours
    cpu_slope = max(0.0, big["cpu_s"] - small["cpu_s"]) / max(1, big["n"] - small["n"])
    big["cpu_at_1e6_s"] = round(big["cpu_s"] + cpu_slope * max(0, 1_000_000 - big["n"]), 1)
    grow = max(0.0, big["rss_mb"] - small["rss_mb"]) / max(1, big["n"] - small["n"])
    big["rss_per_key_kb"] = round(grow * 1024, 4)
    big["rss_at_1e6_mb"] = round(big["rss_mb"] + grow * max(0, 1_000_000 - big["n"]), 1)
    say(
        f"restore dry: {small['n']} keys {small['wall_s']} s {small['rss_mb']} MB; {big['n']} keys {big['wall_s']} s "
        f"{big['rss_mb']} MB -> at 10^6: {big['wall_at_1e6_s']} s ({big['cpu_at_1e6_s']} s CPU), {big['rss_at_1e6_mb']} MB"
    )
    shutil.rmtree(root, ignore_errors=True)
    return rows


def _synthesise_kept(root: Path) -> int:
    """Every annexed key of the mirror recorded as checked good in one (synthetic) store of its index."""
    import sqlite3
    import time

    from neuromirror.index.store_checks import SCHEMA

    conn = sqlite3.connect(root / ".neuromirror" / "index.sqlite")
    try:
        with conn:
            for sql in SCHEMA:
                conn.execute(sql)
            store = "00000000-bench-restore-dry-synthetic"
            conn.execute(
                "INSERT OR REPLACE INTO stores (uuid, url, kind, name, seen) VALUES (?, ?, 'directory', 'bench', ?)",
                [store, str(root / "synthetic-store"), time.time()],
            )
            conn.execute(
                "INSERT OR IGNORE INTO store_checks (store, key, checked, stored) SELECT DISTINCT ?, key, ?, ?"
                " FROM entries WHERE key IS NOT NULL AND key != ''",
                [store, time.time(), time.time()],
            )
        return int(conn.execute("SELECT count(*) FROM store_checks WHERE store=?", [store]).fetchone()[0])
    finally:
        conn.close()


def _against_peers(by: dict[str, dict], target: Callable[[str, bool, str, str], None]) -> None:
    """Restore against the tools beside it: small files against git annex copy, large ones against boto3."""
    small, peer = by.get("restore-small"), by.get("restore-small-peer")
    if small and peer and peer["files_per_s"]:
        ratio = small["files_per_s"] / peer["files_per_s"]
        target("restore small files vs git annex copy --to S3: files/s", ratio >= 3, f"{ratio:.2f}x", ">= 3x")
    large, boto = by.get("restore-large"), by.get("restore-large-boto3")
    if large and boto and boto["mb_per_s"]:
        ratio = large["mb_per_s"] / boto["mb_per_s"]
        target("restore large files vs boto3 upload_file: MB/s", ratio >= 0.9, f"{ratio:.0%}", ">= 90 %")


def _at_scale(r: dict, target: Callable[[str, bool, str, str], None]) -> None:
    """A dry run at 10^6 kept keys (or extrapolated to it): its wall and its peak RSS."""
    note = "" if r["n"] >= 1_000_000 else f" (measured at {r['n']:,} keys, extrapolated)"
    target(
        "restore dry run over 10^6 kept keys: wall s",
        r["wall_at_1e6_s"] < 60,
        f"{r['wall_at_1e6_s']} s{note}",
        "< 60 s",
    )
    target(
        "restore dry run over 10^6 kept keys: peak RSS",
        r["rss_at_1e6_mb"] < 500,
        f"{r['rss_at_1e6_mb']} MB{note}",
        "< 500 MB",
    )


def restore_targets(results: list[dict]) -> list[dict[str, Any]]:
    """Issue 42's targets: small >= 3x git annex copy (files/s), large >= 90 % of boto3 (MB/s), a dry run's
    pace enough for 10^6 keys in 60 s, peak RSS < 500 MB."""
    by = {r["scenario"]: r for r in results if str(r.get("scenario", "")).startswith("restore-")}
    out: list[dict[str, Any]] = []

    def target(name: str, ok: bool, value: str, limit: str) -> None:
        out.append({"target": name, "value": value, "limit": limit, "ok": bool(ok), "note": ""})

    _against_peers(by, target)
    dry = by.get("restore-small-dry")  # the large shape's few keys measure start-up only
    if dry and dry.get("keys_per_s"):
        pace = dry["keys_per_s"]
        value = f"{pace} keys/s over {dry['n']} keys (start-up included)"
        target("restore dry run: keys/s (10^6 keys in < 60 s)", pace >= 1e6 / 60, value, ">= 16,667 keys/s")
    big = [r for r in results if "wall_at_1e6_s" in r and str(r.get("scenario", "")).startswith("restore-dry-")]
    for r in big:
        _at_scale(r, target)
    for name in ("restore-small-dry", "restore-small", "restore-large"):
        if name in by:
            target(f"{name}: peak RSS", by[name]["rss_mb"] < 500, f"{by[name]['rss_mb']} MB", "< 500 MB")
    return out

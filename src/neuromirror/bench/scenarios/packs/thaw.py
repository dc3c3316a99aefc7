"""``pack-thaw`` (issue 57): packs in DEEP_ARCHIVE thawed once, on demand, and a restore from them completes.

A draft dandiset of ``--pack-thaw-files`` assets of 10 kB is synced and kept into
``pack+s3://BUCKET/cold --storage-class DEEP_ARCHIVE --pack-size --pack-thaw-pack-size`` on the S3 stand-in
(moto refuses a GET of a DEEP_ARCHIVE object until a RestoreObject, as S3 does).  Every S3 version of the
blobs is deleted from the archive's bucket (the loss), then ``restore dandi:ID --to s3://ARCHIVE-BUCKET``,
each run a measured subprocess, every S3 request logged:

1. ``--dry-run --json``: the ``thaw`` it announces (packs, bytes) against the bucket's packs; no RestoreObject;
2. the restore while the thaws are *held in progress* (moto restores at once when asked; here a restored
   object stays ``ongoing-request="true"`` until released, as S3 keeps it for hours): exit 75, one line,
   RestoreObject requests per pack (each pack exactly once);
3. the same restore again, the thaws still in progress: exit 75 again, no RestoreObject;
4. the thaws released (``ongoing-request="false"``): the restore again: exit 0, no RestoreObject, every
   object written, the store's GETs per object;
5. once more: exit 0, nothing written.

One res ``pack-thaw`` with every run's exit code, wall time and requests.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

from neuromirror.bench.archives import Archives
from neuromirror.bench.measure import neuromirror_cmd, run_measured, say
from neuromirror.bench.moto_patch import moto_bucket_backend
from neuromirror.bench.scenarios.keep import JOBS, _dandiset
from neuromirror.bench.scenarios.packs.restore import SIZE, blob_keys, lose
from neuromirror.bench.scenarios.restore import _env
from neuromirror.bench.syncs import run_sync
from neuromirror.bench.targets import judge, reported

PREFIX = "cold"
TARGETS = (
    ("pack-thaw", "dry_thaw_off_by", 0, "max", "pack-thaw: packs the dry run's thaw count is off by"),
    ("pack-thaw", "dry_restore_requests", 0, "max", "pack-thaw: RestoreObject requests of the dry run"),
    ("pack-thaw", "max_restore_requests_per_pack", 1, "max", "pack-thaw: RestoreObject requests per pack (most)"),
    ("pack-thaw", "packs_not_asked", 0, "max", "pack-thaw: cold packs the first restore did not ask to thaw"),
    ("pack-thaw", "rerun_restore_requests", 0, "max", "pack-thaw: RestoreObject requests of the rerun while thawing"),
    ("pack-thaw", "thawed_restore_requests", 0, "max", "pack-thaw: RestoreObject requests of the run once thawed"),
    ("pack-thaw", "exits_as_expected", 1, "min", "pack-thaw: exits 75, 75 while thawing, then 0 and 0"),
    ("pack-thaw", "unwritten", 0, "max", "pack-thaw: objects the restore from thawed packs did not write"),
)  # fmt: skip


@contextmanager
def held_thaws() -> Iterator[None]:
    """Within: a RestoreObject on the S3 stand-in leaves its object thawing (``ongoing-request="true"``,
    GET refused) instead of thawed at once; on leaving, every such object is thawed."""
    from moto.moto_api import state_manager
    from moto.s3.models import FakeKey

    original = FakeKey.restore

    def restore(self: Any, days: int) -> None:
        original(self, days)
        self.status = "IN_PROGRESS"

    state_manager.set_transition("s3::keyrestore", {"progression": "manual", "times": 10**9})
    try:
        with mock.patch.object(FakeKey, "restore", restore):
            yield
    finally:
        state_manager.unset_transition("s3::keyrestore")  # moto's default again: a thaw completes when looked at


def _written(run: dict) -> int:
    """The objects a restore run's report says it wrote (0 when it wrote none or said nothing)."""
    return int(((run["report"].get("written") or {}).get("objects")) or 0)


def bench_pack_thaw(args: Any, archives: Archives, work: Path, startup: float) -> list[dict]:
    """The scenario's one res (see the module), judged."""
    files, pack_size = args.pack_thaw_files, int(args.pack_thaw_pack_size)
    ident = _dandiset(archives, files, SIZE, "pack-thaw")
    root, spec = work / "root-pack-thaw", f"dandi:{ident}"
    run_sync("pack-thaw-sync", files, root, spec, ["--dandi-api", archives.dandi.api_url], archives, startup)
    env = _env(archives)
    bucket = f"bench-pack-thaw-{uuid.uuid4().hex[:8]}"
    archives.s3.create_bucket(bucket, versioned=False, public=False)
    url = f"pack+s3://{bucket}/{PREFIX}"
    keep = [*neuromirror_cmd(), "--root", str(root), "keep", spec, "--to", url, "-J", str(JOBS), "-q"]
    say(f"pack-thaw: keep {files} x {SIZE} bytes into {url} (DEEP_ARCHIVE, {pack_size}-byte packs) ...")
    kept = run_measured([*keep, "--pack-size", str(pack_size), "--storage-class", "DEEP_ARCHIVE"], env=env)
    held = moto_bucket_backend(bucket).buckets[bucket].keys
    packs = {f"/{bucket}/{k}": held[k] for k in list(held.keys()) if k.startswith(f"{PREFIX}/packs/")}
    res: dict[str, Any] = {
        "scenario": "pack-thaw",
        "n": files,
        "pack_size": pack_size,
        "keep_s": round(kept["wall"], 2),
    }
    res.update(packs=len(packs), pack_bytes=sum(k.size for k in packs.values()))
    res["pack_classes"] = sorted({k.storage_class for k in packs.values()})
    res["lost_versions"] = lose(archives, blob_keys(archives, ident))
    restore = [*neuromirror_cmd(), "--root", str(root), "restore", spec, "--to", f"s3://{archives.dandi.bucket}"]

    def run(name: str, *extra: str) -> dict:
        log = archives.s3.log_requests()
        try:
            r = run_measured([*restore, "-J", str(JOBS), *extra], env=env, check=False)
        finally:
            archives.s3.log_requests(False)
        asked = Counter(p.split("?")[0] for m, p in log if m == "POST" and "restore" in p.split("?", 1)[-1])
        gets = sum(1 for m, p in log if m == "GET" and p.split("?")[0] in packs)
        stderr = r["stderr"].decode(errors="replace").strip().splitlines()
        got = {"rc": r["rc"], "wall_s": round(r["wall"], 3), "restore_requests": sum(asked.values())}
        got.update(pack_gets=gets, last_line=stderr[-1][:300] if stderr else "", asked=asked)
        if "--json" in extra:
            text = r["stdout"].decode(errors="replace").strip()
            got["report"] = json.loads(text) if text.startswith("{") else {}
        say(f"pack-thaw: {name}: exit {got['rc']} in {got['wall_s']} s, {got['restore_requests']} RestoreObject, {gets} pack GETs; {got['last_line']}")  # fmt: skip
        return got

    with held_thaws():
        dry = run("dry run", "--dry-run", "--json")
        first = run("restore (packs cold)", "--json")
        rerun = run("rerun (thaws in progress)", "--json")
    thawed = run("restore (packs thawed)", "--json")
    again = run("rerun (all restored)", "--json")
    thaw = dry["report"].get("thaw") or {}
    res.update(dry_thaw=thaw, dry_thaw_off_by=abs(int(thaw.get("packs") or 0) - len(packs)))
    res["dry_restore_requests"] = dry["restore_requests"]
    per_pack = [first["asked"].get(p, 0) for p in packs]
    res.update(max_restore_requests_per_pack=max(per_pack, default=0), packs_not_asked=per_pack.count(0))
    res.update(first_restore_requests=first["restore_requests"], first_line=first["last_line"])
    res.update(rerun_restore_requests=rerun["restore_requests"], rerun_line=rerun["last_line"])
    res.update(thawed_restore_requests=thawed["restore_requests"] + again["restore_requests"])
    codes = [first["rc"], rerun["rc"], thawed["rc"], again["rc"]]
    res.update(exit_codes=[dry["rc"], *codes], exits_as_expected=int(codes == [75, 75, 0, 0]))
    written = _written(thawed)
    written_first = _written(first)
    res.update(written_while_cold=written_first, written_thawed=written, unwritten=files - written_first - written)
    res["written_again"] = _written(again)
    res["thawed_pack_gets"] = thawed["pack_gets"]
    res["thawed_pack_gets_per_object"] = round(thawed["pack_gets"] / written, 3) if written else None
    for name, r in (("dry", dry), ("first", first), ("rerun", rerun), ("thawed", thawed), ("again", again)):
        res[f"{name}_wall_s"] = r["wall_s"]
    res["wall_s"] = res["thawed_wall_s"]
    res["objects_per_s"] = round(written / thawed["wall_s"], 1) if thawed["wall_s"] else None
    res["load"] = round(os.getloadavg()[0], 2)
    judge([res], TARGETS)
    archives.drop_objects(bucket)
    return [res]


def pack_thaw_targets(results: list[dict]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in results:
        if r.get("scenario") == "pack-thaw":
            out += reported(r, f"{r['n']:,} x 10 kB in {r['packs']} DEEP_ARCHIVE pack(s) of {r['pack_size']} bytes")
    return out

"""``archive-quiet`` (issue 32): the whole archive's quiet hour, a ``dandi:*`` cycle when (almost) nothing changed.

N small dandisets (default 2,000; one asset each, identifiers 7xxxxx so that the glob
``dandi:7*`` names only them) are mirrored by one cycle of the service's entry, run in
this process as its scheduled job runs it (``Service.run_cycle``); then:

1. ``archive-quiet-nochange``: a cycle with nothing changed, an hour after the one before (the
   entry's watermark is moved an hour back: the default rolling re-check is in proportion to
   the time since the last cycle, and the scenario's cycles follow one another at once):
   seconds, and the requests the archive saw (the stand-in's request log): the dandiset list,
   not one request per dandiset;
2. ``archive-quiet-1changed``: a cycle after one dandiset's draft gained an asset: the one
   dandiset synced;
3. ``archive-quiet-every``: the same no-change cycle with ``quiet: false`` (every dandiset
   asked, as before the quiet hour), for comparison.

The cold cycle is reported too (``archive-quiet-cold``).  Targets (:func:`archive_quiet_targets`):
no-change cycle under 10 s at 2,000 dandisets, and at most 10 requests.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from neuromirror.bench.archives import Archives, put_empty_blob
from neuromirror.bench.measure import say
from neuromirror.bench.moto_patch import moto_bucket_backend

SPEC = "dandi:7*"
#: (scenario, field, bound, "min" | "max", what); the wall bound holds at N = 2,000
TARGETS = (
    ("archive-quiet-nochange", "wall_s", 10.0, "max", "no-change cycle of the archive (2,000 dandisets): s"),
    ("archive-quiet-nochange", "requests", 10, "max", "no-change cycle of the archive: requests"),
)


def bench_archive_quiet(archives: Archives, work: Path, n: int) -> list[dict]:
    from neuromirror.util.toolpath import ensure_tools_on_path

    ensure_tools_on_path()
    d = archives.dandi
    when = datetime(2025, 1, 1, tzinfo=timezone.utc)
    say(f"archive-quiet: {n} dandisets of one asset ...")
    be = moto_bucket_backend(d.bucket)
    ids = []
    for i in range(n):
        ident = d.create_dandiset(identifier=f"{700000 + i}", name=f"quiet {i}", created=when)
        for aid in d.add_synthetic_assets(ident, 1, when=when):
            put_empty_blob(be, d, aid)
        ids.append(ident)
    base = work / "archive-quiet"
    quiet = _service(base / "quiet", d.api_url, {})
    out = [_cycle("archive-quiet-cold", quiet, d, n)]
    _an_hour_later(quiet)
    out.append(_cycle("archive-quiet-nochange", quiet, d, n))
    d.put_asset(ids[n // 2], "sub-new/new.nwb", b"added by the bench\n", when=when + timedelta(days=1))
    out.append(_cycle("archive-quiet-1changed", quiet, d, n))
    every = _service(base / "quiet", d.api_url, {"quiet": False}, name="every.yaml")
    out.append(_cycle("archive-quiet-every", every, d, n))
    return out


def _service(base: Path, api: str, options: dict[str, Any], name: str = "mirror.yaml") -> Any:
    from neuromirror.config.load import load_config
    from neuromirror.service.scheduler import Service

    base.mkdir(parents=True, exist_ok=True)
    cfg = base / name
    opts = {"dandi_api": api, **options}
    cfg.write_text(
        f"root: {base / 'mirror'}\nsources:\n  - spec: '{SPEC}'\n    schedule: 1h\n    options: {json.dumps(opts)}\n"
    )
    config = load_config(cfg)
    return Service(config, config.resolve_root(None))


def _an_hour_later(svc: Any) -> None:
    """Date the entry's last cycle an hour ago, as if the next one came at the ``1h`` schedule."""
    from neuromirror.service import quiet

    mirror = svc.mirror()
    try:
        mark = json.loads(mirror.index.cache_get(quiet.CYCLES, SPEC) or "{}")
        if mark.get("started"):  # the next cycle starts an hour after the last one started
            mark["started"] = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
            mirror.index.cache_put_many(quiet.CYCLES, [(SPEC, json.dumps(mark))])
    finally:
        mirror.close()


def _cycle(name: str, svc: Any, dandi: Any, n: int) -> dict:
    say(f"{name}: one cycle of {SPEC} ...")
    dandi.reset_request_log()
    t0 = time.perf_counter()
    svc.run_cycle(SPEC)
    wall = time.perf_counter() - t0
    cycle = svc.entry_cycles.get(SPEC, {})
    res = {
        "scenario": name,
        "n": n,
        "wall_s": round(wall, 3),
        "requests": dandi.request_count,
        "synced": cycle.get("synced", n),
        "why": cycle.get("why"),
    }
    say(f"{name}: {res['wall_s']} s, {res['requests']} requests, {res['synced']} synced {res['why'] or ''}")
    return res


def archive_quiet_targets(results: list[dict]) -> list[dict]:
    """The quiet hour's targets checked against what ran (the wall bound is for N = 2,000)."""
    out = []
    for scenario, fld, bound, kind, what in TARGETS:
        for r in results:
            if r.get("scenario") == scenario and r.get(fld) is not None:
                value = r[fld]
                ok = value <= bound if kind == "max" else value >= bound
                note = f"N={r['n']}" + ("" if fld != "wall_s" or r["n"] >= 2000 else " (the bound is for N=2,000)")
                out.append({"target": what, "value": value, "limit": bound, "ok": ok, "note": note})
    return out

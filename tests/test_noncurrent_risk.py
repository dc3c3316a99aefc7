"""A pin resting only on a noncurrent S3 version counts as at risk, on ``status`` and ``/metrics``.

Why: buckets expire noncurrent versions (DANDI: 30 days after an overwrite); a published version
whose Zarr chunk was since rewritten in place is pinned to a version that will vanish.  A stand-in
dandiset publishes a Zarr, then the draft rewrites one chunk (a new S3 version; the old one is
noncurrent) and deletes another; after the next sync the published version's two chunks count as
``noncurrent``, the draft's as safely pinned; kept, they count as kept.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from helpers.keep import T0, make_dandiset
from helpers.read import zarr_files

ZARR = "sub-09/sample.zarr"


def by_version(status: dict, source: str) -> dict[str, dict]:
    (row,) = [r for r in status["sources"] if r["source"] == source]
    return {v["version"]: v for v in row["at_risk"]}


def test_a_pin_on_a_noncurrent_version_is_at_risk(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    import numpy as np

    chunks = zarr_files(np.arange(16, dtype="int32").reshape(4, 4))
    d = make_dandiset(dandi_archive, tmp_path / "mirror", {"sub-01/a.nwb": 5_000}, zarr=chunks)
    z = dandi_archive.asset_at(d.id, ZARR, d.version).zarr
    data_chunks = sorted(k for k in chunks if not k.split("/")[-1].startswith("."))
    rewritten, deleted = data_chunks[0], data_chunks[1]
    when = T0 + timedelta(days=200 + len(dandi_archive.dandiset_ids()))
    dandi_archive.modify_zarr(z.zarr_id, put={rewritten: b"\0" * len(chunks[rewritten])}, delete=[deleted], when=when)
    dandi_archive.put_asset(d.id, "sub-02/new.nwb", b"n" * 3_000, when=when)  # the draft changed
    d.run.ok("sync", d.source, "--dandi-api", dandi_archive.api_url)

    risk = by_version(json.loads(d.run.ok("status", d.source, "--json")), d.source)
    published, draft = risk[d.version], risk["draft"]
    assert published["noncurrent"]["files"] == 2  # the rewritten chunk's old version and the deleted one
    assert published["noncurrent"]["bytes"] == len(chunks[rewritten]) + len(chunks[deleted])
    assert published["pinned"]["files"] == 1 + len(chunks) - 2  # the blob (never overwritten) and the rest
    assert draft["noncurrent"]["files"] == 0
    text = d.run.ok("status", d.source)
    assert "noncurrent_pin_only" in text.lower() or "NONCURRENT_PIN_ONLY" in text

    # /metrics: the service's count after a sync, exposed per kind
    from neuromirror.api import Mirror
    from neuromirror.service import status_report
    from neuromirror.service.metrics import render_metrics
    from neuromirror.service.risk import add_risks, risk_after_sync

    mirror = Mirror(d.run.root)
    try:
        risk_after_sync(mirror, d.source, "ok")  # what the service's worker does after a sync
        report = status_report(d.run.root)
        add_risks(report, mirror.records)
    finally:
        mirror.close()
    text = render_metrics(report)
    want = f'neuromirror_at_risk_files{{kind="noncurrent",source="{d.source}",version="{d.version}"}} 2.0'
    assert want in text

    # kept: no longer at risk
    d.run.ok("keep", d.spec, "--to", str(tmp_path / "store"))
    published = by_version(json.loads(d.run.ok("status", d.source, "--json")), d.source)[d.version]
    assert published["noncurrent"]["files"] == 0 and published["kept"]["files"] == 1 + len(chunks)


def test_expiry_clock_and_keep_before_expiry(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    """An older draft state's chunk was rewritten: its pin rests on a noncurrent version whose expiry
    clock started at the next state; ``keep: {expire_after: 30d}`` keeps that state too, ``status`` and
    ``/metrics`` show the time left (failing under a week) until it is kept."""
    from helpers.retrieve import Runner
    from neuromirror.api import Mirror
    from neuromirror.config.model import KeepPolicy
    from neuromirror.service import status_report
    from neuromirror.service.keeping import run_policy
    from neuromirror.service.metrics import render_metrics
    from neuromirror.service.risk import add_risks, risk_after_sync

    t = T0 + timedelta(days=300 + len(dandi_archive.dandiset_ids()))
    ident = dandi_archive.create_dandiset(name="expiry sample", created=t)
    sid = f"dandi:{ident}"
    chunks = {".zgroup": b'{"zarr_format": 2}', "0/0": b"a" * 900, "0/1": b"b" * 800}
    dandi_archive.add_zarr_asset(ident, ZARR, chunks, when=t + timedelta(minutes=1))
    run = Runner(tmp_path / "mirror")
    run.ok("sync", sid, "--dandi-api", dandi_archive.api_url)
    zid = dandi_archive.asset_at(ident, ZARR).zarr.zarr_id
    changed = t + timedelta(days=1)
    dandi_archive.modify_zarr(zid, put={"0/0": b"c" * 900}, when=changed)
    dandi_archive.put_asset(ident, "sub-01/x.nwb", b"x" * 2_000, when=changed + timedelta(minutes=1))
    run.ok("sync", sid, "--dandi-api", dandi_archive.api_url)

    (row,) = json.loads(run.ok("status", sid, "--json"))["sources"]
    x = row["expiry"]
    assert x["unkept"] == {"files": 1, "bytes": 900} and x["expire_after"] == 30 * 86400
    next_state = changed + timedelta(minutes=1)  # the archive's date of the first state without the old chunk
    assert x["oldest_noncurrent_since"] == next_state.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert x["state"] == "failing" and x["time_left_s"] < 7 * 86400  # a year ago: long expired by DANDI's rule
    said = run.ok("status", sid)
    assert x["time_left_s"] < 0 and "FAILING: under a week" in said
    assert f"{x['unkept']['files']} file(s)" in said and "was due to expire" in said and "expires in -" not in said, (
        said
    )

    def counted_metrics(mirror: Mirror) -> str:
        """/metrics after the service's count of what is at risk (its worker counts after each sync)."""
        risk_after_sync(mirror, sid, "ok")
        report = status_report(run.root)
        add_risks(report, mirror.records)
        return render_metrics(report)

    store = tmp_path / "store"
    mirror = Mirror(run.root)
    try:
        plain = run_policy(mirror, sid, [str(store)], KeepPolicy("published"))
        assert plain["versions"] == [f"{sid}@draft"]  # the latest state only: the old one's chunk not kept
        metrics = counted_metrics(mirror)
        assert f'neuromirror_noncurrent_unkept_files{{source="{sid}"}} 1.0' in metrics
        assert f'neuromirror_noncurrent_expiry_failing{{source="{sid}"}} 1.0' in metrics

        kept = run_policy(mirror, sid, [str(store)], KeepPolicy("published", expire_after=30 * 86400.0))
        assert kept["outcome"] == "ok" and len(kept["versions"]) == 2  # the older state too
        assert kept["expiry"]["unkept"]["files"] == 0 and kept["expiry"]["state"] == "ok"
        metrics = counted_metrics(mirror)
        assert f'neuromirror_noncurrent_unkept_files{{source="{sid}"}} 0.0' in metrics
        assert f'neuromirror_noncurrent_expiry_failing{{source="{sid}"}} 0.0' in metrics
    finally:
        mirror.close()
    (row,) = json.loads(run.ok("status", sid, "--json"))["sources"]
    assert row["expiry"]["unkept"]["files"] == 0 and row["expiry"]["time_left_s"] is None


def test_expire_after_is_validated(tmp_path: Path) -> None:
    from helpers.config import errors, write
    from neuromirror.config.load import load_config
    from neuromirror.config.model import KeepPolicy

    p = write(
        tmp_path,
        """
        store: lab-store
        defaults:
          schedule: 6h
        sources:
          - spec: "dandi:000001"
            keep: {versions: published, expire_after: 30d}
        """,
    )
    (entry,) = load_config(p).sources
    assert entry.keep == KeepPolicy("published", expire_after=30 * 86400.0)
    assert entry.to_json()["keep"]["expire_after"] == 30 * 86400.0
    bad = write(
        tmp_path,
        """
        store: lab-store
        defaults:
          schedule: 6h
        sources:
          - spec: "dandi:000001"
            keep: {expire_after: soon}
        """,
        name="bad.yaml",
    )
    assert any("sources[0].keep.expire_after" in e for e in errors(bad))

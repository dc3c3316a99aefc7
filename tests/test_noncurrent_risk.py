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

from test_keep import T0, make_dandiset
from test_read import zarr_files

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
    from neuromirror.dataset.mirror import Mirror
    from neuromirror.service import status_report
    from neuromirror.service.metrics import render_metrics
    from neuromirror.service.risk import add_risks, risk_after_sync

    mirror = Mirror(d.run.root)
    try:
        risk_after_sync(mirror, d.source, "ok")  # what the service's worker does after a sync
        report = status_report(d.run.root)
        add_risks(report, mirror.index)
    finally:
        mirror.close()
    text = render_metrics(report)
    want = f'neuromirror_at_risk_files{{kind="noncurrent",source="{d.source}",version="{d.version}"}} 2.0'
    assert want in text

    # kept: no longer at risk
    d.run.ok("keep", d.spec, "--to", str(tmp_path / "store"))
    published = by_version(json.loads(d.run.ok("status", d.source, "--json")), d.source)[d.version]
    assert published["noncurrent"]["files"] == 0 and published["kept"]["files"] == 1 + len(chunks)

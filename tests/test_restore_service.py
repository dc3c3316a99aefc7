"""The service rehearses restores: ``drill:`` in a mirror definition, validated, run after a sync when due,
and the last drill on ``status``, the status page and ``/metrics``.

Why: a backup whose restores are rehearsed only when someone remembers is not rehearsed.  The service
keeps a stand-in dandiset in a store and, as its definition says, restores a sample into a scratch
directory; the drill's result is what the pages and metrics show.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.config import errors, write
from neuromirror.config.load import load_config
from neuromirror.demo import deterministic_bytes


def test_drill_option_is_validated(tmp_path: Path) -> None:
    from neuromirror.config.model import DrillPolicy

    p = write(
        tmp_path,
        """
        store: lab-store
        drill: {to: scratch, every: 1d, sample: 5}
        defaults:
          schedule: 6h
        sources:
          - dandi:000001
          - spec: "dandi:000002"
            drill: {to: "s3://scratch-bucket/drills"}
        """,
    )
    by_spec = {s.spec: s for s in load_config(p).sources}
    assert by_spec["dandi:000001"].drill == DrillPolicy(str(tmp_path / "scratch"), 86400.0, 5)
    assert by_spec["dandi:000002"].drill == DrillPolicy("s3://scratch-bucket/drills", 7 * 86400.0, 20)
    assert by_spec["dandi:000002"].to_json()["drill"]["to"] == "s3://scratch-bucket/drills"
    bad = write(
        tmp_path,
        """
        defaults:
          schedule: 6h
        sources:
          - spec: "dandi:000001"
            drill: {every: 1d}
          - spec: "dandi:000002"
            drill: {to: /tmp/x, sample: 0}
          - spec: "dandi:000003"
            drill: {to: /tmp/x, every: soon}
          - spec: "dandi:000004"
            drill: {to: "https://example.org/x"}
          - spec: "dandi:000005"
            drill: {to: /tmp/x, often: 1d}
        """,
        name="bad.yaml",
    )
    found = "\n".join(errors(bad))
    assert "sources[0].drill: a drill needs its scratch target" in found
    assert "sources[1].drill.sample: expected a number of objects" in found
    assert "sources[2].drill.every" in found
    assert "sources[3].drill.to" in found
    assert "often" in found


def test_service_drills_after_a_sync_and_shows_the_last_drill(dandi_archive, tmp_path: Path) -> None:  # noqa: ANN001
    from helpers.service import get, metric_samples, run_part, serve, wait_for

    ident = dandi_archive.create_dandiset(name="drill sample")
    dandi_archive.put_asset(ident, "sub-01/a.nwb", deterministic_bytes(f"{ident}:a", 9_000))
    dandi_archive.put_asset(ident, "sub-01/b.nwb", deterministic_bytes(f"{ident}:b", 4_000))
    dandi_archive.publish(ident)
    sid = f"dandi:{ident}"
    root, store, scratch = tmp_path / "mirror", tmp_path / "store", tmp_path / "scratch"
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        f'store: "{store}"\n'
        f'drill: {{to: "{scratch}", every: 7d, sample: 10}}\n'
        "defaults:\n"
        "  schedule: {interval: 1h}\n"
        f'  options: {{dandi_api: "{dandi_archive.api_url}"}}\n'
        "sources:\n"
        f'  - spec: "{sid}"\n'
        "    keep: published\n"
    )

    with serve(root, cfg) as svc:
        drill = wait_for(lambda: run_part(root, sid, "drill"), 90, "a service run that drilled", svc)
        assert isinstance(drill, dict)
        assert drill["result"] == "ok" and drill["written"] == {"objects": 2, "bytes": 13_000}, drill
        status = json.loads(get(svc.url("status.json"))[2])
        assert status["drill"]["result"] == "ok" and status["drill"]["scope"] == sid
        assert status["drills"][sid]["result"] == "ok" and status["drills"][sid]["reason"] is None
        m = metric_samples(get(svc.url("metrics"))[2])
        assert m["neuromirror_drill_last_ok", ("source", sid)] == 1
        assert m["neuromirror_drill_last_objects", ("source", sid)] == 2
        assert m["neuromirror_drill_last_mismatches", ("source", sid)] == 0
        assert f"{sid}: <b>ok</b>" in get(svc.url(""))[2]
    assert list(scratch.iterdir()) == []
    # the service drills through the API: the API finds the service's drill (not due for 7 days), and one
    # due now is the same summary
    from neuromirror import api

    with api.open(root) as m:
        assert m.drill_when_due(sid, to=str(scratch), every=7 * 86400, sample=10) is None
        again = m.drill_when_due(sid, to=str(scratch), every=0, sample=10)
    assert again is not None and again.result == "ok" and again.summary()["written"] == drill["written"], again
